"""SIGTERM during a chunked upload: the chunk in flight either finishes
(graceful stop) or leaves only whole bytes of it, and after a restart the
upload continues from the offset the server reports to a correct blob.
SIGTERM before the server serves stops it at once."""

from __future__ import annotations

import secrets
import signal
import subprocess
import threading
import time

import httpx

from tests.api.conftest import sha256
from tests.conftest import (
    DOCKYARD,
    clean_environment,
    descendants,
    free_port,
    stop_process,
)

MIB = 1024 * 1024
REPOSITORY = "library/shutdown"


def start_upload(client: httpx.Client, first: bytes) -> str:
    location = client.post(f"/v2/{REPOSITORY}/blobs/uploads/").headers["location"]
    response = client.patch(location, content=first)
    assert response.status_code == 202, response.text
    return response.headers["location"]


def patch_in_background(client, location, pieces, started):
    """PATCH a streamed body in a thread; its outcome lands in the dict."""
    outcome: dict = {}

    def body():
        for piece, pause in pieces:
            yield piece
            started.set()
            time.sleep(pause)

    def run():
        try:
            outcome["response"] = client.patch(
                location,
                content=body(),
                headers={"content-type": "application/octet-stream"},
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def terminate(server) -> int:
    """SIGTERM the server (by PID) and wait for it; its exit code."""
    process = server._process
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    server.stop(keep_stores=True)  # already gone: only forgets it
    return code


def finish(client, location, data, offset) -> httpx.Response:
    rest = data[offset:]
    response = client.patch(
        location,
        content=rest,
        headers={"content-range": f"{offset}-{len(data) - 1}"},
    )
    assert response.status_code == 202, response.text
    return client.put(f"{response.headers['location']}?digest={sha256(data)}")


def client_for(server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, auth=("admin", server.admin_password), timeout=60
    )


def reported_offset(client, location) -> int:
    response = client.get(location)
    assert response.status_code == 204, response.text
    return int(response.headers["range"].split("-")[1]) + 1


def test_sigterm_lets_chunk_in_flight_finish(start_dockyard):
    server = start_dockyard({"DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": "30"})
    data = secrets.token_bytes(64 * 1024)
    started = threading.Event()
    with client_for(server) as client:
        location = start_upload(client, data[:16384])
        pieces = [(data[i : i + 4096], 0.1) for i in range(16384, 32768, 4096)]
        thread, outcome = patch_in_background(client, location, pieces, started)
        assert started.wait(30)

        code = terminate(server)
        thread.join(60)

    assert code == 0
    assert outcome["response"].status_code == 202
    assert outcome["response"].headers["range"] == "0-32767"


def test_sigterm_past_timeout_keeps_whole_bytes_and_upload_continues(
    start_dockyard,
):
    server = start_dockyard({"DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": "1"})
    data = secrets.token_bytes(16384 + 6 * MIB)
    started = threading.Event()
    with client_for(server) as client:
        location = start_upload(client, data[:16384])
        # 5 MiB at once (more than one write step reaches the disk), then a
        # trickle that outlasts the shutdown timeout.
        pieces = [(data[16384 + i * MIB : 16384 + (i + 1) * MIB], 0) for i in range(5)]
        pieces += [(b"", 0.25)] * 40
        thread, outcome = patch_in_background(client, location, pieces, started)
        assert started.wait(30)
        time.sleep(0.5)

        terminate(server)
        thread.join(60)

    assert "error" in outcome  # the worker was stopped before it answered
    server.start()  # same data directory
    with client_for(server) as client:
        blob = client.get(f"/v2/{REPOSITORY}/blobs/{sha256(data)}")
        offset = reported_offset(client, location)
        done = finish(client, location, data, offset)
        pulled = client.get(f"/v2/{REPOSITORY}/blobs/{sha256(data)}").content

    assert blob.status_code == 404  # nothing visible before the digest is checked
    assert 16384 <= offset < len(data)
    assert done.status_code == 201
    assert pulled == data


def test_sigterm_then_restart_upload_continues_after_graceful_stop(start_dockyard):
    server = start_dockyard()
    data = secrets.token_bytes(40000)
    with client_for(server) as client:
        location = start_upload(client, data[:10000])

    terminate(server)
    server.start()
    with client_for(server) as client:
        offset = reported_offset(client, location)
        done = finish(client, location, data, offset)
        pulled = client.get(f"/v2/{REPOSITORY}/blobs/{sha256(data)}").content

    assert offset == 10000
    assert done.status_code == 201
    assert pulled == data


def test_sigterm_before_serving_stops_without_waiting_out_the_timeout(tmp_path):
    # A timeout far beyond the deadline below: a server that waited it out
    # (a worker that missed the SIGTERM) fails this test.
    env = {
        **clean_environment(),
        "DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": "600",
        "DOCKYARD_ADMIN_PASSWORD": "Adm1n-" + secrets.token_urlsafe(12),
    }
    log_path = tmp_path / "server.log"
    command = [*DOCKYARD, "serve", "--data-dir", str(tmp_path / "data")]
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*command, "--listen", f"127.0.0.1:{free_port()}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        _wait_for_a_worker_process(server)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
    finally:
        stop_process(server)

    assert code in (0, -signal.SIGTERM), log_path.read_text()
    assert "refused to gracefully stop" not in log_path.read_text()


def _wait_for_a_worker_process(server):
    """Return once the serving process has started a worker (which then loads
    the app for a while before it serves)."""
    deadline = time.monotonic() + 60
    while not descendants(server.pid):
        if server.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no worker process (exit code {server.poll()})")
        time.sleep(0.005)
