"""Prometheus metrics, correct across granian's worker processes.

Every worker process writes its samples to files in one directory
(prometheus-client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`); whoever
answers a scrape — a worker on the main listener, or the supervisor on the
separate metrics listener — adds up the files of all processes. The serving
process empties the directory before the workers start, so counters begin at
zero with the server.

prometheus-client chooses between in-memory and file-backed values when it is
first imported, so the directory is set (`dockyard.server.enable_multiprocess`)
before anything imports this module in a serving process.

Labels are bounded: requests are labelled with the route *template*
(`/v2/{name:path}/manifests/{reference}`), never the raw path, and with the
method only when it is a standard one.

    dockyard_http_requests_total{method,route,status}
    dockyard_http_request_duration_seconds{method,route,status}  (histogram)
    dockyard_http_request_bytes_total{route}   request bodies received
    dockyard_http_response_bytes_total{route}  response bodies sent
    dockyard_blob_uploads_total                blobs received (not mounts)
    dockyard_blob_mounts_total
    dockyard_manifest_pushes_total
    dockyard_pulls_total{kind="manifest"|"blob"}
    dockyard_db_pool_connections{state}        summed over live processes
    dockyard_job_queue_depth{queue}            set through `set_queue_depth`
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.server import MULTIPROCESS_ENV

UNMATCHED_ROUTE = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_POOL_SAMPLE_SECONDS = 5.0

_UPLOADS = "/v2/{name:path}/blobs/uploads/"
_UPLOAD = "/v2/{name:path}/blobs/uploads/{upload_id}"
_MANIFEST = "/v2/{name:path}/manifests/{reference}"
_BLOB = "/v2/{name:path}/blobs/{digest}"


def exposition() -> tuple[bytes, str]:
    """The text exposition of every process's samples, and its content type."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if not directory:
        raise RuntimeError("metrics are served only in multiprocess mode")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every process's samples (for the separate listener)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.environ[MULTIPROCESS_ENV])
    return registry


class Metrics:
    """The metrics one process records. Not registered in prometheus-client's
    default registry: scrapes read the multiprocess files instead."""

    def __init__(self) -> None:
        request_labels = ["method", "route", "status"]
        self.requests = Counter(
            "dockyard_http_requests",
            "HTTP requests answered.",
            request_labels,
            registry=None,
        )
        self.duration = Histogram(
            "dockyard_http_request_duration_seconds",
            "Time from request start to the end of the response.",
            request_labels,
            registry=None,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.bytes_in = Counter(
            "dockyard_http_request_bytes",
            "Request body bytes received.",
            ["route"],
            registry=None,
        )
        self.bytes_out = Counter(
            "dockyard_http_response_bytes",
            "Response body bytes sent (files sent zero-copy by their length).",
            ["route"],
            registry=None,
        )
        self.uploads = Counter(
            "dockyard_blob_uploads", "Blobs received by upload.", registry=None
        )
        self.mounts = Counter(
            "dockyard_blob_mounts",
            "Blobs mounted from another repository.",
            registry=None,
        )
        self.pushes = Counter(
            "dockyard_manifest_pushes", "Manifests pushed.", registry=None
        )
        self.pulls = Counter(
            "dockyard_pulls", "Manifests and blobs pulled.", ["kind"], registry=None
        )
        self.pool = Gauge(
            "dockyard_db_pool_connections",
            "Database pool connections by state, summed over live processes.",
            ["state"],
            registry=None,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "dockyard_job_queue_depth",
            "Jobs waiting in a queue (the most recent reading of any process).",
            ["queue"],
            registry=None,
            multiprocess_mode="mostrecent",
        )

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """The hook for the job queue: report how many jobs wait in `queue`."""
        self.queue_depth.labels(queue=queue).set(depth)

    def set_pool_stats(self, stats: Mapping[str, int]) -> None:
        for state, value in stats.items():
            self.pool.labels(state=state).set(value)

    def observe_request(self, observation: RequestObservation) -> None:
        """Record one answered request and the registry event it stands for."""
        o = observation
        self.requests.labels(o.method, o.route, o.status).inc()
        self.duration.labels(o.method, o.route, o.status).observe(o.seconds)
        if o.bytes_in:
            self.bytes_in.labels(o.route).inc(o.bytes_in)
        if o.bytes_out:
            self.bytes_out.labels(o.route).inc(o.bytes_out)
        self._count_registry_event(o)

    def _count_registry_event(self, o: RequestObservation) -> None:
        key = (o.method, o.route, o.status)
        if key in {("PUT", _UPLOAD, "201"), ("POST", _UPLOADS, "201")}:
            (self.mounts if o.mount else self.uploads).inc()
        elif key == ("PUT", _MANIFEST, "201"):
            self.pushes.inc()
        elif key == ("GET", _MANIFEST, "200"):
            self.pulls.labels("manifest").inc()
        elif o.method == "GET" and o.route == _BLOB and o.status in ("200", "206"):
            self.pulls.labels("blob").inc()


@dataclass(slots=True)
class RequestObservation:
    """What the middleware saw of one request. Methods other than the
    standard ones are labelled `other` (labels stay bounded)."""

    method: str
    route: str
    status: int | str
    seconds: float
    bytes_in: int
    bytes_out: int
    mount: bool

    def __post_init__(self) -> None:
        self.method = self.method if self.method in _METHODS else "other"
        self.status = str(self.status)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (after the call), with the
    prefix of the mount it sits in; `UNMATCHED_ROUTE` when none did."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or path is None or isinstance(route, Mount):
        return UNMATCHED_ROUTE
    prefix = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    if app_root and prefix.startswith(app_root):
        prefix = prefix[len(app_root) :]
    return prefix + path


class MetricsMiddleware:
    """Count requests, time them and count their body bytes.

    `metrics` is looked up per request (it lives with the services, which
    start with the lifespan)."""

    def __init__(self, app: ASGIApp, get_metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.get_metrics = get_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.get_metrics() if scope["type"] == "http" else None
        if metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counts = {"in": 0, "out": 0, "status": 500}
        is_head = scope["method"] == "HEAD"

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                counts["status"] = message["status"]
            elif kind == "http.response.body" and not is_head:
                counts["out"] += len(message.get("body", b""))
            elif kind == "http.response.pathsend":
                counts["out"] += _file_size(message.get("path", ""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            metrics.observe_request(
                RequestObservation(
                    scope["method"],
                    route_template(scope),
                    counts["status"],
                    time.perf_counter() - started,
                    counts["in"],
                    counts["out"],
                    b"mount=" in scope.get("query_string", b""),
                )
            )


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


async def sample_pool_forever(
    metrics: Metrics, stats: Callable[[], Mapping[str, int]]
) -> None:
    """Keep this process's pool gauges current (scrapes read the files)."""
    while True:
        metrics.set_pool_stats(stats())
        await asyncio.sleep(_POOL_SAMPLE_SECONDS)
