"""The job types Dockyard runs, and their default schedules.

A job type is a name and a handler (`async def handler(context)`); a
schedule runs one at cron ticks. `jobs.schedules` in the settings changes a
schedule's cron expression by name, or turns it off with "".
"""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.config import Settings
from dockyard.jobs.schedules import Schedule
from dockyard.jobs.worker import Handler, TaskContext
from dockyard.replication.runner import REPLICATION

EXPIRE_UPLOADS = "EXPIRE_UPLOADS"


async def expire_uploads(context: TaskContext) -> None:
    """Discard uploads untouched for `upload_expiry_seconds`."""
    max_age = context.services.settings.upload_expiry_seconds
    context.log(f"discarding uploads untouched for {max_age}s")
    count = await context.services.uploads.expire_uploads(max_age)
    context.log(f"discarded {count} uploads")


async def replicate(context: TaskContext) -> None:
    """One task of a replication execution (see `dockyard.replication.runner`)."""
    await context.services.replication.run_task(context)


HANDLERS: Mapping[str, Handler] = {
    EXPIRE_UPLOADS: expire_uploads,
    REPLICATION: replicate,
}

DEFAULT_SCHEDULES = (Schedule("expire_uploads", EXPIRE_UPLOADS, "0 */10 * * * *"),)


def schedules(settings: Settings) -> list[Schedule]:
    """The schedules in force: the defaults with the settings' changes."""
    chosen = []
    for schedule in DEFAULT_SCHEDULES:
        cron = settings.jobs.schedules.get(schedule.name, schedule.cron)
        if cron:
            chosen.append(
                Schedule(schedule.name, schedule.job_type, cron, schedule.params)
            )
    return chosen


def unknown_schedules(settings: Settings) -> list[str]:
    """Names in `jobs.schedules` that name no schedule (likely misspelt)."""
    known = {schedule.name for schedule in DEFAULT_SCHEDULES}
    return sorted(set(settings.jobs.schedules) - known)
