"""CVE allowlists: vulnerabilities a scan may find without blocking a pull.

There is one system allowlist (stored with a NULL project) and at most one
per project. A project uses its own unless its `reuse_sys_cve_allowlist`
metadata is "true". An allowlist that is not stored reads as empty and
never expiring; writing one replaces the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.db.database import Database
from dockyard.db.schema import cve_allowlists

CVE_ID_MAX = 128
ITEMS_MAX = 10_000
SYSTEM = "system"


class AllowlistInvalid(ValueError):
    """The items or the expiry are not acceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class Allowlist:
    id: int
    """0 while nothing is stored."""
    project_id: int | None
    """None for the system allowlist."""
    expires_at: int | None
    """Seconds since the epoch; None never expires."""
    cve_ids: tuple[str, ...]
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class AllowlistContent:
    """What a caller writes: checked CVE ids and an optional expiry."""

    cve_ids: tuple[str, ...]
    expires_at: int | None


def check_content(cve_ids: Iterable[str], expires_at: int | None) -> AllowlistContent:
    """The content with ids trimmed; `AllowlistInvalid` for an empty or
    repeated id, too many items, or a negative expiry."""
    trimmed = tuple(cve_id.strip() for cve_id in cve_ids)
    if len(trimmed) > ITEMS_MAX:
        raise AllowlistInvalid(f"an allowlist holds at most {ITEMS_MAX} items")
    seen: set[str] = set()
    for cve_id in trimmed:
        if not cve_id:
            raise AllowlistInvalid("cve_id must not be empty")
        if len(cve_id) > CVE_ID_MAX:
            raise AllowlistInvalid(f"cve_id is longer than {CVE_ID_MAX} characters")
        if cve_id in seen:
            raise AllowlistInvalid(f"duplicate cve_id in allowlist: {cve_id}")
        seen.add(cve_id)
    if expires_at is not None and expires_at < 0:
        raise AllowlistInvalid("expires_at must be seconds since the epoch")
    return AllowlistContent(trimmed, expires_at)


async def write_allowlist(
    conn: AsyncConnection, project_id: int | None, content: AllowlistContent
) -> None:
    """Replace the allowlist of a project (or the system's, for None) in the
    caller's transaction."""
    now = datetime.now(UTC)
    values = {
        "expires_at": content.expires_at,
        "items": json.dumps([{"cve_id": cve_id} for cve_id in content.cve_ids]),
        "updated_at": now,
    }
    # Looked up rather than upserted: the system row's project is NULL, which
    # the unique index on project_id never matches.
    existing = await conn.scalar(
        select(cve_allowlists.c.id).where(_owned_by(project_id))
    )
    if existing is None:
        await conn.execute(
            insert(cve_allowlists).values(
                project_id=project_id, created_at=now, **values
            )
        )
    else:
        await conn.execute(
            update(cve_allowlists)
            .where(cve_allowlists.c.id == existing)
            .values(**values)
        )


class AllowlistService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_allowlist(self, project_id: int | None) -> Allowlist:
        """The project's allowlist (the system's for None), empty if unset."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(cve_allowlists).where(_owned_by(project_id)))
            ).first()
        if row is None:
            return Allowlist(0, project_id, None, (), None, None)
        return Allowlist(
            id=row.id,
            project_id=project_id,
            expires_at=row.expires_at,
            cve_ids=tuple(item["cve_id"] for item in json.loads(row.items)),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def put_allowlist(
        self,
        project_id: int | None,
        content: AllowlistContent,
        actor: str,
        resource: str = SYSTEM,
    ) -> None:
        """Replace the allowlist; `resource` names its owner in the audit log."""
        async with self.db.write() as conn:
            await write_allowlist(conn, project_id, content)
            await record_change(
                conn, actor, "cve-allowlist", "update", resource, project_id
            )


def _owned_by(project_id: int | None) -> ColumnElement[bool]:
    if project_id is None:
        return cve_allowlists.c.project_id.is_(None)
    return cve_allowlists.c.project_id == project_id
