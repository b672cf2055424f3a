"""Upload expiry against a real SQLite database and filesystem storage."""

import os
import time

import pytest

from dockyard.bootstrap import prepare_data_dir
from dockyard.config import Settings
from dockyard.registry.errors import BlobUploadUnknown
from dockyard.services import build_services


@pytest.fixture
async def services(tmp_path):
    settings = Settings(data_dir=tmp_path)
    prepare_data_dir(settings)
    built = build_services(settings)
    yield built
    await built.close()


async def test_expire_uploads_discards_only_uploads_idle_past_the_limit(services):
    old = await services.uploads.start_upload("library/x")
    fresh = await services.uploads.start_upload("library/x")
    path = services.uploads.storage.upload_path(old)
    os.utime(path, (time.time() - 7200, time.time() - 7200))

    expired = await services.uploads.expire_uploads(3600)

    assert expired == 1
    with pytest.raises(BlobUploadUnknown):
        await services.uploads.upload_offset("library/x", old)
    assert await services.uploads.upload_offset("library/x", fresh) == 0


async def test_expire_uploads_removes_files_left_without_a_row(services):
    await services.uploads.storage.create_upload("orphan")
    path = services.uploads.storage.upload_path("orphan")
    os.utime(path, (time.time() - 7200, time.time() - 7200))

    await services.uploads.expire_uploads(3600)

    assert not path.exists()
