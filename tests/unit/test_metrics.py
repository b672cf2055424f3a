from prometheus_client import CollectorRegistry, generate_latest

from dockyard.metrics import Metrics, RequestObservation


def exposed(*collectors) -> str:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def test_set_queue_depth_exposes_gauge_per_queue():
    metrics = Metrics()

    metrics.set_queue_depth("replication", 7)

    assert 'dockyard_job_queue_depth{queue="replication"} 7.0' in exposed(
        metrics.queue_depth
    )


def test_observe_request_with_unknown_method_labels_it_other():
    metrics = Metrics()

    metrics.observe_request(RequestObservation("BREW", "/v2/", 405, 0.01, 0, 10, False))

    assert 'method="other"' in exposed(metrics.requests)


def test_observe_mount_counts_mount_not_upload():
    metrics = Metrics()
    route = "/v2/{name:path}/blobs/uploads/"

    metrics.observe_request(RequestObservation("POST", route, 201, 0.01, 0, 0, True))

    text = exposed(metrics.mounts, metrics.uploads)
    assert "dockyard_blob_mounts_total 1.0" in text
    assert "dockyard_blob_uploads_total 0.0" in text
