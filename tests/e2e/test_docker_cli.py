"""The docker CLI without a daemon: `docker login` asks for an offline token
(GET with offline_token=true), keeps the refresh token it gets, and later
commands trade it in with POST refresh_token grants."""

import base64
import json
import os
import secrets

import pytest

from tests.conftest import require_tools
from tests.e2e.conftest import push_image, run


@pytest.fixture
def docker_config(tmp_path):
    """DOCKER_CONFIG of this test's own: ~/.docker stays untouched."""
    require_tools("docker")
    return tmp_path / "docker"


@pytest.fixture
def docker(docker_config):
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}

    def docker(*args, input=None, check=True):
        return run("docker", *args, env=env, input=input, check=check, timeout=120)

    return docker


@pytest.fixture
def logged_in(dockyard, docker):
    """`docker login` as admin; returns its result."""
    return docker(
        "login",
        "-u",
        "admin",
        "--password-stdin",
        dockyard.host,
        input=dockyard.admin_password + "\n",
    )


@pytest.fixture(scope="module")
def multiarch(dockyard, images):
    """busybox:multi in a fresh repository; returns the docker reference."""
    name = f"library/docker-{secrets.token_hex(4)}:multi"
    push_image(dockyard, images, "busybox:multi", name)
    return f"{dockyard.host}/{name}"


def test_docker_login_keeps_refresh_token_instead_of_password(
    dockyard, logged_in, docker_config
):
    saved = json.loads((docker_config / "config.json").read_text())
    entry = saved["auths"][dockyard.host]

    assert "Login Succeeded" in logged_in.stdout
    assert entry["identitytoken"]
    # With an identity token, docker keeps only the user name in `auth`.
    assert base64.b64decode(entry["auth"]) == b"admin:"


def test_docker_manifest_inspect_after_login_uses_refresh_token_grant(
    dockyard, images, logged_in, docker, multiarch
):
    mark = dockyard.log_size()

    inspected = docker("manifest", "inspect", "--insecure", multiarch)

    platforms = [m["digest"] for m in json.loads(inspected.stdout)["manifests"]]
    assert platforms == [
        p["digest"] for p in images.entry("busybox:multi")["platforms"]
    ]
    assert "method=POST path=/service/token status=200" in dockyard.log_since(mark)


def test_docker_login_with_wrong_password_fails(dockyard, docker, docker_config):
    result = docker(
        "login",
        "-u",
        "admin",
        "--password-stdin",
        dockyard.host,
        input="wrong\n",
        check=False,
    )

    assert result.returncode != 0
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower()
