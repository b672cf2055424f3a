"""Blobs of proxy-cache projects on their way from the upstream to a client.

- `ProxiedBlob`, a whole blob. One request per digest at a time (it holds
  the digest's fill lock, shared by every process on the same `Locks`)
  writes it to storage as the bytes pass: the fill. Requests for the same
  blob that come while a fill runs pass the bytes through without storing
  them, so that no client waits for another and storage gets one write.
  Either way the digest is checked as the bytes pass and the last piece is
  held back until it matched (and, for the fill, the blob was committed).
  On a mismatch nothing is stored and the client's transfer is cut short,
  so it never holds a complete wrong blob.
- `RangedBlob`, one byte range (containerd resuming a layer). A range
  cannot be checked against the digest, so it is relayed and never stored;
  the cache starts a fill of the whole blob in the background instead.

An upstream that fails mid-stream ends the client's transfer early (the
server cuts the connection before the declared length) and leaves nothing
stored: the upload is discarded, and blobs only appear by commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.replication.client import BlobStream, UpstreamUnavailable
from dockyard.storage.base import StorageError, UploadSession, new_hasher

if TYPE_CHECKING:
    from dockyard.proxycache.service import Binding, ProxyCache

log = logging.getLogger(__name__)

# Pieces of an upstream blob waiting for the storage writer.
_QUEUED_PIECES = 8


class BlobMismatch(Exception):
    """The upstream's bytes do not match the digest they were asked for."""


class ProxiedBlob:
    """A whole blob from the upstream: stored on the way when `store` (this
    request holds the fill), else only passed through. The caller sends
    `chunks()` to the client and must `aclose()` it in any case."""

    def __init__(
        self,
        cache: ProxyCache,
        binding: Binding,
        repository: str,
        stream: BlobStream,
        stack: contextlib.AsyncExitStack,
        *,
        digest: str,
        store: bool,
    ) -> None:
        self.cache = cache
        self.binding = binding
        self.repository = repository
        self.digest = digest
        self.size = stream.size
        self.store = store
        self._stream = stream
        self._stack = stack

    async def aclose(self) -> None:
        await self._stack.aclose()

    def chunks(self) -> AsyncIterator[bytes]:
        """The blob's bytes. The last piece comes only after the digest
        matched (and a fill committed); `BlobMismatch` instead when it did
        not, `UpstreamUnavailable` when the upstream broke off."""
        pieces = self.cache.watched(self.binding, self._stream.chunks)
        return self._stored(pieces) if self.store else self._passed(pieces)

    async def _passed(self, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        hasher = new_hasher(self.digest)

        async def check(received: int) -> None:
            self._verify(received, hasher)

        async for piece in _held_back(_hashed(pieces, hasher), self.size, check):
            yield piece

    async def _stored(self, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        storage = self.cache.storage
        upload_id = f"proxy-{uuid.uuid4()}"
        await storage.create_upload(upload_id)
        committed = False
        try:
            async with storage.open_upload(upload_id) as upload:
                hasher = new_hasher(self.digest)
                # The storage side reads from this queue while the client
                # side is served; bounded, so a slow store slows the
                # upstream read too.
                queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED_PIECES)
                writer = asyncio.create_task(
                    upload.append(_drained(queue), start=0, hasher=hasher)
                )

                async def commit(received: int) -> None:
                    nonlocal committed
                    await _feed(queue, None, writer)
                    await writer
                    self._verify(received, hasher)
                    committed = await self._commit(upload)

                try:
                    queued = _queued(pieces, queue, writer)
                    async for piece in _held_back(queued, self.size, commit):
                        yield piece
                finally:
                    await _stopped(writer)
        finally:
            if not committed:
                await storage.delete_upload(upload_id)

    async def _commit(self, upload: UploadSession) -> bool:
        # Another fill may have committed the same digest meanwhile (a lock
        # that expired, Redis down): both wrote the same verified bytes to
        # the same content address, which is harmless.
        await upload.commit(self.digest, verified=True)
        await self.cache.record_blob(self.repository, self.digest, self.size)
        log.info(
            "proxy_blob_cached repository=%s digest=%s size=%d",
            self.repository,
            self.digest,
            self.size,
        )
        return True

    def _verify(self, received: int, hasher: Any) -> None:
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if received != self.size or actual != self.digest:
            log.warning(
                "proxy_blob_mismatch repository=%s digest=%s actual=%s size=%d "
                "received=%d",
                self.repository,
                self.digest,
                actual,
                self.size,
                received,
            )
            raise BlobMismatch(f"upstream sent {actual} for {self.digest}")


@dataclass(slots=True)
class RangedBlob:
    """Bytes `first`..`last` (inclusive) of a blob of `size` bytes, from the
    upstream. The caller sends `chunks` and must `aclose()` it."""

    first: int
    last: int
    size: int
    chunks: AsyncIterator[bytes]
    stack: contextlib.AsyncExitStack

    async def aclose(self) -> None:
        await self.stack.aclose()


async def cut(
    pieces: AsyncIterator[bytes], skip: int, length: int
) -> AsyncIterator[bytes]:
    """`length` bytes of `pieces` after the first `skip`; `UpstreamUnavailable`
    when they end before (a short answer must not look complete)."""
    position = 0
    end = skip + length
    async for piece in pieces:
        first, last = max(skip - position, 0), min(end - position, len(piece))
        position += len(piece)
        if first < last:
            yield piece[first:last]
        if position >= end:
            return
    raise UpstreamUnavailable(f"the upstream sent {position} of {end} bytes")


async def _held_back(
    pieces: AsyncIterator[bytes],
    size: int,
    finish: Callable[[int], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """`pieces`, the last one only after `finish(bytes received)` returned
    (it raises when they are wrong). Reading stops past `size` bytes."""
    received = 0
    held: bytes | None = None
    async for piece in pieces:
        received += len(piece)
        if received > size:
            break
        if held:
            yield held
        held = piece
    await finish(received)
    if held:
        yield held


async def _hashed(
    pieces: AsyncIterator[bytes], hasher: hashlib._Hash
) -> AsyncIterator[bytes]:
    async for piece in pieces:
        hasher.update(piece)
        yield piece


async def _queued(
    pieces: AsyncIterator[bytes],
    queue: asyncio.Queue[bytes | None],
    writer: asyncio.Task[int],
) -> AsyncIterator[bytes]:
    """`pieces`, each put on the storage writer's `queue` first."""
    async for piece in pieces:
        await _feed(queue, piece, writer)
        yield piece


async def _drained(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """The pieces put on `queue`, up to the None that ends them."""
    while (piece := await queue.get()) is not None:
        yield piece


async def _feed(
    queue: asyncio.Queue[bytes | None], piece: bytes | None, writer: asyncio.Task
) -> None:
    """Put `piece` on `queue`, unless the storage writer ended first (then
    its error, or `StorageError`, is raised rather than waiting forever)."""
    put = asyncio.ensure_future(queue.put(piece))
    await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
    if put.done():
        return
    put.cancel()
    writer.result()
    raise StorageError("the blob's storage writer stopped early")


async def _stopped(writer: asyncio.Task[int]) -> None:
    if not writer.done():
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
