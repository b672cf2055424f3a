"""The contract of a blob storage backend.

A backend stores two kinds of object:

- blobs, addressed by digest, immutable once committed;
- uploads in progress, addressed by upload id, appended to and then either
  committed (moved into place as a blob, atomically) or discarded.

Committing is the only way a blob appears, and callers commit only after
verifying the digest, so a readable blob always has the right content.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class BlobStorage(Protocol):
    def blob_size(self, digest: str) -> int | None:
        """The size of a committed blob, or None if absent."""

    def blob_path(self, digest: str) -> Path:
        """A local path the server may send the blob from (filesystem only)."""

    def read_blob(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes in pieces of bounded size; `FileNotFoundError`
        if absent."""

    def list_blobs(self) -> Iterator[str]:
        """The digest of every committed blob stored, in no particular order
        (names that are no valid digest are listed as they are, for fsck)."""

    def delete_blob(self, digest: str) -> None:
        """Remove a committed blob; absent blobs are ignored."""

    def create_upload(self, upload_id: str) -> None:
        """Create an empty upload."""

    def upload_path(self, upload_id: str) -> Path:
        """Where the upload's bytes are appended."""

    def upload_size(self, upload_id: str) -> int | None:
        """Bytes received so far, or None if the upload is gone."""

    def commit_upload(self, upload_id: str, digest: str) -> None:
        """Make the upload's bytes the blob `digest`, atomically, and remove it."""

    def delete_upload(self, upload_id: str) -> None:
        """Discard an upload; absent uploads are ignored."""

    def list_uploads(self) -> list[tuple[str, float]]:
        """Every upload id with the time (epoch seconds) its bytes last changed."""
