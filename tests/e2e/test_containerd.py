"""containerd's ctr: pull and push with --user. ctr asks the token service with
an OAuth2 password grant (POST) first, unlike skopeo's GET."""

import secrets

import pytest

from tests.e2e.conftest import push_image, run, skopeo


@pytest.fixture(scope="module")
def developer(dockyard, images):
    """A developer of a private project that holds PROJECT/busybox:1.36."""
    project = dockyard.new_project("ctr", private=True)
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    return project, dockyard.new_user("ctr", project, "developer")


def test_ctr_pull_with_user_asks_token_service_by_post(dockyard, containerd, developer):
    project, user = developer
    mark = dockyard.log_size()

    run(
        *containerd,
        "images",
        "pull",
        "--plain-http",
        "--user",
        user.creds,
        f"{dockyard.host}/{project}/busybox:1.36",
    )

    log = dockyard.log_since(mark)
    assert "method=POST path=/service/token status=200" in log
    assert f"path=/v2/{project}/busybox/manifests/1.36 status=200" in log


def test_ctr_push_with_user_stores_image_with_same_digest(
    dockyard, images, containerd, developer
):
    project, user = developer
    source = f"{dockyard.host}/{project}/busybox:1.36"
    target = f"{dockyard.host}/{project}/pushed-{secrets.token_hex(4)}:1"
    run(*containerd, "images", "pull", "--plain-http", "--user", user.creds, source)
    run(*containerd, "images", "tag", source, target)

    run(*containerd, "images", "push", "--plain-http", "--user", user.creds, target)
    inspected = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        user.creds,
        f"docker://{target}",
    )

    assert inspected.stdout.encode() == images.manifest_bytes("busybox:1.36")


def test_ctr_pull_with_wrong_password_is_refused(dockyard, containerd):
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
