"""Schedules: which job runs at which cron ticks.

Cron expressions have six fields with the seconds first, as Harbor writes
them: `0 */10 * * * *` is every ten minutes. Ticks are computed in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from croniter import croniter


def check_cron(name: str, expression: str) -> None:
    """Raise ValueError unless `expression` is empty (the schedule is off) or
    a six-field cron expression."""
    if expression and (
        len(expression.split()) != 6
        or not croniter.is_valid(expression, second_at_beginning=True)
    ):
        raise ValueError(
            f"schedule {name}: {expression!r} is not a cron expression of six "
            "fields, seconds first (e.g. '0 */10 * * * *')"
        )


@dataclass(frozen=True)
class Schedule:
    """Run `job_type` with `params` at every tick of `cron`."""

    name: str
    job_type: str
    cron: str
    params: dict[str, Any] = field(default_factory=dict)
    # What its executions belong to (see `JobService.submit`).
    owner: str | None = None

    def latest_tick(self, now: datetime) -> datetime:
        """The last tick at or before `now` (aware, UTC)."""
        # croniter's get_prev is strictly before its start: a tick exactly
        # at `now` (to the second) is checked first.
        start = now.replace(microsecond=0)
        itr = croniter(self.cron, start, second_at_beginning=True)
        if itr.match(self.cron, start, second_at_beginning=True):
            return start
        return itr.get_prev(datetime)

    def next_tick(self, now: datetime) -> datetime:
        """The first tick after `now`."""
        itr = croniter(self.cron, now, second_at_beginning=True)
        return itr.get_next(datetime)
