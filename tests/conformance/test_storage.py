"""The blob storage contract (`dockyard.storage.base`), run on every backend."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from dockyard.storage.base import (
    BlobNotStored,
    ChunkSizeMismatch,
    DigestMismatch,
    UploadBusy,
    UploadGone,
    UploadOffsetMismatch,
)

# Larger than one multipart part of the object-store driver (5 MiB).
LARGE = 6 * 1024 * 1024 + 17


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing_body(first: bytes) -> AsyncIterator[bytes]:
    yield first
    raise ConnectionResetError("client went away")


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([data async for data in stream])


async def new_upload(storage, *chunks: bytes) -> str:
    """An upload holding `chunks`, each appended by a session of its own."""
    upload_id = secrets.token_hex(8)
    await storage.create_upload(upload_id)
    for chunk in chunks:
        async with storage.open_upload(upload_id) as upload:
            await upload.append(body(chunk), start=await upload.size())
    return upload_id


async def commit(storage, upload_id: str, digest: str, verified=False) -> int:
    async with storage.open_upload(upload_id) as upload:
        return await upload.commit(digest, verified=verified)


async def test_blob_size_of_absent_blob_is_none(storage):
    assert await storage.blob_size(sha256(b"absent")) is None


async def test_read_blob_of_absent_blob_raises_blob_not_stored(storage):
    with pytest.raises(BlobNotStored):
        await collect(storage.read_blob(sha256(b"absent")))


async def test_commit_of_upload_makes_readable_blob(storage):
    data = secrets.token_bytes(1000)
    upload_id = await new_upload(storage, data)

    size = await commit(storage, upload_id, sha256(data))

    assert size == 1000
    assert await collect(storage.read_blob(sha256(data))) == data


async def test_commit_of_upload_removes_upload(storage):
    data = secrets.token_bytes(100)
    upload_id = await new_upload(storage, data)

    await commit(storage, upload_id, sha256(data))

    assert await storage.upload_size(upload_id) is None
    assert upload_id not in dict(await storage.list_uploads())


async def test_commit_with_wrong_digest_raises_and_makes_no_blob(storage):
    upload_id = await new_upload(storage, b"what was sent")
    wrong = sha256(b"something else")

    with pytest.raises(DigestMismatch):
        await commit(storage, upload_id, wrong)

    assert await storage.blob_size(wrong) is None
    assert await storage.upload_size(upload_id) == len(b"what was sent")


async def test_commit_of_many_chunks_keeps_their_order(storage):
    chunks = [os.urandom(LARGE), b"middle", os.urandom(LARGE // 3)]
    data = b"".join(chunks)
    upload_id = await new_upload(storage, *chunks)

    await commit(storage, upload_id, sha256(data))

    assert await storage.blob_size(sha256(data)) == len(data)
    assert await collect(storage.read_blob(sha256(data))) == data


async def test_commit_of_many_chunks_with_wrong_digest_makes_no_blob(storage):
    upload_id = await new_upload(storage, os.urandom(LARGE), b"tail")
    wrong = sha256(b"not these bytes")

    with pytest.raises(DigestMismatch):
        await commit(storage, upload_id, wrong)

    assert await storage.blob_size(wrong) is None


async def test_commit_of_empty_upload_makes_empty_blob(storage):
    upload_id = await new_upload(storage)

    await commit(storage, upload_id, sha256(b""))

    assert await storage.blob_size(sha256(b"")) == 0


async def test_commit_with_sha512_digest_is_verified(storage):
    data = b"hashed with sha512"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    upload_id = await new_upload(storage, data)

    await commit(storage, upload_id, digest)

    assert await collect(storage.read_blob(digest)) == data


async def test_read_blob_with_range_returns_those_bytes(storage):
    data = os.urandom(LARGE)
    await commit(storage, await new_upload(storage, data), sha256(data))

    middle = await collect(storage.read_blob(sha256(data), 1000, 5_000_000))
    tail = await collect(storage.read_blob(sha256(data), LARGE - 10))

    assert middle == data[1000:5_000_000]
    assert tail == data[-10:]


async def test_append_reports_new_size_and_feeds_hasher(storage):
    upload_id = await new_upload(storage)
    hasher = hashlib.sha256()

    async with storage.open_upload(upload_id) as upload:
        size = await upload.append(body(b"abc", b"def"), start=0, hasher=hasher)

    assert size == 6
    assert hasher.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


async def test_append_at_wrong_offset_raises_and_changes_nothing(storage):
    upload_id = await new_upload(storage, b"12345")

    with pytest.raises(UploadOffsetMismatch) as raised:
        async with storage.open_upload(upload_id) as upload:
            await upload.append(body(b"more"), start=3)

    assert raised.value.offset == 5
    assert await storage.upload_size(upload_id) == 5


async def test_append_of_wrong_length_raises_and_changes_nothing(storage):
    upload_id = await new_upload(storage, b"first")

    with pytest.raises(ChunkSizeMismatch):
        async with storage.open_upload(upload_id) as upload:
            await upload.append(body(b"second"), start=5, length=4)

    assert await storage.upload_size(upload_id) == 5


async def test_append_of_failing_body_changes_nothing(storage):
    upload_id = await new_upload(storage, b"first")

    with pytest.raises(ConnectionResetError):
        async with storage.open_upload(upload_id) as upload:
            await upload.append(failing_body(os.urandom(LARGE)), start=5)

    assert await storage.upload_size(upload_id) == 5


async def test_upload_read_returns_bytes_in_order(storage):
    upload_id = await new_upload(storage, b"one ", b"two ", b"three")

    async with storage.open_upload(upload_id) as upload:
        content = await collect(upload.read())

    assert content == b"one two three"


async def test_open_upload_of_absent_upload_raises_upload_gone(storage):
    with pytest.raises(UploadGone):
        async with storage.open_upload("never-created"):
            pass


async def test_second_writer_at_same_offset_raises_upload_busy(storage):
    upload_id = await new_upload(storage, b"start")

    async with storage.open_upload(upload_id) as first:
        with pytest.raises(UploadBusy):
            # Locking backends refuse the second session; the others refuse
            # its chunk, because the first one claimed the offset.
            async with storage.open_upload(upload_id) as second:
                await first.append(body(b"-one"), start=5)
                await second.append(body(b"-two"), start=5)
        if await first.size() == 5:
            await first.append(body(b"-one"), start=5)

    async with storage.open_upload(upload_id) as upload:
        assert await collect(upload.read()) == b"start-one"


async def test_upload_continued_by_another_driver_commits_verified(
    storage, another_storage
):
    data = [os.urandom(LARGE), os.urandom(1000)]
    upload_id = await new_upload(storage, data[0])
    other = another_storage()

    async with other.open_upload(upload_id) as upload:
        await upload.append(body(data[1]), start=LARGE)
        await upload.commit(sha256(b"".join(data)))

    assert await storage.blob_size(sha256(b"".join(data))) == LARGE + 1000


async def test_delete_upload_removes_it(storage):
    upload_id = await new_upload(storage, b"bytes")

    await storage.delete_upload(upload_id)

    assert await storage.upload_size(upload_id) is None
    assert upload_id not in dict(await storage.list_uploads())


async def test_list_uploads_reports_recent_change(storage):
    upload_id = await new_upload(storage, b"bytes")

    changed = dict(await storage.list_uploads())[upload_id]

    assert abs(changed - time.time()) < 300


async def test_delete_blob_removes_it_and_ignores_absent(storage):
    data = b"to be deleted"
    await commit(storage, await new_upload(storage, data), sha256(data))

    await storage.delete_blob(sha256(data))
    await storage.delete_blob(sha256(data))

    assert await storage.blob_size(sha256(data)) is None


async def test_list_blobs_names_committed_blobs_only(storage):
    data = secrets.token_bytes(32)
    await commit(storage, await new_upload(storage, data), sha256(data))
    await new_upload(storage, b"in flight")

    assert await storage.list_blobs() == [sha256(data)]


async def test_signed_url_when_offered_serves_the_blob(storage):
    data = b"fetched without credentials"
    await commit(storage, await new_upload(storage, data), sha256(data))

    url = await storage.signed_url(sha256(data), timedelta(minutes=1))

    if storage.kind in ("filesystem", "memory"):
        assert url is None
    else:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).content == data


async def test_local_path_only_on_filesystem(storage):
    data = b"local?"
    await commit(storage, await new_upload(storage, data), sha256(data))

    path = storage.local_path(sha256(data))

    if storage.kind == "filesystem":
        assert path.read_bytes() == data
    else:
        assert path is None
