"""Dockyard as the permission layer in front of Debian's docker-registry.

The Go reference registry is started with token auth whose realm, service,
issuer and root certificate are Dockyard's; it then trusts Dockyard's tokens,
so Dockyard's users and roles decide who may push to it.
"""

import secrets
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import free_port, require_tools
from tests.e2e.conftest import skopeo

PASSWORD = "Passw0rd-e2e"


@pytest.fixture
def reference_registry(dockyard, tmp_path):
    require_tools("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"""version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {tmp_path / "data"}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
auth:
  token:
    realm: {dockyard.url}/service/token
    service: dockyard
    issuer: dockyard-token-issuer
    rootcertbundle: {dockyard.data_dir / "keys" / "token.crt"}
"""
    )
    log = (tmp_path / "registry.log").open("wb")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=log
    )
    host = f"127.0.0.1:{port}"
    try:
        _wait_for(host, process)
        yield host
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def _wait_for(host, process):
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError("docker-registry exited")
        try:
            response = httpx.get(f"http://{host}/v2/", timeout=1)
        except httpx.HTTPError:
            pass
        else:
            # Ours: it challenges with Dockyard's realm.
            if "/service/token" in response.headers.get("www-authenticate", ""):
                return
        time.sleep(0.1)
    raise RuntimeError("docker-registry did not answer")


@pytest.fixture
def team(dockyard):
    suffix = secrets.token_hex(3)
    project = f"fronted-{suffix}"
    dockyard.cli("project", "create", project, "--private")
    names = {}
    for role in ("developer", "guest"):
        names[role] = f"{role}-{suffix}"
        dockyard.create_user(names[role], PASSWORD)
        dockyard.cli("member", "add", project, names[role], role)
    return project, names


def test_reference_registry_accepts_push_from_dockyard_developer(
    reference_registry, team, images
):
    project, names = team

    result = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{names['developer']}:{PASSWORD}",
        f"oci:{images.oci}/busybox:1.36",
        f"docker://{reference_registry}/{project}/busybox:1.36",
    )
    inspected = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"{names['developer']}:{PASSWORD}",
        f"docker://{reference_registry}/{project}/busybox:1.36",
    )

    assert result.returncode == 0
    assert images.digest("busybox:1.36") in inspected.stdout


def test_reference_registry_refuses_push_from_dockyard_guest(
    reference_registry, team, images
):
    project, names = team

    result = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{names['guest']}:{PASSWORD}",
        f"oci:{images.oci}/busybox:1.36",
        f"docker://{reference_registry}/{project}/busybox:1.36",
        check=False,
    )

    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower() or "denied" in result.stderr.lower()
