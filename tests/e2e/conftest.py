"""Helpers for tests that drive real registry clients."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    DockyardServer,
    Images,
    free_port,
    require_tools,
    stop_process,
)
from tests.e2e.faulty_proxy import FaultyProxy
from tests.e2e.replication_api import admin_api

pytestmark = pytest.mark.e2e


def run(
    *command: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a client; with `check`, fail showing its output when it fails."""
    result = subprocess.run(
        command, text=True, capture_output=True, env=env, input=input, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def skopeo(
    *args: str,
    check: bool = True,
    auth_file: Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`skopeo COMMAND [--authfile F] ARGS...`."""
    require_tools("skopeo")
    extra = ["--authfile", str(auth_file)] if auth_file else []
    command, rest = args[0], args[1:]
    return run("skopeo", command, *extra, *rest, check=check, input=input)


def push_image(
    server: DockyardServer,
    images: Images,
    ref: str,
    target: str,
    creds: str | None = None,
) -> None:
    """Copy fixture image `ref` (e.g. "busybox:multi") to `target`
    ("library/x:1" on `server`), keeping every digest; as admin by default."""
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds or f"admin:{server.admin_password}",
        f"oci:{images.oci}/{ref}",
        f"docker://{server.host}/{target}",
    )


def layout_digest(layout: Path, tag: str) -> str:
    """The digest an OCI layout's index gives `tag`."""
    index = json.loads((layout / "index.json").read_text())
    for descriptor in index["manifests"]:
        annotations = descriptor.get("annotations", {})
        if annotations.get("org.opencontainers.image.ref.name") == tag:
            return descriptor["digest"]
    raise AssertionError(f"tag {tag} not in {layout}")


def start_daemon(
    command: list[str], log_path: Path, ready: Callable[[], bool], what: str
) -> subprocess.Popen:
    """Start `command`, logging to `log_path`; return once `ready()` is true.
    The caller stops it with `stop_process`; it is stopped here if it never
    gets ready."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if ready():
            return process
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{what} did not get ready:\n{log_path.read_text()}")


# The Go reference registry as a plain upstream (proxy cache, replication).


@dataclass
class Upstream:
    host: str
    storage: Path
    process: object
    log_path: Path

    def stop(self):
        stop_process(self.process)

    def requests(self, method, fragment, status=None):
        """How many `method` requests whose path holds `fragment` (as sent)
        it has answered (with `status`, if given), from its access log."""
        answered = f'" {status} ' if status else '" '
        return sum(
            1
            for line in self.log_path.read_text(errors="replace").splitlines()
            if f'"{method} ' in line and fragment in line and answered in line
        )

    def push(self, images, ref, target):
        """Copy fixture `ref` to `target` ("library/busybox:1.36") here."""
        skopeo(
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{images.oci}/{ref}",
            f"docker://{self.host}/{target}",
        )

    def blob_file(self, digest):
        algorithm, _, encoded = digest.partition(":")
        return (
            self.storage
            / "docker/registry/v2/blobs"
            / algorithm
            / encoded[:2]
            / encoded
            / "data"
        )


@pytest.fixture
def upstream(tmp_path):
    """A docker-registry without authentication, stopped by PID at the end;
    it logs every request (`Upstream.requests` counts them)."""
    found = _start_upstream(tmp_path / "upstream", deletes=True)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def undeleting_upstream(tmp_path):
    """The same with deletes off: it answers every DELETE 405 UNSUPPORTED."""
    found = _start_upstream(tmp_path / "undeleting", deletes=False)
    try:
        yield found
    finally:
        found.stop()


def _start_upstream(directory: Path, deletes: bool) -> Upstream:
    require_tools("docker-registry")
    directory.mkdir(parents=True)
    host = f"127.0.0.1:{free_port()}"
    marker = secrets.token_hex(8)
    config = directory / "upstream.yml"
    config.write_text(
        f"""version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {directory / "data"}}}
  delete: {{enabled: {str(deletes).lower()}}}
http:
  addr: {host}
  headers:
    X-Upstream-Marker: [{marker}]
"""
    )
    process = start_daemon(
        ["docker-registry", "serve", str(config)],
        directory / "upstream.log",
        lambda: _answers_with(host, marker),
        "docker-registry",
    )
    return Upstream(host, directory / "data", process, directory / "upstream.log")


def _answers_with(host, marker):
    # Ours: whoever answers carries the header we configured.
    try:
        response = httpx.get(f"http://{host}/v2/", timeout=1)
    except httpx.HTTPError:
        return False
    return response.headers.get("x-upstream-marker") == marker


def push_blob(host: str, repository: str, data: bytes) -> str:
    """Upload `data` as a blob of `repository` on the registry at `host`
    (plain HTTP, no authentication); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = httpx.post(
        f"http://{host}/v2/{repository}/blobs/uploads/?digest={digest}",
        content=data,
        headers={"content-type": "application/octet-stream"},
    )
    if response.status_code == 202:  # monolithic POST not taken: finish with PUT
        location = response.headers["location"]
        if location.startswith("/"):
            location = f"http://{host}{location}"
        separator = "&" if "?" in location else "?"
        response = httpx.put(f"{location}{separator}digest={digest}", content=data)
    assert response.status_code == 201, response.text
    return digest


def create_proxy_project(
    server: DockyardServer,
    upstream_host: str,
    revalidate_seconds: int = 3600,
    kind: str = "docker-registry",
) -> tuple[str, int]:
    """A proxy-cache project on `server` bound to a new registry endpoint
    for `upstream_host`: (project name, registry id)."""
    with admin_api(server) as api:
        created = api.post(
            "/registries",
            json={
                "name": f"upstream-{secrets.token_hex(4)}",
                "url": f"http://{upstream_host}",
                "type": kind,
            },
        )
        assert created.status_code == 201, created.text
        registry_id = int(created.headers["location"].rsplit("/", 1)[1])
        name = f"proxy-{secrets.token_hex(4)}"
        project = api.post(
            "/projects",
            json={
                "project_name": name,
                "registry_id": registry_id,
                "metadata": {
                    "public": "false",
                    "proxy_revalidate_seconds": str(revalidate_seconds),
                },
            },
        )
        assert project.status_code == 201, project.text
    return name, registry_id


@pytest.fixture
def faulty_upstream(upstream):
    """A `FaultyProxy` in front of `upstream`: hand its `host` to Dockyard
    and switch its `fault` to make the upstream misbehave."""
    proxy = FaultyProxy(upstream.host).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# The shared Dockyard's API as its admin (replication suites).


@pytest.fixture
def api(dockyard):
    with admin_api(dockyard) as client:
        yield client


# A Dockyard of each module's own that waits 3 s for an upstream (proxy
# faults, hostile upstreams): a hanging upstream costs little, and a run
# stuck on one cannot hold up the server other modules share.


@pytest.fixture(scope="module")
def server(tmp_path_factory, storage_env):
    """A Dockyard started once per module, with a 3 s upstream timeout."""
    env = {**storage_env(), "DOCKYARD_PROXY_TIMEOUT_SECONDS": "3"}
    started = DockyardServer(tmp_path_factory.mktemp("dockyard"), env).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def client(server):
    """A client of `server`'s root as its admin."""
    with httpx.Client(
        base_url=server.url, auth=("admin", server.admin_password), timeout=60
    ) as http:
        yield http


# containerd with its own daemon (proxy cache and containerd tests).


@pytest.fixture
def containerd(tmp_path):
    """A containerd of this test's own (config, state and sockets in tmp_path);
    yields the `ctr` command line that talks to it."""
    require_tools("containerd", "ctr")
    socket = tmp_path / "c.sock"  # unix socket paths must stay under 108 bytes
    config = tmp_path / "config.toml"
    config.write_text(
        f"""version = 2
root = "{tmp_path}/root"
state = "{tmp_path}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = "{tmp_path}/d.sock"
"""
    )
    ctr = ["ctr", "--address", str(socket), "-n", "dockyard"]
    process = start_daemon(
        ["containerd", "--config", str(config)],
        tmp_path / "containerd.log",
        lambda: socket.exists() and run(*ctr, "version", check=False).returncode == 0,
        "containerd",
    )
    try:
        yield ctr
    finally:
        stop_process(process, timeout=30)
