"""skopeo (containers/image): login, copy in and out, list tags, inspect, delete.

Digests are compared with what make-images recorded in images.json.
"""

import json
import secrets

import pytest

from tests.e2e.conftest import layout_digest, push_image, skopeo


@pytest.fixture
def auth_file(dockyard, tmp_path):
    """An auth file holding the admin login, written by `skopeo login`."""
    path = tmp_path / "auth.json"
    skopeo(
        "login",
        "--tls-verify=false",
        "--username",
        "admin",
        "--password-stdin",
        dockyard.host,
        auth_file=path,
        input=dockyard.admin_password + "\n",
    )
    return path


@pytest.fixture
def repository(dockyard, images):
    """A fresh repository holding busybox:1.36 as tags a and b."""
    name = f"library/skopeo-{secrets.token_hex(4)}"
    push_image(dockyard, images, "busybox:1.36", f"{name}:a")
    push_image(dockyard, images, "busybox:1.36", f"{name}:b")
    return f"docker://{dockyard.host}/{name}"


def test_skopeo_login_with_wrong_password_fails(dockyard, tmp_path):
    result = skopeo(
        "login",
        "--tls-verify=false",
        "--username",
        "admin",
        "--password-stdin",
        dockyard.host,
        auth_file=tmp_path / "auth.json",
        input="wrong\n",
        check=False,
    )

    assert result.returncode != 0
    assert not (tmp_path / "auth.json").exists()


def test_skopeo_copy_image_in_and_out_keeps_digest(
    dockyard, images, auth_file, tmp_path
):
    target = f"docker://{dockyard.host}/library/busybox:1.36"

    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        f"oci:{images.oci}/busybox:1.36",
        target,
        auth_file=auth_file,
    )
    skopeo(
        "copy",
        "--src-tls-verify=false",
        target,
        f"oci:{tmp_path}/back:1.36",
        auth_file=auth_file,
    )

    assert layout_digest(tmp_path / "back", "1.36") == images.digest("busybox:1.36")


def test_skopeo_copy_all_multiarch_index_in_and_out_keeps_every_digest(
    dockyard, images, auth_file, tmp_path
):
    target = f"docker://{dockyard.host}/library/busybox:multi"

    skopeo(
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--preserve-digests",
        f"oci:{images.oci}/busybox:multi",
        target,
        auth_file=auth_file,
    )
    skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--preserve-digests",
        target,
        f"oci:{tmp_path}/back:multi",
        auth_file=auth_file,
    )

    index_digest = layout_digest(tmp_path / "back", "multi")
    index = json.loads(_blob(tmp_path / "back", index_digest))
    assert index_digest == images.digest("busybox:multi")
    assert sorted(m["digest"] for m in index["manifests"]) == sorted(
        p["digest"] for p in images.entry("busybox:multi")["platforms"]
    )


def test_skopeo_list_tags_of_repository_lists_both_tags(dockyard, repository):
    creds = f"admin:{dockyard.admin_password}"

    listed = skopeo("list-tags", "--tls-verify=false", "--creds", creds, repository)

    assert sorted(json.loads(listed.stdout)["Tags"]) == ["a", "b"]


def test_skopeo_inspect_raw_returns_manifest_bytes_of_fixture(
    dockyard, images, repository
):
    creds = f"admin:{dockyard.admin_password}"

    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", "--creds", creds, f"{repository}:a"
    )

    assert raw.stdout.encode() == images.manifest_bytes("busybox:1.36")


def test_skopeo_inspect_of_tag_reports_fixture_digest(dockyard, images, repository):
    creds = f"admin:{dockyard.admin_password}"

    inspected = skopeo(
        "inspect", "--tls-verify=false", "--creds", creds, f"{repository}:a"
    )

    assert json.loads(inspected.stdout)["Digest"] == images.digest("busybox:1.36")


def test_skopeo_delete_of_tag_removes_manifest_and_so_every_tag(dockyard, repository):
    creds = f"admin:{dockyard.admin_password}"

    skopeo("delete", "--tls-verify=false", "--creds", creds, f"{repository}:a")
    after = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        creds,
        f"{repository}:b",
        check=False,
    )

    # The registry API deletes manifests by digest: skopeo resolves the tag
    # first, so the other tag of the same manifest goes too.
    assert after.returncode != 0
    assert "manifest unknown" in after.stderr.lower()


def test_skopeo_anonymous_pull_from_public_project_succeeds(
    dockyard, repository, tmp_path
):
    pulled = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        f"{repository}:a",
        f"oci:{tmp_path}/anon:a",
        check=False,
    )

    assert pulled.returncode == 0, pulled.stderr


def test_skopeo_anonymous_push_to_public_project_is_denied(
    dockyard, images, repository
):
    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        f"oci:{images.oci}/busybox:1.36",
        f"{repository}:anon",
        check=False,
    )

    assert pushed.returncode != 0
    assert "denied" in pushed.stderr.lower() or "unauthorized" in pushed.stderr.lower()


def _blob(layout, digest):
    algorithm, _, encoded = digest.partition(":")
    return (layout / "blobs" / algorithm / encoded).read_bytes()
