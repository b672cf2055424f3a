"""The worker: claims queued tasks and runs their job type's handler.

A task's log is kept in memory while it runs and written to its row with
every heartbeat and at the end. A handler that raises ends its task in
Error: a `TaskFailed` (a failure the handler expects) adds one line to
the task log and a WARNING to the server log; any other exception is a
fault, and its traceback goes to both (ERROR). A worker that is shut down
while a task runs ends it Stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from dockyard.jobs.records import (
    ERROR,
    STOPPED,
    SUCCESS,
    ClaimedTask,
    JobService,
    TaskFailed,
    TaskStopped,
)
from dockyard.state.store import StateUnavailable, raise_if_cancelled

if TYPE_CHECKING:
    from dockyard.services import Services

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
_POP_TIMEOUT_SECONDS = 2.0
_RETRY_SECONDS = 5.0
_MAX_LOG_CHARS = 256 * 1024


@dataclass
class TaskContext:
    """What a handler gets: the services, its task's params, a log."""

    services: Services
    task: ClaimedTask
    _lines: list[str] = field(default_factory=list)
    _size: int = 0

    @property
    def params(self) -> dict[str, Any]:
        return self.task.params

    def log(self, message: str) -> None:
        """Add a line to the task's log (kept in the database, bounded)."""
        line = f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}\n"
        if self._size + len(line) > _MAX_LOG_CHARS:
            if self._size <= _MAX_LOG_CHARS:
                self._lines.append("... log truncated\n")
                self._size = _MAX_LOG_CHARS + 1
            return
        self._lines.append(line)
        self._size += len(line)

    def text(self) -> str:
        return "".join(self._lines)


Handler = Callable[[TaskContext], Awaitable[None]]


def worker_name() -> str:
    """How this process is named in task rows: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Runs `concurrency` tasks at a time from `jobs.queue`."""

    def __init__(
        self,
        services: Services,
        jobs: JobService,
        handlers: Mapping[str, Handler],
        concurrency: int = 1,
    ) -> None:
        self.services = services
        self.jobs = jobs
        self.handlers = handlers
        self.concurrency = concurrency
        self.name = worker_name()

    async def run(self) -> None:
        """Consume the queue until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(self._consume())

    async def _consume(self) -> None:
        while True:
            raise_if_cancelled()
            try:
                task_id = await self.jobs.queue.pop(_POP_TIMEOUT_SECONDS)
            except StateUnavailable as exc:
                log.warning("job_queue_unavailable error=%s", exc)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if task_id is None:
                continue
            try:
                await self.run_task(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the next task must still run
                log.exception("job_task_failed task_id=%d", task_id)

    async def run_task(self, task_id: int) -> None:
        """Claim `task_id` and run it to its end (nothing if not claimable)."""
        task = await self.jobs.claim(task_id, self.name)
        if task is None:
            return
        context = TaskContext(self.services, task)
        handler = self.handlers.get(task.job_type)
        if handler is None:
            await self._finish(task, context, ERROR, "unknown job type")
            return
        log.info(
            "job_task_started job_type=%s execution_id=%d task_id=%d",
            task.job_type,
            task.execution_id,
            task.id,
        )
        status, message = await self._run_handler(handler, context)
        await self._finish(task, context, status, message)

    async def _run_handler(
        self, handler: Handler, context: TaskContext
    ) -> tuple[str, str | None]:
        beating = asyncio.create_task(self._beat(context))
        try:
            await handler(context)
            return SUCCESS, None
        except asyncio.CancelledError:
            context.log("stopped: the worker shut down")
            await asyncio.shield(
                self._finish(context.task, context, STOPPED, "worker shut down")
            )
            raise
        except TaskStopped as exc:
            context.log(f"stopped: {exc}")
            return STOPPED, str(exc)[:1000]
        except TaskFailed as exc:
            context.log(f"failed: {exc}")
            log.warning("job_task_failure task_id=%d error=%s", context.task.id, exc)
            return ERROR, str(exc)[:1000]
        except Exception as exc:
            context.log(traceback.format_exc())
            log.exception("job_task_error task_id=%d", context.task.id)
            return ERROR, f"{type(exc).__name__}: {exc}"[:1000]
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _beat(self, context: TaskContext) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                mine = await self.jobs.beat(context.task.id, self.name, context.text())
            except (SQLAlchemyError, OSError):  # the next beat may land
                log.warning("job_heartbeat_failed task_id=%d", context.task.id)
                continue
            if not mine:
                log.warning("job_task_lost task_id=%d", context.task.id)

    async def _finish(
        self, task: ClaimedTask, context: TaskContext, status: str, message: str | None
    ) -> None:
        await self.jobs.finish(task, self.name, status, message, context.text())
        log.info(
            "job_task_ended job_type=%s execution_id=%d task_id=%d status=%s",
            task.job_type,
            task.execution_id,
            task.id,
            status,
        )
