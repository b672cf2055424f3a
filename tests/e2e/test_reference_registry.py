"""Dockyard as the permission layer in front of Debian's docker-registry.

The Go reference registry is started with token auth whose realm, service,
issuer and root certificate are Dockyard's; it then trusts Dockyard's tokens,
so Dockyard's users and roles decide who may push to it.
"""

import json
import secrets

import httpx
import pytest

from tests.conftest import free_port, require_tools, stop_process
from tests.e2e.conftest import layout_digest, skopeo, start_daemon


@pytest.fixture
def reference_registry(dockyard, tmp_path):
    """Debian's docker-registry on a free loopback port, trusting Dockyard's
    tokens; yields its host:port."""
    require_tools("docker-registry")
    host = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        f"""version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {tmp_path / "data"}}}
  delete: {{enabled: true}}
http:
  addr: {host}
auth:
  token:
    realm: {dockyard.url}/service/token
    service: dockyard
    issuer: dockyard-token-issuer
    rootcertbundle: {dockyard.data_dir / "keys" / "token.crt"}
"""
    )
    process = start_daemon(
        ["docker-registry", "serve", str(config)],
        tmp_path / "registry.log",
        lambda: _challenges_with_realm(host, f"{dockyard.url}/service/token"),
        "docker-registry",
    )
    try:
        yield host
    finally:
        stop_process(process)


def _challenges_with_realm(host, realm):
    # Ours: whoever answers challenges with the realm we configured.
    try:
        response = httpx.get(f"http://{host}/v2/", timeout=1)
    except httpx.HTTPError:
        return False
    return f'realm="{realm}"' in response.headers.get("www-authenticate", "")


@pytest.fixture(scope="module")
def team(dockyard):
    """A private project with a developer and a guest (tests only read it)."""
    project = dockyard.new_project("fronted", private=True)
    return project, {
        role: dockyard.new_user(role, project, role) for role in ("developer", "guest")
    }


@pytest.fixture
def target(reference_registry, team):
    """A fresh image reference in the team's project on the reference registry."""
    project, _ = team
    return f"docker://{reference_registry}/{project}/busybox-{secrets.token_hex(4)}:1"


def test_reference_registry_accepts_push_from_dockyard_developer(target, team, images):
    _, users = team

    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        users["developer"].creds,
        f"oci:{images.oci}/busybox:1.36",
        target,
    )
    inspected = skopeo(
        "inspect", "--tls-verify=false", "--creds", users["developer"].creds, target
    )

    assert json.loads(inspected.stdout)["Digest"] == images.digest("busybox:1.36")


def test_reference_registry_refuses_push_from_dockyard_guest(target, team, images):
    _, users = team

    result = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        users["guest"].creds,
        f"oci:{images.oci}/busybox:1.36",
        target,
        check=False,
    )
    afterwards = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        users["developer"].creds,
        target,
        check=False,
    )

    assert "unauthorized" in result.stderr.lower() or "denied" in result.stderr.lower()
    assert afterwards.returncode != 0 and "manifest unknown" in afterwards.stderr


def test_reference_registry_lets_dockyard_guest_pull_what_developer_pushed(
    target, team, images, tmp_path
):
    _, users = team
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        users["developer"].creds,
        f"oci:{images.oci}/busybox:1.36",
        target,
    )

    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        users["guest"].creds,
        target,
        f"oci:{tmp_path}/pulled:1",
    )

    assert layout_digest(tmp_path / "pulled", "1") == images.digest("busybox:1.36")
