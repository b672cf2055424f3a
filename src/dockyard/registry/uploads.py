"""Blob uploads: sessions that receive bytes and end as a verified blob.

    start_upload ──► append_chunk* ──► finish_upload ──► blob linked to repository
         │                                   │
         └──────────── cancel_upload ◄───────┘ (digest mismatch cancels too)

Bytes go to the upload in the blob storage; the upload row in the database
says which repository it belongs to, and the storage says how many bytes it
holds. Any process (any replica, with shared storage) may take the next
chunk. The digest is computed while the bytes stream in, so finishing a large
upload does not read it again, unless the chunks went through another
process (then the storage hashes the bytes once at the end). Only
`finish_upload` makes a blob, and only after the digest matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

from dockyard.db.database import Database
from dockyard.db.schema import uploads
from dockyard.registry.blobs import link_blob
from dockyard.registry.digest import Digest, parse_digest
from dockyard.registry.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    ChunkOutOfOrder,
    DigestInvalid,
    SizeInvalid,
)
from dockyard.registry.repositories import ensure_repository
from dockyard.storage.base import (
    BlobStorage,
    ChunkSizeMismatch,
    DigestMismatch,
    UploadBusy,
    UploadGone,
    UploadOffsetMismatch,
    UploadSession,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """A `Content-Range: <start>-<end>` of a chunk (both inclusive)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class UploadService:
    def __init__(self, db: Database, storage: BlobStorage) -> None:
        self.db = db
        self.storage = storage
        # upload id -> sha256 of the upload's bytes so far; valid only while
        # the hash's byte count equals the upload's size.
        self._hashes: dict[str, tuple[int, hashlib._Hash]] = {}

    async def start_upload(self, repository: str) -> str:
        upload_id = str(uuid.uuid4())
        await self.storage.create_upload(upload_id)
        async with self.db.write() as conn:
            await conn.execute(
                insert(uploads).values(
                    id=upload_id, repository=repository, created_at=datetime.now(UTC)
                )
            )
        self._hashes[upload_id] = (0, hashlib.sha256())
        return upload_id

    async def upload_offset(self, repository: str, upload_id: str) -> int:
        """Bytes received so far; `BlobUploadUnknown` if no such upload here."""
        await self._check_upload(repository, upload_id)
        size = await self.storage.upload_size(upload_id)
        if size is None:
            raise BlobUploadUnknown(upload_id=upload_id)
        return size

    async def append_chunk(
        self,
        repository: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        chunk_range: ChunkRange | None = None,
        content_length: int | None = None,
    ) -> int:
        """Append a chunk and return the new offset.

        A chunk that does not start at the current offset raises `ChunkOutOfOrder`
        (416); one whose length disagrees with its range or `Content-Length`
        raises `SizeInvalid` and leaves the upload as it was.
        """
        await self._check_upload(repository, upload_id)
        with _translated(upload_id):
            async with self.storage.open_upload(upload_id) as upload:
                return await self._append(
                    upload_id, upload, body, chunk_range, content_length
                )

    async def finish_upload(
        self,
        repository: str,
        upload_id: str,
        digest: str,
        body: AsyncIterator[bytes] | None = None,
        *,
        chunk_range: ChunkRange | None = None,
        content_length: int | None = None,
    ) -> int:
        """Append the last chunk (if any), verify `digest`, commit the blob and
        link it to `repository`; return its size.

        On a digest mismatch the upload is cancelled and `DigestInvalid` raised.
        """
        expected = parse_digest(digest)
        await self._check_upload(repository, upload_id)
        # The session lasts until the bytes are a blob: where the storage
        # locks uploads, no chunk may slip in between the check and the commit.
        with _translated(upload_id):
            async with self.storage.open_upload(upload_id) as upload:
                if body is not None:
                    await self._append(
                        upload_id, upload, body, chunk_range, content_length
                    )
                size = await self._commit(upload_id, upload, expected)
        async with self.db.write() as conn:
            await link_blob(
                conn, await ensure_repository(conn, repository), str(expected), size
            )
            await conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        self._hashes.pop(upload_id, None)
        return size

    async def upload_blob(
        self,
        repository: str,
        digest: str,
        body: AsyncIterator[bytes],
        content_length: int | None,
    ) -> int:
        """A whole blob in one request (`POST ?digest=`): start, append, finish."""
        parse_digest(digest)
        upload_id = await self.start_upload(repository)
        try:
            return await self.finish_upload(
                repository, upload_id, digest, body, content_length=content_length
            )
        except BaseException:
            await self._discard(upload_id)
            raise

    async def cancel_upload(self, repository: str, upload_id: str) -> None:
        await self._check_upload(repository, upload_id)
        with _translated(upload_id):
            async with self.storage.open_upload(upload_id):
                await self._discard(upload_id)

    async def expire_uploads(self, max_age: float) -> int:
        """Discard uploads nobody wrote to for `max_age` seconds, and upload
        files or rows left without their other half (a crash between the two).
        Uploads being written are skipped. Return how many went."""
        horizon = time.time() - max_age
        async with self.db.read() as conn:
            rows = dict(
                (await conn.execute(select(uploads.c.id, uploads.c.created_at))).all()
            )
        files = dict(await self.storage.list_uploads())
        stale = [uid for uid, changed in files.items() if changed < horizon]
        stale += [
            uid
            for uid, created in rows.items()
            if uid not in files and _epoch(created) < horizon
        ]
        expired = 0
        for upload_id in stale:
            with contextlib.suppress(BlobUploadInvalid, BlobUploadUnknown):
                if upload_id in files:
                    await self._expire(upload_id)
                else:
                    await self._discard(upload_id)
                expired += 1
        if expired:
            log.info("uploads_expired count=%d", expired)
        return expired

    async def _expire(self, upload_id: str) -> None:
        with _translated(upload_id):
            async with self.storage.open_upload(upload_id):
                await self._discard(upload_id)

    async def _check_upload(self, repository: str, upload_id: str) -> None:
        async with self.db.read() as conn:
            owner = await conn.scalar(
                select(uploads.c.repository).where(uploads.c.id == upload_id)
            )
        if owner != repository:
            raise BlobUploadUnknown(upload_id=upload_id)

    async def _discard(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        async with self.db.write() as conn:
            await conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        await self.storage.delete_upload(upload_id)

    async def _append(
        self,
        upload_id: str,
        upload: UploadSession,
        body: AsyncIterator[bytes],
        chunk_range: ChunkRange | None,
        content_length: int | None,
    ) -> int:
        """Append `body` to the upload; the new offset."""
        start = await upload.size()
        if chunk_range is not None and chunk_range.start != start:
            raise ChunkOutOfOrder(
                "chunk does not start at the upload's offset", offset=start
            )
        expected = chunk_range.length if chunk_range else content_length
        if chunk_range and content_length is not None and content_length != expected:
            raise SizeInvalid("Content-Length disagrees with Content-Range")
        known = self._hashes.pop(upload_id, None)
        hasher = known[1] if known and known[0] == start else None
        end = await upload.append(body, start=start, length=expected, hasher=hasher)
        if hasher is not None:
            self._hashes[upload_id] = (end, hasher)
        return end

    async def _commit(
        self, upload_id: str, upload: UploadSession, expected: Digest
    ) -> int:
        """Commit the upload as the blob `expected`; its size. `DigestInvalid`
        (and the upload discarded) if the bytes hash otherwise."""
        size = await upload.size()
        known = self._hashes.get(upload_id)
        held = expected.algorithm == "sha256" and known and known[0] == size
        try:
            if held and f"sha256:{known[1].hexdigest()}" != str(expected):
                raise DigestMismatch(str(expected))
            return await upload.commit(str(expected), verified=bool(held))
        except DigestMismatch as exc:
            await self._discard(upload_id)
            raise DigestInvalid(digest=str(expected)) from exc


@contextlib.contextmanager
def _translated(upload_id: str) -> Iterator[None]:
    """The storage's upload errors as the OCI errors a client sees."""
    try:
        yield
    except UploadGone as exc:
        raise BlobUploadUnknown(upload_id=upload_id) from exc
    except UploadBusy as exc:
        raise BlobUploadInvalid(
            "another request is writing to this upload", upload_id=upload_id
        ) from exc
    except UploadOffsetMismatch as exc:
        raise ChunkOutOfOrder(
            "chunk does not start at the upload's offset", offset=exc.offset
        ) from exc
    except ChunkSizeMismatch as exc:
        raise SizeInvalid(
            "received length differs from the declared one",
            declared=exc.declared,
            received=exc.received,
        ) from exc


def _epoch(moment: datetime) -> float:
    # SQLite hands back naive datetimes; they were stored in UTC.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
