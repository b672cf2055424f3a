"""The two ends of a copy: this Dockyard, or a remote registry.

A copy reads from one `Side` and writes to another; push-based replication
reads `LocalSide` and writes `RemoteSide`, pull-based the other way round.
Both speak in repositories, references and digests; blobs are streams.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import case, select

from dockyard.db.schema import (
    manifest_references,
    projects,
    proxy_projects,
    repositories,
)
from dockyard.db.schema import manifests as manifest_rows
from dockyard.registry import mediatypes
from dockyard.registry.blobs import BlobService, link_blob
from dockyard.registry.digest import parse_digest
from dockyard.registry.errors import BlobUnknown, ManifestUnknown, NameUnknown
from dockyard.registry.manifests import ManifestService, parse_manifest
from dockyard.registry.reference import project_of
from dockyard.registry.repositories import ensure_repository
from dockyard.replication.adapters.harbor import HarborApi
from dockyard.replication.client import (
    RegistryClient,
    UpstreamDenied,
    UpstreamInvalid,
    UpstreamNotFound,
    with_digests,
)

ACTOR = "replication"
# Enough repositories to find a few the destination has; not every one.
_HOLDERS_LISTED = 20


class CopyFailed(Exception):
    """The copy cannot go on; the message says why."""


class DeletionRefused(CopyFailed):
    """The registry refuses the deletion itself (400, 405): it does not
    delete that way, or not at all, so asking again cannot help."""


# A Go registry answers a tag deletion 400 DIGEST_INVALID (it takes a
# digest only) and any deletion 405 UNSUPPORTED when deletes are off.
_REFUSED_DELETION = (400, 405)


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: str
    media_type: str
    content: bytes


class Side(Protocol):
    async def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest, or None if there is none under `reference`."""
        ...

    async def has_blob(self, repository: str, digest: str) -> bool: ...

    async def mount_blob(self, repository: str, source: str, digest: str) -> bool:
        """Make the blob of `source` readable in `repository`, if it can."""
        ...

    def open_blob(
        self, repository: str, digest: str
    ) -> AbstractAsyncContextManager[tuple[int, AsyncIterator[bytes]]]: ...

    async def put_blob(
        self, repository: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None: ...

    async def put_manifest(
        self, repository: str, reference: str, manifest: Manifest
    ) -> bool:
        """Store it; True if this side indexes referrers itself."""
        ...

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]: ...

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete by digest; False if it was not there."""
        ...

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete the tag and nothing else; False if it was not there.
        `CopyFailed` when this side cannot delete a tag alone."""
        ...


class LocalSide:
    """This Dockyard, through its services (writes are audited as
    `replication`)."""

    def __init__(self, manifests: ManifestService, blobs: BlobService) -> None:
        self.manifests = manifests
        self.blobs = blobs

    async def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        try:
            found = await self.manifests.get_manifest(repository, reference)
        except ManifestUnknown:
            return None
        return Manifest(found.digest, found.media_type, found.content)

    async def has_blob(self, repository: str, digest: str) -> bool:
        try:
            await self.blobs.stat_blob(repository, digest)
        except BlobUnknown:
            return False
        return True

    async def holders(self, digest: str, near: str) -> list[str]:
        """Some repositories here with a manifest that references the blob:
        those of the project of repository `near` first, then the oldest;
        at most `_HOLDERS_LISTED`."""
        same_project = repositories.c.name.startswith(
            f"{project_of(near)}/", autoescape=True
        )
        query = (
            select(repositories.c.name)
            .join(manifest_rows, manifest_rows.c.repository_id == repositories.c.id)
            .join(
                manifest_references,
                manifest_references.c.manifest_id == manifest_rows.c.id,
            )
            .where(manifest_references.c.digest == digest)
            .group_by(repositories.c.id, repositories.c.name)
            .order_by(case((same_project, 0), else_=1), repositories.c.id)
            .limit(_HOLDERS_LISTED)
        )
        async with self.blobs.db.read() as conn:
            return list((await conn.scalars(query)).all())

    async def mount_blob(self, repository: str, source: str, digest: str) -> bool:
        # Any stored blob can be linked: the storage is shared by every
        # repository of this Dockyard.
        await self._refuse_proxy_cache(repository)
        size = await self.blobs.storage.blob_size(digest)
        if size is None:
            return False
        await self._link(repository, digest, size)
        return True

    @asynccontextmanager
    async def open_blob(
        self, repository: str, digest: str
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        info = await self.blobs.stat_blob(repository, digest)
        yield info.size, await self.blobs.open_blob(digest)

    async def put_blob(
        self, repository: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        """Store the stream as blob `digest`, checked before it is visible."""
        await self._refuse_proxy_cache(repository)
        storage = self.blobs.storage
        upload_id = f"replication-{uuid.uuid4()}"
        hasher = hashlib.new(parse_digest(digest).algorithm)
        await storage.create_upload(upload_id)
        committed = False
        try:
            async with storage.open_upload(upload_id) as upload:
                received = await upload.append(chunks, start=0, hasher=hasher)
                actual = f"{hasher.name}:{hasher.hexdigest()}"
                if actual != digest or received != size:
                    raise CopyFailed(f"blob {digest}: the source sent {actual}")
                await upload.commit(digest, verified=True)
                committed = True
        finally:
            if not committed:
                await storage.delete_upload(upload_id)
        await self._link(repository, digest, size)

    async def _refuse_proxy_cache(self, repository: str) -> None:
        """`CopyFailed` for a repository of a proxy-cache project: what it
        serves must come from its upstream, as for pushes (DENIED there)."""
        project = project_of(repository)
        query = (
            select(proxy_projects.c.project_id)
            .join(projects, projects.c.id == proxy_projects.c.project_id)
            .where(projects.c.name == project)
        )
        async with self.blobs.db.read() as conn:
            if await conn.scalar(query) is not None:
                raise CopyFailed(
                    f"{project} is a proxy-cache project: it takes no copies"
                )

    async def _link(self, repository: str, digest: str, size: int) -> None:
        try:
            async with self.blobs.db.write() as conn:
                await link_blob(
                    conn, await ensure_repository(conn, repository), digest, size
                )
        except NameUnknown as exc:
            raise CopyFailed(f"{repository}: its project does not exist here") from exc

    async def put_manifest(
        self, repository: str, reference: str, manifest: Manifest
    ) -> bool:
        await self._refuse_proxy_cache(repository)
        try:
            await self.manifests.put_manifest(
                repository, reference, manifest.media_type, manifest.content, ACTOR
            )
        except NameUnknown as exc:
            raise CopyFailed(f"{repository}: its project does not exist here") from exc
        return True

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        return await self.manifests.list_referrers(repository, digest, None)

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        try:
            await self.manifests.delete_manifest(repository, digest, ACTOR)
        except (ManifestUnknown, NameUnknown):
            return False
        return True

    async def delete_tag(self, repository: str, tag: str) -> bool:
        # By tag, the manifest service removes the tag alone.
        return await self.delete_manifest(repository, tag)


class RemoteSide:
    """A remote registry through `RegistryClient`; with `harbor` (a
    `harbor`-type endpoint) tags are deleted through Harbor's API."""

    def __init__(
        self,
        client: RegistryClient,
        chunk_size: int | None = None,
        harbor: HarborApi | None = None,
    ) -> None:
        self.client = client
        self.chunk_size = chunk_size
        self.harbor = harbor

    async def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        try:
            found = await self.client.get_manifest(repository, reference)
        except UpstreamNotFound:
            return None
        media_type = found.media_type
        if media_type not in mediatypes.MANIFEST_MEDIA_TYPES:
            # Some registries answer a generic type; the document says.
            media_type = parse_manifest(found.content, None).media_type
        return Manifest(found.digest, media_type, found.content)

    async def has_blob(self, repository: str, digest: str) -> bool:
        return await self.client.has_blob(repository, digest)

    async def mount_blob(self, repository: str, source: str, digest: str) -> bool:
        try:
            return await self.client.mount_blob(repository, source, digest)
        except (UpstreamDenied, UpstreamNotFound, UpstreamInvalid):
            # A mount is only a shortcut: a registry that refuses it, or
            # the source repository, may still take the upload.
            return False

    @asynccontextmanager
    async def open_blob(
        self, repository: str, digest: str
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        async with self.client.open_blob(repository, digest) as stream:
            yield stream.size, stream.chunks

    async def put_blob(
        self, repository: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        await self.client.upload_blob(repository, digest, size, chunks, self.chunk_size)

    async def put_manifest(
        self, repository: str, reference: str, manifest: Manifest
    ) -> bool:
        return await self.client.put_manifest(
            repository, reference, manifest.media_type, manifest.content
        )

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """From the referrers API, or else from the `sha256-<hex>` tag."""
        found = await self.client.list_referrers(repository, digest)
        if found is not None:
            return found
        fallback = await self.get_manifest(repository, fallback_tag(digest))
        if fallback is None:
            return []
        return index_descriptors(fallback.content)

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        try:
            await self.client.delete_manifest(repository, digest)
        except UpstreamNotFound:
            return False
        except UpstreamInvalid as exc:
            if exc.status not in _REFUSED_DELETION:
                raise
            raise DeletionRefused(
                f"{repository}@{digest}: the registry refused to delete the "
                f"manifest ({exc})"
            ) from exc
        return True

    async def delete_tag(self, repository: str, tag: str) -> bool:
        try:
            if self.harbor is not None:
                return await self.harbor.delete_tag(repository, tag)
            await self.client.delete_tag(repository, tag)
        except UpstreamNotFound:
            return False
        except UpstreamInvalid as exc:
            # Never fall back to deleting the manifest by digest: other
            # tags there may share it.
            refused = DeletionRefused if exc.status in _REFUSED_DELETION else CopyFailed
            raise refused(
                f"{repository}:{tag}: the registry refused to delete the tag "
                f"alone ({exc}); its manifest is left in place"
            ) from exc
        return True


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for `digest` (`sha256-<hex>`)."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}"[:128]


def index_descriptors(content: bytes) -> list[dict[str, Any]]:
    """The `manifests` of an index document."""
    try:
        document = json.loads(content)
    except ValueError as exc:
        raise UpstreamInvalid("a referrers fallback tag is not a JSON index") from exc
    manifests = document.get("manifests") if isinstance(document, dict) else None
    return with_digests(manifests) if isinstance(manifests, list) else []
