"""Blob storage in an object store (S3 and S3-compatible, GCS, Azure), via obstore.

    <prefix>/
      blobs/<algorithm>/<first 2 hex chars>/<hex>       committed, immutable
      uploads/<upload id>/started                        the upload exists
      uploads/<upload id>/data/<start>-<nonce>           one chunk's bytes
      uploads/<upload id>/chain/<start>                  claim: "<nonce>"

(<start> is the chunk's first byte offset, 20 digits, so names sort by it.)

Object stores have neither append nor rename, and replicas share nothing but
the store, so an upload is a chain of chunk objects. A request streams its
chunk into a data object of its own, then claims the chunk's start offset by
creating the claim with a create-only put (`If-None-Match: *`). Of two
requests that raced for one offset exactly one claim succeeds; the other
request removes its data and fails with `UploadBusy`. The chain therefore
has no gaps and no overlaps, any replica reads an upload's state from one
listing, and no request holds a lock that a crashed replica could leave.

Committing streams the chain, in order, through a hash into the blob's key
with a multipart put, and lets the put complete only once the hash matched:
the blob's key never shows unverified bytes. A one-chunk upload is verified
(unless the caller already did) and then copied inside the store.

Memory is bounded per request: bodies pass in pieces of `_PIECE_SIZE`, and a
put holds at most `_PART_CONCURRENCY` parts of `_PART_SIZE` in flight.
Errors of obstore are translated here into `dockyard.storage.base` ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, PreconditionError
from obstore.store import AzureStore, GCSStore, S3Store, from_url

from dockyard.storage.base import (
    BlobNotStored,
    ChunkSizeMismatch,
    DigestMismatch,
    StorageError,
    UploadBusy,
    UploadGone,
    UploadOffsetMismatch,
    blob_key,
    new_hasher,
)

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ObjectStore

log = logging.getLogger(__name__)

# Bytes gathered from a request body before one hash step and one write.
_PIECE_SIZE = 1024 * 1024
# Multipart part size (S3 wants at least 5 MiB) and parts in flight per put:
# one, so that a request holds about two parts (one filling, one sent).
_PART_SIZE = 5 * 1024 * 1024
_PART_CONCURRENCY = 1
_READ_SIZE = 1024 * 1024
# S3 copies at most 5 GB in one request; larger chunks are streamed instead.
_COPY_LIMIT = 5 * 10**9
# Overall limit of one request to the store, long enough to stream a large
# blob to a slow client.
_REQUEST_TIMEOUT = timedelta(hours=2)
_CONNECT_TIMEOUT = timedelta(seconds=10)

KINDS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "az": "azure",
    "azure": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
    "memory": "memory",
}


def open_object_storage(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    options: dict[str, str] | None = None,
) -> ObjectStorage:
    """Object storage for `url` (`s3://bucket/prefix`, `gs://bucket/prefix`,
    `az://container/prefix`). For S3, `endpoint_url` names an S3-compatible
    server (addressed path-style) and `region` the region; credentials come
    from the standard `AWS_*` variables, which obstore reads. `options` go to
    obstore's store configuration unchanged. `StorageError` if unusable."""
    scheme = urlsplit(url).scheme
    if scheme not in KINDS:
        raise StorageError(f"storage URL scheme {scheme!r} is not supported")
    config: dict[str, Any] = dict(options or {})
    client: dict[str, Any] = {
        "timeout": _REQUEST_TIMEOUT,
        "connect_timeout": _CONNECT_TIMEOUT,
    }
    if KINDS[scheme] == "s3":
        if endpoint_url:
            config.setdefault("endpoint", endpoint_url)
            config.setdefault("virtual_hosted_style_request", False)
            client["allow_http"] = endpoint_url.startswith("http://")
        if region:
            config.setdefault("region", region)
    try:
        if KINDS[scheme] == "memory":
            store = from_url(url)
        else:
            store = from_url(url, config=config or None, client_options=client)
    except (BaseError, ValueError) as exc:
        raise StorageError(f"cannot open storage {url}: {exc}") from exc
    return ObjectStorage(store, KINDS[scheme])


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """obstore's errors as `StorageError`, naming what was being done."""
    try:
        yield
    except BaseError as exc:
        raise StorageError(f"object store failed to {action}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Chunk:
    start: int
    length: int
    key: str


class ObjectStorage:
    def __init__(self, store: ObjectStore, kind: str) -> None:
        self.store = store
        self.kind = kind

    # Blobs.

    async def blob_size(self, digest: str) -> int | None:
        try:
            with _translated("read a blob's size"):
                meta = await obstore.head_async(self.store, _blob(digest))
        except FileNotFoundError:
            return None
        return int(meta["size"])

    def local_path(self, digest: str) -> None:
        return None

    async def read_blob(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        async for data in self._read(_blob(digest), BlobNotStored(digest), options):
            yield data

    async def list_blobs(self) -> list[str]:
        # blobs/<algorithm>/<2 hex>/<hex>
        names = []
        for meta in await self._list("blobs/"):
            parts = meta["path"].split("/")
            names.append(f"{parts[1]}:{parts[-1]}" if len(parts) == 4 else meta["path"])
        return names

    async def signed_url(self, digest: str, expires_in: timedelta) -> str | None:
        if not isinstance(self.store, S3Store | GCSStore | AzureStore):
            return None
        with _translated("sign a blob URL"):
            return await obstore.sign_async(
                self.store, "GET", _blob(digest), expires_in
            )

    async def delete_blob(self, digest: str) -> None:
        # GCS and Azure report an absent object; S3 does not.
        with contextlib.suppress(FileNotFoundError), _translated("delete a blob"):
            await obstore.delete_async(self.store, _blob(digest))

    # Uploads.

    async def create_upload(self, upload_id: str) -> None:
        with _translated("create an upload"):
            await obstore.put_async(self.store, _started(upload_id), b"")

    async def upload_size(self, upload_id: str) -> int | None:
        chain = await self._chain(upload_id)
        return None if chain is None else _end(chain)

    @contextlib.asynccontextmanager
    async def open_upload(self, upload_id: str) -> AsyncIterator[ObjectUpload]:
        chain = await self._chain(upload_id)
        if chain is None:
            raise UploadGone(upload_id)
        yield ObjectUpload(self, upload_id, chain)

    async def delete_upload(self, upload_id: str) -> None:
        objects = await self._list(_upload_prefix(upload_id))
        if objects:
            with (
                contextlib.suppress(FileNotFoundError),
                _translated("delete an upload"),
            ):
                await obstore.delete_async(self.store, [o["path"] for o in objects])

    async def list_uploads(self) -> list[tuple[str, float]]:
        changed: dict[str, float] = {}
        for meta in await self._list("uploads/"):
            upload_id = meta["path"].split("/")[1]
            moment = meta["last_modified"].timestamp()
            changed[upload_id] = max(moment, changed.get(upload_id, moment))
        return list(changed.items())

    # Helpers shared with `ObjectUpload`.

    async def _list(self, prefix: str) -> list[ObjectMeta]:
        found: list[ObjectMeta] = []
        with _translated("list objects"):
            async for batch in obstore.list(self.store, prefix):
                found.extend(batch)
        return found

    async def _read(
        self, key: str, missing: StorageError, options: dict[str, Any] | None = None
    ) -> AsyncIterator[bytes]:
        try:
            with _translated("read an object"):
                result = await obstore.get_async(self.store, key, options=options)
        except FileNotFoundError as exc:
            raise missing from exc
        with _translated("read an object"):
            async for data in result.stream(min_chunk_size=_READ_SIZE):
                yield data

    async def _chain(self, upload_id: str) -> list[_Chunk] | None:
        """The upload's chunks in order, or None if the upload is gone."""
        objects = await self._list(_upload_prefix(upload_id))
        if not objects:
            return None
        claimed: set[int] = set()
        data: dict[int, list[tuple[str, int]]] = {}
        for meta in objects:
            _, _, kind, name = (meta["path"].split("/") + ["", ""])[:4]
            if kind == "chain":
                claimed.add(int(name))
            elif kind == "data":
                start = int(name.partition("-")[0])
                data.setdefault(start, []).append((meta["path"], int(meta["size"])))
        chain: list[_Chunk] = []
        position = 0
        while position in claimed:
            key, length = await self._winner(upload_id, position, data)
            chain.append(_Chunk(position, length, key))
            position += length
        return chain

    async def _winner(
        self, upload_id: str, start: int, data: dict[int, list[tuple[str, int]]]
    ) -> tuple[str, int]:
        """The data object the claim at `start` names. A claimed chunk's data
        exists until the upload is discarded, so a lone candidate is it."""
        candidates = data.get(start, [])
        if len(candidates) != 1:
            claim = self._read(_claim(upload_id, start), UploadGone(upload_id))
            nonce = b"".join([piece async for piece in claim]).decode()
            candidates = [c for c in candidates if c[0].endswith(f"-{nonce}")]
        if len(candidates) != 1 or candidates[0][1] == 0:
            raise UploadGone(upload_id)
        return candidates[0]


class ObjectUpload:
    """One request's view of an upload's chain (see the module docstring)."""

    def __init__(
        self, storage: ObjectStorage, upload_id: str, chain: list[_Chunk]
    ) -> None:
        self._storage = storage
        self._store = storage.store
        self._upload_id = upload_id
        self._chain = chain

    async def size(self) -> int:
        return _end(self._chain)

    async def append(
        self,
        body: AsyncIterator[bytes],
        *,
        start: int,
        length: int | None = None,
        hasher: hashlib._Hash | None = None,
    ) -> int:
        current = _end(self._chain)
        if current != start:
            raise UploadOffsetMismatch(self._upload_id, current)
        nonce = secrets.token_hex(8)
        key = f"{_upload_prefix(self._upload_id)}data/{start:020d}-{nonce}"
        try:
            written = await self._put_chunk(key, body, hasher)
            if length is not None and written != length:
                raise ChunkSizeMismatch(length, written)
            if written:
                await self._claim(start, nonce)
        except BaseException as exc:
            log.warning(
                "upload_chunk_failed upload_id=%s error=%r", self._upload_id, exc
            )
            await self._remove(key)
            raise
        if not written:
            await self._remove(key)
            return start
        self._chain.append(_Chunk(start, written, key))
        return start + written

    async def _put_chunk(
        self, key: str, body: AsyncIterator[bytes], hasher: hashlib._Hash | None
    ) -> int:
        """Stream `body` into `key`; its length. Small bodies take one put,
        others a multipart put."""
        counted = _Pieces(body, hasher)
        stream = aiter(counted)
        first = await anext(stream, None)
        second = await anext(stream, None) if first is not None else None
        with _translated("write a chunk"):
            if second is None:
                await obstore.put_async(
                    self._store, key, first or b"", use_multipart=False
                )
            else:
                await obstore.put_async(
                    self._store,
                    key,
                    _prepended([first, second], stream),
                    chunk_size=_PART_SIZE,
                    max_concurrency=_PART_CONCURRENCY,
                )
        return counted.count

    async def _claim(self, start: int, nonce: str) -> None:
        with _translated("claim a chunk"):
            try:
                await obstore.put_async(
                    self._store,
                    _claim(self._upload_id, start),
                    nonce.encode(),
                    mode="create",
                )
            except (AlreadyExistsError, PreconditionError) as exc:
                raise UploadBusy(self._upload_id) from exc

    async def _remove(self, key: str) -> None:
        try:
            with contextlib.suppress(FileNotFoundError), _translated("remove"):
                await obstore.delete_async(self._store, key)
        except StorageError:
            # Left for upload expiry, which removes every object of the upload.
            log.warning("upload_chunk_not_removed upload_id=%s", self._upload_id)

    async def read(self) -> AsyncIterator[bytes]:
        for chunk in self._chain:
            async for data in self._storage._read(
                chunk.key, UploadGone(self._upload_id)
            ):
                yield data

    async def commit(self, digest: str, *, verified: bool = False) -> int:
        size = _end(self._chain)
        target = _blob(digest)
        if len(self._chain) == 1 and size <= _COPY_LIMIT:
            if not verified:
                await self._verify(digest)
            with _translated("copy a chunk into place"):
                await obstore.copy_async(self._store, self._chain[0].key, target)
        elif size <= _PART_SIZE:
            content = bytearray()
            async for data in self._verified(digest):
                content += data
            with _translated("write a blob"):
                await obstore.put_async(
                    self._store, target, content, use_multipart=False
                )
        else:
            with _translated("write a blob"):
                await obstore.put_async(
                    self._store,
                    target,
                    self._verified(digest),
                    chunk_size=_PART_SIZE,
                    max_concurrency=_PART_CONCURRENCY,
                )
        try:
            await self._storage.delete_upload(self._upload_id)
        except StorageError:
            # The blob is in place; expiry removes what is left of the upload.
            log.warning("upload_not_removed upload_id=%s", self._upload_id)
        return size

    async def _verify(self, digest: str) -> None:
        async for _ in self._verified(digest):
            pass

    async def _verified(self, digest: str) -> AsyncIterator[bytes]:
        """The upload's bytes; raises `DigestMismatch` after the last piece,
        before the consumer (a put) can complete, if they hash otherwise."""
        hasher = new_hasher(digest)
        async for data in self.read():
            await asyncio.to_thread(hasher.update, data)
            yield data
        if f"{digest.partition(':')[0]}:{hasher.hexdigest()}" != digest:
            raise DigestMismatch(digest)


class _Pieces:
    """`body` regrouped into pieces of about `_PIECE_SIZE`, hashed (off the
    event loop) and counted on the way through."""

    def __init__(
        self, body: AsyncIterator[bytes], hasher: hashlib._Hash | None
    ) -> None:
        self._body = body
        self._hasher = hasher
        self.count = 0

    async def __aiter__(self) -> AsyncIterator[bytearray]:
        buffer = bytearray()
        async for data in self._body:
            buffer += data
            if len(buffer) >= _PIECE_SIZE:
                yield await self._passed(buffer)
                buffer = bytearray()
        if buffer:
            yield await self._passed(buffer)

    async def _passed(self, piece: bytearray) -> bytearray:
        if self._hasher is not None:
            await asyncio.to_thread(self._hasher.update, piece)
        self.count += len(piece)
        return piece


async def _prepended(
    head: list[bytearray | None], rest: AsyncIterator[bytearray]
) -> AsyncIterator[bytearray]:
    for piece in head:
        if piece is not None:
            yield piece
    async for piece in rest:
        yield piece


def _end(chain: list[_Chunk]) -> int:
    return chain[-1].start + chain[-1].length if chain else 0


def _blob(digest: str) -> str:
    return f"blobs/{blob_key(digest)}"


def _upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def _started(upload_id: str) -> str:
    return f"{_upload_prefix(upload_id)}started"


def _claim(upload_id: str, start: int) -> str:
    return f"{_upload_prefix(upload_id)}chain/{start:020d}"
