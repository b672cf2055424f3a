"""What only the object-store driver does: chains of claimed chunks, on
obstore's in-memory store (the same driver code as on S3)."""

import hashlib

import obstore
from obstore.store import MemoryStore

from dockyard.storage.objectstore import ObjectStorage


async def body(data):
    yield data


async def collect(stream):
    return b"".join([data async for data in stream])


async def test_chain_ignores_data_of_a_writer_that_lost_its_claim():
    storage = ObjectStorage(MemoryStore(), "memory")
    await storage.create_upload("u")
    async with storage.open_upload("u") as upload:
        await upload.append(body(b"winner"), start=0)
    # What a request that lost the race for offset 0 and then crashed leaves.
    await obstore.put_async(storage.store, "uploads/u/data/" + "0" * 20 + "-f", b"xx")

    async with storage.open_upload("u") as upload:
        content = await collect(upload.read())

    assert content == b"winner"


async def test_chunk_without_claim_is_not_part_of_upload():
    storage = ObjectStorage(MemoryStore(), "memory")
    await storage.create_upload("u")
    await obstore.put_async(storage.store, "uploads/u/data/" + "0" * 20 + "-f", b"xx")

    assert await storage.upload_size("u") == 0


async def test_commit_of_one_chunk_copies_it_and_removes_upload_objects():
    storage = ObjectStorage(MemoryStore(), "memory")
    await storage.create_upload("u")
    digest = "sha256:" + hashlib.sha256(b"content").hexdigest()
    async with storage.open_upload("u") as upload:
        await upload.append(body(b"content"), start=0)
        await upload.commit(digest)

    left = await obstore.list(storage.store, "uploads/").collect_async()

    assert left == []
    assert await collect(storage.read_blob(digest)) == b"content"
