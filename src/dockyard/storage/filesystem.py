"""Blob storage on a local filesystem, under one root directory:

    <root>/
      blobs/<algorithm>/<first 2 hex chars>/<hex>     committed, immutable
      uploads/<upload id>                             bytes received so far

Uploads live on the same filesystem as blobs so that committing is one
`rename`: atomic, and never a copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

_READ_SIZE = 1024 * 1024


class FilesystemStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self._blobs / algorithm / encoded[:2] / encoded

    def blob_size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read_blob(self, digest: str) -> Iterator[bytes]:
        with open(self.blob_path(digest), "rb") as handle:
            while piece := handle.read(_READ_SIZE):
                yield piece

    def list_blobs(self) -> Iterator[str]:
        for algorithm in _entries(self._blobs):
            for prefix in _entries(algorithm):
                for blob in _entries(prefix):
                    yield f"{algorithm.name}:{blob.name}"

    def delete_blob(self, digest: str) -> None:
        self.blob_path(digest).unlink(missing_ok=True)

    def upload_path(self, upload_id: str) -> Path:
        return self._uploads / upload_id

    def create_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).touch(exist_ok=False)

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self.upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def commit_upload(self, upload_id: str, digest: str) -> None:
        source = self.upload_path(upload_id)
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The bytes must be on disk before the name is: a crash between the two
        # must not leave a blob whose content is lost.
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, target)
        _fsync_directory(target.parent)

    def delete_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    def list_uploads(self) -> list[tuple[str, float]]:
        """Every upload id with the time its bytes last changed."""
        found = []
        for entry in os.scandir(self._uploads):
            try:
                found.append((entry.name, entry.stat().st_mtime))
            except FileNotFoundError:
                continue
        return found


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _entries(directory: os.DirEntry[str] | Path) -> Iterator[os.DirEntry[str]]:
    """Entries of a directory, none if it is not one (or is gone)."""
    try:
        with os.scandir(directory) as entries:
            yield from sorted(entries, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
