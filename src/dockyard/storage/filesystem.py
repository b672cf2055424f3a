"""Blob storage on a local filesystem, under one root directory:

    <root>/
      blobs/<algorithm>/<first 2 hex chars>/<hex>     committed, immutable
      uploads/<upload id>                             bytes received so far

Uploads live on the same filesystem as blobs so that committing is one
`rename`: atomic, and never a copy. A request writing to an upload holds an
exclusive `flock` on its file, which excludes every other request in every
process on this machine; the file's size is the upload's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from dockyard.storage.base import (
    BlobNotStored,
    ChunkSizeMismatch,
    DigestMismatch,
    UploadBusy,
    UploadGone,
    UploadOffsetMismatch,
    blob_key,
    new_hasher,
)

log = logging.getLogger(__name__)

# Bytes gathered before one write+hash step, which runs off the event loop.
_WRITE_SIZE = 4 * 1024 * 1024
_READ_SIZE = 4 * 1024 * 1024


class FilesystemStorage:
    kind = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        return self._blobs / blob_key(digest)

    def local_path(self, digest: str) -> Path:
        return self.blob_path(digest)

    async def blob_size(self, digest: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.blob_path(digest).stat)).st_size
        except FileNotFoundError:
            return None

    async def read_blob(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            descriptor = os.open(self.blob_path(digest), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise BlobNotStored(digest) from exc
        try:
            async for data in _read_range(descriptor, start, end):
                yield data
        finally:
            os.close(descriptor)

    async def list_blobs(self) -> list[str]:
        return await asyncio.to_thread(self._scan_blobs)

    def _scan_blobs(self) -> list[str]:
        return [
            f"{algorithm.name}:{blob.name}"
            for algorithm in _entries(self._blobs)
            for prefix in _entries(algorithm)
            for blob in _entries(prefix)
        ]

    async def signed_url(self, digest: str, expires_in: timedelta) -> str | None:
        return None

    async def delete_blob(self, digest: str) -> None:
        self.blob_path(digest).unlink(missing_ok=True)

    def upload_path(self, upload_id: str) -> Path:
        return self._uploads / upload_id

    async def create_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).touch(exist_ok=False)

    async def upload_size(self, upload_id: str) -> int | None:
        try:
            return self.upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    @contextlib.asynccontextmanager
    async def open_upload(self, upload_id: str) -> AsyncIterator[FilesystemUpload]:
        """The upload's file, open for appending and locked against every
        other request; `UploadBusy` while another holds it, `UploadGone` once
        it is gone or committed."""
        path = self.upload_path(upload_id)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError as exc:
            raise UploadGone(upload_id) from exc
        try:
            _lock(descriptor, upload_id)
            # The file may have become a blob (renamed away) between our open
            # and our lock; then this descriptor must not be written.
            try:
                same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                raise UploadGone(upload_id)
            yield FilesystemUpload(self, upload_id, descriptor)
        finally:
            os.close(descriptor)

    async def delete_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    async def list_uploads(self) -> list[tuple[str, float]]:
        return await asyncio.to_thread(self._scan_uploads)

    def _scan_uploads(self) -> list[tuple[str, float]]:
        found = []
        for entry in os.scandir(self._uploads):
            try:
                found.append((entry.name, entry.stat().st_mtime))
            except FileNotFoundError:
                continue
        return found


class FilesystemUpload:
    """An upload's file, locked by this request (see `open_upload`)."""

    def __init__(
        self, storage: FilesystemStorage, upload_id: str, descriptor: int
    ) -> None:
        self._storage = storage
        self._upload_id = upload_id
        self._descriptor = descriptor

    async def size(self) -> int:
        return os.fstat(self._descriptor).st_size

    async def append(
        self,
        body: AsyncIterator[bytes],
        *,
        start: int,
        length: int | None = None,
        hasher: hashlib._Hash | None = None,
    ) -> int:
        current = await self.size()
        if current != start:
            raise UploadOffsetMismatch(self._upload_id, current)
        try:
            written = await self._write(body, hasher)
            if length is not None and written != length:
                raise ChunkSizeMismatch(length, written)
        except BaseException as exc:
            # A failed chunk, or a client that went away, leaves nothing
            # half-written.
            log.warning(
                "upload_chunk_failed upload_id=%s error=%r", self._upload_id, exc
            )
            os.ftruncate(self._descriptor, start)
            raise
        return start + written

    async def _write(
        self, body: AsyncIterator[bytes], hasher: hashlib._Hash | None
    ) -> int:
        written = 0
        buffer = bytearray()
        async for piece in body:
            buffer += piece
            if len(buffer) >= _WRITE_SIZE:
                data, buffer = buffer, bytearray()
                await asyncio.to_thread(_write_and_hash, self._descriptor, data, hasher)
                written += len(data)
        if buffer:
            await asyncio.to_thread(_write_and_hash, self._descriptor, buffer, hasher)
            written += len(buffer)
        return written

    async def read(self) -> AsyncIterator[bytes]:
        path = self._storage.upload_path(self._upload_id)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            async for data in _read_range(descriptor, 0, None):
                yield data
        finally:
            os.close(descriptor)

    async def commit(self, digest: str, *, verified: bool = False) -> int:
        source = self._storage.upload_path(self._upload_id)
        if not verified:
            hasher = new_hasher(digest)
            async for data in self.read():
                await asyncio.to_thread(hasher.update, data)
            if f"{digest.partition(':')[0]}:{hasher.hexdigest()}" != digest:
                raise DigestMismatch(digest)
        size = await self.size()
        target = self._storage.blob_path(digest)
        await asyncio.to_thread(_move_durably, source, target, self._descriptor)
        return size


def _entries(directory: os.DirEntry[str] | Path) -> list[os.DirEntry[str]]:
    """Entries of a directory, none if it is not one (or is gone)."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _move_durably(source: Path, target: Path, descriptor: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # The bytes must be on disk before the name is: a crash between the two
    # must not leave a blob whose content is lost.
    os.fsync(descriptor)
    os.replace(source, target)
    _fsync_directory(target.parent)


async def _read_range(
    descriptor: int, start: int, end: int | None
) -> AsyncIterator[bytes]:
    position = start
    while end is None or position < end:
        count = _READ_SIZE if end is None else min(_READ_SIZE, end - position)
        data = await asyncio.to_thread(os.pread, descriptor, count, position)
        if not data:
            return
        position += len(data)
        yield data


def _lock(descriptor: int, upload_id: str) -> None:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise UploadBusy(upload_id) from exc


def _write_and_hash(
    descriptor: int, data: bytearray, hasher: hashlib._Hash | None
) -> None:
    view = memoryview(data)
    while view:
        count = os.write(descriptor, view)
        view = view[count:]
    if hasher is not None:
        hasher.update(data)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
