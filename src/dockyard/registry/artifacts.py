"""Repositories and artifacts as the management API shows them.

An artifact is a manifest in a repository, with its tags. This module reads
them in the shapes the API lists (with sizes, tags, children of an index) and
makes the changes the API offers beside the registry protocol: deleting a
repository or an artifact, adding and removing tags, describing a repository.
Every change is recorded in the audit log in its own transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.db.database import Database
from dockyard.db.schema import blobs, manifest_references, manifests, repositories, tags
from dockyard.registry.digest import is_digest, parse_digest
from dockyard.registry.errors import ManifestUnknown, NameUnknown
from dockyard.registry.manifests import artifact_resource, refuse_if_referenced
from dockyard.registry.reference import validate_tag


class TagExists(Exception):
    """The tag already names an artifact in the repository."""


@dataclass(slots=True)
class Artifact:
    id: int
    repository_id: int
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    created_at: datetime
    content: bytes
    tags: list[dict[str, Any]] = field(default_factory=list)

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.content)


class ArtifactService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_repositories(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of `query` (over `repositories`) with artifact counts; the total."""
        count = (
            select(func.count(manifests.c.id))
            .where(manifests.c.repository_id == repositories.c.id)
            .scalar_subquery()
        )
        async with self.db.read() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(query.order_by(None).subquery())
            )
            rows = (
                (
                    await conn.execute(
                        query.add_columns(count.label("artifact_count"))
                        .offset(offset)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows], int(total or 0)

    async def update_description(
        self, repository: str, description: str, actor: str
    ) -> None:
        async with self.db.write() as conn:
            project_id = await _project_id(conn, repository)
            await conn.execute(
                update(repositories)
                .where(repositories.c.name == repository)
                .values(description=description, updated_at=datetime.now(UTC))
            )
            await record_change(
                conn, actor, "repository", "update", repository, project_id
            )

    async def delete_repository(self, repository: str, actor: str) -> None:
        """Delete the repository with every artifact and tag in it."""
        async with self.db.write() as conn:
            project_id = await _project_id(conn, repository)
            await conn.execute(
                delete(repositories).where(repositories.c.name == repository)
            )
            await record_change(
                conn, actor, "repository", "delete", repository, project_id
            )

    async def list_artifacts(
        self, repository: str, query: Select, offset: int, limit: int
    ) -> tuple[list[Artifact], int]:
        """A page of `query` (over `manifests`) in `repository`, newest first."""
        async with self.db.read() as conn:
            repo_id = await _repository_id(conn, repository)
            query = query.where(manifests.c.repository_id == repo_id)
            total = await conn.scalar(
                select(func.count()).select_from(query.order_by(None).subquery())
            )
            rows = (
                (
                    await conn.execute(
                        query.order_by(
                            manifests.c.created_at.desc(), manifests.c.id.desc()
                        )
                        .offset(offset)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            artifacts = [await _artifact(conn, row) for row in rows]
        return artifacts, int(total or 0)

    async def get_artifact(self, repository: str, reference: str) -> Artifact:
        async with self.db.read() as conn:
            repo_id, row = await _find(conn, repository, reference)
            return await _artifact(conn, row)

    async def children(self, repository: str, artifact: Artifact) -> list[Artifact]:
        digests = [d["digest"] for d in artifact.document.get("manifests", [])]
        async with self.db.read() as conn:
            query = select(manifests).where(
                (manifests.c.repository_id == artifact.repository_id)
                & manifests.c.digest.in_(digests)
            )
            return [
                await _artifact(conn, row)
                for row in (await conn.execute(query)).mappings()
            ]

    async def delete_artifact(
        self, repository: str, reference: str, actor: str
    ) -> None:
        """Delete the artifact a tag or digest names, with all its tags."""
        async with self.db.write() as conn:
            repo_id, row = await _find(conn, repository, reference)
            await refuse_if_referenced(conn, repo_id, row["digest"], "manifest")
            await conn.execute(delete(manifests).where(manifests.c.id == row["id"]))
            project_id = await _project_id(conn, repository)
            resource = artifact_resource(repository, row["digest"])
            await record_change(conn, actor, "artifact", "delete", resource, project_id)

    async def add_tag(
        self, repository: str, reference: str, tag: str, actor: str
    ) -> None:
        validate_tag(tag)
        async with self.db.write() as conn:
            repo_id, row = await _find(conn, repository, reference)
            taken = await conn.scalar(
                select(tags.c.id).where(
                    (tags.c.repository_id == repo_id) & (tags.c.name == tag)
                )
            )
            if taken is not None:
                raise TagExists(f"tag {tag} already exists in {repository}")
            now = datetime.now(UTC)
            await conn.execute(
                insert(tags).values(
                    repository_id=repo_id,
                    name=tag,
                    manifest_id=row["id"],
                    created_at=now,
                    updated_at=now,
                )
            )
            project_id = await _project_id(conn, repository)
            resource = artifact_resource(repository, tag)
            await record_change(conn, actor, "tag", "create", resource, project_id)

    async def delete_tag(
        self, repository: str, reference: str, tag: str, actor: str
    ) -> None:
        async with self.db.write() as conn:
            repo_id, row = await _find(conn, repository, reference)
            result = await conn.execute(
                delete(tags).where(
                    (tags.c.repository_id == repo_id)
                    & (tags.c.name == tag)
                    & (tags.c.manifest_id == row["id"])
                )
            )
            if result.rowcount == 0:
                raise ManifestUnknown("no such tag on the artifact", tag=tag)
            project_id = await _project_id(conn, repository)
            resource = artifact_resource(repository, tag)
            await record_change(conn, actor, "tag", "delete", resource, project_id)


async def _find(
    conn: AsyncConnection, repository: str, reference: str
) -> tuple[int, Any]:
    """The repository's id and the manifest row `reference` names in it."""
    repo_id = await _repository_id(conn, repository)
    row = (await conn.execute(_by_reference(repo_id, reference))).mappings().first()
    if row is None:
        raise ManifestUnknown(reference=reference)
    return repo_id, row


def _by_reference(repo_id: int, reference: str) -> Select:
    query = select(manifests).where(manifests.c.repository_id == repo_id)
    if is_digest(reference):
        return query.where(manifests.c.digest == str(parse_digest(reference)))
    tagged = select(tags.c.manifest_id).where(
        (tags.c.repository_id == repo_id) & (tags.c.name == reference)
    )
    return query.where(manifests.c.id.in_(tagged))


async def _repository_id(conn: AsyncConnection, repository: str) -> int:
    repo_id = await conn.scalar(
        select(repositories.c.id).where(repositories.c.name == repository)
    )
    if repo_id is None:
        raise NameUnknown(name=repository)
    return int(repo_id)


async def _project_id(conn: AsyncConnection, repository: str) -> int:
    project_id = await conn.scalar(
        select(repositories.c.project_id).where(repositories.c.name == repository)
    )
    if project_id is None:
        raise NameUnknown(name=repository)
    return int(project_id)


async def _artifact(conn: AsyncConnection, row: Any) -> Artifact:
    blob_bytes = await conn.scalar(
        select(func.coalesce(func.sum(blobs.c.size), 0))
        .select_from(manifest_references)
        .join(blobs, blobs.c.digest == manifest_references.c.digest)
        .where(
            (manifest_references.c.manifest_id == row["id"])
            & (manifest_references.c.kind == "blob")
        )
    )
    tag_rows = (
        await conn.execute(
            select(tags.c.id, tags.c.name, tags.c.created_at)
            .where(tags.c.manifest_id == row["id"])
            .order_by(tags.c.name)
        )
    ).all()
    return Artifact(
        id=row["id"],
        repository_id=row["repository_id"],
        digest=row["digest"],
        media_type=row["media_type"],
        artifact_type=row["artifact_type"],
        size=row["size"] + int(blob_bytes or 0),
        created_at=row["created_at"],
        content=row["content"],
        tags=[
            {"id": t.id, "name": t.name, "created_at": t.created_at} for t in tag_rows
        ],
    )
