"""skopeo (containers/image): login, copy in and out, inspect, list, delete."""

import secrets

from tests.e2e.conftest import layout_digest, skopeo


def test_skopeo_copies_busybox_and_multiarch_index_with_identical_digests(
    dockyard, images, tmp_path
):
    auth = tmp_path / "auth.json"
    skopeo(
        "login",
        "--tls-verify=false",
        "-u",
        "admin",
        "-p",
        dockyard.admin_password,
        dockyard.host,
        auth_file=auth,
    )
    target = f"docker://{dockyard.host}/library/busybox"

    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        f"oci:{images.oci}/busybox:1.36",
        f"{target}:1.36",
        auth_file=auth,
    )
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        "--all",
        f"oci:{images.oci}/busybox:multi",
        f"{target}:multi",
        auth_file=auth,
    )
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"{target}:1.36",
        f"oci:{tmp_path}/back:1.36",
        auth_file=auth,
    )
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--all",
        f"{target}:multi",
        f"oci:{tmp_path}/back:multi",
        auth_file=auth,
    )

    assert layout_digest(tmp_path / "back", "1.36") == images.digest("busybox:1.36")
    assert layout_digest(tmp_path / "back", "multi") == images.digest("busybox:multi")


def test_skopeo_lists_inspects_and_deletes(dockyard, images, tmp_path):
    creds = f"admin:{dockyard.admin_password}"
    repository = f"docker://{dockyard.host}/library/skopeo-{secrets.token_hex(3)}"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        f"oci:{images.oci}/busybox:1.36",
        f"{repository}:a",
    )
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        f"oci:{images.oci}/busybox:1.36",
        f"{repository}:b",
    )

    tags = skopeo(
        "list-tags", "--tls-verify=false", "--creds", creds, repository
    ).stdout
    inspected = skopeo(
        "inspect", "--tls-verify=false", "--creds", creds, f"{repository}:a"
    ).stdout
    skopeo("delete", "--tls-verify=false", "--creds", creds, f"{repository}:a")
    after = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        creds,
        f"{repository}:b",
        check=False,
    )

    assert '"a"' in tags and '"b"' in tags
    assert images.digest("busybox:1.36") in inspected
    assert after.returncode != 0  # deleting by tag through skopeo deletes the manifest


def test_skopeo_anonymous_pull_of_public_project_works_and_push_is_denied(
    dockyard, images, tmp_path
):
    creds = f"admin:{dockyard.admin_password}"
    repository = f"docker://{dockyard.host}/library/anon-{secrets.token_hex(3)}"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        f"oci:{images.oci}/busybox:1.36",
        f"{repository}:1",
    )

    pulled = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        f"{repository}:1",
        f"oci:{tmp_path}/anon:1",
        check=False,
    )
    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        f"oci:{images.oci}/busybox:1.36",
        f"{repository}:2",
        check=False,
    )

    assert pulled.returncode == 0, pulled.stderr
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr.lower() or "unauthorized" in pushed.stderr.lower()
