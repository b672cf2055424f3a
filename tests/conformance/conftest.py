"""The blob storage backends the conformance suite runs on.

`storage` is one driver; `another_storage()` a second driver over the same
backing store, as a second process or replica would have. `s3` runs against
moto in server mode (an S3 emulator on 127.0.0.1), `memory` on obstore's
in-process store through the same object-store driver.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from obstore.store import MemoryStore

from dockyard.storage.base import BlobStorage
from dockyard.storage.filesystem import FilesystemStorage
from dockyard.storage.objectstore import ObjectStorage, open_object_storage
from tests.object_storage import ACCESS_KEY, REGION, SECRET_KEY

BACKENDS = ["filesystem", "memory", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def another_storage(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], BlobStorage]:
    if backend == "filesystem":
        return lambda: FilesystemStorage(tmp_path / "storage")
    if backend == "memory":
        store = MemoryStore()
        return lambda: ObjectStorage(store, "memory")
    moto = request.getfixturevalue("moto_server")
    bucket = moto.new_bucket()

    def s3() -> BlobStorage:
        return open_object_storage(
            f"s3://{bucket}/conformance",
            endpoint_url=moto.endpoint,
            region=REGION,
            options={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
        )

    return s3


@pytest.fixture
def storage(another_storage: Callable[[], BlobStorage]) -> BlobStorage:
    return another_storage()
