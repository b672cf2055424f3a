"""Reading replication executions and tasks back, in Harbor's terms.

The job framework's statuses map to Harbor's replication ones:

    execution: Pending, Running -> InProgress; Success -> Succeed;
               Error -> Failed; Stopped -> Stopped
    task:      Pending -> Pending; Running -> InProgress; the rest as above

A plan task that succeeded is bookkeeping, not a copy: it is left out of
task lists and counts (one that failed or stopped is shown, since it is
why the execution failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from dockyard.db.database import Database
from dockyard.db.schema import job_executions, job_tasks
from dockyard.jobs import records

EXECUTION_STATUS = {
    records.PENDING: "InProgress",
    records.RUNNING: "InProgress",
    records.SUCCESS: "Succeed",
    records.ERROR: "Failed",
    records.STOPPED: "Stopped",
}
TASK_STATUS = {**EXECUTION_STATUS, records.PENDING: "Pending"}
TRIGGERS = {
    records.MANUAL: "manual",
    records.SCHEDULE: "scheduled",
    records.EVENT: "event_based",
}
_OWNER_PREFIX = "replication_policy:"


class ExecutionNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Execution:
    row: Any
    tasks: list[Any]

    @property
    def policy_id(self) -> int:
        return int(str(self.row.owner).removeprefix(_OWNER_PREFIX))


class ExecutionReader:
    def __init__(self, db: Database, job_type: str) -> None:
        self.db = db
        self.job_type = job_type

    async def list_executions(
        self,
        owner: str | None,
        status: str | None,
        trigger: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Execution], int]:
        """Newest first; `status` and `trigger` in Harbor's words."""
        query = select(job_executions).where(
            (job_executions.c.job_type == self.job_type)
            & job_executions.c.owner.startswith(_OWNER_PREFIX)
        )
        if owner is not None:
            query = query.where(job_executions.c.owner == owner)
        if status:
            wanted = [k for k, v in EXECUTION_STATUS.items() if v == status]
            query = query.where(job_executions.c.status.in_(wanted))
        if trigger:
            wanted = [k for k, v in TRIGGERS.items() if v == trigger]
            query = query.where(job_executions.c.trigger.in_(wanted))
        async with self.db.read() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(query.subquery())
            )
            rows = (
                await conn.execute(
                    query.order_by(job_executions.c.id.desc())
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
            found = [Execution(row, await _tasks(conn, row.id)) for row in rows]
        return found, int(total or 0)

    async def get_execution(self, execution_id: int) -> Execution:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(job_executions).where(
                        (job_executions.c.id == execution_id)
                        & (job_executions.c.job_type == self.job_type)
                        & job_executions.c.owner.startswith(_OWNER_PREFIX)
                    )
                )
            ).first()
            if row is None:
                raise ExecutionNotFound(f"execution {execution_id} not found")
            return Execution(row, await _tasks(conn, execution_id))


async def _tasks(conn: Any, execution_id: int) -> list[Any]:
    rows = (
        await conn.execute(
            select(job_tasks)
            .where(job_tasks.c.execution_id == execution_id)
            .order_by(job_tasks.c.id)
        )
    ).all()
    return [row for row in rows if _shown(row)]


def _shown(task: Any) -> bool:
    return not (
        json.loads(task.params).get("step") == "plan" and task.status == records.SUCCESS
    )
