"""Pull times and pull counts, recorded off the hot path.

A manifest GET must not wait for the database's write lock, so pulls are only
noted in memory (`record_pull`) and written in batches (`flush`): per
repository the number of pulls since the last flush is added to
`pull_count`; per manifest and per tag the latest pull time is kept. A batch
that fails to write is merged back and tried again at the next flush.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, or_, select, update

from dockyard.db.database import Database
from dockyard.db.schema import manifests, repositories, tags

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
# Beyond this many distinct entries waiting (database unreachable), further
# pulls are counted as dropped rather than exhausting memory.
_MAX_PENDING = 100_000


@dataclass
class _Batch:
    counts: dict[str, int] = field(default_factory=dict)
    manifests: dict[tuple[str, str], datetime] = field(default_factory=dict)
    tags: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.counts) + len(self.manifests) + len(self.tags)

    def merge(self, other: _Batch) -> None:
        for repository, count in other.counts.items():
            self.counts[repository] = self.counts.get(repository, 0) + count
        for mine, theirs in (
            (self.manifests, other.manifests),
            (self.tags, other.tags),
        ):
            for key, moment in theirs.items():
                mine[key] = max(moment, mine.get(key, moment))


class PullTracker:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending = _Batch()
        self.dropped = 0

    def record_pull(self, repository: str, digest: str, tag: str | None) -> None:
        """Note that a client pulled `digest` from `repository` (by `tag` if set)."""
        if len(self._pending) >= _MAX_PENDING:
            self.dropped += 1
            return
        now = datetime.now(UTC)
        pending = self._pending
        pending.counts[repository] = pending.counts.get(repository, 0) + 1
        pending.manifests[(repository, digest)] = now
        if tag is not None:
            pending.tags[(repository, tag)] = now

    async def flush(self) -> None:
        """Write what was noted so far; on failure keep it for the next flush."""
        batch, self._pending = self._pending, _Batch()
        if not len(batch):
            return
        try:
            await self._write(batch)
        except BaseException:
            batch.merge(self._pending)
            self._pending = batch
            raise

    async def run_flusher(self) -> None:
        """Flush forever; cancel to stop (then flush once more)."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                try:
                    await self.flush()
                except Exception:  # keep flushing; the pulls stay noted
                    log.exception("pull_flush_failed pending=%d", len(self._pending))
        finally:
            await self.flush()

    async def _write(self, batch: _Batch) -> None:
        repo_id = (
            select(repositories.c.id)
            .where(repositories.c.name == bindparam("b_repository"))
            .scalar_subquery()
        )
        counts = (
            update(repositories)
            .where(repositories.c.name == bindparam("b_repository"))
            .values(pull_count=repositories.c.pull_count + bindparam("b_count"))
        )
        # Another worker may have written a later pull already: keep the latest.
        manifest_times = (
            update(manifests)
            .where(
                (manifests.c.repository_id == repo_id)
                & (manifests.c.digest == bindparam("b_key"))
                & or_(
                    manifests.c.pull_time.is_(None),
                    manifests.c.pull_time < bindparam("b_time"),
                )
            )
            .values(pull_time=bindparam("b_time"))
        )
        tag_times = (
            update(tags)
            .where(
                (tags.c.repository_id == repo_id)
                & (tags.c.name == bindparam("b_key"))
                & or_(
                    tags.c.pull_time.is_(None), tags.c.pull_time < bindparam("b_time")
                )
            )
            .values(pull_time=bindparam("b_time"))
        )
        async with self.db.write() as conn:
            for statement, rows in (
                (counts, _count_rows(batch)),
                (manifest_times, _time_rows(batch.manifests)),
                (tag_times, _time_rows(batch.tags)),
            ):
                if rows:
                    await conn.execute(statement, rows)


def _count_rows(batch: _Batch) -> list[dict[str, object]]:
    return [
        {"b_repository": repository, "b_count": count}
        for repository, count in batch.counts.items()
    ]


def _time_rows(times: dict[tuple[str, str], datetime]) -> list[dict[str, object]]:
    return [
        {"b_repository": repository, "b_key": key, "b_time": moment}
        for (repository, key), moment in times.items()
    ]
