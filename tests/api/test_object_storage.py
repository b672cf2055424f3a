"""Dockyard on object storage: S3 on the moto emulator (127.0.0.1), always,
whatever DOCKYARD_TEST_STORAGE says. The registry tests as a whole run on it
with DOCKYARD_TEST_STORAGE=s3; these check what only object storage does."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import error_code, sha256
from tests.conftest import DockyardServer, object_storage_env

PREFIX = "dockyard"


def start_servers(tmp_path_factory, env, count=1):
    """`count` servers on one bucket (and one database, if `env` says so)."""
    servers = []
    for _ in range(count):
        root = tmp_path_factory.mktemp("dockyard")
        servers.append(DockyardServer(root, env).start())
        env = {**env, "DOCKYARD_ADMIN_PASSWORD": servers[0].admin_password}
    for server in servers:
        server.bucket = urlsplit(env["DOCKYARD_STORAGE_URL"]).netloc
    return servers


@pytest.fixture(scope="module")
def s3_dockyard(tmp_path_factory, moto_server):
    [server] = start_servers(tmp_path_factory, object_storage_env(moto_server))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, moto_server):
    """Two servers sharing one database and one bucket, nothing else; neither
    holds the other's running hash."""
    env = object_storage_env(moto_server)
    shared = tmp_path_factory.mktemp("shared") / "dockyard.db"
    env["DOCKYARD_DATABASE_URL"] = f"sqlite:///{shared}"
    servers = start_servers(tmp_path_factory, env, count=2)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def redirecting_dockyard(tmp_path_factory, moto_server):
    env = object_storage_env(moto_server, DOCKYARD_STORAGE_REDIRECT="true")
    [server] = start_servers(tmp_path_factory, env)
    yield server
    server.stop()


def client_of(server, **options) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        auth=("admin", server.admin_password),
        timeout=60,
        **options,
    )


def push_chunked(client, repository: str, chunks: list[bytes]) -> httpx.Response:
    location = client.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
    for chunk in chunks:
        location = client.patch(location, content=chunk).headers["location"]
    digest = sha256(b"".join(chunks))
    return client.put(location, params={"digest": digest})


def blob_key(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"{PREFIX}/blobs/{algorithm}/{encoded[:2]}/{encoded}"


def test_chunked_push_stores_blob_in_bucket_and_leaves_no_upload(
    s3_dockyard, moto_server
):
    chunks = [os.urandom(6 * 1024 * 1024), os.urandom(1000)]

    with client_of(s3_dockyard) as client:
        finished = push_chunked(client, "library/s3", chunks)

    assert finished.status_code == 201, finished.text
    stored = moto_server.client().get_object(
        Bucket=s3_dockyard.bucket, Key=blob_key(sha256(b"".join(chunks)))
    )
    assert stored["Body"].read() == b"".join(chunks)
    assert moto_server.object_count(s3_dockyard.bucket, f"{PREFIX}/uploads/") == 0


def test_push_with_wrong_digest_stores_no_blob(s3_dockyard, moto_server):
    data = os.urandom(2000)
    wrong = sha256(b"other bytes")

    with client_of(s3_dockyard) as client:
        response = client.post(
            "/v2/library/s3/blobs/uploads/", params={"digest": wrong}, content=data
        )

    assert error_code(response) == "DIGEST_INVALID"
    assert moto_server.object_count(s3_dockyard.bucket, blob_key(wrong)) == 0
    assert moto_server.object_count(s3_dockyard.bucket, f"{PREFIX}/uploads/") == 0


def test_blob_range_get_streams_those_bytes_from_bucket(s3_dockyard):
    data = os.urandom(100_000)

    with client_of(s3_dockyard) as client:
        finished = push_chunked(client, "library/s3", [data])
        ranged = client.get(
            f"/v2/library/s3/blobs/{sha256(data)}", headers={"range": "bytes=10-19"}
        )

    assert finished.status_code == 201, finished.text
    assert (ranged.status_code, ranged.content) == (206, data[10:20])


def test_blob_missing_from_bucket_returns_blob_unknown(s3_dockyard, moto_server):
    data = os.urandom(500)
    with client_of(s3_dockyard) as client:
        push_chunked(client, "library/s3", [data])
        moto_server.client().delete_object(
            Bucket=s3_dockyard.bucket, Key=blob_key(sha256(data))
        )

        response = client.get(f"/v2/library/s3/blobs/{sha256(data)}")

    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


def test_chunked_upload_alternating_servers_completes(replicas):
    chunks = [os.urandom(6 * 1024 * 1024) for _ in range(3)]
    digest = sha256(b"".join(chunks))

    with client_of(replicas[0]) as one, client_of(replicas[1]) as two:
        location = one.post("/v2/library/ha/blobs/uploads/").headers["location"]
        for client, chunk in zip([two, one, two], chunks, strict=True):
            location = client.patch(location, content=chunk).headers["location"]
        finished = one.put(location, params={"digest": digest})
        pulled = two.get(f"/v2/library/ha/blobs/{digest}")

    assert finished.status_code == 201, finished.text
    assert pulled.content == b"".join(chunks)


def test_upload_finished_elsewhere_with_wrong_digest_is_refused(replicas, moto_server):
    wrong = sha256(b"not what was sent")

    with client_of(replicas[0]) as one, client_of(replicas[1]) as two:
        location = one.post("/v2/library/ha/blobs/uploads/").headers["location"]
        location = one.patch(location, content=os.urandom(4096)).headers["location"]
        finished = two.put(location, params={"digest": wrong})

    assert error_code(finished) == "DIGEST_INVALID"
    assert moto_server.object_count(replicas[0].bucket, blob_key(wrong)) == 0


def test_blob_get_with_redirect_reaches_storage_without_authorization(
    redirecting_dockyard, moto_server
):
    server = redirecting_dockyard
    data = secrets.token_bytes(3000)
    sent: list[httpx.Request] = []

    with client_of(server, event_hooks={"request": [sent.append]}) as client:
        push_chunked(client, "library/s3", [data])
        sent.clear()
        response = client.get(
            f"/v2/library/s3/blobs/{sha256(data)}", follow_redirects=True
        )

    assert [r.status_code for r in response.history] == [307]
    assert response.content == data
    assert sent[-1].url.port == urlsplit(moto_server.endpoint).port
    assert "authorization" not in sent[-1].headers
    assert "authorization" in sent[0].headers


def test_blob_head_with_redirect_answers_itself(redirecting_dockyard):
    server = redirecting_dockyard
    data = secrets.token_bytes(300)

    with client_of(server) as client:
        push_chunked(client, "library/s3", [data])
        response = client.head(f"/v2/library/s3/blobs/{sha256(data)}")

    assert (response.status_code, response.headers["content-length"]) == (200, "300")
