"""A 2 GiB blob streams through without the server holding it in memory.

On object storage the blob is 512 MiB: the emulator the tests use (moto)
joins multipart parts in its own memory, several times over; Dockyard's
memory is what is measured, and 512 MiB is still far beyond the limit.
"""

import hashlib
import os
import threading

import httpx

from tests.conftest import TEST_STORAGE, DockyardServer

GIB = 1024**3
SIZE = 2 * GIB if TEST_STORAGE == "filesystem" else GIB // 2
CHUNK = 1024 * 1024
# How much more the serving processes (supervisor and worker) may hold while
# the body streams through than they held idle, just before: far below the
# body. The idle size itself grows with features and is the benchmark's
# business (bench/), not this test's.
GROWTH_LIMIT = 48 * 1024 * 1024


def rss_of_tree(pid):
    """Resident memory of `pid` and its children, in bytes."""
    total = 0
    for member in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def _children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += [int(child), *_children(int(child))]
        except FileNotFoundError:
            pass
    return found


def test_large_push_is_verified_while_server_memory_stays_bounded(start_dockyard):
    server: DockyardServer = start_dockyard()
    block = os.urandom(CHUNK)
    hasher = hashlib.sha256()

    def body():
        for index in range(SIZE // CHUNK):
            piece = index.to_bytes(8, "big") + block[8:]
            hasher.update(piece)
            yield piece

    client = httpx.Client(
        base_url=server.url, auth=("admin", server.admin_password), timeout=600
    )
    location = client.post("/v2/library/big/blobs/uploads/").headers["location"]
    idle = peak = rss_of_tree(server.pid)
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, rss_of_tree(server.pid))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        patched = client.patch(location, content=body())
        digest = "sha256:" + hasher.hexdigest()
        finished = client.put(f"{patched.headers['location']}?digest={digest}")
    finally:
        done.set()
        watcher.join()

    assert finished.status_code == 201, finished.text
    assert client.head(f"/v2/library/big/blobs/{digest}").headers[
        "content-length"
    ] == str(SIZE)
    assert peak - idle < GROWTH_LIMIT, f"idle {idle >> 20} MiB, peak {peak >> 20} MiB"
