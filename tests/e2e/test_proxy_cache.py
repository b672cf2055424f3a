"""Proxy-cache projects in front of Debian's docker-registry (the Go
reference registry), pulled through with skopeo and plain HTTP.

Each test gets its own upstream (a docker-registry on a free loopback port
with its own storage) and its own proxy-cache project bound to it.
"""

import hashlib
import json
import secrets
import sqlite3
import time

import httpx
import pytest

from tests.e2e.conftest import (
    create_proxy_project,
    layout_digest,
    push_blob,
    run,
    skopeo,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = (
    f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


@pytest.fixture
def make_proxy(dockyard):
    """Create a proxy-cache project bound to an upstream; returns its name."""

    def make(upstream, revalidate_seconds=3600, kind="docker-registry"):
        name, _ = create_proxy_project(
            dockyard, upstream.host, revalidate_seconds, kind
        )
        return name

    return make


def _pull(dockyard, source, tmp_path, tag="1"):
    """skopeo copy docker://DOCKYARD/source oci:DIR:tag; the pulled digest."""
    layout = tmp_path / f"pulled-{secrets.token_hex(4)}"
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        f"admin:{dockyard.admin_password}",
        f"docker://{dockyard.host}/{source}",
        f"oci:{layout}:{tag}",
    )
    return layout_digest(layout, tag)


def _manifest_digest(dockyard, repository, reference, **params):
    response = httpx.get(
        f"{dockyard.url}/v2/{repository}/manifests/{reference}",
        params=params,
        headers={"accept": ACCEPT},
        auth=("admin", dockyard.admin_password),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.headers["docker-content-digest"]


def test_proxy_first_pull_fetches_image_from_upstream(
    dockyard, upstream, make_proxy, images, tmp_path
):
    upstream.push(images, "busybox:multi", "library/busybox:multi")
    proxy = make_proxy(upstream)

    pulled = _pull(dockyard, f"{proxy}/library/busybox:multi", tmp_path)

    assert pulled == images.digest("busybox:multi")


def test_proxy_pull_after_upstream_stopped_is_served_from_cache(
    dockyard, upstream, make_proxy, images, tmp_path
):
    upstream.push(images, "busybox:multi", "library/busybox:multi")
    proxy = make_proxy(upstream, revalidate_seconds=0)
    _pull(dockyard, f"{proxy}/library/busybox:multi", tmp_path)
    upstream.stop()

    pulled = _pull(dockyard, f"{proxy}/library/busybox:multi", tmp_path)

    assert pulled == images.digest("busybox:multi")


def test_proxy_tag_moved_upstream_is_not_asked_within_interval(
    dockyard, upstream, make_proxy, images
):
    upstream.push(images, "busybox:1.36", "library/busybox:moving")
    proxy = make_proxy(upstream, revalidate_seconds=3600)
    first = _manifest_digest(dockyard, f"{proxy}/library/busybox", "moving")
    upstream.push(images, "debian-pkgs:1", "library/busybox:moving")

    again = _manifest_digest(dockyard, f"{proxy}/library/busybox", "moving")

    assert first == again == images.digest("busybox:1.36")


def test_proxy_tag_moved_upstream_is_seen_after_interval(
    dockyard, upstream, make_proxy, images
):
    upstream.push(images, "busybox:1.36", "library/busybox:moving")
    proxy = make_proxy(upstream, revalidate_seconds=1)
    first = _manifest_digest(dockyard, f"{proxy}/library/busybox", "moving")
    upstream.push(images, "debian-pkgs:1", "library/busybox:moving")

    seen = first
    deadline = time.monotonic() + 30
    while seen == first and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _manifest_digest(dockyard, f"{proxy}/library/busybox", "moving")

    assert first == images.digest("busybox:1.36")
    assert seen == images.digest("debian-pkgs:1")


def test_proxy_tag_list_shows_what_is_cached(dockyard, upstream, make_proxy, images):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    upstream.push(images, "busybox:1.36", "library/busybox:other")
    proxy = make_proxy(upstream)
    _manifest_digest(dockyard, f"{proxy}/library/busybox", "1.36")

    response = httpx.get(
        f"{dockyard.url}/v2/{proxy}/library/busybox/tags/list",
        auth=("admin", dockyard.admin_password),
    )

    assert response.json()["tags"] == ["1.36"]


def test_push_to_proxy_project_is_denied(dockyard, upstream, make_proxy, images):
    proxy = make_proxy(upstream)

    result = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{dockyard.admin_password}",
        f"oci:{images.oci}/busybox:1.36",
        f"docker://{dockyard.host}/{proxy}/library/busybox:pushed",
        check=False,
    )
    upload = httpx.post(
        f"{dockyard.url}/v2/{proxy}/library/busybox/blobs/uploads/",
        auth=("admin", dockyard.admin_password),
    )

    assert result.returncode != 0 and "denied" in result.stderr.lower()
    assert upload.status_code == 403 and upload.json()["errors"][0]["code"] == (
        "DENIED"
    )


def test_mirror_request_with_ns_is_routed_to_the_proxy_project(
    dockyard, upstream, make_proxy, images
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    make_proxy(upstream)

    digest = _manifest_digest(dockyard, "library/busybox", "1.36", ns=upstream.host)

    assert digest == images.digest("busybox:1.36")


def test_proxy_blob_not_matching_its_digest_is_never_stored(
    dockyard, upstream, make_proxy
):
    layer = secrets.token_bytes(3 * 1024 * 1024 + 17)
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    push_blob(upstream.host, "library/corrupt", layer)
    corrupted = bytearray(layer)
    corrupted[-1] ^= 0xFF
    upstream.blob_file(digest).write_bytes(bytes(corrupted))
    proxy = make_proxy(upstream)
    mark = dockyard.log_size()

    received, broke = _fetch_blob(dockyard, f"{proxy}/library/corrupt", digest)
    logged = dockyard.log_since(mark)
    upstream.stop()
    later = httpx.get(
        f"{dockyard.url}/v2/{proxy}/library/corrupt/blobs/{digest}",
        auth=("admin", dockyard.admin_password),
    )

    assert broke and received < len(layer)
    assert "proxy_blob_mismatch" in logged
    assert later.status_code in (404, 503)
    assert not _stored_blob(dockyard, digest).exists()


def test_proxy_blob_fetched_once_is_served_with_upstream_stopped(
    dockyard, upstream, make_proxy
):
    layer = secrets.token_bytes(2 * 1024 * 1024 + 5)
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    push_blob(upstream.host, "library/plain", layer)
    proxy = make_proxy(upstream)
    _fetch_blob(dockyard, f"{proxy}/library/plain", digest)
    upstream.stop()

    later = httpx.get(
        f"{dockyard.url}/v2/{proxy}/library/plain/blobs/{digest}",
        auth=("admin", dockyard.admin_password),
    )

    assert later.status_code == 200 and later.content == layer


def _fetch_blob(dockyard, repository, digest):
    """(bytes received, whether the transfer broke off)."""
    received = 0
    try:
        with httpx.stream(
            "GET",
            f"{dockyard.url}/v2/{repository}/blobs/{digest}",
            auth=("admin", dockyard.admin_password),
            timeout=60,
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += len(chunk)
    except httpx.HTTPError:
        return received, True
    return received, False


def _cached_manifests(dockyard, repository):
    """Digests of the manifests Dockyard's database holds for `repository`."""
    with sqlite3.connect(dockyard.data_dir / "dockyard.db") as db:
        rows = db.execute(
            "SELECT m.digest FROM manifests m JOIN repositories r"
            " ON r.id = m.repository_id WHERE r.name = ?",
            (repository,),
        ).fetchall()
    return {digest for (digest,) in rows}


def _stored_blob(dockyard, digest):
    algorithm, _, encoded = digest.partition(":")
    return dockyard.data_dir / "storage/blobs" / algorithm / encoded[:2] / encoded


def test_proxy_manifest_index_children_are_cached_by_digest(
    dockyard, upstream, make_proxy, images
):
    upstream.push(images, "busybox:multi", "library/busybox:multi")
    proxy = make_proxy(upstream)
    index = json.loads(images.manifest_bytes("busybox:multi"))
    child = index["manifests"][1]["digest"]
    _manifest_digest(dockyard, f"{proxy}/library/busybox", child)
    upstream.stop()

    again = _manifest_digest(dockyard, f"{proxy}/library/busybox", child)

    assert again == child


def test_proxy_referrers_are_fetched_and_cached_from_token_auth_upstream(
    dockyard, images
):
    # The upstream is a Dockyard (token auth, referrers API): the shared one.
    source = f"library/sbom-{secrets.token_hex(4)}"
    for ref in ("busybox:1.36", "artifact:busybox-sbom"):
        skopeo(
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"admin:{dockyard.admin_password}",
            f"oci:{images.oci}/{ref}",
            f"docker://{dockyard.host}/{source}:{ref.split(':')[1]}",
        )
    api = httpx.Client(
        base_url=f"{dockyard.url}/api/v2.0", auth=("admin", dockyard.admin_password)
    )
    registry = api.post(
        "/registries",
        json={
            "name": f"self-{secrets.token_hex(4)}",
            "url": dockyard.url,
            "type": "harbor",
            "credential": {
                "type": "basic",
                "access_key": "admin",
                "access_secret": dockyard.admin_password,
            },
        },
    )
    registry_id = int(registry.headers["location"].rsplit("/", 1)[1])
    proxy = f"proxy-{secrets.token_hex(4)}"
    api.post("/projects", json={"project_name": proxy, "registry_id": registry_id})
    subject = images.digest("busybox:1.36")

    response = httpx.get(
        f"{dockyard.url}/v2/{proxy}/{source}/referrers/{subject}",
        auth=("admin", dockyard.admin_password),
    )

    sbom = images.digest("artifact:busybox-sbom")
    assert [d["digest"] for d in response.json()["manifests"]] == [sbom]
    assert sbom in _cached_manifests(dockyard, f"{proxy}/{source}")


def test_proxy_referrers_use_the_tag_fallback_of_an_upstream_without_the_api(
    dockyard, upstream, make_proxy, images
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    upstream.push(images, "artifact:busybox-sbom", "library/busybox:sbom")
    sbom = images.manifest_bytes("artifact:busybox-sbom")
    subject = images.digest("busybox:1.36")
    fallback = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": images.digest("artifact:busybox-sbom"),
                "size": len(sbom),
                "artifactType": "application/vnd.example.sbom+json",
            }
        ],
    }
    put = httpx.put(
        f"http://{upstream.host}/v2/library/busybox/manifests/"
        f"{subject.replace(':', '-')}",
        content=json.dumps(fallback),
        headers={"content-type": "application/vnd.oci.image.index.v1+json"},
    )
    assert put.status_code == 201, put.text
    proxy = make_proxy(upstream)

    response = httpx.get(
        f"{dockyard.url}/v2/{proxy}/library/busybox/referrers/{subject}",
        auth=("admin", dockyard.admin_password),
    )

    assert [d["digest"] for d in response.json()["manifests"]] == [
        images.digest("artifact:busybox-sbom")
    ]


def test_containerd_with_dockyard_as_mirror_pulls_through_the_proxy_project(
    dockyard,
    upstream,
    make_proxy,
    images,
    containerd,
    tmp_path,
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    proxy = make_proxy(upstream)
    hosts = tmp_path / "certs.d" / upstream.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f"""server = "http://{upstream.host}"
[host."http://{dockyard.host}"]
  capabilities = ["pull", "resolve"]
"""
    )

    run(
        *containerd,
        "images",
        "pull",
        "--hosts-dir",
        str(tmp_path / "certs.d"),
        "--user",
        f"admin:{dockyard.admin_password}",
        f"{upstream.host}/library/busybox:1.36",
    )

    cached = _cached_manifests(dockyard, f"{proxy}/library/busybox")
    assert images.digest("busybox:1.36") in cached


def test_mirror_requests_go_to_the_proxy_project_of_their_own_upstream(
    dockyard, upstream, faulty_upstream, make_proxy, images
):
    # Two endpoints, two hosts: the Go registry itself and a proxy before it.
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    direct = make_proxy(upstream)
    fronted = make_proxy(faulty_upstream)

    _manifest_digest(dockyard, "library/busybox", "1.36", ns=faulty_upstream.host)

    digest = images.digest("busybox:1.36")
    assert digest in _cached_manifests(dockyard, f"{fronted}/library/busybox")
    assert digest not in _cached_manifests(dockyard, f"{direct}/library/busybox")


def test_mirror_blob_request_with_ns_is_served_through_the_proxy_project(
    dockyard, upstream, make_proxy
):
    layer = secrets.token_bytes(100_000)
    digest = push_blob(upstream.host, "library/mirrored", layer)
    make_proxy(upstream)

    response = httpx.get(
        f"{dockyard.url}/v2/library/mirrored/blobs/{digest}",
        params={"ns": upstream.host},
        auth=("admin", dockyard.admin_password),
    )

    assert response.status_code == 200 and response.content == layer
