"""Helpers for tests that drive real registry clients."""

from __future__ import annotations

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

    def stop(self):
        stop_process(self.process)

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
    """A docker-registry without authentication, stopped by PID at the end."""
    require_tools("docker-registry")
    host = f"127.0.0.1:{free_port()}"
    marker = secrets.token_hex(8)
    config = tmp_path / "upstream.yml"
    config.write_text(
        f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {tmp_path / "upstream"}}}
  delete: {{enabled: true}}
http:
  addr: {host}
  headers:
    X-Upstream-Marker: [{marker}]
"""
    )
    process = start_daemon(
        ["docker-registry", "serve", str(config)],
        tmp_path / "upstream.log",
        lambda: _answers_with(host, marker),
        "docker-registry",
    )
    try:
        yield Upstream(host, tmp_path / "upstream", process)
    finally:
        stop_process(process)


def _answers_with(host, marker):
    # Ours: whoever answers carries the header we configured.
    try:
        response = httpx.get(f"http://{host}/v2/", timeout=1)
    except httpx.HTTPError:
        return False
    return response.headers.get("x-upstream-marker") == marker


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
