"""Dockyard and the Go reference registry (Debian's `docker-registry`), side by side.

    .venv/bin/python bench/run.py [--quick] [--out bench/results/NAME.json]

Starts both servers on 127.0.0.1 (free ports, fresh data in a temporary
directory), both behind bearer tokens from Dockyard's token service, loads the
same fixtures into each, then measures every figure interleaved: round 1 on
Dockyard, round 1 on the reference, round 2 on Dockyard, ... and reports the
median of each server's rounds and the ratio Dockyard / reference. It prints a
table and writes the raw rounds as JSON. It asserts nothing about time. A
round in which a server answers wrongly (wrong digest, missing tags, failed
requests under load) is recorded and the exit status becomes 1; a server
that dies ends the run. Both servers are stopped on exit, Ctrl-C and failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import loadgen
from figures import FULL, MIB, QUICK, Bench, Plan, Target
from registry import TokenSource
from servers import REPO_ROOT, Server, ServerFailed, start_dockyard, start_reference

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Ratios closer to 1 than this are shown as a tie.
_TIE = 0.05


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Group:
    key: str
    method: str
    metrics: tuple[Metric, ...]
    stream: bool = False


def groups(plan: Plan) -> list[Group]:
    """Every figure, in the order measured."""
    blob = _size(plan.blob_bytes)
    chunks = -(-plan.blob_bytes // plan.chunk_bytes)
    load = f"{plan.connections} conn"
    return [
        Group(
            "monolithic_push",
            "measure_monolithic_push",
            (Metric("mb_per_s", f"blob push, monolithic, {blob}", "MB/s", True),),
        ),
        Group(
            "chunked_push",
            "measure_chunked_push",
            (
                Metric(
                    "mb_per_s",
                    f"blob push, chunked ({chunks} PATCH), {blob}",
                    "MB/s",
                    True,
                ),
            ),
        ),
        Group(
            "pull",
            "measure_pull",
            (Metric("mb_per_s", f"blob pull, {_size(plan.pull_bytes)}", "MB/s", True),),
        ),
        Group(
            "manifest_get",
            "measure_manifest_get",
            (
                Metric("per_s", f"manifest GET by tag, {load} (wrk)", "req/s", True),
                Metric("p50_ms", "  p50 latency", "ms", False),
                Metric("p99_ms", "  p99 latency", "ms", False),
            ),
        ),
        Group(
            "blob_head",
            "measure_blob_head",
            (
                Metric("per_s", f"blob HEAD, {load} (ab)", "req/s", True),
                Metric("p50_ms", "  p50 latency", "ms", False),
                Metric("p99_ms", "  p99 latency", "ms", False),
            ),
        ),
        Group(
            "manifest_push",
            "measure_manifest_push",
            (
                Metric(
                    "per_s",
                    f"manifest push, {plan.manifests} distinct, "
                    f"{plan.manifest_concurrency} at a time",
                    "manifests/s",
                    True,
                ),
            ),
        ),
        Group(
            "tag_list",
            "measure_tag_list",
            (
                Metric(
                    "seconds",
                    f"tag list, {plan.tags} tags, n={plan.tag_page} + Link",
                    "s",
                    False,
                ),
                Metric(
                    "one_request_seconds",
                    f"  same, one request (n={plan.tags})",
                    "s",
                    False,
                ),
            ),
        ),
        Group(
            "catalog",
            "measure_catalog",
            (
                Metric(
                    "seconds",
                    f"catalog, {plan.repositories}+ repositories, "
                    f"n={plan.catalog_page} + Link",
                    "s",
                    False,
                ),
            ),
        ),
        Group(
            "concurrent_push",
            "measure_concurrent_push",
            (
                Metric(
                    "seconds",
                    f"{plan.concurrent_pushes} concurrent pushes of one "
                    f"{_size(plan.concurrent_layer_bytes)} layer",
                    "s",
                    False,
                ),
                Metric(
                    "correct", "  repositories serving the right digest", "count", True
                ),
            ),
        ),
        Group(
            "stream_rss",
            "measure_stream_rss",
            (
                Metric(
                    "peak_rss_mib",
                    f"peak RSS, {_size(plan.stream_bytes)} streamed push (sampled sum)",
                    "MiB",
                    False,
                ),
                Metric(
                    "hwm_sum_mib", "  sum of per-process peaks (VmHWM)", "MiB", False
                ),
                Metric("idle_rss_mib", "  RSS before the push", "MiB", False),
                Metric(
                    "pss_after_mib",
                    "  PSS after the push (shared pages split)",
                    "MiB",
                    False,
                ),
                Metric("mb_per_s", "  streamed push rate", "MB/s", True),
            ),
            stream=True,
        ),
    ]


def _size(count: int) -> str:
    return f"{count / 1024**3:g} GiB" if count >= 1024**3 else f"{count / MIB:g} MiB"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke run"
    )
    parser.add_argument("--out", type=Path, help="JSON results file")
    parser.add_argument(
        "--workers", type=int, default=2, help="Dockyard worker processes"
    )
    parser.add_argument("--rounds", type=int, help="rounds per figure (median taken)")
    parser.add_argument("--seconds", type=float, help="duration of each load run")
    parser.add_argument("--only", help="comma-separated figure keys to run")
    parser.add_argument(
        "--work-dir", type=Path, help="parent of the temporary data dirs"
    )
    parser.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    return parser.parse_args(argv)


def choose_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if args.seconds:
        plan = replace(plan, load_seconds=args.seconds)
    return plan


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = choose_plan(args)
    selected = [
        g for g in groups(plan) if not args.only or g.key in args.only.split(",")
    ]
    for tool in ("docker-registry", "wrk", "ab"):
        loadgen.require(tool)
    # Started in the background, a shell leaves SIGINT ignored; take it back so
    # an interrupt always stops the servers through the `finally` below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)

    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=args.work_dir))
    servers: list[Server] = []
    report = {"meta": describe_run(plan, args), "setup": {}, "figures": {}}
    status = 0
    try:
        targets = start_targets(work, args.workers, servers)
        report["figures"] = run_groups(Bench(plan), targets, selected, report)
    except KeyboardInterrupt:
        _log("interrupted: stopping the servers")
        report["meta"]["interrupted"] = True
        status = 130
    except (ServerFailed, loadgen.LoadToolMissing) as exc:
        _log(f"error: {exc}")
        report["meta"]["error"] = str(exc)
        status = 1
    finally:
        for server in reversed(servers):
            server.stop()
        report["meta"]["loadavg_end"] = _loadavg()
        if args.keep:
            _log(f"data and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    summary = summarize(selected, report["figures"])
    report["summary"] = summary
    print(format_table(summary, report["meta"]))
    out = (
        args.out or RESULTS_DIR / f"{'quick' if args.quick else 'full'}-{_stamp()}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    _log(f"results written to {out}")
    failed = failed_figures(report["figures"])
    if failed and status == 0:
        _log(f"wrong answers or errors in: {', '.join(failed)} (see the JSON)")
        status = 1
    return status


def failed_figures(figures: dict[str, object]) -> list[str]:
    """Figures where a round raised (a wrong answer, not a slow one) or a load
    run counted failed requests."""
    failed = []
    for key, record in figures.items():
        if not isinstance(record, dict):
            continue
        errors = any(record["errors"].values())
        failures = any(
            r.get("failures") for rounds in record["rounds"].values() for r in rounds
        )
        if errors or failures:
            failed.append(key)
    return failed


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def start_targets(work: Path, workers: int, servers: list[Server]) -> list[Target]:
    """Start Dockyard, then the reference trusting Dockyard's token certificate;
    probe each and load the fixtures. Started servers are appended to `servers`
    at once, so the caller stops them whatever happens next."""
    password = f"Bench-{secrets.token_urlsafe(12)}-9a"
    _log(f"starting Dockyard ({workers} workers) and docker-registry in {work}")
    dockyard = start_dockyard(
        work / "dockyard", work / "dockyard.log", workers, password
    )
    servers.append(dockyard)
    reference = start_reference(
        work, dockyard, work / "dockyard" / "keys" / "token.crt"
    )
    servers.append(reference)
    tokens = TokenSource(dockyard.url, "admin", password)
    targets = [Target.of(dockyard, tokens), Target.of(reference, tokens)]
    _log(
        f"dockyard {dockyard.url} (pid {dockyard.pid}), reference {reference.url} "
        f"(pid {reference.pid})"
    )
    return targets


def run_groups(
    bench: Bench, targets: list[Target], selected: list[Group], report: dict
) -> dict[str, object]:
    """Load the fixtures into each target, then run each figure's rounds.
    Results land in `report["figures"]` as they come, so an interrupted run
    still reports what it measured."""
    _log("loading fixtures")
    for target in targets:
        start = time.perf_counter()
        bench.prepare(target, {group.key for group in selected}, _log)
        mode = "POST ?digest=" if target.single_post else "POST + PUT ?digest="
        report["meta"].setdefault("monolithic_mode", {})[target.name] = mode
        report["setup"][target.name] = target.setup_seconds
        _log(
            f"  {target.name}: ready in {time.perf_counter() - start:.1f}s"
            f" (monolithic: {mode})"
        )
    results: dict[str, object] = report["figures"]
    for group in selected:
        results[group.key] = run_group(bench, targets, group)
    return results


def run_group(bench: Bench, targets: list[Target], group: Group) -> dict[str, object]:
    """Rounds of one figure, interleaved across the targets."""
    rounds = bench.plan.stream_rounds if group.stream else bench.plan.rounds
    measure: Callable[[Target, int], dict[str, float]] = getattr(bench, group.method)
    record: dict[str, dict[str, list[object]]] = {
        "rounds": {t.name: [] for t in targets},
        "errors": {t.name: [] for t in targets},
    }
    _log(f"{group.key}: {rounds} round(s)")
    for round_ in range(rounds):
        for target in targets:
            try:
                values = measure(target, round_)
            except (ServerFailed, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                record["errors"][target.name].append(f"round {round_}: {exc!r}")
                _log(f"  {target.name} round {round_}: FAILED {exc!r}")
                traceback.print_exc(limit=3, file=sys.stderr)
                server = target.server
                if server is not None and not server.alive():
                    raise ServerFailed(f"{target.name} died: see {server.log_path}")
                continue
            record["rounds"][target.name].append(values)
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            _log(f"  {target.name} round {round_}: {shown}")
    return record


def summarize(
    selected: list[Group], figures: dict[str, object]
) -> list[dict[str, object]]:
    rows = []
    for group in selected:
        record = figures.get(group.key)
        if not isinstance(record, dict):
            continue
        for metric in group.metrics:
            medians = {
                name: _median([r.get(metric.key) for r in rounds])
                for name, rounds in record["rounds"].items()
            }
            failures = {
                name: sum(1 for r in rounds if r.get("failures"))
                + len(record["errors"][name])
                for name, rounds in record["rounds"].items()
            }
            rows.append(_row(group, metric, medians, failures))
    return rows


def _row(
    group: Group, metric: Metric, medians: dict, failures: dict
) -> dict[str, object]:
    mine, theirs = medians.get("dockyard"), medians.get("reference")
    ratio = mine / theirs if mine is not None and theirs else None
    if ratio is None:
        better = "?"
    elif abs(ratio - 1) <= _TIE:
        better = "tie"
    else:
        better = "dockyard" if (ratio > 1) == metric.higher_is_better else "reference"
    return {
        "figure": group.key,
        "metric": metric.key,
        "label": metric.label,
        "unit": metric.unit,
        "higher_is_better": metric.higher_is_better,
        "dockyard": mine,
        "reference": theirs,
        "ratio": ratio,
        "better": better,
        "rounds_with_failures": failures,
    }


def _median(values: list[object]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    return statistics.median(numbers) if numbers else None


def format_table(rows: list[dict[str, object]], meta: dict[str, object]) -> str:
    header = (
        f"{'figure':<58} {'unit':<12} {'Dockyard':>10} {'reference':>10}"
        f" {'D/ref':>7}  better"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = row["ratio"]
        flagged = any(row["rounds_with_failures"].values())  # type: ignore[union-attr]
        lines.append(
            f"{row['label']:<58} {row['unit']:<12} {_fmt(row['dockyard']):>10} "
            f"{_fmt(row['reference']):>10} "
            f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>7}  {row['better']}"
            + ("  (failures: see JSON)" if flagged else "")
        )
    plan = meta["plan"]
    lines.append(
        f"\nmedians of {plan['rounds']} interleaved rounds"  # type: ignore[index]
        f" (streamed push: {plan['stream_rounds']});"  # type: ignore[index]
        " D/ref = Dockyard / reference; 'better' minds each unit's direction"
    )
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2g}"
    return "-" if value is None else str(value)


def describe_run(plan: Plan, args: argparse.Namespace) -> dict[str, object]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "plan": asdict(plan),
        "dockyard_workers": args.workers,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
            "memory_gib": round(
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1
            ),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "loadavg_start": _loadavg(),
        "versions": {
            "dockyard_commit": _command(
                ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]
            ),
            "dockyard_tree_dirty": bool(
                _command(
                    ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"]
                )
            ),
            "docker-registry": _command(["docker-registry", "--version"]),
            "wrk": _dpkg_version("wrk"),
            "ab": _dpkg_version("apache2-utils"),
        },
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def _dpkg_version(package: str) -> str:
    return _command(["dpkg-query", "-W", "-f", "${Version}", package])


def _command(command: list[str]) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return ""
    return (result.stdout or result.stderr).strip()


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
