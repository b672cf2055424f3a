"""Which backend a storage URL names."""

from pathlib import Path

from dockyard.storage import open_storage


def test_storage_without_url_is_filesystem_in_data_dir(tmp_path):
    storage = open_storage(None, tmp_path / "storage")

    assert (storage.kind, storage.root) == ("filesystem", tmp_path / "storage")


def test_storage_file_url_is_filesystem_at_that_path(tmp_path):
    storage = open_storage(f"file://{tmp_path}/blobs", tmp_path / "unused")

    assert (storage.kind, storage.root) == ("filesystem", tmp_path / "blobs")


def test_storage_s3_url_with_endpoint_is_object_storage():
    storage = open_storage(
        "s3://bucket/prefix", Path("/unused"), s3_endpoint_url="http://127.0.0.1:9"
    )

    assert storage.kind == "s3"
