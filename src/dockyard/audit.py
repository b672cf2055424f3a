"""The audit trail: who did what to which resource, and when.

Changes are recorded with `record` inside the transaction that makes them, so
an entry exists exactly when the change does. Pulls change nothing; they are
queued with `record_later` and written in batches (`flush`), so that pulling
never waits on the database's write lock.

Every entry has an event type, `<operation>_<resource_type>` as Harbor names
them (`create_project`, `pull_artifact`, `login_user`); `EVENT_TYPES` lists
the ones Dockyard records. Types named in the `disabled_audit_log_event_types`
configuration are not written, whichever path records them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.db.database import Database, count_rows
from dockyard.db.schema import audit_logs, configurations

log = logging.getLogger(__name__)

# Queued pulls are written at least this often, or when this many wait.
FLUSH_SECONDS = 1.0
_FLUSH_SIZE = 500
# Beyond this many queued entries (database unreachable), new ones are
# dropped and counted rather than exhausting memory.
_MAX_QUEUED = 100_000


# The operator recorded for changes made with the `dockyard admin` CLI.
CLI_ACTOR = "admin-cli"

# The configuration key (Harbor's) naming event types not to record: a
# comma-separated string, e.g. "pull_artifact,create_tag".
DISABLED_TYPES_KEY = "disabled_audit_log_event_types"

# What each resource type is recorded doing. A failed login is stored as
# operation `login_failed` (result false) but is the `login_<type>` event.
_OPERATIONS: dict[str, tuple[str, ...]] = {
    "artifact": ("create", "delete", "pull"),
    "artifact-label": ("create", "delete"),
    "blob": ("delete",),
    "configuration": ("update",),
    "cve-allowlist": ("update",),
    "grant": ("create", "delete"),
    "label": ("create", "update", "delete"),
    "member": ("create", "update", "delete"),
    "project": ("create", "update", "delete"),
    "quota": ("update",),
    "registry": ("create", "update", "delete"),
    "repository": ("update", "delete"),
    "robot": ("create", "update", "delete", "refresh_secret", "login"),
    "role": ("create", "update", "delete"),
    "tag": ("create", "delete"),
    "user": ("create", "update", "delete", "change_password", "login", "logout"),
    "user_group": ("create", "update", "delete"),
}
_EVENT_OPERATION = {"login_failed": "login"}
_EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*")
# Changes to these keys are recorded even when `update_configuration` is
# disabled: switching the audit trail off must itself leave a trace.
_AUDIT_SWITCHES = frozenset({DISABLED_TYPES_KEY, "pull_audit_log_disable"})


def event_type(resource_type: str, operation: str) -> str:
    """The event type of an entry, e.g. ("project", "create") -> create_project."""
    operation = _EVENT_OPERATION.get(operation, operation)
    return f"{operation}_{resource_type.replace('-', '_')}"


EVENT_TYPES: tuple[str, ...] = tuple(
    event_type(resource_type, operation)
    for resource_type, operations in _OPERATIONS.items()
    for operation in operations
)


def parse_event_types(value: str) -> frozenset[str]:
    """The event types in a comma-separated list; ValueError if a name is
    malformed. Names Dockyard does not record are accepted (Harbor's own
    list is longer) and simply match nothing."""
    names = {name.strip() for name in value.split(",") if name.strip()}
    bad = sorted(name for name in names if not _EVENT_TYPE_RE.fullmatch(name))
    if bad:
        raise ValueError(f"malformed event types: {', '.join(bad)}")
    return frozenset(names)


def describe(resource_type: str, operation: str, resource: str) -> str:
    """A default description in words: "create project library"."""
    words = f"{operation} {resource_type}".replace("_", " ").replace("-", " ")
    return f"{words} {resource}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    username: str
    resource: str
    resource_type: str
    operation: str
    project_id: int | None = None
    result: bool = True
    op_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    # None: described from the other fields (`describe`).
    description: str | None = None

    @property
    def event_type(self) -> str:
        return event_type(self.resource_type, self.operation)

    def row(self) -> dict[str, Any]:
        """The `audit_logs` row for this entry. NUL characters (a failed login
        may name anything) become U+FFFD: PostgreSQL cannot store them, and
        one such entry must not cost its batch."""
        row = asdict(self)
        if self.description is None:
            row["description"] = describe(
                self.resource_type, self.operation, self.resource
            )
        return {
            key: value.replace("\x00", "\ufffd") if isinstance(value, str) else value
            for key, value in row.items()
        }


async def record(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Record `entry` in the transaction `conn` is in, unless its event type
    is disabled by configuration (read in that same transaction)."""
    if entry.event_type in await _disabled_types(conn) and not _is_audit_switch(entry):
        return
    await conn.execute(insert(audit_logs).values(**entry.row()))


async def record_change(
    conn: AsyncConnection,
    actor: str,
    resource_type: str,
    operation: str,
    resource: str,
    project_id: int | None = None,
    description: str | None = None,
) -> None:
    """Record that `actor` did `operation` to `resource`, in `conn`'s transaction.
    Without `description`, one is made from the rest ("create project foo")."""
    entry = AuditEntry(
        username=actor,
        resource=resource,
        resource_type=resource_type,
        operation=operation,
        project_id=project_id,
        description=description,
    )
    await record(conn, entry)


async def _disabled_types(conn: AsyncConnection) -> frozenset[str]:
    # One primary-key lookup in the caller's transaction: always current,
    # in every process, without a cache to invalidate.
    stored = await conn.scalar(
        select(configurations.c.value).where(configurations.c.key == DISABLED_TYPES_KEY)
    )
    if stored is None:
        return frozenset()
    try:
        return parse_event_types(json.loads(stored))
    except (ValueError, TypeError):
        # Stored values were validated; a corrupt one must not stop changes.
        log.warning("audit_disabled_types_unreadable")
        return frozenset()


def _is_audit_switch(entry: AuditEntry) -> bool:
    return entry.resource_type == "configuration" and bool(
        _AUDIT_SWITCHES & set(entry.resource.split(","))
    )


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
                disabled = await _disabled_types(conn)
                rows = [e.row() for e in batch if e.event_type not in disabled]
                if rows:
                    await conn.execute(insert(audit_logs), rows)

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
            total = await count_rows(conn, query)
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
        return [dict(row) for row in rows], total
