"""Executions and tasks in the database: submitting, claiming, finishing.

Statuses, as Harbor's job service names them: Pending (waits for a worker),
Running, Success, Error, Stopped (its worker shut down while it ran). An
execution is Running from its first claimed task and ends when its last task
ends: Error if any task failed, else Stopped if any stopped, else Success.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.db.database import Database
from dockyard.db.schema import job_executions, job_tasks
from dockyard.jobs.queue import JobQueue
from dockyard.state.store import StateUnavailable

log = logging.getLogger(__name__)

PENDING = "Pending"
RUNNING = "Running"
SUCCESS = "Success"
ERROR = "Error"
STOPPED = "Stopped"
_UNFINISHED = (PENDING, RUNNING)

MANUAL = "MANUAL"
SCHEDULE = "SCHEDULE"
EVENT = "EVENT"


class JobError(Exception):
    """A job operation cannot be done; the message says why."""


class TaskStopped(Exception):
    """Raised by a handler that saw its execution was stopped: the task
    ends Stopped, not Error."""


class TaskFailed(Exception):
    """Raised by a handler for a failure it expects (a remote refused, a
    policy cannot run): the task ends in Error with the message as one
    line of its log, logged as a WARNING without a traceback. Anything
    else a handler raises is a fault and keeps its traceback."""


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task this worker now runs: what to run and with what."""

    id: int
    execution_id: int
    job_type: str
    params: dict[str, Any]


class JobService:
    """Records every job in `db` and offers its tasks on `queue`."""

    def __init__(self, db: Database, queue: JobQueue) -> None:
        self.db = db
        self.queue = queue

    async def submit(
        self,
        job_type: str,
        params: dict[str, Any] | None = None,
        *,
        trigger: str = MANUAL,
        tasks: Sequence[dict[str, Any]] | None = None,
        owner: str | None = None,
    ) -> int:
        """Record an execution of `job_type` with one task per entry of
        `tasks` (default: one task with `params`), queue them, return its id.
        `owner` names what the execution belongs to (see `executions_of`)."""
        params = params or {}
        async with self.db.write() as conn:
            execution_id, task_ids = await _insert_execution(
                conn, job_type, trigger, params, tasks or [params], owner=owner
            )
        await self._push(task_ids)
        return execution_id

    async def submit_scheduled(
        self,
        job_type: str,
        schedule: str,
        tick: datetime,
        params: dict[str, Any],
        owner: str | None = None,
    ) -> int | None:
        """Record the execution of `schedule` for `tick`; None when that tick
        already has one (recorded by another process)."""
        try:
            async with self.db.write() as conn:
                execution_id, task_ids = await _insert_execution(
                    conn, job_type, SCHEDULE, params, [params], schedule, tick, owner
                )
        except IntegrityError:
            return None
        await self._push(task_ids)
        return execution_id

    async def last_ticks(self) -> dict[str, datetime]:
        """The latest tick recorded for each schedule."""
        query = select(
            job_executions.c.schedule, func.max(job_executions.c.scheduled_for)
        ).group_by(job_executions.c.schedule)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {name: _utc(tick) for name, tick in rows if name is not None}

    async def claim(self, task_id: int, worker: str) -> ClaimedTask | None:
        """Take the Pending task `task_id` for `worker`; None if it is not
        Pending (another worker has it, or it is done)."""
        now = _now()
        async with self.db.write() as conn:
            claimed = await conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id == task_id, job_tasks.c.status == PENDING)
                .values(
                    status=RUNNING,
                    worker=worker[:255],
                    started_at=now,
                    heartbeat_at=now,
                    run_count=job_tasks.c.run_count + 1,
                )
            )
            if claimed.rowcount != 1:
                return None
            row = (
                await conn.execute(
                    select(job_tasks.c.execution_id, job_tasks.c.params).where(
                        job_tasks.c.id == task_id
                    )
                )
            ).one()
            await conn.execute(
                update(job_executions)
                .where(
                    job_executions.c.id == row.execution_id,
                    job_executions.c.status == PENDING,
                )
                .values(status=RUNNING, started_at=now)
            )
            job_type = await conn.scalar(
                select(job_executions.c.job_type).where(
                    job_executions.c.id == row.execution_id
                )
            )
        return ClaimedTask(task_id, row.execution_id, job_type, json.loads(row.params))

    async def beat(self, task_id: int, worker: str, log_text: str) -> bool:
        """Record that `worker` still runs the task, with its log so far;
        False if the task is no longer this worker's (declared lost)."""
        async with self.db.write() as conn:
            result = await conn.execute(
                _own_running(task_id, worker).values(heartbeat_at=_now(), log=log_text)
            )
        return result.rowcount == 1

    async def finish(
        self,
        task: ClaimedTask,
        worker: str,
        status: str,
        message: str | None,
        log_text: str,
    ) -> None:
        """End the task with `status`, and its execution if it was the last."""
        now = _now()
        async with self.db.write() as conn:
            await conn.execute(
                _own_running(task.id, worker).values(
                    status=status, status_message=message, ended_at=now, log=log_text
                )
            )
            await _end_execution_if_done(conn, task.execution_id, now)

    async def requeue_waiting(self, older_than: timedelta) -> int:
        """Push again the Pending tasks last queued over `older_than` ago
        (their queue item was lost); return how many."""
        now = _now()
        async with self.db.write() as conn:
            ids = list(
                (
                    await conn.scalars(
                        select(job_tasks.c.id)
                        .where(job_tasks.c.status == PENDING)
                        .where(job_tasks.c.queued_at < now - older_than)
                        .order_by(job_tasks.c.id)
                        .limit(1000)
                    )
                ).all()
            )
            if ids:
                await conn.execute(
                    update(job_tasks)
                    .where(job_tasks.c.id.in_(ids))
                    .values(queued_at=now)
                )
        await self._push(ids)
        return len(ids)

    async def count_waiting(self, older_than: timedelta) -> int:
        """How many tasks were created over `older_than` ago and are still
        Pending: work no worker has taken (none runs, or all are stuck)."""
        async with self.db.read() as conn:
            return await conn.scalar(
                select(func.count())
                .select_from(job_tasks)
                .where(job_tasks.c.status == PENDING)
                .where(job_tasks.c.created_at < _now() - older_than)
            )

    async def fail_lost(self, silent_for: timedelta) -> int:
        """Mark Running tasks whose worker sent no heartbeat for `silent_for`
        as Error (the worker died); return how many."""
        now = _now()
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(job_tasks.c.id, job_tasks.c.execution_id)
                    .where(job_tasks.c.status == RUNNING)
                    .where(job_tasks.c.heartbeat_at < now - silent_for)
                    .limit(1000)
                )
            ).all()
            for task_id, execution_id in rows:
                await conn.execute(
                    update(job_tasks)
                    .where(job_tasks.c.id == task_id, job_tasks.c.status == RUNNING)
                    .values(
                        status=ERROR,
                        status_message="worker lost (no heartbeat)",
                        ended_at=now,
                    )
                )
                await _end_execution_if_done(conn, execution_id, now)
        return len(rows)

    async def execution(self, execution_id: int) -> dict[str, Any]:
        """The execution row with its tasks (list under "tasks")."""
        async with self.db.read() as conn:
            row = (
                (
                    await conn.execute(
                        select(job_executions).where(
                            job_executions.c.id == execution_id
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise JobError(f"execution {execution_id} not found")
            tasks = (
                (
                    await conn.execute(
                        select(job_tasks)
                        .where(job_tasks.c.execution_id == execution_id)
                        .order_by(job_tasks.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return {**row, "tasks": [dict(task) for task in tasks]}

    async def add_tasks(
        self, execution_id: int, tasks: Sequence[dict[str, Any]]
    ) -> list[int]:
        """Add tasks to an unfinished execution (a running task plans the
        rest) and queue them; the execution ends when they all have. Nothing
        is added to an execution that was stopped meanwhile."""
        now = _now()
        async with self.db.write() as conn:
            status = await conn.scalar(
                select(job_executions.c.status).where(
                    job_executions.c.id == execution_id
                )
            )
            if status not in _UNFINISHED:
                return []
            task_ids = [
                await _insert_task(conn, execution_id, params, now) for params in tasks
            ]
        await self._push(task_ids)
        return task_ids

    async def stop_execution(self, execution_id: int) -> bool:
        """Stop an unfinished execution: it ends Stopped now, its Pending
        tasks are not run, and running handlers see `is_stopped`; False if it
        had already ended."""
        now = _now()
        async with self.db.write() as conn:
            result = await conn.execute(
                update(job_executions)
                .where(
                    job_executions.c.id == execution_id,
                    job_executions.c.status.in_(_UNFINISHED),
                )
                .values(status=STOPPED, ended_at=now, status_message="stopped")
            )
            if result.rowcount != 1:
                return False
            await conn.execute(
                update(job_tasks)
                .where(
                    job_tasks.c.execution_id == execution_id,
                    job_tasks.c.status == PENDING,
                )
                .values(status=STOPPED, ended_at=now, status_message="stopped")
            )
        return True

    async def note_execution(self, execution_id: int, message: str) -> None:
        """Set the execution's status message: why it did what it did, for
        the caller who sees no task (e.g. a run skipped as a whole)."""
        async with self.db.write() as conn:
            await conn.execute(
                update(job_executions)
                .where(job_executions.c.id == execution_id)
                .values(status_message=message[:1000])
            )

    async def is_stopped(self, execution_id: int) -> bool:
        """Whether the execution was stopped (handlers check between steps)."""
        async with self.db.read() as conn:
            status = await conn.scalar(
                select(job_executions.c.status).where(
                    job_executions.c.id == execution_id
                )
            )
        return status == STOPPED

    async def has_unfinished(self, owner: str, other_than: int | None = None) -> bool:
        """Whether an execution of `owner` (besides `other_than`) is still
        Pending or Running."""
        query = (
            select(job_executions.c.id)
            .where(job_executions.c.owner == owner)
            .where(job_executions.c.status.in_(_UNFINISHED))
        )
        if other_than is not None:
            query = query.where(job_executions.c.id != other_than)
        async with self.db.read() as conn:
            found = await conn.scalar(query.limit(1))
        return found is not None

    async def _push(self, task_ids: Sequence[int]) -> None:
        for task_id in task_ids:
            try:
                await self.queue.push(task_id)
            except StateUnavailable as exc:
                # Still Pending in the database: upkeep pushes it again.
                log.warning("task_not_queued task_id=%d error=%s", task_id, exc)
                return


async def _insert_execution(
    conn: AsyncConnection,
    job_type: str,
    trigger: str,
    params: dict[str, Any],
    tasks: Sequence[dict[str, Any]],
    schedule: str | None = None,
    tick: datetime | None = None,
    owner: str | None = None,
) -> tuple[int, list[int]]:
    now = _now()
    result = await conn.execute(
        insert(job_executions).values(
            job_type=job_type,
            trigger=trigger,
            status=PENDING,
            params=json.dumps(params),
            schedule=schedule,
            scheduled_for=tick,
            created_at=now,
            owner=owner,
        )
    )
    execution_id = int(result.inserted_primary_key[0])
    task_ids = [
        await _insert_task(conn, execution_id, task_params, now)
        for task_params in tasks
    ]
    return execution_id, task_ids


async def _insert_task(
    conn: AsyncConnection, execution_id: int, params: dict[str, Any], now: datetime
) -> int:
    inserted = await conn.execute(
        insert(job_tasks).values(
            execution_id=execution_id,
            status=PENDING,
            params=json.dumps(params),
            run_count=0,
            created_at=now,
            queued_at=now,
            log="",
        )
    )
    return int(inserted.inserted_primary_key[0])


def _own_running(task_id: int, worker: str) -> Any:
    return update(job_tasks).where(
        job_tasks.c.id == task_id,
        job_tasks.c.status == RUNNING,
        job_tasks.c.worker == worker[:255],
    )


async def _end_execution_if_done(
    conn: AsyncConnection, execution_id: int, now: datetime
) -> None:
    statuses = set(
        (
            await conn.scalars(
                select(job_tasks.c.status)
                .where(job_tasks.c.execution_id == execution_id)
                .distinct()
            )
        ).all()
    )
    if statuses & set(_UNFINISHED):
        return
    status = ERROR if ERROR in statuses else STOPPED if STOPPED in statuses else SUCCESS
    await conn.execute(
        update(job_executions)
        .where(job_executions.c.id == execution_id)
        .where(job_executions.c.status.in_(_UNFINISHED))
        .values(status=status, ended_at=now)
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
