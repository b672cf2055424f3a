"""The scheduler: one process at a time submits the executions schedules call for.

Every process runs a `Scheduler`; the one that holds the `scheduler` lock
leads, the others wait to take over should it stop. The leader submits one
execution per schedule tick. Missed ticks (the leader was slow or nobody
led) are coalesced: only the latest due tick fires. A tick is recorded with
a unique key, so even two leaders (a Redis that lost the lock) fire it once.

The leader also does the queue's upkeep (see `dockyard.jobs`): Pending
tasks whose queue item was lost are pushed again, Running tasks whose worker
went silent are failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from dockyard.jobs.records import JobService
from dockyard.jobs.schedules import Schedule
from dockyard.jobs.worker import HEARTBEAT_SECONDS
from dockyard.state.locks import HeldLock, LockBusy, Locks, hold
from dockyard.state.store import StateUnavailable, raise_if_cancelled

log = logging.getLogger(__name__)

LOCK_NAME = "scheduler"
_LOCK_TTL_SECONDS = 15.0
_FOLLOWER_RETRY_SECONDS = 2.0
_UPKEEP_SECONDS = 30.0
_REQUEUE_AFTER = timedelta(seconds=60)
_LOST_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)
# How often schedules kept in the database (replication policies) are read.
_RELOAD_SECONDS = 5.0

ScheduleSource = Callable[[], Awaitable[list[Schedule]]]


class Scheduler:
    """Fires `schedules`, and those `source` (if any) returns; `source` is
    read again every few seconds, so schedules can come and go."""

    def __init__(
        self,
        jobs: JobService,
        locks: Locks,
        schedules: Sequence[Schedule],
        source: ScheduleSource | None = None,
        report_depth: Callable[[int], None] | None = None,
    ) -> None:
        """`source` gives the schedules that change (replication policies'
        crons), read on every round; `report_depth` is told the queue's
        depth at every upkeep (metrics)."""
        self.jobs = jobs
        self.locks = locks
        self.schedules = list(schedules)
        self.source = source
        self.report_depth = report_depth

    async def _current(self) -> list[Schedule]:
        if self.source is None:
            return self.schedules
        try:
            return self.schedules + await self.source()
        except asyncio.CancelledError:
            raise
        except Exception:  # the fixed schedules must still fire
            log.exception("schedule_source_failed")
            return self.schedules

    async def run(self) -> None:
        """Lead whenever the lock is free, until cancelled."""
        while True:
            raise_if_cancelled()
            try:
                async with hold(self.locks, LOCK_NAME, _LOCK_TTL_SECONDS) as held:
                    log.info("scheduler_leading")
                    await self._lead(held)
            except LockBusy:
                pass
            except StateUnavailable as exc:
                log.warning("scheduler_lock_unavailable error=%s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # lead again later rather than never
                log.exception("scheduler_failed")
            await asyncio.sleep(_FOLLOWER_RETRY_SECONDS)

    async def _lead(self, held: HeldLock) -> None:
        fired = await self.jobs.last_ticks()
        next_upkeep = _now()
        while not held.lost.is_set():
            raise_if_cancelled()
            now = _now()
            schedules = await self._current()
            for schedule in schedules:
                await self._fire_due(schedule, now, fired)
            if now >= next_upkeep:
                await self._upkeep()
                next_upkeep = now + timedelta(seconds=_UPKEEP_SECONDS)
            wake = min([next_upkeep, *(s.next_tick(now) for s in schedules)])
            if self.source is not None:
                wake = min(wake, now + timedelta(seconds=_RELOAD_SECONDS))
            await _wait_unless_lost(held, (wake - _now()).total_seconds())
        log.warning("scheduler_lock_lost")

    async def _fire_due(
        self, schedule: Schedule, now: datetime, fired: dict[str, datetime]
    ) -> None:
        tick = schedule.latest_tick(now)
        last = fired.get(schedule.name)
        if last is not None and tick <= last:
            return
        fired[schedule.name] = tick
        if last is None and schedule.owner is not None:
            # A schedule just seen (a new policy): start at its next tick,
            # not at the one already past.
            return
        execution_id = await self.jobs.submit_scheduled(
            schedule.job_type, schedule.name, tick, schedule.params, schedule.owner
        )
        if execution_id is None:
            log.info("schedule_tick_taken schedule=%s tick=%s", schedule.name, tick)
            return
        log.info(
            "schedule_fired schedule=%s tick=%s execution_id=%d",
            schedule.name,
            tick.isoformat(),
            execution_id,
        )

    async def _upkeep(self) -> None:
        lost = await self.jobs.fail_lost(_LOST_AFTER)
        requeued = await self.jobs.requeue_waiting(_REQUEUE_AFTER)
        if lost or requeued:
            log.warning("job_upkeep lost=%d requeued=%d", lost, requeued)
        if self.report_depth is not None:
            self.report_depth(await self.jobs.queue.depth())


async def _wait_unless_lost(held: HeldLock, seconds: float) -> None:
    """Sleep `seconds`, or less if the lock is lost meanwhile. Not with
    `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that
    comes as the wait ends (see `raise_if_cancelled`)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.01, seconds)):
            await held.lost.wait()


def _now() -> datetime:
    return datetime.now(UTC)
