"""Labels: names with a colour that people put on artifacts.

A label is global (scope `g`, made by a system admin, usable on artifacts of
every project) or belongs to one project (scope `p`), whose artifacts alone
may carry it. A name is unique within its scope and project. An artifact
carries a label at most once (`artifact_labels`); deleting a label or an
artifact removes the attachments with it (foreign keys cascade).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.db.database import Database, count_rows
from dockyard.db.schema import artifact_labels, labels, manifests

GLOBAL = "g"
PROJECT = "p"
NAME_MAX = 128
DESCRIPTION_MAX = 4096
COLOR_MAX = 16


class LabelError(Exception):
    """A label operation cannot be done; the message says why."""


class LabelInvalid(LabelError):
    pass


class LabelNotFound(LabelError):
    pass


class LabelExists(LabelError):
    pass


class LabelAttached(LabelError):
    """The artifact already carries the label."""


class LabelNotAttached(LabelError):
    pass


class ArtifactGone(LabelError):
    """The artifact was deleted while the label was being attached."""


@dataclass(frozen=True, slots=True)
class Label:
    id: int
    name: str
    description: str
    color: str
    scope: str
    project_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LabelFields:
    """What a caller sets on a label; checked by `check`."""

    name: str
    description: str = ""
    color: str = ""

    def check(self) -> None:
        """Raise `LabelInvalid` unless the fields fit Harbor's rules."""
        if not self.name.strip():
            raise LabelInvalid("name is required")
        if len(self.name) > NAME_MAX:
            raise LabelInvalid(f"name is longer than {NAME_MAX} characters")
        if not self.name.isprintable():
            raise LabelInvalid("name holds control or invisible characters")
        if len(self.description) > DESCRIPTION_MAX:
            raise LabelInvalid(f"description exceeds {DESCRIPTION_MAX} characters")
        if len(self.color) > COLOR_MAX:
            raise LabelInvalid(f"color is longer than {COLOR_MAX} characters")


class LabelService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_labels(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[Label], int]:
        """A page of `query` (over `labels`) and the total it finds."""
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [_label(row) for row in rows], total

    async def get_label(self, label_id: int) -> Label:
        """The label; `LabelNotFound` if there is none with that id."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(labels).where(labels.c.id == label_id))
            ).first()
        if row is None:
            raise LabelNotFound(f"label {label_id} not found")
        return _label(row)

    async def create_label(
        self, fields: LabelFields, scope: str, project_id: int | None, actor: str
    ) -> int:
        """Store a new label and return its id; `LabelExists` if the name is
        taken in that scope and project."""
        fields.check()
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            await _refuse_taken(conn, fields.name, scope, project_id)
            result = await conn.execute(
                insert(labels).values(
                    name=fields.name,
                    description=fields.description,
                    color=fields.color,
                    scope=scope,
                    project_id=project_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            await record_change(conn, actor, "label", "create", fields.name, project_id)
        return int(result.inserted_primary_key[0])

    async def update_label(self, label: Label, fields: LabelFields, actor: str) -> None:
        """Rename or recolour a label; its scope and project never change."""
        fields.check()
        async with self.db.write() as conn:
            if fields.name != label.name:
                await _refuse_taken(conn, fields.name, label.scope, label.project_id)
            await conn.execute(
                update(labels)
                .where(labels.c.id == label.id)
                .values(
                    name=fields.name,
                    description=fields.description,
                    color=fields.color,
                    updated_at=datetime.now(UTC),
                )
            )
            await record_change(
                conn, actor, "label", "update", fields.name, label.project_id
            )

    async def delete_label(self, label: Label, actor: str) -> None:
        """Delete the label and take it off every artifact that carries it."""
        async with self.db.write() as conn:
            await conn.execute(delete(labels).where(labels.c.id == label.id))
            await record_change(
                conn, actor, "label", "delete", label.name, label.project_id
            )

    async def attach(
        self, artifact_id: int, label: Label, resource: str, project_id: int, actor: str
    ) -> None:
        """Put `label` on the artifact (named `resource` in the audit log).

        Raise `LabelInvalid` for another project's label, `LabelAttached` if
        the artifact carries it already, `ArtifactGone` if it was deleted.
        """
        if label.scope == PROJECT and label.project_id != project_id:
            raise LabelInvalid(f"label {label.id} belongs to another project")
        try:
            async with self.db.write() as conn:
                if not await _artifact_exists(conn, artifact_id):
                    raise ArtifactGone(f"artifact {resource} not found")
                await conn.execute(
                    insert(artifact_labels).values(
                        manifest_id=artifact_id,
                        label_id=label.id,
                        created_at=datetime.now(UTC),
                    )
                )
                await record_change(
                    conn, actor, "artifact-label", "create",
                    _attachment(resource, label), project_id,
                )  # fmt: skip
        except IntegrityError as exc:
            raise LabelAttached(f"{resource} already has label {label.name}") from exc

    async def detach(
        self, artifact_id: int, label: Label, resource: str, project_id: int, actor: str
    ) -> None:
        """Take `label` off the artifact; `LabelNotAttached` if it is not on it."""
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(artifact_labels).where(
                    (artifact_labels.c.manifest_id == artifact_id)
                    & (artifact_labels.c.label_id == label.id)
                )
            )
            if result.rowcount == 0:
                raise LabelNotAttached(f"{resource} has no label {label.id}")
            await record_change(
                conn, actor, "artifact-label", "delete",
                _attachment(resource, label), project_id,
            )  # fmt: skip

    async def labels_of(self, artifact_ids: list[int]) -> dict[int, list[Label]]:
        """The labels each artifact (manifest id) carries, oldest attachment
        first; artifacts without labels are absent from the result."""
        if not artifact_ids:
            return {}
        query = (
            select(labels, artifact_labels.c.manifest_id)
            .join(artifact_labels, artifact_labels.c.label_id == labels.c.id)
            .where(artifact_labels.c.manifest_id.in_(artifact_ids))
            .order_by(artifact_labels.c.created_at, labels.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[int, list[Label]] = {}
        for row in rows:
            found.setdefault(row.manifest_id, []).append(_label(row))
        return found


async def _refuse_taken(
    conn: AsyncConnection, name: str, scope: str, project_id: int | None
) -> None:
    # Checked here, not left to the unique constraint: a global label's
    # project is NULL, and NULLs never collide in a unique index.
    taken = await conn.scalar(
        select(labels.c.id).where(
            (labels.c.name == name)
            & (labels.c.scope == scope)
            & (
                labels.c.project_id.is_(None)
                if project_id is None
                else labels.c.project_id == project_id
            )
        )
    )
    if taken is not None:
        raise LabelExists(f"label {name!r} already exists")


async def _artifact_exists(conn: AsyncConnection, artifact_id: int) -> bool:
    found = await conn.scalar(
        select(manifests.c.id).where(manifests.c.id == artifact_id)
    )
    return found is not None


def _attachment(resource: str, label: Label) -> str:
    return f"{resource} label {label.name}"


def _label(row: Any) -> Label:
    return Label(
        id=row.id,
        name=row.name,
        description=row.description or "",
        color=row.color or "",
        scope=row.scope,
        project_id=row.project_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
