"""Fill a Dockyard with many tags and repositories, and time the lookups that
must stay flat as they grow.

    .venv/bin/python bench/generate.py --data-dir D --tags 100000 --repositories 100000
    .venv/bin/python bench/generate.py --data-dir D --check
    .venv/bin/python bench/generate.py --data-dir D --steps 1000,10000,100000 --check

Everything goes over the registry API, as a client would push it: one small
image in `library/gen-base`, then one manifest under tags `t0000000`, ... in
`library/gen-tagged`, and repositories `library/gen-0000000`, ... each holding
that image (blobs mounted from `library/gen-base`, manifest tagged `latest`).
Names are zero-padded, so a second run with a larger count continues where
the last one stopped (it counts what the API lists first).

With `--data-dir` the script starts Dockyard itself on a free 127.0.0.1 port
and stops it on exit; a fresh data dir gets a random admin password, kept in
`<data-dir>/bench-admin-password` (mode 0600) for the next run. With `--url`
and `--password` it uses a Dockyard already running on this machine.

`--check` times, `--samples` times each (median and 90th percentile, ms):
tag list first and last page, catalog first and last page, a manifest GET by
tag. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlsplit

from figures import Target, batched, parallel
from httpconn import Connection
from registry import (
    OCI_MANIFEST,
    Blob,
    TokenSource,
    bearer,
    expect,
    image_config,
    image_manifest,
    list_paginated,
    mount_blob,
    push_monolithic,
    put_manifest,
)
from servers import Server, start_dockyard

BASE_REPO = "library/gen-base"
TAGGED_REPO = "library/gen-tagged"
REPO_PREFIX = "library/gen-"
PAGE = 100
J = TypeVar("J")
_SCOPES_PER_TOKEN = 10
_PASSWORD_FILE = "bench-admin-password"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path, help="start Dockyard on this data dir")
    where.add_argument("--url", help="a Dockyard already running on 127.0.0.1")
    parser.add_argument("--password", help="admin password (with --url)")
    parser.add_argument(
        "--workers", type=int, default=2, help="Dockyard workers (with --data-dir)"
    )
    parser.add_argument(
        "--tags", type=int, default=0, help="tags wanted in the tagged repository"
    )
    parser.add_argument(
        "--repositories", type=int, default=0, help="gen-NNNNNNN repositories wanted"
    )
    parser.add_argument(
        "--steps", help="comma-separated sizes to grow through, checking at each"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--check", action="store_true", help="time the lookups")
    parser.add_argument(
        "--samples", type=int, default=30, help="requests per timed lookup"
    )
    parser.add_argument("--json", type=Path, help="also write the check figures here")
    args = parser.parse_args(argv)
    if args.url and not args.password:
        parser.error("--url needs --password")
    if args.url and urlsplit(args.url).hostname not in _LOOPBACK:
        parser.error("--url must name this machine (127.0.0.1, localhost or ::1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    server: Server | None = None
    try:
        if args.data_dir:
            server, password = start(args.data_dir, args.workers)
            url = server.url
        else:
            url, password = args.url.rstrip("/"), args.password
        target = Target("dockyard", url, TokenSource(url, "admin", password), server)
        return run(args, target)
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    finally:
        if server is not None:
            server.stop()


def start(data_dir: Path, workers: int) -> tuple[Server, str]:
    secret = data_dir / _PASSWORD_FILE
    if secret.exists():
        password = secret.read_text().strip()
    else:
        password = f"Gen-{secrets.token_urlsafe(12)}-7b"
    server = start_dockyard(
        data_dir, data_dir.parent / f"{data_dir.name}.log", workers, password
    )
    if not secret.exists():
        secret.write_text(password + "\n")
        secret.chmod(0o600)
    _log(f"dockyard {server.url} (pid {server.pid}) on {data_dir}")
    return server, password


def run(args: argparse.Namespace, target: Target) -> int:
    steps = [int(s) for s in args.steps.split(",")] if args.steps else []
    image = push_base(target)
    results = []
    for size in steps or [None]:
        tags = size if size is not None else args.tags
        repositories = size if size is not None else args.repositories
        fill(target, image, tags, repositories, args.concurrency)
        if args.check:
            results.append(check(target, args.samples))
    if args.json and results:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def push_base(target: Target) -> tuple[Blob, Blob]:
    layer = Blob.of(b"dockyard-generate-layer\n" * 64)
    config = image_config(layer)
    conn = target.connect()
    try:
        for repository in (BASE_REPO, TAGGED_REPO):
            token = target.tokens.push_token(repository)
            for blob in (layer, config):
                _push_blob(conn, token, repository, blob)
    finally:
        conn.close()
    return layer, config


def _push_blob(conn: Connection, token: str, repository: str, blob: Blob) -> None:
    head = conn.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}", bearer(token))
    if head.status != 200:
        push_monolithic(conn, token, repository, blob, single_post=True)


def fill(
    target: Target,
    image: tuple[Blob, Blob],
    tags: int,
    repositories: int,
    concurrency: int,
) -> None:
    """Push whatever of tags 0..`tags` and repositories 0..`repositories` is missing."""
    layer, config = image
    body = image_manifest(config, layer)
    have_tags, have_repositories = existing(target)
    missing_tags = [i for i in range(tags) if _tag(i) not in have_tags]
    if missing_tags:
        _log(f"tags: {len(have_tags)} listed, pushing {len(missing_tags)}")
        elapsed = push_tags(target, body, missing_tags, concurrency)
        _log(
            f"  {len(missing_tags)} tags in {elapsed:.1f}s"
            f" ({len(missing_tags) / elapsed:.0f}/s)"
        )
    names = [_repository(i) for i in range(repositories)]
    missing = [name for name in names if name not in have_repositories]
    if missing:
        _log(f"repositories: {len(have_repositories)} listed, pushing {len(missing)}")
        elapsed = push_repositories(target, image, body, missing, concurrency)
        _log(
            f"  {len(missing)} repositories in {elapsed:.1f}s"
            f" ({len(missing) / elapsed:.0f}/s)"
        )


def existing(target: Target) -> tuple[set[str], set[str]]:
    """The generated tags and repositories the API lists now."""
    conn = target.connect()
    try:
        tags = list_paginated(
            conn,
            target.tokens.pull_token(TAGGED_REPO),
            f"/v2/{TAGGED_REPO}/tags/list?n=10000",
            "tags",
        ).items
        names = list_paginated(
            conn,
            target.tokens.catalog_token(),
            f"/v2/_catalog?n=10000&last={quote(REPO_PREFIX, safe='')}",
            "repositories",
        ).items
    finally:
        conn.close()
    generated = {
        n
        for n in names
        if n.startswith(REPO_PREFIX) and n[len(REPO_PREFIX) :].isdigit()
    }
    return {t for t in tags if t.startswith("t")}, generated


def push_tags(
    target: Target, body: bytes, indexes: list[int], concurrency: int
) -> float:
    def tag(conn: Connection, index: int) -> None:
        # Asked each time (it is cached): a long fill outlives one token.
        token = target.tokens.push_token(TAGGED_REPO)
        put_manifest(conn, token, TAGGED_REPO, _tag(index), body)

    return _in_slices(target, indexes, tag, concurrency)


def push_repositories(
    target: Target,
    image: tuple[Blob, Blob],
    body: bytes,
    names: list[str],
    concurrency: int,
) -> float:
    def fill_batch(conn: Connection, batch: list[str]) -> None:
        token = target.tokens.token(
            f"repository:{BASE_REPO}:pull",
            *(f"repository:{r}:pull,push" for r in batch),
        )
        for repository in batch:
            for blob in image:
                mount_blob(conn, token, repository, blob.digest, BASE_REPO)
            put_manifest(conn, token, repository, "latest", body)

    return _in_slices(
        target, batched(names, _SCOPES_PER_TOKEN), fill_batch, concurrency
    )


def _in_slices(
    target: Target,
    jobs: list[J],
    work: Callable[[Connection, J], None],
    concurrency: int,
) -> float:
    """`parallel` over slices of `jobs`, logging progress between slices."""
    total = 0.0
    step = max(1000, concurrency * 100)
    for start in range(0, len(jobs), step):
        total += parallel(target, jobs[start : start + step], work, concurrency)
        _log(f"  {min(start + step, len(jobs))}/{len(jobs)} after {total:.0f}s")
    return total


def check(target: Target, samples: int) -> dict[str, object]:
    """Time the lookups that should not grow with the number of tags or repositories."""
    tag_names, repository_names = existing(target)
    tags, repositories = len(tag_names), len(repository_names)
    pull = target.tokens.pull_token(TAGGED_REPO)
    catalog = target.tokens.catalog_token()
    last_tag = _tag(max(tags - PAGE - 1, 0))
    last_repository = _repository(max(repositories - PAGE - 1, 0))
    lookups = {
        "tag list, first page": (f"/v2/{TAGGED_REPO}/tags/list?n={PAGE}", pull, {}),
        "tag list, last page": (
            f"/v2/{TAGGED_REPO}/tags/list?n={PAGE}&last={last_tag}",
            pull,
            {},
        ),
        "catalog, first page": (f"/v2/_catalog?n={PAGE}", catalog, {}),
        "catalog, last page": (
            f"/v2/_catalog?n={PAGE}&last={quote(last_repository, safe='')}",
            catalog,
            {},
        ),
        "manifest GET by tag": (
            f"/v2/{TAGGED_REPO}/manifests/{_tag(max(tags - 1, 0))}",
            pull,
            {"accept": OCI_MANIFEST},
        ),
    }
    figures: dict[str, object] = {"tags": tags, "repositories": repositories}
    conn = target.connect()
    try:
        for label, (path, token, extra) in lookups.items():
            figures[label] = _time_lookup(conn, path, bearer(token, **extra), samples)
    finally:
        conn.close()
    _print_check(figures)
    return figures


def _time_lookup(
    conn: Connection, path: str, headers: dict[str, str], samples: int
) -> dict[str, float]:
    expect(conn.request("GET", path, headers), 200, f"GET {path}")  # warm up, and check
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        expect(conn.request("GET", path, headers), 200, f"GET {path}")
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p90_ms": times[int(0.9 * (len(times) - 1))],
    }


def _print_check(figures: dict[str, object]) -> None:
    print(f"\n{figures['tags']} tags, {figures['repositories']} generated repositories")
    print(f"{'lookup':<24} {'median ms':>10} {'p90 ms':>10}")
    for label, value in figures.items():
        if isinstance(value, dict):
            print(f"{label:<24} {value['median_ms']:>10.2f} {value['p90_ms']:>10.2f}")
    sys.stdout.flush()


def _tag(index: int) -> str:
    return f"t{index:07d}"


def _repository(index: int) -> str:
    return f"{REPO_PREFIX}{index:07d}"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
