"""containerd's ctr: pulls and pushes with --user, asking the token service with
an OAuth2 password grant (POST) first."""

import secrets
import signal
import subprocess
import time

import pytest

from tests.conftest import require_tools
from tests.e2e.conftest import run, skopeo

PASSWORD = "Passw0rd-ctr"


@pytest.fixture
def containerd(tmp_path):
    require_tools("containerd", "ctr")
    # A short root: unix socket paths must stay under 108 bytes.
    root = tmp_path
    config = root / "config.toml"
    config.write_text(
        f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{root}/c.sock"
[ttrpc]
  address = "{root}/c.sock.ttrpc"
[debug]
  address = "{root}/d.sock"
"""
    )
    log = (root / "containerd.log").open("wb")
    process = subprocess.Popen(
        ["containerd", "--config", str(config)], stdout=log, stderr=log
    )
    socket = root / "c.sock"
    try:
        for _ in range(100):
            if socket.exists():
                break
            time.sleep(0.1)
        yield ["ctr", "--address", str(socket), "-n", "dockyard"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_ctr_pulls_and_pushes_with_user_credentials(dockyard, containerd, images):
    user = f"ctr-{secrets.token_hex(3)}"
    project = f"ctr-{secrets.token_hex(3)}"
    dockyard.create_user(user, PASSWORD)
    dockyard.cli("project", "create", project, "--private")
    dockyard.cli("member", "add", project, user, "developer")
    source = f"{dockyard.host}/{project}/busybox:1.36"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{dockyard.admin_password}",
        f"oci:{images.oci}/busybox:1.36",
        f"docker://{source}",
    )
    creds = f"{user}:{PASSWORD}"
    target = f"{dockyard.host}/{project}/pushed:1"

    run(*containerd, "images", "pull", "--plain-http", "--user", creds, source)
    run(*containerd, "images", "tag", source, target)
    run(*containerd, "images", "push", "--plain-http", "--user", creds, target)
    inspected = skopeo(
        "inspect", "--tls-verify=false", "--creds", creds, f"docker://{target}"
    )

    assert images.digest("busybox:1.36") in inspected.stdout
    assert "method=POST path=/service/token status=200" in dockyard.log()


def test_ctr_with_wrong_password_is_refused(dockyard, containerd):
    result = run(
        *containerd,
        "images",
        "pull",
        "--plain-http",
        "--user",
        "admin:wrong",
        f"{dockyard.host}/library/busybox:1.36",
        check=False,
    )

    assert result.returncode != 0
    assert "401" in result.stderr
