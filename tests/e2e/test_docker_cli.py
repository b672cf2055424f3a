"""The docker CLI without a daemon: login (offline token, then refresh-token
grants) and manifest inspect."""

import json
import os
import secrets
import subprocess

import pytest

from tests.conftest import require_tools
from tests.e2e.conftest import run, skopeo


@pytest.fixture
def docker_env(tmp_path):
    require_tools("docker")
    return {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker")}


def test_docker_login_then_manifest_inspect(dockyard, images, docker_env, tmp_path):
    repository = f"{dockyard.host}/library/docker-{secrets.token_hex(3)}"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{dockyard.admin_password}",
        f"oci:{images.oci}/busybox:multi",
        f"docker://{repository}:multi",
        "--all",
    )

    login = _login(dockyard, docker_env)
    inspected = run(
        "docker",
        "manifest",
        "inspect",
        "--insecure",
        f"{repository}:multi",
        env=docker_env,
    )

    assert "Login Succeeded" in login.stdout
    # Login asked for an offline token: docker keeps the refresh token, not
    # the password, and used it (POST refresh_token grant) for the inspect.
    saved = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert "identitytoken" in saved["auths"][dockyard.host]
    platforms = {
        m["platform"]["architecture"] for m in json.loads(inspected.stdout)["manifests"]
    }
    assert platforms == {"amd64", "arm64"}


def test_docker_login_with_wrong_password_fails(dockyard, docker_env):
    result = _login(dockyard, docker_env, password="wrong", check=False)

    assert result.returncode != 0
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower()


def _login(dockyard, env, password=None, check=True):
    result = subprocess.run(
        ["docker", "login", "-u", "admin", "--password-stdin", dockyard.host],
        input=(password or dockyard.admin_password) + "\n",
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result
