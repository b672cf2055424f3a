"""Blob uploads: sessions that receive bytes and end as a verified blob.

    start_upload ──► append_chunk* ──► finish_upload ──► blob linked to repository
         │                                   │
         └──────────── cancel_upload ◄───────┘ (digest mismatch cancels too)

Bytes are appended to the upload's file in the blob storage; the upload row in
the database says which repository it belongs to, and the file's size is the
offset. The digest is computed while the bytes stream in, so finishing a
large upload does not read it again, unless the chunks went through another
process (then the file is hashed once at the end). Only `finish_upload` makes a
blob, and only after the digest matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
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
from dockyard.storage.base import BlobStorage

log = logging.getLogger(__name__)

# Bytes gathered before one write+hash step, which runs off the event loop.
_WRITE_SIZE = 4 * 1024 * 1024
_HASH_READ_SIZE = 4 * 1024 * 1024


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
        # the hash's byte count equals the file's size.
        self._hashes: dict[str, tuple[int, hashlib._Hash]] = {}

    async def start_upload(self, repository: str) -> str:
        upload_id = str(uuid.uuid4())
        await asyncio.to_thread(self.storage.create_upload, upload_id)
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
        size = await asyncio.to_thread(self.storage.upload_size, upload_id)
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
        with self._locked(upload_id) as descriptor:
            return await self._append(
                upload_id, descriptor, body, chunk_range, content_length
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
        # The lock is held until the bytes are a blob: no chunk may slip in
        # between the digest check and the rename.
        with self._locked(upload_id) as descriptor:
            if body is not None:
                await self._append(
                    upload_id, descriptor, body, chunk_range, content_length
                )
            actual, size = await self._digest_of(upload_id, expected)
            if actual != str(expected):
                await self._discard(upload_id)
                raise DigestInvalid(digest=digest)
            await asyncio.to_thread(self.storage.commit_upload, upload_id, actual)
        async with self.db.write() as conn:
            await link_blob(
                conn, await ensure_repository(conn, repository), actual, size
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
        with self._locked(upload_id):
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
        files = dict(await asyncio.to_thread(self.storage.list_uploads))
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
                    with self._locked(upload_id):
                        await self._discard(upload_id)
                else:
                    await self._discard(upload_id)
                expired += 1
        if expired:
            log.info("uploads_expired count=%d", expired)
        return expired

    @contextlib.contextmanager
    def _locked(self, upload_id: str) -> Iterator[int]:
        """The upload's file, open for appending and locked against every other
        request (in any process); `BlobUploadInvalid` while another holds it,
        `BlobUploadUnknown` once it is gone or committed."""
        path = self.storage.upload_path(upload_id)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError as exc:
            raise BlobUploadUnknown(upload_id=upload_id) from exc
        try:
            _lock(descriptor, upload_id)
            # The file may have become a blob (renamed away) between our open
            # and our lock; then this descriptor must not be written.
            try:
                same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                raise BlobUploadUnknown(upload_id=upload_id)
            yield descriptor
        finally:
            os.close(descriptor)

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
        await asyncio.to_thread(self.storage.delete_upload, upload_id)

    async def _append(
        self,
        upload_id: str,
        descriptor: int,
        body: AsyncIterator[bytes],
        chunk_range: ChunkRange | None,
        content_length: int | None,
    ) -> int:
        """Append `body` to the locked upload file; the new offset."""
        start = os.fstat(descriptor).st_size
        if chunk_range is not None and chunk_range.start != start:
            raise ChunkOutOfOrder(
                "chunk does not start at the upload's offset", offset=start
            )
        expected = chunk_range.length if chunk_range else content_length
        if chunk_range and content_length is not None and content_length != expected:
            raise SizeInvalid("Content-Length disagrees with Content-Range")
        written = await self._write_body(upload_id, descriptor, start, body)
        if expected is not None and written != expected:
            os.ftruncate(descriptor, start)
            self._hashes.pop(upload_id, None)
            raise SizeInvalid(
                "received length differs from the declared one",
                declared=expected,
                received=written,
            )
        return start + written

    async def _write_body(
        self, upload_id: str, descriptor: int, start: int, body: AsyncIterator[bytes]
    ) -> int:
        offset_hash = self._hashes.get(upload_id)
        hasher = offset_hash[1] if offset_hash and offset_hash[0] == start else None
        written = 0
        buffer = bytearray()
        try:
            async for piece in body:
                buffer += piece
                if len(buffer) >= _WRITE_SIZE:
                    data, buffer = buffer, bytearray()
                    await asyncio.to_thread(_write_and_hash, descriptor, data, hasher)
                    written += len(data)
            if buffer:
                await asyncio.to_thread(_write_and_hash, descriptor, buffer, hasher)
                written += len(buffer)
        except BaseException as exc:
            # A failed chunk, or a client that went away, leaves nothing half-written.
            log.warning("upload_chunk_failed upload_id=%s error=%r", upload_id, exc)
            os.ftruncate(descriptor, start)
            self._hashes.pop(upload_id, None)
            raise
        if hasher is not None:
            self._hashes[upload_id] = (start + written, hasher)
        else:
            self._hashes.pop(upload_id, None)
        return written

    async def _digest_of(self, upload_id: str, expected: Digest) -> tuple[str, int]:
        size = await asyncio.to_thread(self.storage.upload_size, upload_id)
        if size is None:
            raise BlobUploadUnknown(upload_id=upload_id)
        known = self._hashes.get(upload_id)
        if expected.algorithm == "sha256" and known and known[0] == size:
            return f"sha256:{known[1].hexdigest()}", size
        path = self.storage.upload_path(upload_id)
        encoded = await asyncio.to_thread(_hash_file, path, expected.algorithm)
        return f"{expected.algorithm}:{encoded}", size


def _epoch(moment: datetime) -> float:
    # SQLite hands back naive datetimes; they were stored in UTC.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _lock(descriptor: int, upload_id: str) -> None:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise BlobUploadInvalid(
            "another request is writing to this upload", upload_id=upload_id
        ) from exc


def _write_and_hash(
    descriptor: int, data: bytearray, hasher: hashlib._Hash | None
) -> None:
    view = memoryview(data)
    while view:
        count = os.write(descriptor, view)
        view = view[count:]
    if hasher is not None:
        hasher.update(data)


def _hash_file(path: os.PathLike[str], algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_READ_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()
