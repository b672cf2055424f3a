"""Proxy-cache projects whose upstream misbehaves, ranged pulls of blobs not
cached yet, and several clients filling one blob at once.

The upstream is Debian's docker-registry (the Go reference registry) behind
`FaultyProxy` (tests/e2e/faulty_proxy.py), a real reverse proxy on 127.0.0.1
that forwards faithfully until a test switches a fault on: 429 with
Retry-After, 500/502/503, a hang, a reset connection, a transfer cut or
stalled mid-stream, an ignored Range header.

The Dockyard here, the `server` fixture (tests/e2e/conftest.py), is this
module's own and waits 3 s for an upstream (DOCKYARD_PROXY_TIMEOUT_SECONDS) so
that a hanging upstream costs little; projects revalidate tags on every
pull (`proxy_revalidate_seconds` 0), so each pull really asks the upstream.
"""

import secrets
import threading

import httpx
import pytest

from tests.conftest import TEST_STORAGE
from tests.e2e.conftest import create_proxy_project, push_blob, skopeo
from tests.e2e.faulty_proxy import Fault, rate_limited

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = (
    f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
BLOBS = r"/blobs/sha256:"
MANIFESTS = r"/manifests/"

# Each fault, and what a client asking for content not cached gets.
FAULTS = {
    "429": (lambda: rate_limited(retry_after=7), 429, "TOOMANYREQUESTS"),
    "500": (lambda: Fault("status", status=500), 503, "UNAVAILABLE"),
    "502": (lambda: Fault("status", status=502), 503, "UNAVAILABLE"),
    "503": (lambda: Fault("status", status=503), 503, "UNAVAILABLE"),
    "hang": (lambda: Fault("hang"), 503, "UNAVAILABLE"),
    "reset": (lambda: Fault("reset"), 503, "UNAVAILABLE"),
}


def _proxy_of(server, faulty_upstream):
    """A proxy-cache project in front of `faulty_upstream`, revalidating
    tags on every pull: (project name, registry id)."""
    return create_proxy_project(server, faulty_upstream.host, revalidate_seconds=0)


def _pull(server, source, tmp_path):
    """skopeo copy docker://SERVER/source oci:DIR; whether it worked."""
    result = skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        f"admin:{server.admin_password}",
        f"docker://{server.host}/{source}",
        f"oci:{tmp_path / secrets.token_hex(4)}:1",
        check=False,
    )
    return result.returncode == 0, result.stderr


def _registry_status(client, registry_id):
    return client.get(f"/api/v2.0/registries/{registry_id}").json()["status"]


def _layer(upstream_host, repository, size=3 * 1024 * 1024 + 17):
    data = secrets.token_bytes(size)
    return data, push_blob(upstream_host, repository, data)


def _fetch(server, repository, digest, headers=None):
    """(status, bytes received, whether the transfer broke off)."""
    received = bytearray()
    try:
        with httpx.stream(
            "GET",
            f"{server.url}/v2/{repository}/blobs/{digest}",
            headers=headers,
            auth=("admin", server.admin_password),
            timeout=60,
        ) as response:
            for chunk in response.iter_bytes():
                received += chunk
            return response.status_code, bytes(received), False
    except httpx.HTTPError:
        return None, bytes(received), True


# Cached content while the upstream fails.


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_proxy_cached_image_is_pulled_while_upstream_fails(
    server, upstream, faulty_upstream, images, tmp_path, fault
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    proxy, _ = _proxy_of(server, faulty_upstream)
    cached, _ = _pull(server, f"{proxy}/library/busybox:1.36", tmp_path)
    faulty_upstream.fault = FAULTS[fault][0]()
    asked = len(faulty_upstream.asked("HEAD", MANIFESTS))

    pulled, stderr = _pull(server, f"{proxy}/library/busybox:1.36", tmp_path)

    assert cached and pulled, stderr
    assert len(faulty_upstream.asked("HEAD", MANIFESTS)) > asked


def test_proxy_upstream_health_goes_unhealthy_and_back_on_recovery(
    server, upstream, faulty_upstream, images, client
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    proxy, registry_id = _proxy_of(server, faulty_upstream)
    path = f"/v2/{proxy}/library/busybox/manifests/1.36"
    client.get(path, headers={"accept": ACCEPT})
    faulty_upstream.fault = Fault("status", status=503)
    during = client.get(path, headers={"accept": ACCEPT})
    unhealthy = _registry_status(client, registry_id)
    faulty_upstream.clear()

    after = client.get(path, headers={"accept": ACCEPT})

    assert during.status_code == after.status_code == 200
    assert (unhealthy, _registry_status(client, registry_id)) == (
        "unhealthy",
        "healthy",
    )


# Content not cached while the upstream fails.


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_proxy_uncached_manifest_while_upstream_fails_is_an_oci_error(
    server, upstream, faulty_upstream, images, client, fault
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    proxy, _ = _proxy_of(server, faulty_upstream)
    make, status, code = FAULTS[fault]
    faulty_upstream.fault = make()

    response = client.get(
        f"/v2/{proxy}/library/busybox/manifests/1.36", headers={"accept": ACCEPT}
    )

    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_proxy_uncached_blob_while_upstream_fails_is_an_oci_error(
    server, upstream, faulty_upstream, client, fault
):
    _, digest = _layer(upstream.host, "library/failing", 4096)
    proxy, _ = _proxy_of(server, faulty_upstream)
    make, status, code = FAULTS[fault]
    faulty_upstream.fault = make()

    response = client.get(f"/v2/{proxy}/library/failing/blobs/{digest}")

    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code


def test_proxy_uncached_blob_while_rate_limited_passes_retry_after_on(
    server, upstream, faulty_upstream, client
):
    _, digest = _layer(upstream.host, "library/limited", 4096)
    proxy, _ = _proxy_of(server, faulty_upstream)
    faulty_upstream.fault = rate_limited(retry_after=42)

    response = client.get(f"/v2/{proxy}/library/limited/blobs/{digest}")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "42"


def test_proxy_uncached_manifest_while_rate_limited_passes_retry_after_on(
    server, upstream, faulty_upstream, images, client
):
    upstream.push(images, "busybox:1.36", "library/busybox:1.36")
    proxy, _ = _proxy_of(server, faulty_upstream)
    faulty_upstream.fault = rate_limited(retry_after=9)

    response = client.get(
        f"/v2/{proxy}/library/busybox/manifests/1.36", headers={"accept": ACCEPT}
    )

    assert response.headers.get("retry-after") == "9"


def test_proxy_blob_fill_cut_mid_stream_breaks_the_transfer(
    server, upstream, faulty_upstream
):
    layer, digest = _layer(upstream.host, "library/cut")
    proxy, _ = _proxy_of(server, faulty_upstream)
    faulty_upstream.fault = Fault("cut", BLOBS, after_bytes=1024 * 1024)

    _, received, broke = _fetch(server, f"{proxy}/library/cut", digest)

    assert broke and len(received) < len(layer)


def test_proxy_blob_fill_cut_mid_stream_leaves_nothing_cached(
    server, upstream, faulty_upstream
):
    _, digest = _layer(upstream.host, "library/cut")
    proxy, _ = _proxy_of(server, faulty_upstream)
    faulty_upstream.fault = Fault("cut", BLOBS, after_bytes=1024 * 1024)
    _fetch(server, f"{proxy}/library/cut", digest)
    faulty_upstream.fault = Fault("status", status=503)

    status, _, _ = _fetch(server, f"{proxy}/library/cut", digest)

    # Had any of the first megabyte become a blob, it would be served now.
    assert status == 503


def test_proxy_blob_fill_cut_mid_stream_leaves_no_upload_behind(
    server, upstream, faulty_upstream
):
    if TEST_STORAGE != "filesystem":
        pytest.skip("looks at the uploads directory of filesystem storage")
    _, digest = _layer(upstream.host, "library/cut")
    proxy, _ = _proxy_of(server, faulty_upstream)
    faulty_upstream.fault = Fault("cut", BLOBS, after_bytes=1024 * 1024)

    _fetch(server, f"{proxy}/library/cut", digest)

    uploads = server.data_dir / "storage" / "uploads"
    assert not [p.name for p in uploads.iterdir() if p.name.startswith("proxy-")]


def test_proxy_blob_pulled_after_a_cut_fill_and_recovery_is_whole(
    server, upstream, faulty_upstream
):
    layer, digest = _layer(upstream.host, "library/cut")
    proxy, _ = _proxy_of(server, faulty_upstream)
    faulty_upstream.fault = Fault("cut", BLOBS, after_bytes=1024 * 1024)
    _fetch(server, f"{proxy}/library/cut", digest)
    faulty_upstream.clear()
    _fetch(server, f"{proxy}/library/cut", digest)
    faulty_upstream.fault = Fault("status", status=503)

    status, received, _ = _fetch(server, f"{proxy}/library/cut", digest)

    assert status == 200 and received == layer


# Ranges of blobs not cached yet.


@pytest.mark.parametrize("ignored", [False, True], ids=["honoured", "ignored"])
@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=1000-1999", 1000, 1999), ("bytes=-100", None, None)],
    ids=["span", "suffix"],
)
def test_proxy_range_of_uncached_blob_is_206_with_those_bytes(
    server, upstream, faulty_upstream, header, first, last, ignored
):
    layer, digest = _layer(upstream.host, "library/ranged", 70_000)
    proxy, _ = _proxy_of(server, faulty_upstream)
    if ignored:
        faulty_upstream.fault = Fault("ignore_range", BLOBS)
    first = len(layer) - 100 if first is None else first
    last = len(layer) - 1 if last is None else last

    response = httpx.get(
        f"{server.url}/v2/{proxy}/library/ranged/blobs/{digest}",
        headers={"range": header},
        auth=("admin", server.admin_password),
    )

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(layer)}"
    assert response.content == layer[first : last + 1]


def test_proxy_range_of_uncached_blob_is_asked_of_the_upstream(
    server, upstream, faulty_upstream, client
):
    _, digest = _layer(upstream.host, "library/ranged", 70_000)
    proxy, _ = _proxy_of(server, faulty_upstream)

    client.get(
        f"/v2/{proxy}/library/ranged/blobs/{digest}",
        headers={"range": "bytes=10-19"},
    )

    ranges = [seen.range for seen in faulty_upstream.asked("GET", BLOBS)]
    assert "bytes=10-19" in ranges


@pytest.mark.parametrize("ignored", [False, True], ids=["honoured", "ignored"])
def test_proxy_range_beyond_uncached_blob_is_416(
    server, upstream, faulty_upstream, client, ignored
):
    layer, digest = _layer(upstream.host, "library/ranged", 5000)
    proxy, _ = _proxy_of(server, faulty_upstream)
    if ignored:
        faulty_upstream.fault = Fault("ignore_range", BLOBS)

    response = client.get(
        f"/v2/{proxy}/library/ranged/blobs/{digest}",
        headers={"range": f"bytes={len(layer) + 10}-"},
    )

    assert response.status_code == 416
    assert response.json()["errors"][0]["code"] == "RANGE_NOT_SATISFIABLE"
    assert response.headers["content-range"] == f"bytes */{len(layer)}"


def test_proxy_ranged_pull_fills_the_cache_in_the_background(
    server, upstream, faulty_upstream
):
    layer, digest = _layer(upstream.host, "library/resumed")
    proxy, _ = _proxy_of(server, faulty_upstream)
    _fetch(server, f"{proxy}/library/resumed", digest, {"range": "bytes=0-99"})
    _wait_for(lambda: _whole_get_relayed(faulty_upstream, digest))
    faulty_upstream.fault = Fault("status", status=503)

    # The fill commits just after its last byte: give it a moment.
    fetched = _wait_for(
        lambda: _fetched_if(server, f"{proxy}/library/resumed", digest, 200)
    )

    assert fetched == layer


def test_proxy_cached_blob_keeps_serving_ranges(server, upstream, faulty_upstream):
    layer, digest = _layer(upstream.host, "library/cached")
    proxy, _ = _proxy_of(server, faulty_upstream)
    _fetch(server, f"{proxy}/library/cached", digest)
    faulty_upstream.fault = Fault("status", status=503)

    status, received, _ = _fetch(
        server, f"{proxy}/library/cached", digest, {"range": "bytes=5-1004"}
    )

    assert (status, received) == (206, layer[5:1005])


def _whole_get_relayed(faulty_upstream, digest):
    done = faulty_upstream.asked("GET", f"{BLOBS}{digest[7:]}", completed=True)
    return any(seen.range is None for seen in done)


def _fetched_if(server, repository, digest, status):
    got, received, _ = _fetch(server, repository, digest)
    return received if got == status else None


def _wait_for(probe, attempts=120):
    """`probe()`'s first true value, tried up to `attempts` times 0.25 s
    apart (a condition to wait for, not a time to assert)."""
    stop = threading.Event()
    for _ in range(attempts):
        value = probe()
        if value:
            return value
        stop.wait(0.25)
    raise AssertionError(f"{probe} never came true")


# Several clients, one blob not cached yet.


def test_proxy_concurrent_pulls_of_one_uncached_blob_all_get_its_bytes(
    server, upstream, faulty_upstream
):
    layer, digest = _layer(upstream.host, "library/popular")
    proxy, _ = _proxy_of(server, faulty_upstream)
    mark = server.log_size()

    results = _concurrently(
        4, lambda: _fetch(server, f"{proxy}/library/popular", digest)
    )

    cached = f"proxy_blob_cached repository={proxy}/library/popular digest={digest}"
    assert [r[:2] for r in results] == [(200, layer)] * 4
    assert server.log_since(mark).count(cached) == 1


def test_proxy_second_client_is_served_while_the_first_fill_is_stalled(
    server, upstream, faulty_upstream
):
    layer, digest = _layer(upstream.host, "library/stalled")
    proxy, _ = _proxy_of(server, faulty_upstream)
    stall = Fault("stall", BLOBS, after_bytes=1024 * 1024, count=1)
    faulty_upstream.fault = stall
    first = _in_thread(lambda: _fetch(server, f"{proxy}/library/stalled", digest))
    assert stall.reached.wait(30)

    second = _fetch(server, f"{proxy}/library/stalled", digest)
    stall.release()
    first.join(60)

    assert second[:2] == (200, layer)
    assert first.result[:2] == (200, layer)


def test_proxy_blob_filled_by_one_of_two_clients_is_cached_once(
    server, upstream, faulty_upstream
):
    _, digest = _layer(upstream.host, "library/stalled")
    proxy, _ = _proxy_of(server, faulty_upstream)
    stall = Fault("stall", BLOBS, after_bytes=1024 * 1024, count=1)
    faulty_upstream.fault = stall
    mark = server.log_size()
    first = _in_thread(lambda: _fetch(server, f"{proxy}/library/stalled", digest))
    assert stall.reached.wait(30)
    _fetch(server, f"{proxy}/library/stalled", digest)
    stall.release()
    first.join(60)

    logged = server.log_since(mark)

    cached = f"proxy_blob_cached repository={proxy}/library/stalled digest={digest}"
    assert logged.count(cached) == 1


class _Result(threading.Thread):
    def __init__(self, call):
        super().__init__(daemon=True)
        self.call = call
        self.result = None

    def run(self):
        self.result = self.call()


def _in_thread(call):
    thread = _Result(call)
    thread.start()
    return thread


def _concurrently(count, call):
    """`call()` from `count` threads released together; their results."""
    barrier = threading.Barrier(count)

    def wait_then_call():
        barrier.wait(30)
        return call()

    threads = [_in_thread(wait_then_call) for _ in range(count)]
    for thread in threads:
        thread.join(120)
    return [thread.result for thread in threads]


def test_proxy_head_with_range_of_uncached_blob_is_206_with_its_length(
    server, upstream, faulty_upstream, client
):
    layer, digest = _layer(upstream.host, "library/ranged", 5000)
    proxy, _ = _proxy_of(server, faulty_upstream)

    response = client.head(
        f"/v2/{proxy}/library/ranged/blobs/{digest}",
        headers={"range": "bytes=100-199"},
    )

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-199/{len(layer)}"
