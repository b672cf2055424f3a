"""A private project seen through skopeo: who may pull, who may push."""

import secrets

import pytest

from tests.e2e.conftest import skopeo

PASSWORD = "Passw0rd-priv"


@pytest.fixture
def private(dockyard, images):
    suffix = secrets.token_hex(3)
    project = f"private-{suffix}"
    dockyard.cli("project", "create", project, "--private")
    users = {}
    for role in ("guest", "outsider"):
        users[role] = f"{role}-{suffix}"
        dockyard.create_user(users[role], PASSWORD)
    dockyard.cli("member", "add", project, users["guest"], "guest")
    image = f"docker://{dockyard.host}/{project}/busybox"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{dockyard.admin_password}",
        f"oci:{images.oci}/busybox:1.36",
        f"{image}:1.36",
    )
    return image, users


def test_private_project_refuses_anonymous_pull(private, tmp_path):
    image, _ = private

    result = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        f"{image}:1.36",
        f"oci:{tmp_path}/x:1",
        check=False,
    )

    assert result.returncode != 0
    assert (
        "unauthorized" in result.stderr.lower()
        or "authentication required" in result.stderr.lower()
    )


def test_private_project_guest_pulls_but_cannot_push(private, images, tmp_path):
    image, users = private
    creds = f"{users['guest']}:{PASSWORD}"

    pulled = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
        f"{image}:1.36",
        f"oci:{tmp_path}/g:1",
        check=False,
    )
    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        f"oci:{images.oci}/busybox:1.36",
        f"{image}:guest",
        check=False,
    )

    assert pulled.returncode == 0, pulled.stderr
    assert pushed.returncode != 0


def test_private_project_outsider_gets_same_refusal_for_existing_and_missing_image(
    private, tmp_path
):
    image, users = private
    creds = f"{users['outsider']}:{PASSWORD}"

    existing = skopeo(
        "inspect", "--tls-verify=false", "--creds", creds, f"{image}:1.36", check=False
    )
    missing = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        creds,
        f"{image}-none:1.36",
        check=False,
    )

    assert existing.returncode != 0 and missing.returncode != 0
    assert _reason(existing.stderr) == _reason(missing.stderr)


def _reason(stderr):
    # skopeo names the image in its message; compare what the registry said.
    return stderr.rsplit(":", 2)[-2:]
