"""The audit trail: who did what to which resource, and when.

Changes are recorded with `record` inside the transaction that makes them, so
an entry exists exactly when the change does. Pulls change nothing; they are
queued with `record_later` and written in batches (`flush`), so that pulling
never waits on the database's write lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.db.database import Database
from dockyard.db.schema import audit_logs

log = logging.getLogger(__name__)

# Queued pulls are written at least this often, or when this many wait.
FLUSH_SECONDS = 1.0
_FLUSH_SIZE = 500
# Beyond this many queued entries (database unreachable), new ones are
# dropped and counted rather than exhausting memory.
_MAX_QUEUED = 100_000


# The operator recorded for changes made with the `dockyard admin` CLI.
CLI_ACTOR = "admin-cli"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    username: str
    resource: str
    resource_type: str
    operation: str
    project_id: int | None = None
    result: bool = True
    op_time: datetime = field(default_factory=lambda: datetime.now(UTC))


async def record(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Record `entry` in the transaction `conn` is in."""
    await conn.execute(insert(audit_logs).values(**asdict(entry)))


async def record_change(
    conn: AsyncConnection,
    actor: str,
    resource_type: str,
    operation: str,
    resource: str,
    project_id: int | None = None,
) -> None:
    """Record that `actor` did `operation` to `resource`, in `conn`'s transaction."""
    entry = AuditEntry(
        username=actor,
        resource=resource,
        resource_type=resource_type,
        operation=operation,
        project_id=project_id,
    )
    await record(conn, entry)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queued: list[AuditEntry] = []
        self.dropped = 0

    def record_later(self, entry: AuditEntry) -> None:
        if len(self._queued) >= _MAX_QUEUED:
            self.dropped += 1
            return
        self._queued.append(entry)

    @property
    def backlog(self) -> int:
        return len(self._queued)

    async def flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:_FLUSH_SIZE], self._queued[_FLUSH_SIZE:]
            async with self.db.write() as conn:
                await conn.execute(insert(audit_logs), [asdict(e) for e in batch])

    async def run_flusher(self) -> None:
        """Flush queued entries forever; cancel to stop (then flush once more)."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                try:
                    await self.flush()
                except Exception:  # keep flushing; the entries stay queued
                    log.exception("audit_flush_failed backlog=%d", self.backlog)
        finally:
            await self.flush()

    async def list_entries(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the entries `query` (over `audit_logs`) finds, newest first."""
        async with self.db.read() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(query.order_by(None).subquery())
            )
            rows = (
                (
                    await conn.execute(
                        query.order_by(
                            audit_logs.c.op_time.desc(), audit_logs.c.id.desc()
                        )
                        .offset(offset)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows], int(total or 0)
