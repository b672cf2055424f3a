"""The contract of a blob storage backend.

A backend stores two kinds of object:

- blobs, addressed by digest, immutable once committed;
- uploads in progress, addressed by upload id: bytes appended chunk by chunk,
  in order, then either committed (made a blob, atomically, only once the
  bytes are known to hash to the digest) or discarded.

Committing is the only way a blob appears, and it verifies the digest unless
the caller already hashed the very same bytes, so a readable blob always has
the right content. Every backend passes `tests/conformance/test_storage.py`.

Exceptions (backends translate their own errors into these, chained):

    StorageError              the backend failed: I/O, network, credentials
      BlobNotStored           no such blob in storage
      UploadGone              no such upload: never made, discarded or committed
      UploadBusy              another request is writing to the upload
      UploadOffsetMismatch    a chunk does not start at the upload's end
      ChunkSizeMismatch       a chunk's length differs from the declared one
      DigestMismatch          the upload's bytes do not hash to the digest
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """The storage backend failed; the message says what it was doing."""


class BlobNotStored(StorageError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"blob {digest} is not in storage")
        self.digest = digest


class UploadGone(StorageError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id} does not exist")
        self.upload_id = upload_id


class UploadBusy(StorageError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"another request is writing to upload {upload_id}")
        self.upload_id = upload_id


class UploadOffsetMismatch(StorageError):
    def __init__(self, upload_id: str, offset: int) -> None:
        super().__init__(f"upload {upload_id} ends at {offset}")
        self.upload_id = upload_id
        self.offset = offset


class ChunkSizeMismatch(StorageError):
    def __init__(self, declared: int, received: int) -> None:
        super().__init__(f"chunk declared {declared} bytes, sent {received}")
        self.declared = declared
        self.received = received


class DigestMismatch(StorageError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"the upload's bytes do not hash to {digest}")
        self.digest = digest


class UploadSession(Protocol):
    """One request's access to one upload, from `BlobStorage.open_upload`."""

    async def size(self) -> int:
        """Bytes received so far."""

    async def append(
        self,
        body: AsyncIterator[bytes],
        *,
        start: int,
        length: int | None = None,
        hasher: hashlib._Hash | None = None,
    ) -> int:
        """Append `body`, which must start at byte `start`; the new size.

        All or nothing: when anything fails (the body, `ChunkSizeMismatch` if
        `length` is given and differs, `UploadOffsetMismatch` or `UploadBusy`
        if the upload no longer ends at `start`) the upload is as it was.
        `hasher` sees the bytes in order; after a failure it is worthless.
        """

    def read(self) -> AsyncIterator[bytes]:
        """The upload's bytes, in order."""

    async def commit(self, digest: str, *, verified: bool = False) -> int:
        """Make the upload's bytes the blob `digest` (`algorithm:hex`) and
        remove the upload; return the blob's size.

        Unless `verified` (the caller hashed exactly these bytes), the bytes
        are hashed first; on `DigestMismatch` nothing is committed and the
        upload stays for the caller to discard. The blob appears atomically.
        """


class BlobStorage(Protocol):
    """Where blob content and uploads in progress live. Methods may be called
    from any task; backends keep no per-request state between calls."""

    kind: str
    """`filesystem`, `s3`, `gcs`, `azure` or `memory`."""

    async def blob_size(self, digest: str) -> int | None:
        """The size of a committed blob, or None if absent."""

    def local_path(self, digest: str) -> Path | None:
        """A local file holding the blob, for zero-copy responses; None when
        the backend does not keep blobs in local files."""

    def read_blob(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The blob's bytes from `start` up to `end` (exclusive; None: to the
        end), streamed in bounded pieces. `BlobNotStored` if absent."""

    async def list_blobs(self) -> list[str]:
        """The digest of every committed blob stored, in no particular order
        (names that are no valid digest are listed as they are, for fsck)."""

    async def signed_url(self, digest: str, expires_in: timedelta) -> str | None:
        """A URL anyone may GET the blob from until `expires_in` has passed,
        carrying its own authorisation; None if the backend cannot sign."""

    async def delete_blob(self, digest: str) -> None:
        """Remove a committed blob; absent blobs are ignored."""

    async def create_upload(self, upload_id: str) -> None:
        """Create an empty upload."""

    async def upload_size(self, upload_id: str) -> int | None:
        """Bytes received so far, or None if the upload is gone."""

    def open_upload(self, upload_id: str) -> AbstractAsyncContextManager[UploadSession]:
        """Access to the upload for one request; `UploadGone` if absent,
        `UploadBusy` if the backend locks uploads and another request holds
        this one. Backends that do not lock detect conflicting writers when
        they append instead."""

    async def delete_upload(self, upload_id: str) -> None:
        """Discard an upload; absent uploads are ignored."""

    async def list_uploads(self) -> list[tuple[str, float]]:
        """Every upload id with the time (epoch seconds) its bytes last changed."""


def new_hasher(digest: str) -> hashlib._Hash:
    """A hash object for the algorithm `digest` (`algorithm:hex`) names."""
    return hashlib.new(digest.partition(":")[0])


def blob_key(digest: str) -> str:
    """`<algorithm>/<first two hex chars>/<hex>`: where a blob lives under
    a backend's `blobs/`, so that no directory holds every blob."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}/{encoded[:2]}/{encoded}"
