"""Blob storage: where content lives, addressed by digest.

`BlobStorage` (in `base`) is the contract every backend meets; `filesystem`
is the embedded default, `objectstore` keeps blobs in S3, GCS or Azure.
Metadata (which repository may read what) is never kept here: see
`dockyard.db.schema`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from dockyard.storage.base import BlobStorage
from dockyard.storage.filesystem import FilesystemStorage
from dockyard.storage.objectstore import open_object_storage


def open_storage(
    url: str | None,
    default_root: Path,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    options: dict[str, str] | None = None,
) -> BlobStorage:
    """The backend `url` names: none for the filesystem under `default_root`,
    `file:///path` for another directory, an object store URL otherwise.
    `StorageError` if the object store cannot be configured."""
    if url is None:
        return FilesystemStorage(default_root)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FilesystemStorage(Path(unquote(parts.path)))
    return open_object_storage(
        url, endpoint_url=s3_endpoint_url, region=s3_region, options=options
    )
