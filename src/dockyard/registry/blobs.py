"""Blobs as a repository sees them.

Content is stored once per digest (`storage`), but a repository may read a
blob only once it is linked to it (`repository_blobs`): by an upload into the
repository, or by a mount from a repository the caller may pull. Without the
link, knowing a digest would be enough to read another project's layers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.db.database import Database, insert_or_ignore
from dockyard.db.schema import blobs, repositories, repository_blobs
from dockyard.registry.errors import BlobUnknown
from dockyard.registry.manifests import refuse_if_referenced
from dockyard.registry.repositories import ensure_repository
from dockyard.storage.base import BlobNotStored, BlobStorage

# How long a signed storage URL handed to a client stays valid.
REDIRECT_EXPIRY = timedelta(minutes=20)


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int
    # A local file to send it from, when the storage keeps blobs in files.
    path: Path | None


class BlobService:
    def __init__(
        self, db: Database, storage: BlobStorage, redirect: bool = False
    ) -> None:
        self.db = db
        self.storage = storage
        self.redirect = redirect

    async def stat_blob(self, repository: str, digest: str) -> BlobInfo:
        """Size and path of a blob linked to `repository`; `BlobUnknown` if not."""
        size = await self.db.cache.get_or_load(
            ("blob", repository, digest), lambda: self._load_size(repository, digest)
        )
        if size is None:
            raise BlobUnknown(digest=digest)
        return BlobInfo(digest, size, self.storage.local_path(digest))

    async def open_blob(
        self, digest: str, byte_range: tuple[int, int] | None = None
    ) -> AsyncIterator[bytes]:
        """The blob's bytes (those of the inclusive `byte_range`), streamed.
        Storage is asked before this returns, so a blob the database knows but
        the storage lacks raises `BlobUnknown` while an answer can still say so.
        """
        start, end = byte_range or (0, None)
        stream = self.storage.read_blob(digest, start, None if end is None else end + 1)
        try:
            first = await anext(stream, b"")
        except BlobNotStored as exc:
            raise BlobUnknown(digest=digest) from exc
        return _prepended(first, stream)

    async def redirect_url(self, digest: str) -> str | None:
        """A short-lived signed storage URL for a GET of the blob, when
        redirects are enabled and the storage can sign; else None."""
        if not self.redirect:
            return None
        return await self.storage.signed_url(digest, REDIRECT_EXPIRY)

    async def _load_size(self, repository: str, digest: str) -> int | None:
        query = (
            select(blobs.c.size)
            .select_from(repository_blobs)
            .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
            .join(blobs, blobs.c.digest == repository_blobs.c.digest)
            .where(
                (repositories.c.name == repository)
                & (repository_blobs.c.digest == digest)
            )
        )
        async with self.db.read() as conn:
            size = await conn.scalar(query)
        return int(size) if size is not None else None

    async def delete_blob(self, repository: str, digest: str, actor: str) -> None:
        """Unlink a blob from `repository`. Its bytes go when garbage collection
        finds nothing else pointing at them."""
        async with self.db.write() as conn:
            repo = (
                await conn.execute(
                    select(repositories.c.id, repositories.c.project_id).where(
                        repositories.c.name == repository
                    )
                )
            ).first()
            await refuse_if_referenced(conn, repo.id if repo else None, digest, "blob")
            result = await conn.execute(
                delete(repository_blobs).where(
                    (repository_blobs.c.repository_id == (repo.id if repo else None))
                    & (repository_blobs.c.digest == digest)
                )
            )
            if result.rowcount == 0:
                raise BlobUnknown(digest=digest)
            resource = f"{repository}@{digest}"
            await record_change(
                conn, actor, "blob", "delete", resource, repo.project_id
            )

    async def mount_blob(self, repository: str, source: str, digest: str) -> int | None:
        """Link a blob of `source` into `repository`; its size, or None if
        `source` has no such blob. The caller must have checked pull on `source`."""
        try:
            info = await self.stat_blob(source, digest)
        except BlobUnknown:
            return None
        async with self.db.write() as conn:
            await link_blob(
                conn, await ensure_repository(conn, repository), digest, info.size
            )
        return info.size


async def _prepended(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for data in rest:
        yield data


async def link_blob(
    conn: AsyncConnection, repo_id: int, digest: str, size: int
) -> None:
    """Record the blob (if new) and link it to the repository (if not yet)."""
    now = datetime.now(UTC)
    await conn.execute(
        insert_or_ignore(conn, blobs, digest=digest, size=size, created_at=now)
    )
    await conn.execute(
        insert_or_ignore(
            conn, repository_blobs, repository_id=repo_id, digest=digest, created_at=now
        )
    )
