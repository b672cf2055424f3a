"""What replication filters ask of a local artifact: its tags and labels.

Event-based replication tests a policy's filters against these facts. For
a deletion they must be read *before* the artifact (or tag, or repository)
goes, so the routes take a snapshot first and hand it to the event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.db.database import Database
from dockyard.db.schema import artifact_labels, labels, manifests, repositories, tags
from dockyard.registry.artifacts import is_accessory, listed
from dockyard.registry.digest import is_digest


@dataclass(frozen=True, slots=True)
class ArtifactFacts:
    digest: str
    tags: tuple[str, ...] = ()
    labels: frozenset[str] = frozenset()


async def artifact_facts(
    db: Database, repository: str, reference: str
) -> ArtifactFacts | None:
    """The artifact `reference` (tag or digest) names, or None if absent."""
    query = _in_repository(repository)
    if is_digest(reference):
        query = query.where(manifests.c.digest == reference)
    else:
        query = query.join(tags, tags.c.manifest_id == manifests.c.id).where(
            tags.c.name == reference
        )
    async with db.read() as conn:
        found = await _facts(conn, query)
    return found[0] if found else None


async def repository_facts(db: Database, repository: str) -> list[ArtifactFacts]:
    """Every artifact the repository lists: not an index's untagged child,
    not an accessory (those go with their index or subject)."""
    query = _in_repository(repository).where(listed() & ~is_accessory())
    async with db.read() as conn:
        return await _facts(conn, query)


async def label_names(
    conn: AsyncConnection, manifest_ids: Iterable[int]
) -> dict[int, frozenset[str]]:
    """The names of the labels each artifact (manifest id) carries."""
    wanted = list(set(manifest_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(artifact_labels.c.manifest_id, labels.c.name)
        .join(labels, labels.c.id == artifact_labels.c.label_id)
        .where(artifact_labels.c.manifest_id.in_(wanted))
    )
    found: dict[int, set[str]] = {}
    for manifest_id, name in rows:
        found.setdefault(manifest_id, set()).add(name)
    return {key: frozenset(names) for key, names in found.items()}


def _in_repository(repository: str) -> Select:
    return (
        select(manifests.c.id, manifests.c.digest)
        .join(repositories, repositories.c.id == manifests.c.repository_id)
        .where(repositories.c.name == repository)
        .order_by(manifests.c.id)
    )


async def _facts(conn: AsyncConnection, query: Select) -> list[ArtifactFacts]:
    rows = (await conn.execute(query)).all()
    ids = [row.id for row in rows]
    if not ids:
        return []
    tag_rows = await conn.execute(
        select(tags.c.manifest_id, tags.c.name)
        .where(tags.c.manifest_id.in_(ids))
        .order_by(tags.c.name)
    )
    tags_of: dict[int, list[str]] = {}
    for manifest_id, name in tag_rows:
        tags_of.setdefault(manifest_id, []).append(name)
    names = await label_names(conn, ids)
    return [
        ArtifactFacts(
            row.digest, tuple(tags_of.get(row.id, ())), names.get(row.id, frozenset())
        )
        for row in rows
    ]
