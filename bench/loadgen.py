"""Fixed-duration load at N concurrent connections, from external load generators.

`wrk` (C, event loop; Debian package `wrk`) drives GET. It cannot drive HEAD
against a registry: wrk 4.1.0 waits for a body after a HEAD response that
carries a non-zero `Content-Length` (as a blob HEAD must), so every connection
stalls and it counts 0 requests. HEAD therefore goes through ApacheBench (`ab`,
C, single thread; Debian package `apache2-utils`) with keep-alive and `-i`. On
this machine ab and wrk reach the same rate on the same GET (within a few per
cent, both servers), so neither is the bottleneck; `hey` (Go) was tried too and
reached 30-45% less than wrk against Dockyard, so it is not used. Both report
requests per second and latency percentiles (ab's with microsecond resolution
from its `-e` table); errors and non-2xx answers are counted, not hidden.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_WRK_LATENCY_RE = re.compile(
    r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE
)
_AB_PERCENTILE_RE = re.compile(r"^(50|99),([\d.]+)$", re.MULTILINE)


class LoadToolMissing(Exception):
    pass


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int = 0
    notes: list[str] = field(default_factory=list)


# Debian package of each tool the benchmark runs.
PACKAGES = {"wrk": "wrk", "ab": "apache2-utils", "docker-registry": "docker-registry"}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LoadToolMissing(
            f"{tool} not found: apt-get install {PACKAGES.get(tool, tool)}"
        )
    return path


def run_wrk(
    url: str, headers: dict[str, str], seconds: float, connections: int, threads: int
) -> LoadResult:
    command = [
        require("wrk"),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = _run(command + [url], seconds)
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    latencies = {p: float(v) * _UNITS[u] for p, v, u in _WRK_LATENCY_RE.findall(output)}
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if rate is None or total is None or "50" not in latencies:
        raise ValueError(f"cannot read wrk output:\n{output}")
    failures = 0
    notes = []
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        failures += int(non_2xx.group(1))
        notes.append(f"non-2xx: {non_2xx.group(1)}")
    socket_errors = re.search(r"Socket errors:(.*)$", output, re.MULTILINE)
    if socket_errors:
        counts = [int(n) for n in re.findall(r"\d+", socket_errors.group(1))]
        failures += sum(counts)
        notes.append(f"socket errors:{socket_errors.group(1)}")
    return LoadResult(
        float(rate.group(1)),
        latencies["50"],
        latencies["99"],
        int(total.group(1)),
        failures,
        notes,
    )


def run_ab(
    url: str, method: str, headers: dict[str, str], seconds: float, connections: int
) -> LoadResult:
    """ApacheBench with keep-alive; `method` is GET or HEAD (ab's `-i`)."""
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        percentiles = Path(scratch) / "percentiles.csv"
        command = [
            require("ab"),
            "-k",
            "-c",
            str(connections),
            "-t",
            str(max(1, round(seconds))),
            "-n",
            "100000000",  # after -t, which would cap it at 50,000
            "-s",
            "10",
            "-e",
            str(percentiles),
        ]
        if method == "HEAD":
            command.append("-i")
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        output = _run(command + [url], seconds)
        return parse_ab(output, percentiles.read_text())


def parse_ab(output: str, percentiles_csv: str) -> LoadResult:
    latencies = dict(_AB_PERCENTILE_RE.findall(percentiles_csv))
    rate = re.search(r"^Requests per second:\s+([\d.]+)", output, re.MULTILINE)
    complete = re.search(r"^Complete requests:\s+(\d+)", output, re.MULTILINE)
    if rate is None or complete is None or "50" not in latencies:
        raise ValueError(f"cannot read ab output:\n{output}")
    failures = 0
    notes = []
    for label in ("Failed requests", "Non-2xx responses"):
        found = re.search(rf"^{label}:\s+(\d+)", output, re.MULTILINE)
        if found and int(found.group(1)):
            failures += int(found.group(1))
            notes.append(f"{label.lower()}: {found.group(1)}")
    keep_alive = re.search(r"^Keep-Alive requests:\s+(\d+)", output, re.MULTILINE)
    if keep_alive is None or int(keep_alive.group(1)) < int(complete.group(1)):
        notes.append("not every request used keep-alive")
    return LoadResult(
        float(rate.group(1)),
        float(latencies["50"]),
        float(latencies["99"]),
        int(complete.group(1)),
        failures,
        notes,
    )


def _run(command: list[str], seconds: float) -> str:
    # Bounded: the tool stops itself after `seconds`; this is a backstop.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(command[0]).name} failed: {result.stderr.strip()[:500]}"
        )
    return result.stdout
