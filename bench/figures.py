"""What the benchmark measures on one server, one round at a time.

`Bench.prepare` fills a server with the fixtures the figures read (a small
image, a large blob, a repository of many tags, many repositories); each
`measure_*` method then times one thing once and returns its numbers. The
runner calls them interleaved across servers and takes medians.

Repositories used (all in Dockyard's public `library` project):

    library/bench-base            small image, tag `latest` (manifest GET, blob HEAD)
    library/bench-pull            the large blob pulled
    library/bench-push            fresh blobs pushed each round
    library/bench-manifests       distinct manifests pushed each round
    library/bench-tags            one manifest under many tags
    library/bench-cat-NNNNNN      many repositories for the catalog
    library/bench-conc-N          the same layer pushed to 8 repositories at once
    library/bench-rss             the large streamed push
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import loadgen
from httpconn import Connection
from registry import (
    OCI_MANIFEST,
    Blob,
    TokenSource,
    bearer,
    expect,
    fetch_blob_digest,
    image_config,
    image_manifest,
    list_paginated,
    mount_blob,
    pull_blob,
    push_chunked,
    push_monolithic,
    push_stream,
    put_manifest,
)
from servers import Server, peak_rss_bytes, pss_bytes, reset_peak_rss, rss_bytes

BASE_REPO = "library/bench-base"
PULL_REPO = "library/bench-pull"
PUSH_REPO = "library/bench-push"
MANIFEST_REPO = "library/bench-manifests"
TAGS_REPO = "library/bench-tags"
CATALOG_PREFIX = "library/bench-cat-"
CONCURRENT_PREFIX = "library/bench-conc-"
RSS_REPO = "library/bench-rss"

MB = 1e6
MIB = 1 << 20
_RSS_SAMPLE_SECONDS = 0.05
_SCOPES_PER_TOKEN = 10

J = TypeVar("J")


@dataclass(frozen=True)
class Plan:
    """Sizes and counts for one run."""

    rounds: int
    blob_bytes: int
    chunk_bytes: int
    pull_bytes: int
    load_seconds: float
    connections: int
    load_threads: int
    manifests: int
    manifest_concurrency: int
    tags: int
    tag_page: int
    repositories: int
    catalog_page: int
    concurrent_pushes: int
    concurrent_layer_bytes: int
    stream_bytes: int
    stream_rounds: int
    setup_concurrency: int


FULL = Plan(
    rounds=5,
    blob_bytes=256 * MIB,
    chunk_bytes=32 * MIB,
    pull_bytes=256 * MIB,
    load_seconds=5,
    connections=64,
    load_threads=2,
    manifests=300,
    manifest_concurrency=4,
    tags=5000,
    tag_page=1000,
    repositories=2000,
    catalog_page=100,
    concurrent_pushes=8,
    concurrent_layer_bytes=64 * MIB,
    stream_bytes=2048 * MIB,
    stream_rounds=1,
    setup_concurrency=8,
)

QUICK = Plan(
    rounds=2,
    blob_bytes=8 * MIB,
    chunk_bytes=2 * MIB,
    pull_bytes=16 * MIB,
    load_seconds=1,
    connections=16,
    load_threads=2,
    manifests=20,
    manifest_concurrency=4,
    tags=250,
    tag_page=100,
    repositories=120,
    catalog_page=50,
    concurrent_pushes=8,
    concurrent_layer_bytes=2 * MIB,
    stream_bytes=64 * MIB,
    stream_rounds=1,
    setup_concurrency=8,
)


@dataclass
class Target:
    """One server under test, and how to talk to it. `server` is the process
    when we started it (needed for the memory figure), else None."""

    name: str
    url: str
    tokens: TokenSource
    server: Server | None = None
    # Does `POST ?digest=` with a body complete a monolithic upload here?
    # (The Go registry 2.8 answers 202 and expects the body in a PUT.)
    single_post: bool = False
    layer: Blob = field(default_factory=lambda: Blob.of(b""))
    config: Blob = field(default_factory=lambda: Blob.of(b""))
    pull_digest: str = ""
    setup_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, server: Server, tokens: TokenSource) -> Target:
        return cls(server.name, server.url, tokens, server)

    def connect(self) -> Connection:
        return Connection(self.url)


def parallel(
    target: Target, jobs: list[J], work: Callable[[Connection, J], None], workers: int
) -> float:
    """Run `work` over `jobs` on `workers` threads, one connection each.

    Returns the seconds taken."""
    local = threading.local()
    opened: list[Connection] = []

    def run(job: J) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = target.connect()
            opened.append(conn)
        work(conn, job)

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(run, jobs):
                pass
        return time.perf_counter() - start
    finally:
        for conn in opened:
            conn.close()


def batched(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def flush_disk() -> None:
    # The Go registry leaves written blobs in the page cache, Dockyard fsyncs
    # them; flushing between timed transfers keeps one server's writeback out
    # of the other's measurement.
    os.sync()


class RssSampler(threading.Thread):
    """Polls the summed VmRSS of a fixed set of processes until stopped."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes(self.pids))
            self._stop_event.wait(_RSS_SAMPLE_SECONDS)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def stream_pieces(size: int, piece: int = MIB) -> Iterator[bytes]:
    """`size` bytes, one `piece` at a time: a unique first piece (so each stream
    has a new digest), then one random block repeated. Never more in memory."""
    first = os.urandom(min(piece, size))
    yield first
    repeated = os.urandom(piece)
    sent = len(first)
    while sent < size:
        count = min(piece, size - sent)
        yield repeated if count == piece else repeated[:count]
        sent += count


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    # -- setup ---------------------------------------------------------------

    def prepare(
        self, target: Target, figures: set[str], log: Callable[[str], None]
    ) -> None:
        """Probe the monolithic upload mode and load the fixtures that the
        selected `figures` read (untimed, but the seconds are kept)."""
        target.single_post = self._probe_single_post(target)
        self._push_base(target)
        if "pull" in figures:
            self._push_pull_blob(target)
        if "tag_list" in figures:
            log(f"  {target.name}: {self.plan.tags} tags ...")
            target.setup_seconds["tags"] = self._push_tags(target)
        if "catalog" in figures:
            log(f"  {target.name}: {self.plan.repositories} repositories ...")
            target.setup_seconds["repositories"] = self._push_repositories(target)

    def _probe_single_post(self, target: Target) -> bool:
        probe = Blob.of(os.urandom(64))
        conn = target.connect()
        try:
            headers = bearer(
                target.tokens.push_token(PUSH_REPO),
                **{"content-type": "application/octet-stream", "content-length": "64"},
            )
            reply = conn.request(
                "POST",
                f"/v2/{PUSH_REPO}/blobs/uploads/?digest={probe.digest}",
                headers,
                probe.data,
            )
            return reply.status == 201
        finally:
            conn.close()

    def _push_base(self, target: Target) -> None:
        target.layer = Blob.of(b"dockyard-bench-base-layer\n" * 40)
        target.config = image_config(target.layer)
        conn = target.connect()
        try:
            for repository in (BASE_REPO, MANIFEST_REPO, TAGS_REPO):
                token = target.tokens.push_token(repository)
                for blob in (target.layer, target.config):
                    push_monolithic(conn, token, repository, blob, target.single_post)
            body = image_manifest(target.config, target.layer)
            put_manifest(
                conn, target.tokens.push_token(BASE_REPO), BASE_REPO, "latest", body
            )
        finally:
            conn.close()

    def _push_pull_blob(self, target: Target) -> None:
        conn = target.connect()
        try:
            token = target.tokens.push_token(PULL_REPO)
            pieces = stream_pieces(self.plan.pull_bytes)
            target.pull_digest = push_stream(
                conn, token, PULL_REPO, pieces, self.plan.pull_bytes
            )
        finally:
            conn.close()

    def _push_tags(self, target: Target) -> float:
        token = target.tokens.push_token(TAGS_REPO)
        body = image_manifest(target.config, target.layer)

        def tag(conn: Connection, index: int) -> None:
            put_manifest(conn, token, TAGS_REPO, f"t{index:06d}", body)

        return parallel(
            target, list(range(self.plan.tags)), tag, self.plan.setup_concurrency
        )

    def repository_names(self) -> list[str]:
        return [f"{CATALOG_PREFIX}{i:06d}" for i in range(self.plan.repositories)]

    def _push_repositories(self, target: Target) -> float:
        body = image_manifest(target.config, target.layer)

        def fill(conn: Connection, batch: list[str]) -> None:
            token = target.tokens.token(
                f"repository:{BASE_REPO}:pull",
                *(f"repository:{r}:pull,push" for r in batch),
            )
            for repository in batch:
                for blob in (target.layer, target.config):
                    mount_blob(conn, token, repository, blob.digest, BASE_REPO)
                put_manifest(conn, token, repository, "latest", body)

        jobs = batched(self.repository_names(), _SCOPES_PER_TOKEN)
        return parallel(target, jobs, fill, self.plan.setup_concurrency)

    # -- blob transfer ---------------------------------------------------------

    def measure_monolithic_push(self, target: Target, _round: int) -> dict[str, float]:
        blob = Blob.of(os.urandom(self.plan.blob_bytes))
        token = target.tokens.push_token(PUSH_REPO)
        conn = target.connect()
        try:
            flush_disk()
            start = time.perf_counter()
            push_monolithic(conn, token, PUSH_REPO, blob, target.single_post)
            elapsed = time.perf_counter() - start
            self._check_blob(conn, token, PUSH_REPO, blob.digest, len(blob.data))
        finally:
            conn.close()
        return {"mb_per_s": len(blob.data) / MB / elapsed, "seconds": elapsed}

    def measure_chunked_push(self, target: Target, _round: int) -> dict[str, float]:
        blob = Blob.of(os.urandom(self.plan.blob_bytes))
        token = target.tokens.push_token(PUSH_REPO)
        conn = target.connect()
        try:
            flush_disk()
            start = time.perf_counter()
            chunks = push_chunked(conn, token, PUSH_REPO, blob, self.plan.chunk_bytes)
            elapsed = time.perf_counter() - start
            self._check_blob(conn, token, PUSH_REPO, blob.digest, len(blob.data))
        finally:
            conn.close()
        return {
            "mb_per_s": len(blob.data) / MB / elapsed,
            "seconds": elapsed,
            "chunks": chunks,
        }

    def measure_pull(self, target: Target, _round: int) -> dict[str, float]:
        token = target.tokens.pull_token(PULL_REPO)
        conn = target.connect()
        try:
            start = time.perf_counter()
            received = pull_blob(conn, token, PULL_REPO, target.pull_digest)
            elapsed = time.perf_counter() - start
        finally:
            conn.close()
        if received != self.plan.pull_bytes:
            raise AssertionError(
                f"pulled {received} bytes, expected {self.plan.pull_bytes}"
            )
        return {"mb_per_s": received / MB / elapsed, "seconds": elapsed}

    def _check_blob(
        self, conn: Connection, token: str, repo: str, digest: str, size: int
    ) -> None:
        reply = expect(
            conn.request("HEAD", f"/v2/{repo}/blobs/{digest}", bearer(token)),
            200,
            "HEAD",
        )
        length = reply.header("content-length")
        if length != str(size):
            raise AssertionError(
                f"{repo}@{digest}: Content-Length {length}, expected {size}"
            )

    # -- request rates -------------------------------------------------------------

    def measure_manifest_get(self, target: Target, _round: int) -> dict[str, float]:
        token = target.tokens.pull_token(BASE_REPO)
        headers = bearer(token, accept=OCI_MANIFEST)
        path = f"/v2/{BASE_REPO}/manifests/latest"
        self._check_get(target, path, headers)
        result = loadgen.run_wrk(
            target.url + path,
            headers,
            self.plan.load_seconds,
            self.plan.connections,
            self.plan.load_threads,
        )
        return _load_figures(result)

    def measure_blob_head(self, target: Target, _round: int) -> dict[str, float]:
        token = target.tokens.pull_token(BASE_REPO)
        headers = bearer(token)
        path = f"/v2/{BASE_REPO}/blobs/{target.layer.digest}"
        self._check_get(target, path, headers, method="HEAD")
        result = loadgen.run_ab(
            target.url + path,
            "HEAD",
            headers,
            self.plan.load_seconds,
            self.plan.connections,
        )
        return _load_figures(result)

    def _check_get(
        self, target: Target, path: str, headers: dict[str, str], method: str = "GET"
    ) -> None:
        conn = target.connect()
        try:
            expect(conn.request(method, path, headers), 200, f"{method} {path}")
        finally:
            conn.close()

    def measure_manifest_push(self, target: Target, round_: int) -> dict[str, float]:
        token = target.tokens.push_token(MANIFEST_REPO)
        nonce = os.urandom(4).hex()
        bodies = [
            (
                f"m{round_:02d}-{i:05d}",
                image_manifest(target.config, target.layer, f"{nonce}-{i}"),
            )
            for i in range(self.plan.manifests)
        ]

        def push(conn: Connection, job: tuple[str, bytes]) -> None:
            put_manifest(conn, token, MANIFEST_REPO, job[0], job[1])

        elapsed = parallel(target, bodies, push, self.plan.manifest_concurrency)
        return {"per_s": len(bodies) / elapsed, "seconds": elapsed}

    # -- listings ------------------------------------------------------------------

    def measure_tag_list(self, target: Target, _round: int) -> dict[str, float]:
        token = target.tokens.pull_token(TAGS_REPO)
        conn = target.connect()
        try:
            start = time.perf_counter()
            listing = list_paginated(
                conn, token, f"/v2/{TAGS_REPO}/tags/list?n={self.plan.tag_page}", "tags"
            )
            elapsed = time.perf_counter() - start
            # For comparison: the whole list in one page, as the reference
            # answers anyway (it ignores `n`).
            start = time.perf_counter()
            whole = list_paginated(
                conn, token, f"/v2/{TAGS_REPO}/tags/list?n={self.plan.tags}", "tags"
            )
            one_request = time.perf_counter() - start
        finally:
            conn.close()
        expected = {f"t{i:06d}" for i in range(self.plan.tags)}
        for found in (listing, whole):
            if set(found.items) != expected or len(found.items) != len(expected):
                raise AssertionError(
                    f"tag list has {len(found.items)} tags"
                    f" ({len(set(found.items))} distinct), expected {len(expected)}"
                )
        return {
            "seconds": elapsed,
            "pages": listing.pages,
            "items": len(listing.items),
            "one_request_seconds": one_request,
        }

    def measure_catalog(self, target: Target, _round: int) -> dict[str, float]:
        token = target.tokens.catalog_token()
        conn = target.connect()
        try:
            start = time.perf_counter()
            listing = list_paginated(
                conn, token, f"/v2/_catalog?n={self.plan.catalog_page}", "repositories"
            )
            elapsed = time.perf_counter() - start
        finally:
            conn.close()
        missing = set(self.repository_names()) - set(listing.items)
        if missing or len(set(listing.items)) != len(listing.items):
            raise AssertionError(
                f"catalog: {len(missing)} repositories missing,"
                f" {len(listing.items) - len(set(listing.items))} listed twice"
            )
        return {"seconds": elapsed, "pages": listing.pages, "items": len(listing.items)}

    # -- concurrency and memory ----------------------------------------------------

    def measure_concurrent_push(self, target: Target, _round: int) -> dict[str, float]:
        """The same fresh layer pushed to N repositories at once; then each must
        serve it with the right digest."""
        blob = Blob.of(os.urandom(self.plan.concurrent_layer_bytes))
        repositories = [
            f"{CONCURRENT_PREFIX}{i}" for i in range(self.plan.concurrent_pushes)
        ]
        token = target.tokens.push_token(*repositories)
        errors: list[str] = []
        elapsed = self._push_at_once(target, repositories, blob, token, errors)
        correct = self._count_correct(target, repositories, blob, token, errors)
        result: dict[str, float] = {"seconds": elapsed, "correct": correct}
        if errors:
            result["errors"] = "; ".join(errors[:4])  # type: ignore[assignment]
        return result

    def _push_at_once(
        self,
        target: Target,
        repositories: list[str],
        blob: Blob,
        token: str,
        errors: list[str],
    ) -> float:
        conns = [target.connect() for _ in repositories]
        start_line = threading.Barrier(len(repositories) + 1)

        def push(index: int) -> None:
            start_line.wait()
            try:
                push_monolithic(
                    conns[index], token, repositories[index], blob, target.single_post
                )
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(f"{repositories[index]}: {exc}")

        threads = [
            threading.Thread(target=push, args=(i,)) for i in range(len(repositories))
        ]
        for thread in threads:
            thread.start()
        flush_disk()
        start_line.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        for conn in conns:
            conn.close()
        return elapsed

    def _count_correct(
        self,
        target: Target,
        repositories: list[str],
        blob: Blob,
        token: str,
        errors: list[str],
    ) -> int:
        correct = 0
        conn = target.connect()
        try:
            for repository in repositories:
                try:
                    served = fetch_blob_digest(conn, token, repository, blob.digest)
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    errors.append(f"{repository} GET: {exc}")
                    continue
                if served == blob.digest:
                    correct += 1
                else:
                    errors.append(f"{repository} served {served}, pushed {blob.digest}")
        finally:
            conn.close()
        return correct

    def measure_stream_rss(self, target: Target, _round: int) -> dict[str, float]:
        """Peak memory of the server's processes during one large streamed push."""
        size = self.plan.stream_bytes
        token = target.tokens.push_token(RSS_REPO)
        if target.server is None:
            raise ValueError("the memory figure needs a server this script started")
        pids = target.server.pids()
        conn = target.connect()
        try:
            flush_disk()
            reset_peak_rss(pids)
            idle = rss_bytes(pids)
            sampler = RssSampler(pids)
            sampler.start()
            start = time.perf_counter()
            try:
                digest = push_stream(conn, token, RSS_REPO, stream_pieces(size), size)
            finally:
                peak = sampler.stop()
            elapsed = time.perf_counter() - start
            high_water = peak_rss_bytes(pids)
            proportional = pss_bytes(pids)
            per_process = [round(rss_bytes([pid]) / MIB) for pid in pids]
            self._check_blob(conn, token, RSS_REPO, digest, size)
        finally:
            conn.close()
        return {
            "peak_rss_mib": peak / MIB,
            "hwm_sum_mib": high_water / MIB,
            "idle_rss_mib": idle / MIB,
            "pss_after_mib": proportional / MIB,
            "processes": len(pids),
            # Text, not a figure: shown in the log and the JSON only.
            "rss_mib_per_process": " ".join(map(str, per_process)),  # type: ignore
            "mb_per_s": size / MB / elapsed,
        }


def _load_figures(result: loadgen.LoadResult) -> dict[str, float]:
    figures: dict[str, float] = {
        "per_s": result.requests_per_second,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "failures": result.failures,
    }
    if result.failures:
        figures["notes"] = "; ".join(result.notes)  # type: ignore[assignment]
    return figures
