"""Manifests: validated on push, stored with their exact bytes, served back.

A manifest is accepted only when it parses, its media type is one Dockyard
knows, its digest matches what the client named, and every blob and child
manifest it references is present in the same repository. It is then stored
in one transaction with its references and, when pushed by tag, the tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.db.database import Database, insert_or_update
from dockyard.db.schema import (
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)
from dockyard.registry import mediatypes
from dockyard.registry.digest import compute_digest, is_digest, parse_digest
from dockyard.registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    StillReferenced,
)
from dockyard.registry.reference import is_valid_tag, validate_tag
from dockyard.registry.repositories import ensure_repository, repository_id

# Layers that clients fetch from elsewhere (`urls`), never pushed to a registry.
_FOREIGN_LAYERS = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    content: bytes
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    artifact_type: str | None
    subject: str | None
    annotations: dict[str, str] | None
    blobs: list[str]
    children: list[str]


class ManifestService:
    def __init__(self, db: Database, max_bytes: int) -> None:
        self.db = db
        self.max_bytes = max_bytes

    async def put_manifest(
        self,
        repository: str,
        reference: str,
        content_type: str | None,
        content: bytes,
        actor: str,
        *,
        check_references: bool = True,
    ) -> StoredManifest:
        """Validate and store a manifest under `reference` (a tag or a digest).

        Without `check_references` the blobs and children it names need not be
        present yet: a proxy cache stores what the upstream served and fetches
        the rest when a client asks for it."""
        if len(content) > self.max_bytes:
            raise ManifestTooLarge(limit=self.max_bytes, size=len(content))
        parsed = parse_manifest(content, content_type)
        digest = _digest_for(reference, content)
        tag = None if is_digest(reference) else validate_tag(reference)
        async with self.db.write() as conn:
            repo_id = await ensure_repository(conn, repository)
            if check_references:
                await _check_references(conn, repo_id, parsed)
            manifest_id = await _store(conn, repo_id, digest, parsed, content)
            if tag is not None:
                await _put_tag(conn, repo_id, tag, manifest_id)
            await _record(conn, actor, repository, reference, "create")
        return StoredManifest(digest, parsed.media_type, content, parsed.subject)

    async def get_manifest(self, repository: str, reference: str) -> StoredManifest:
        """The manifest a tag or digest names in `repository`; `ManifestUnknown` if none
        (also for a reference that cannot name anything: nothing is stored there)."""
        if not is_digest(reference) and not is_valid_tag(reference):
            raise ManifestUnknown(reference=reference[:128])
        manifest = await self.db.cache.get_or_load(
            ("manifest", repository, reference),
            lambda: self._load_manifest(repository, reference),
        )
        if manifest is None:
            raise ManifestUnknown(reference=reference)
        return manifest

    async def _load_manifest(
        self, repository: str, reference: str
    ) -> StoredManifest | None:
        query = select(
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.content,
            manifests.c.subject_digest,
        ).join(repositories, repositories.c.id == manifests.c.repository_id)
        if is_digest(reference):
            query = query.where(manifests.c.digest == str(parse_digest(reference)))
        else:
            query = query.join(tags, tags.c.manifest_id == manifests.c.id).where(
                tags.c.name == reference
            )
        query = query.where(repositories.c.name == repository)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredManifest(
            row.digest, row.media_type, row.content, row.subject_digest
        )

    async def delete_manifest(
        self, repository: str, reference: str, actor: str
    ) -> None:
        """By digest, delete the manifest and every tag on it; by tag, only the tag."""
        async with self.db.write() as conn:
            repo_id = await repository_id(conn, repository)
            if is_digest(reference):
                digest = str(parse_digest(reference))
                await refuse_if_referenced(conn, repo_id, digest, "manifest")
                table, where = manifests, manifests.c.digest == digest
            else:
                table, where = tags, tags.c.name == validate_tag(reference)
            result = await conn.execute(
                delete(table).where(where & (table.c.repository_id == repo_id))
            )
            if result.rowcount == 0:
                raise ManifestUnknown(reference=reference)
            await _record(conn, actor, repository, reference, "delete")

    async def list_referrers(
        self, repository: str, digest: str, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is `digest`, oldest first."""
        query = (
            select(
                manifests.c.digest,
                manifests.c.media_type,
                manifests.c.size,
                manifests.c.artifact_type,
                manifests.c.annotations,
            )
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(
                (repositories.c.name == repository)
                & (manifests.c.subject_digest == str(parse_digest(digest)))
            )
            .order_by(manifests.c.id)
        )
        if artifact_type is not None:
            query = query.where(manifests.c.artifact_type == artifact_type)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_descriptor(row) for row in rows]


async def refuse_if_referenced(
    conn: AsyncConnection, repo_id: int | None, digest: str, kind: str
) -> None:
    """`StillReferenced` if a manifest of the repository points at `digest`:
    deleting it would leave that manifest unpullable."""
    user = await conn.scalar(
        select(manifests.c.digest)
        .join(manifest_references, manifest_references.c.manifest_id == manifests.c.id)
        .where(
            (manifests.c.repository_id == repo_id)
            & (manifest_references.c.digest == digest)
            & (manifest_references.c.kind == kind)
        )
        .limit(1)
    )
    if user is not None:
        raise StillReferenced(
            f"{digest} is referenced by {user}; delete that first", referenced_by=user
        )


def artifact_resource(repository: str, reference: str) -> str:
    """How the audit log names an artifact: `repo:tag` or `repo@digest`."""
    return f"{repository}{'@' if is_digest(reference) else ':'}{reference}"


async def _record(
    conn: AsyncConnection, actor: str, repository: str, reference: str, operation: str
) -> None:
    project_id = await conn.scalar(
        select(repositories.c.project_id).where(repositories.c.name == repository)
    )
    resource = artifact_resource(repository, reference)
    await record_change(conn, actor, "artifact", operation, resource, project_id)


def parse_manifest(content: bytes, content_type: str | None) -> ParsedManifest:
    """Check a manifest's structure and pull out what Dockyard indexes."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and over-long integers.
        raise ManifestInvalid("manifest is not valid JSON") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = _media_type(document, content_type)
    _check_unambiguous(document, media_type)
    if media_type in mediatypes.INDEXES:
        children = [d["digest"] for d in _descriptors(document, "manifests")]
        blobs: list[str] = []
        artifact_type = _optional_str(document, "artifactType")
    else:
        config = _descriptor_of(document.get("config"), "config")
        layers = _descriptors(document, "layers")
        blobs = [config["digest"]] + [
            layer["digest"]
            for layer in layers
            if layer["mediaType"] not in _FOREIGN_LAYERS
        ]
        children = []
        artifact_type = _optional_str(document, "artifactType") or (
            config["mediaType"] if media_type == mediatypes.OCI_MANIFEST else None
        )
    subject = document.get("subject")
    return ParsedManifest(
        media_type=media_type,
        artifact_type=artifact_type,
        subject=_descriptor_of(subject, "subject")["digest"]
        if subject is not None
        else None,
        annotations=document.get("annotations")
        if isinstance(document.get("annotations"), dict)
        else None,
        blobs=blobs,
        children=children,
    )


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip() or None
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    if declared and header and declared != header:
        raise ManifestInvalid(
            "mediaType in the manifest differs from Content-Type",
            mediaType=declared,
            contentType=header,
        )
    media_type = declared or header
    if media_type is None and "manifests" in document:
        media_type = mediatypes.OCI_INDEX
    media_type = media_type or mediatypes.OCI_MANIFEST
    if media_type in mediatypes.DOCKER_SCHEMA1:
        raise ManifestInvalid("Docker schema 1 manifests are not supported")
    if media_type not in mediatypes.MANIFEST_MEDIA_TYPES:
        raise ManifestInvalid("unsupported manifest media type", mediaType=media_type)
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    return media_type


def _check_unambiguous(document: dict[str, Any], media_type: str) -> None:
    """An index has no config or layers, an image no manifests: a document that
    could be read both ways would let one reading hide what the other pulls."""
    if media_type in mediatypes.INDEXES:
        stray = {"config", "layers"} & document.keys()
    else:
        stray = {"manifests"} & document.keys()
    if stray:
        raise ManifestInvalid(
            "manifest mixes fields of an index and an image", fields=sorted(stray)
        )


def _descriptors(document: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = document.get(field)
    if not isinstance(value, list):
        raise ManifestInvalid(f"{field} must be a list")
    return [_descriptor_of(item, field) for item in value]


def _descriptor_of(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{field} must hold descriptors")
    media_type, digest, size = (
        value.get("mediaType"),
        value.get("digest"),
        value.get("size"),
    )
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ManifestInvalid(f"a descriptor in {field} lacks mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"a descriptor in {field} has an invalid size")
    try:
        parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"a descriptor in {field} has an invalid digest") from exc
    return value


def _optional_str(document: dict[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is not None and not (isinstance(value, str) and 0 < len(value) <= 255):
        raise ManifestInvalid(f"{field} must be a string of 1 to 255 characters")
    return value


def _digest_for(reference: str, content: bytes) -> str:
    if not is_digest(reference):
        return compute_digest(content)
    named = parse_digest(reference)
    actual = compute_digest(content, named.algorithm)
    if actual != str(named):
        raise DigestInvalid(
            "manifest digest does not match the reference", digest=reference
        )
    return actual


async def _check_references(
    conn: AsyncConnection, repo_id: int, parsed: ParsedManifest
) -> None:
    """`ManifestBlobUnknown` unless all it references is in the repository."""
    blob_query = select(repository_blobs.c.digest).where(
        repository_blobs.c.repository_id == repo_id
    )
    child_query = select(manifests.c.digest).where(manifests.c.repository_id == repo_id)
    for wanted, query, column in (
        (parsed.blobs, blob_query, repository_blobs.c.digest),
        (parsed.children, child_query, manifests.c.digest),
    ):
        if not wanted:
            continue
        present = set(await conn.scalars(query.where(column.in_(set(wanted)))))
        missing = [digest for digest in wanted if digest not in present]
        if missing:
            raise ManifestBlobUnknown(digest=missing[0])


async def _store(
    conn: AsyncConnection,
    repo_id: int,
    digest: str,
    parsed: ParsedManifest,
    content: bytes,
) -> int:
    existing = await conn.scalar(
        select(manifests.c.id).where(
            (manifests.c.repository_id == repo_id) & (manifests.c.digest == digest)
        )
    )
    if existing is not None:
        return int(existing)
    result = await conn.execute(
        insert(manifests).values(
            repository_id=repo_id,
            digest=digest,
            media_type=parsed.media_type,
            artifact_type=parsed.artifact_type,
            subject_digest=parsed.subject,
            annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
            size=len(content),
            content=content,
            created_at=datetime.now(UTC),
        )
    )
    manifest_id = int(result.inserted_primary_key[0])
    references = [
        {"manifest_id": manifest_id, "digest": d, "kind": "blob"}
        for d in set(parsed.blobs)
    ]
    references += [
        {"manifest_id": manifest_id, "digest": d, "kind": "manifest"}
        for d in set(parsed.children)
    ]
    if references:
        await conn.execute(insert(manifest_references), references)
    return manifest_id


async def _put_tag(
    conn: AsyncConnection, repo_id: int, tag: str, manifest_id: int
) -> None:
    now = datetime.now(UTC)
    values = {
        "repository_id": repo_id,
        "name": tag,
        "manifest_id": manifest_id,
        "created_at": now,
        "updated_at": now,
    }
    changes = {"manifest_id": manifest_id, "updated_at": now}
    statement = insert_or_update(conn, tags, ["repository_id", "name"], values, changes)
    await conn.execute(statement)


def _descriptor(row: Any) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": row.media_type,
        "digest": row.digest,
        "size": row.size,
    }
    if row.artifact_type:
        descriptor["artifactType"] = row.artifact_type
    if row.annotations:
        descriptor["annotations"] = json.loads(row.annotations)
    return descriptor
