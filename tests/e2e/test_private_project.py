"""A private project: anonymous callers are challenged, a guest pulls but does
not push, a non-member does neither and cannot tell an existing repository
from a missing one."""

import secrets

import httpx
import pytest

from tests.e2e.conftest import layout_digest, push_image, skopeo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def private(dockyard, images):
    """A private project holding PROJECT/busybox:1.36, a guest and an outsider
    (tests only read it)."""
    project = dockyard.new_project("private", private=True)
    push_image(dockyard, images, "busybox:1.36", f"{project}/busybox:1.36")
    return {
        "project": project,
        "image": f"docker://{dockyard.host}/{project}/busybox",
        "guest": dockyard.new_user("guest", project, "guest"),
        "outsider": dockyard.new_user("outsider"),
    }


def test_private_project_anonymous_manifest_get_gets_401_bearer_challenge(
    dockyard, private
):
    repository = f"{private['project']}/busybox"

    response = httpx.get(f"{dockyard.url}/v2/{repository}/manifests/1.36")

    challenge = response.headers["www-authenticate"]
    assert response.status_code == 401
    assert challenge.startswith(f'Bearer realm="{dockyard.url}/service/token"')
    assert f'scope="repository:{repository}:pull' in challenge


def test_private_project_anonymous_skopeo_pull_is_refused(private, tmp_path):
    result = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        f"{private['image']}:1.36",
        f"oci:{tmp_path}/anonymous:1",
        check=False,
    )

    assert result.returncode != 0
    assert _refusal(result.stderr)


def test_private_project_guest_pulls_with_skopeo(images, private, tmp_path):
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        private["guest"].creds,
        f"{private['image']}:1.36",
        f"oci:{tmp_path}/guest:1",
    )

    assert layout_digest(tmp_path / "guest", "1") == images.digest("busybox:1.36")


def test_private_project_guest_push_is_denied(dockyard, images, private):
    tag = f"guest-{secrets.token_hex(4)}"

    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        private["guest"].creds,
        f"oci:{images.oci}/busybox:1.36",
        f"{private['image']}:{tag}",
        check=False,
    )

    assert pushed.returncode != 0
    assert not _tag_exists(dockyard, f"{private['project']}/busybox", tag)


def test_private_project_outsider_pull_is_refused(private, tmp_path):
    pulled = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        private["outsider"].creds,
        f"{private['image']}:1.36",
        f"oci:{tmp_path}/outsider:1",
        check=False,
    )

    assert pulled.returncode != 0
    assert _refusal(pulled.stderr)


def test_private_project_outsider_push_is_denied(dockyard, images, private):
    tag = f"outsider-{secrets.token_hex(4)}"

    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        private["outsider"].creds,
        f"oci:{images.oci}/busybox:1.36",
        f"{private['image']}:{tag}",
        check=False,
    )

    assert pushed.returncode != 0
    assert not _tag_exists(dockyard, f"{private['project']}/busybox", tag)


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_private_project_outsider_gets_same_answer_for_existing_and_missing_repo(
    dockyard, private, scheme
):
    outsider = private["outsider"]
    answers = []

    for repository in ("busybox", f"missing-{secrets.token_hex(4)}"):
        name = f"{private['project']}/{repository}"
        auth = _auth(dockyard, outsider, name, scheme)
        response = httpx.get(
            f"{dockyard.url}/v2/{name}/manifests/1.36",
            auth=auth,
            headers={"accept": OCI_MANIFEST},
        )
        answers.append((response.status_code, _error_code(response)))

    assert answers[0] == answers[1]
    assert answers[0][0] in (401, 403, 404)


def _refusal(stderr):
    """skopeo's words for a registry's 401 or 403."""
    stderr = stderr.lower()
    return any(
        words in stderr
        for words in ("unauthorized", "authentication required", "denied")
    )


def _auth(dockyard, user, repository, scheme):
    """Basic credentials, or a bearer token fetched the way skopeo does."""
    if scheme == "basic":
        return (user.name, user.password)
    response = httpx.get(
        f"{dockyard.url}/service/token",
        params={"service": "dockyard", "scope": f"repository:{repository}:pull"},
        auth=(user.name, user.password),
    )
    response.raise_for_status()
    return _Bearer(response.json()["token"])


class _Bearer(httpx.Auth):
    def __init__(self, token):
        self.token = token

    def auth_flow(self, request):
        request.headers["authorization"] = f"Bearer {self.token}"
        yield request


def _error_code(response):
    try:
        return response.json()["errors"][0]["code"]
    except (ValueError, KeyError, IndexError):
        return None


def _tag_exists(dockyard, repository, tag):
    response = httpx.head(
        f"{dockyard.url}/v2/{repository}/manifests/{tag}",
        auth=("admin", dockyard.admin_password),
        headers={"accept": OCI_MANIFEST},
    )
    return response.status_code == 200
