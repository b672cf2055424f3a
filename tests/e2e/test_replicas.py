"""Two `dockyard serve` replicas behind a round-robin load balancer (nginx),
sharing nothing but PostgreSQL, Redis, S3 (the moto emulator) and the token
key: what a scaled-out deployment is.

The stores come from the production backend of tests/backends.py whichever
pass runs this module (it runs once, in the embedded pass).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.backends import ProductionBackend
from tests.balancer import Balancer
from tests.conftest import (
    DOCKYARD,
    DockyardServer,
    Images,
    clean_environment,
    kill_tree,
    object_storage_env,
)
from tests.e2e.conftest import skopeo

# Problems fsck may report after a replica was killed: a blob stored just
# before the kill, never recorded, is a harmless stray. Anything else is loss
# or corruption.
HARMLESS = {"stray_blob"}


@dataclass
class Cluster:
    replicas: list[DockyardServer]
    balancer: Balancer
    env: dict[str, str]

    @property
    def host(self) -> str:
        return self.balancer.host

    @property
    def admin(self) -> str:
        return f"admin:{self.replicas[0].admin_password}"

    def fsck(self) -> dict:
        """`dockyard fsck --json` on the shared stores."""
        result = subprocess.run(
            [*DOCKYARD, "fsck", "--json", "--data-dir", str(self.replicas[1].data_dir)],
            env={**clean_environment(), **self.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cluster(tmp_path: Path, moto_server) -> Iterator[Cluster]:
    backend = ProductionBackend()
    stores = backend.provision()
    balancer = Balancer(tmp_path / "nginx", [])
    env = {
        **stores,
        **object_storage_env(moto_server),
        "DOCKYARD_KEYS_DIR": str(tmp_path / "keys"),
        "DOCKYARD_EXTERNAL_URL": balancer.url,
    }
    password = "Adm1n-" + secrets.token_urlsafe(12)
    replicas = [
        DockyardServer(tmp_path / name, env, admin_password=password)
        for name in ("a", "b")
    ]
    try:
        for replica in replicas:
            replica.start()
        balancer.backends = [replica.host for replica in replicas]
        balancer.start()
        yield Cluster(replicas, balancer, env)
    finally:
        balancer.stop()
        for replica in replicas:
            replica.stop()
        backend.release(stores)
        backend.close()


def push(cluster: Cluster, images: Images, ref: str, target: str) -> None:
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--retry-times=3",
        "--dest-tls-verify=false",
        "--dest-creds",
        cluster.admin,
        f"oci:{images.oci}/{ref}",
        f"docker://{cluster.host}/{target}",
    )


def pull(cluster: Cluster, target: str, layout: Path) -> None:
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--retry-times=3",
        "--src-tls-verify=false",
        "--src-creds",
        cluster.admin,
        f"docker://{cluster.host}/{target}",
        f"oci:{layout}:pulled",
    )


def requests_seen(server: DockyardServer, method: str, fragment: str) -> int:
    return sum(
        1
        for line in server.log().splitlines()
        if f"method={method} " in line and fragment in line
    )


def test_multi_arch_index_pushed_through_balancer_pulls_back_identical(
    cluster, images, tmp_path
):
    push(cluster, images, "busybox:multi", "library/busybox:multi")

    pull(cluster, "library/busybox:multi", tmp_path / "back")

    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == images.digest("busybox:multi")


def test_push_through_balancer_is_served_by_both_replicas(cluster, images):
    push(cluster, images, "busybox:multi", "library/spread:multi")

    served = [requests_seen(r, "PUT", "/v2/library/spread/") for r in cluster.replicas]

    assert all(count > 0 for count in served), served


def test_chunked_upload_alternating_replicas_completes(cluster):
    chunks = [secrets.token_bytes(64 * 1024) for _ in range(4)]
    data = b"".join(chunks)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client = httpx.Client(
        base_url=cluster.balancer.url,
        auth=tuple(cluster.admin.split(":", 1)),
        timeout=60,
    )
    location = client.post("/v2/library/chunked/blobs/uploads/").headers["location"]
    offset = 0
    for chunk in chunks:
        response = client.patch(
            location,
            content=chunk,
            headers={
                "content-type": "application/octet-stream",
                "content-range": f"{offset}-{offset + len(chunk) - 1}",
            },
        )
        assert response.status_code == 202, response.text
        location, offset = response.headers["location"], offset + len(chunk)
    upload_id = location.rstrip("/").rsplit("/", 1)[-1].split("?")[0]

    finished = client.put(location, params={"digest": digest})

    assert finished.status_code == 201, finished.text
    assert client.get(f"/v2/library/chunked/blobs/{digest}").content == data
    patches = [requests_seen(r, "PATCH", upload_id) for r in cluster.replicas]
    assert all(count > 0 for count in patches), patches


def test_token_from_one_replica_is_accepted_by_the_other(cluster):
    first, second = cluster.replicas
    issued = httpx.get(
        f"{first.url}/service/token",
        params={"service": "dockyard", "scope": "repository:library/t:push,pull"},
        auth=tuple(cluster.admin.split(":", 1)),
    ).json()["token"]

    response = httpx.post(
        f"{second.url}/v2/library/t/blobs/uploads/",
        headers={"authorization": f"Bearer {issued}"},
    )

    assert response.status_code == 202, response.text


def test_replica_killed_during_push_loop_loses_nothing(cluster, images, tmp_path):
    pushed: list[str] = []
    failures: list[str] = []
    first_done = threading.Event()

    def push_loop() -> None:
        for round in range(8):
            target = f"library/loop:r{round}"
            try:
                push(cluster, images, "busybox:1.36", target)
            except AssertionError:
                # The client's retry: once more, now through the survivor.
                try:
                    push(cluster, images, "busybox:1.36", target)
                except AssertionError as exc:
                    failures.append(str(exc))
                    continue
            pushed.append(target)
            first_done.set()

    loop = threading.Thread(target=push_loop)
    loop.start()
    assert first_done.wait(300)
    kill_tree(cluster.replicas[0])
    loop.join(timeout=900)

    assert not failures and len(pushed) == 8, failures
    for target in pushed:
        pull(cluster, target, tmp_path / target.replace("/", "_"))
    report = cluster.fsck()
    assert [p for p in report["problems"] if p["kind"] not in HARMLESS] == []
    assert report["checked"]["manifests"] >= 1
