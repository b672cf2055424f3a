"""Repositories and artifacts as the management API shows them.

An artifact is a manifest in a repository, with its tags. This module reads
them in the shapes the API lists (sizes, tags, children of an index,
accessories, facts from the image config, additions) and makes the changes
the API offers beside the registry protocol: deleting a repository or an
artifact, adding and removing tags, describing a repository, copying an
artifact between repositories. Every change is recorded in the audit log in
its own transaction.

What a listing shows, as Harbor does: tagged artifacts, and untagged ones that
no index of the repository holds; never accessories (signatures, SBOMs...),
which are shown with their subject instead. `q=base=*` lifts the first rule.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.db.database import (
    Database,
    contains_text,
    count_rows,
    insert_or_ignore,
    insert_or_update,
)
from dockyard.db.schema import (
    artifact_labels,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)
from dockyard.registry import kinds, mediatypes
from dockyard.registry.additions import (
    BUILD_HISTORY,
    DEPENDENCIES,
    README,
    VALUES,
    Addition,
    AdditionUnavailable,
    build_history,
    chart_addition,
    image_attributes,
    parse_json_object,
)
from dockyard.registry.digest import is_digest, parse_digest
from dockyard.registry.errors import ManifestUnknown, NameUnknown
from dockyard.registry.manifests import artifact_resource, refuse_if_referenced
from dockyard.registry.reference import validate_tag
from dockyard.registry.repositories import ensure_repository
from dockyard.storage.base import BlobStorage, StorageError

log = logging.getLogger(__name__)

# Configs are small; a larger one is not read for `extra_attrs`.
_MAX_CONFIG_BYTES = 4 * 1024 * 1024
_MAX_CHART_BYTES = 64 * 1024 * 1024
_CONFIG_CACHE_ENTRIES = 4096


class TagExists(Exception):
    """The tag already names an artifact in the repository."""


class AccessoryNotCopyable(Exception):
    """An accessory is copied with its subject, never alone."""


class AdditionNotApplicable(Exception):
    """The artifact's type has no such addition."""


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    name: str
    pushed_at: datetime
    pulled_at: datetime | None


@dataclass(slots=True)
class Artifact:
    id: int
    repository_id: int
    repository_name: str
    project_id: int
    digest: str
    media_type: str
    subject_digest: str | None
    created_at: datetime
    pulled_at: datetime | None
    content: bytes
    document: dict[str, Any]
    tags: list[Tag] = field(default_factory=list)
    children: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Digest -> (id, size) of the index's children present in the repository."""

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES

    @property
    def kind(self) -> str:
        return kinds.kind_of(self.media_type, self.document)

    @property
    def identifying_type(self) -> str:
        return kinds.identifying_type(self.media_type, self.document)

    @property
    def artifact_type(self) -> str:
        return kinds.artifact_type_of(self.media_type, self.document)

    @property
    def size(self) -> int:
        """The manifest, its config and layers; for an index, its children."""
        if self.is_index:
            return len(self.content) + sum(size for _, size in self.children.values())
        return _own_size(self.content, self.document)


@dataclass(frozen=True, slots=True)
class Accessory:
    artifact: Artifact
    subject: Artifact
    type: str


class ArtifactService:
    def __init__(self, db: Database, storage: BlobStorage) -> None:
        self.db = db
        self.storage = storage
        self._configs: dict[str, dict[str, Any]] = {}

    async def list_repositories(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of `query` (over `repositories`) with artifact counts (what the
        artifact listing shows); the total."""
        count = (
            select(func.count(manifests.c.id))
            .where(manifests.c.repository_id == repositories.c.id)
            .where(listed(), ~is_accessory())
            .scalar_subquery()
        )
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = await conn.execute(
                query.add_columns(count.label("artifact_count"))
                .offset(offset)
                .limit(limit)
            )
            return [dict(row) for row in rows.mappings().all()], total

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
        self,
        repository: str,
        query: Select,
        offset: int,
        limit: int,
        keep: Callable[[Artifact], bool] | None = None,
    ) -> tuple[list[Artifact], int]:
        """A page of `query` (over `manifests`) in `repository`, newest first,
        and the total. `keep`, if given, further filters on what only the
        manifest's content tells (its type, its config's media type)."""
        async with self.db.read() as conn:
            repo = await _repository(conn, repository)
            query = query.where(manifests.c.repository_id == repo.id).order_by(
                manifests.c.created_at.desc(), manifests.c.id.desc()
            )
            if keep is None:
                total = await count_rows(conn, query)
                result = await conn.execute(query.offset(offset).limit(limit))
                rows = list(result.mappings().all())
            else:
                candidates = (await conn.execute(query)).mappings().all()
                matching = [r for r in candidates if keep(_artifact(repo, r))]
                total, rows = len(matching), matching[offset : offset + limit]
            artifacts = [await _complete(conn, _artifact(repo, row)) for row in rows]
        return artifacts, total

    async def get_artifact(self, repository: str, reference: str) -> Artifact:
        async with self.db.read() as conn:
            repo = await _repository(conn, repository)
            row = await _find(conn, repo.id, reference)
            return await _complete(conn, _artifact(repo, row))

    async def list_accessories(self, artifact: Artifact) -> list[Accessory]:
        """The artifacts that refer to `artifact`, oldest first: OCI referrers
        (`subject`) and cosign's tag-named signature."""
        subject_of = manifests.c.subject_digest == artifact.digest
        signature = kinds.cosign_tag(artifact.digest)
        if signature is not None:
            signed = select(tags.c.manifest_id).where(
                (tags.c.repository_id == artifact.repository_id)
                & (tags.c.name == signature)
            )
            subject_of = subject_of | manifests.c.id.in_(signed)
        query = (
            select(manifests)
            .where((manifests.c.repository_id == artifact.repository_id) & subject_of)
            .order_by(manifests.c.created_at, manifests.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        repo = _Repository(
            artifact.repository_id, artifact.repository_name, artifact.project_id
        )
        found = [_artifact(repo, row) for row in rows]
        # Without a subject, only cosign's tag can have made it an accessory.
        return [
            Accessory(
                a, artifact, kinds.accessory_type(a.document, a.subject_digest is None)
            )
            for a in found
        ]

    async def list_tags(
        self, repository: str, reference: str, query: Select, offset: int, limit: int
    ) -> tuple[Artifact, list[Tag], int]:
        """The artifact, a page of `query` (over `tags`) among its tags, the total."""
        async with self.db.read() as conn:
            repo = await _repository(conn, repository)
            row = await _find(conn, repo.id, reference)
            query = query.where(tags.c.manifest_id == row["id"]).order_by(tags.c.id)
            total = await count_rows(conn, query)
            result = await conn.execute(query.offset(offset).limit(limit))
            found = [_tag(t) for t in result.mappings().all()]
        return _artifact(repo, row), found, total

    async def delete_artifact(self, repository: str, reference: str, actor: str) -> str:
        """Delete the artifact a tag or digest names, with all its tags and its
        accessories (theirs too): they mean nothing without their subject.
        Return its digest."""
        async with self.db.write() as conn:
            repo = await _repository(conn, repository)
            row = await _find(conn, repo.id, reference)
            await refuse_if_referenced(conn, repo.id, row["digest"], "manifest")
            doomed = [(row["id"], row["digest"])]
            doomed += await _accessories_deep(conn, repo.id, row["digest"])
            for manifest_id, digest in doomed:
                await conn.execute(
                    delete(manifests).where(manifests.c.id == manifest_id)
                )
                resource = artifact_resource(repository, digest)
                await record_change(
                    conn, actor, "artifact", "delete", resource, repo.project_id
                )
        return str(row["digest"])

    async def add_tag(
        self, repository: str, reference: str, tag: str, actor: str
    ) -> None:
        """Tag the artifact; `TagExists` if the repository already has `tag`."""
        validate_tag(tag)
        async with self.db.write() as conn:
            repo = await _repository(conn, repository)
            row = await _find(conn, repo.id, reference)
            taken = await conn.scalar(
                select(tags.c.id).where(
                    (tags.c.repository_id == repo.id) & (tags.c.name == tag)
                )
            )
            if taken is not None:
                raise TagExists(f"tag {tag} already exists in {repository}")
            now = datetime.now(UTC)
            await conn.execute(
                insert(tags).values(
                    repository_id=repo.id,
                    name=tag,
                    manifest_id=row["id"],
                    created_at=now,
                    updated_at=now,
                )
            )
            resource = artifact_resource(repository, tag)
            await record_change(conn, actor, "tag", "create", resource, repo.project_id)

    async def delete_tag(
        self, repository: str, reference: str, tag: str, actor: str
    ) -> None:
        async with self.db.write() as conn:
            repo = await _repository(conn, repository)
            row = await _find(conn, repo.id, reference)
            result = await conn.execute(
                delete(tags).where(
                    (tags.c.repository_id == repo.id)
                    & (tags.c.name == tag)
                    & (tags.c.manifest_id == row["id"])
                )
            )
            if result.rowcount == 0:
                raise ManifestUnknown("no such tag on the artifact", tag=tag)
            resource = artifact_resource(repository, tag)
            await record_change(conn, actor, "tag", "delete", resource, repo.project_id)

    async def copy_artifact(
        self, source: str, reference: str, destination: str, actor: str
    ) -> str:
        """Copy what `reference` names in `source` into `destination` (created
        if new): the manifest with its children, its accessories and their
        blobs, and its tags, which move there if `destination` had them.
        Return the digest. `AccessoryNotCopyable` for an accessory; the
        caller must have checked pull in `source` and push in `destination`."""
        async with self.db.write() as conn:
            source_id = await _repository_id(conn, source)
            row = await _find(conn, source_id, reference)
            if row["subject_digest"] is not None:
                raise AccessoryNotCopyable(f"{reference} is an accessory of another")
            target_id = await ensure_repository(conn, destination)
            copier = _Copier(conn, source_id, target_id, datetime.now(UTC))
            manifest_id = await copier.copy(row)
            await copier.copy_tags(row["id"], manifest_id)
            project_id = await _project_id(conn, destination)
            resource = artifact_resource(destination, row["digest"])
            await record_change(conn, actor, "artifact", "create", resource, project_id)
        return str(row["digest"])

    async def extra_attributes(self, artifact: Artifact) -> dict[str, Any]:
        """`extra_attrs`: facts from the config of an image, the metadata of a
        chart or the config of another typed artifact; {} otherwise or when
        the config cannot be read."""
        if artifact.is_index or artifact.kind == kinds.UNKNOWN:
            return {}
        try:
            config = await self._config(artifact)
        except AdditionUnavailable as exc:
            log.warning(
                "artifact_config_unreadable digest=%s reason=%s", artifact.digest, exc
            )
            return {}
        if artifact.kind == "IMAGE":
            return image_attributes(config)
        return config

    async def addition(self, artifact: Artifact, name: str) -> Addition:
        """An addition of the artifact. `AdditionNotApplicable` if its type has
        none of that name; `AdditionUnavailable` if its blobs cannot give it."""
        if name in additions_of(artifact) and name == BUILD_HISTORY:
            return build_history(await self._config(artifact))
        if name in additions_of(artifact):
            chart = await self._config(artifact)
            layers = artifact.document.get("layers") or []
            archives = [
                layer["digest"]
                for layer in layers
                if layer.get("mediaType") == kinds.HELM_CHART_LAYER
            ]
            if not archives:
                raise AdditionUnavailable("the chart has no chart content layer")
            archive = await self._read_blob(archives[0], _MAX_CHART_BYTES)
            return chart_addition(name, chart, archive)
        raise AdditionNotApplicable(f"{artifact.kind} artifacts have no {name}")

    async def _config(self, artifact: Artifact) -> dict[str, Any]:
        digest = (artifact.document.get("config") or {}).get("digest")
        if not isinstance(digest, str):
            raise AdditionUnavailable("the manifest has no config")
        if digest not in self._configs:
            content = await self._read_blob(digest, _MAX_CONFIG_BYTES)
            if len(self._configs) >= _CONFIG_CACHE_ENTRIES:
                self._configs.clear()
            # A digest names its content for ever: never stale.
            self._configs[digest] = parse_json_object(content)
        return self._configs[digest]

    async def _read_blob(self, digest: str, limit: int) -> bytes:
        """The blob's content; `AdditionUnavailable` if it cannot be read or
        is larger than `limit` bytes (no more than that is read)."""
        content = bytearray()
        try:
            async for data in self.storage.read_blob(digest, 0, limit + 1):
                content += data
        except StorageError as exc:
            raise AdditionUnavailable("the blob cannot be read") from exc
        if len(content) > limit:
            raise AdditionUnavailable("the blob is too large to read")
        return bytes(content)


def additions_of(artifact: Artifact) -> list[str]:
    """The additions the artifact's type offers, as Harbor links them."""
    if artifact.kind == "IMAGE" and not artifact.is_index:
        return [BUILD_HISTORY]
    if artifact.kind == "CHART":
        return [VALUES, README, DEPENDENCIES]
    return []


def listed() -> ColumnElement[bool]:
    """Whether a manifest shows in a listing: tagged, or not held by an index."""
    parent = manifests.alias("parent")
    held = exists().where(
        (manifest_references.c.digest == manifests.c.digest)
        & (manifest_references.c.kind == "manifest")
        & (manifest_references.c.manifest_id == parent.c.id)
        & (parent.c.repository_id == manifests.c.repository_id)
    )
    return has_tag() | ~held


def has_tag() -> ColumnElement[bool]:
    return exists().where(tags.c.manifest_id == manifests.c.id)


def is_accessory() -> ColumnElement[bool]:
    """Whether a manifest refers to another: by `subject`, or as cosign's
    `sha256-<hex>.sig` tag of a manifest present in the repository."""
    signature = tags.alias("signature")
    signed = manifests.alias("signed")
    tag_of_signed = literal("sha256-", String) + func.substr(signed.c.digest, 8, 64)
    cosign = exists().where(
        (signature.c.manifest_id == manifests.c.id)
        & (func.length(signature.c.name) == 75)
        & (signature.c.name == tag_of_signed + literal(".sig", String))
        & (signed.c.repository_id == manifests.c.repository_id)
        & (signed.c.digest.like("sha256:%"))
    )
    return manifests.c.subject_digest.is_not(None) | cosign


def tag_named(name: str, fuzzy: bool) -> ColumnElement[bool]:
    """Whether a manifest carries the tag `name` (or one containing it)."""
    if fuzzy:
        matches = contains_text(tags.c.name, name)
    else:
        matches = tags.c.name == name
    return exists().where((tags.c.manifest_id == manifests.c.id) & matches)


def labelled(label_ids: list[int]) -> ColumnElement[bool]:
    """Whether a manifest carries every label of `label_ids`."""
    clauses = [
        exists().where(
            (artifact_labels.c.manifest_id == manifests.c.id)
            & (artifact_labels.c.label_id == label_id)
        )
        for label_id in label_ids
    ]
    return and_(*clauses)


class _Copier:
    """Copies manifests of one repository into another, inside one transaction."""

    def __init__(
        self, conn: AsyncConnection, source_id: int, target_id: int, now: datetime
    ) -> None:
        self.conn = conn
        self.source_id = source_id
        self.target_id = target_id
        self.now = now
        self.done: dict[str, int] = {}

    async def copy(self, row: Any) -> int:
        """Copy `row` (a manifest of the source), its children before it and
        its accessories after it; the id of the copy."""
        if row["digest"] in self.done:
            return self.done[row["digest"]]
        references = (
            await self.conn.execute(
                select(manifest_references).where(
                    manifest_references.c.manifest_id == row["id"]
                )
            )
        ).all()
        for child in (r.digest for r in references if r.kind == "manifest"):
            await self.copy(await _find(self.conn, self.source_id, child))
        await self._link_blobs([r.digest for r in references if r.kind == "blob"])
        manifest_id = await self._store(row, references)
        self.done[row["digest"]] = manifest_id
        for accessory_id, _ in await _accessories(
            self.conn, self.source_id, row["digest"]
        ):
            accessory = await _row(self.conn, accessory_id)
            copied = await self.copy(accessory)
            await self.copy_tags(accessory_id, copied)
        return manifest_id

    async def copy_tags(self, source_manifest: int, target_manifest: int) -> None:
        """Give the copy the source's tags, moving them within the target."""
        names = await self.conn.scalars(
            select(tags.c.name).where(tags.c.manifest_id == source_manifest)
        )
        for name in names.all():
            values = {
                "repository_id": self.target_id,
                "name": name,
                "manifest_id": target_manifest,
                "created_at": self.now,
                "updated_at": self.now,
            }
            changes = {"manifest_id": target_manifest, "updated_at": self.now}
            await self.conn.execute(
                insert_or_update(
                    self.conn, tags, ["repository_id", "name"], values, changes
                )
            )

    async def _link_blobs(self, digests: list[str]) -> None:
        for digest in digests:
            await self.conn.execute(
                insert_or_ignore(
                    self.conn,
                    repository_blobs,
                    repository_id=self.target_id,
                    digest=digest,
                    created_at=self.now,
                )
            )

    async def _store(self, row: Any, references: list[Any]) -> int:
        existing = await self.conn.scalar(
            select(manifests.c.id).where(
                (manifests.c.repository_id == self.target_id)
                & (manifests.c.digest == row["digest"])
            )
        )
        if existing is not None:
            return int(existing)
        copied = {
            column: row[column]
            for column in (
                "digest",
                "media_type",
                "artifact_type",
                "subject_digest",
                "annotations",
                "size",
                "content",
            )
        }
        result = await self.conn.execute(
            insert(manifests).values(
                repository_id=self.target_id, created_at=self.now, **copied
            )
        )
        manifest_id = int(result.inserted_primary_key[0])
        if references:
            await self.conn.execute(
                insert(manifest_references),
                [
                    {"manifest_id": manifest_id, "digest": r.digest, "kind": r.kind}
                    for r in references
                ],
            )
        return manifest_id


@dataclass(frozen=True, slots=True)
class _Repository:
    id: int
    name: str
    project_id: int


async def _repository(conn: AsyncConnection, name: str) -> _Repository:
    row = (
        await conn.execute(
            select(repositories.c.id, repositories.c.project_id).where(
                repositories.c.name == name
            )
        )
    ).first()
    if row is None:
        raise NameUnknown(name=name)
    return _Repository(int(row.id), name, int(row.project_id))


async def _repository_id(conn: AsyncConnection, name: str) -> int:
    return (await _repository(conn, name)).id


async def _project_id(conn: AsyncConnection, name: str) -> int:
    return (await _repository(conn, name)).project_id


async def _find(conn: AsyncConnection, repo_id: int, reference: str) -> Any:
    """The manifest row `reference` (a tag or digest) names in the repository."""
    query = select(manifests).where(manifests.c.repository_id == repo_id)
    if is_digest(reference):
        query = query.where(manifests.c.digest == str(parse_digest(reference)))
    else:
        tagged = select(tags.c.manifest_id).where(
            (tags.c.repository_id == repo_id) & (tags.c.name == reference)
        )
        query = query.where(manifests.c.id.in_(tagged))
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise ManifestUnknown(reference=reference)
    return row


async def _row(conn: AsyncConnection, manifest_id: int) -> Any:
    query = select(manifests).where(manifests.c.id == manifest_id)
    return (await conn.execute(query)).mappings().one()


async def _accessories(
    conn: AsyncConnection, repo_id: int, digest: str
) -> list[tuple[int, str]]:
    """(id, digest) of the manifests that refer to `digest` in the repository."""
    refers = manifests.c.subject_digest == digest
    signature = kinds.cosign_tag(digest)
    if signature is not None:
        refers = refers | manifests.c.id.in_(
            select(tags.c.manifest_id).where(
                (tags.c.repository_id == repo_id) & (tags.c.name == signature)
            )
        )
    query = (
        select(manifests.c.id, manifests.c.digest)
        .where((manifests.c.repository_id == repo_id) & refers)
        .order_by(manifests.c.id)
    )
    return [(int(r.id), str(r.digest)) for r in (await conn.execute(query)).all()]


async def _accessories_deep(
    conn: AsyncConnection, repo_id: int, digest: str
) -> list[tuple[int, str]]:
    """The accessories of `digest`, theirs, and so on; each once."""
    found: dict[int, str] = {}
    pending = [digest]
    while pending:
        for manifest_id, accessory in await _accessories(conn, repo_id, pending.pop()):
            if manifest_id not in found:
                found[manifest_id] = accessory
                pending.append(accessory)
    return list(found.items())


def _artifact(repo: _Repository, row: Any) -> Artifact:
    content = bytes(row["content"])
    return Artifact(
        id=row["id"],
        repository_id=repo.id,
        repository_name=repo.name,
        project_id=repo.project_id,
        digest=row["digest"],
        media_type=row["media_type"],
        subject_digest=row["subject_digest"],
        created_at=row["created_at"],
        pulled_at=row["pull_time"],
        content=content,
        document=json.loads(content),
    )


async def _complete(conn: AsyncConnection, artifact: Artifact) -> Artifact:
    """Fill in the artifact's tags and, for an index, its children."""
    tag_rows = await conn.execute(
        select(tags).where(tags.c.manifest_id == artifact.id).order_by(tags.c.name)
    )
    artifact.tags = [_tag(row) for row in tag_rows.mappings().all()]
    if artifact.is_index:
        digests = [m.get("digest") for m in artifact.document.get("manifests", [])]
        rows = await conn.execute(
            select(manifests.c.id, manifests.c.digest, manifests.c.content).where(
                (manifests.c.repository_id == artifact.repository_id)
                & manifests.c.digest.in_(digests)
            )
        )
        for row in rows.all():
            content = bytes(row.content)
            size = _own_size(content, json.loads(content))
            artifact.children[row.digest] = (int(row.id), size)
    return artifact


def _tag(row: Any) -> Tag:
    return Tag(row["id"], row["name"], row["updated_at"], row["pull_time"])


def _own_size(content: bytes, document: dict[str, Any]) -> int:
    """The manifest and the blobs it lists (for an index: only itself)."""
    descriptors = [document.get("config")] + list(document.get("layers") or [])
    return len(content) + sum(
        d["size"]
        for d in descriptors
        if isinstance(d, dict) and isinstance(d.get("size"), int)
    )
