"""Prometheus metrics over HTTP: off by default, on a separate listener or on
the main one, summed over granian's worker processes."""

from __future__ import annotations

import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Registry, sha256
from tests.conftest import DockyardServer, free_port

WORKERS = 2


@pytest.fixture(scope="module")
def metered(tmp_path_factory):
    """A two-worker server whose metrics are on a listener of their own."""
    metrics_port = free_port()
    server = DockyardServer(
        tmp_path_factory.mktemp("metered"),
        {
            "DOCKYARD_METRICS__ENABLED": "true",
            "DOCKYARD_METRICS__LISTEN": f"127.0.0.1:{metrics_port}",
        },
        workers=WORKERS,
    ).start()
    server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        yield server
    finally:
        server.stop()


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample: (name, labels) -> value."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples, route: str, status: str, method: str = "GET") -> float:
    return value(
        samples,
        "dockyard_http_requests_total",
        method=method,
        route=route,
        status=status,
    )


def test_metrics_by_default_are_not_served(dockyard):
    response = httpx.get(f"{dockyard.url}/metrics")

    assert response.status_code == 404


def test_metrics_on_separate_listener_are_not_on_main_listener(metered):
    response = httpx.get(f"{metered.url}/metrics")

    assert response.status_code == 404


def test_metrics_count_requests_of_every_worker_process(metered):
    before = scrape(metered.metrics_url)

    for _ in range(20):
        # A new connection each time, so that both workers take requests.
        httpx.get(f"{metered.url}/v2/", auth=("admin", metered.admin_password))
    after = scrape(metered.metrics_url)

    # The separate listener runs in the supervisor, which answers no request:
    # every count it shows was read from the workers' files.
    counted = requests_of(after, "/v2/", "200") - requests_of(before, "/v2/", "200")
    assert counted == 20


def test_metrics_label_requests_by_route_template_not_path(metered):
    secret_name = f"library/hidden-{secrets.token_hex(4)}"

    httpx.get(
        f"{metered.url}/v2/{secret_name}/tags/list",
        auth=("admin", metered.admin_password),
    )
    text = httpx.get(metered.metrics_url).text

    assert secret_name not in text
    assert requests_of(scrape(metered.metrics_url), "/v2/{name:path}/tags/list", "404")


def test_metrics_label_api_routes_with_their_prefix(metered):
    httpx.get(f"{metered.url}/api/v2.0/ping")

    samples = scrape(metered.metrics_url)

    assert requests_of(samples, "/api/v2.0/ping", "200") >= 1


def test_metrics_count_upload_push_and_pulls(metered):
    before = scrape(metered.metrics_url)
    with httpx.Client(
        base_url=metered.url, auth=("admin", metered.admin_password), timeout=30
    ) as client:
        registry = Registry(client, f"library/m-{secrets.token_hex(4)}")
        layer = secrets.token_bytes(4096)
        manifest = registry.image_manifest([layer])  # two blob uploads
        assert registry.put_manifest("1.0", manifest).status_code == 201
        assert client.get(registry.url("manifests/1.0")).status_code == 200
        assert client.get(registry.url(f"blobs/{sha256(layer)}")).status_code == 200

    after = scrape(metered.metrics_url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dockyard_blob_uploads_total") == 2
    assert delta("dockyard_manifest_pushes_total") == 1
    assert delta("dockyard_pulls_total", kind="manifest") == 1
    assert delta("dockyard_pulls_total", kind="blob") == 1
    assert delta(
        "dockyard_http_request_bytes_total", route="/v2/{name:path}/blobs/uploads/"
    ) >= len(layer)
    assert delta(
        "dockyard_http_response_bytes_total", route="/v2/{name:path}/blobs/{digest}"
    ) == len(layer)


def test_metrics_histogram_counts_match_request_counts(metered):
    httpx.get(f"{metered.url}/api/v2.0/ping")

    samples = scrape(metered.metrics_url)

    labels = {"method": "GET", "route": "/api/v2.0/ping", "status": "200"}
    assert value(
        samples, "dockyard_http_request_duration_seconds_count", **labels
    ) == value(samples, "dockyard_http_requests_total", **labels)


def test_metrics_report_database_pool_of_live_workers(metered):
    samples = scrape(metered.metrics_url)

    states = {
        dict(labels)["state"]
        for name, labels in samples
        if name == "dockyard_db_pool_connections"
    }
    assert states == {"checked_out", "idle", "overflow"}


def test_metrics_on_main_listener_when_no_listener_of_their_own(start_dockyard):
    server = start_dockyard({"DOCKYARD_METRICS__ENABLED": "true"}, workers=WORKERS)
    httpx.get(f"{server.url}/api/v2.0/ping")

    response = httpx.get(f"{server.url}/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    assert requests_of(scrape(f"{server.url}/metrics"), "/api/v2.0/ping", "200") >= 1


def test_metrics_path_under_v2_is_refused(start_dockyard):
    with pytest.raises(RuntimeError, match="metrics.path"):
        start_dockyard(
            {"DOCKYARD_METRICS__ENABLED": "true", "DOCKYARD_METRICS__PATH": "/v2/m"}
        )
