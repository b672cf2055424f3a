"""Start, verify, measure and stop the two servers under test.

    <work dir>/
      dockyard/          Dockyard's data dir (SQLite, blobs, keys/token.crt)
      dockyard.log
      reference/         the Go registry's filesystem storage
      reference.yml      its configuration (token auth trusting Dockyard)
      reference.log

Both listen on 127.0.0.1 on a port picked at run time. A server counts as
started only when the process we launched is alive and the answer on its port
proves it is ours: Dockyard accepts the random admin password we gave it, the
Go registry challenges with the realm we wrote into its configuration. Each is
stopped by its own PID (SIGTERM, then SIGKILL after a grace period), and so is
any child process that outlives it. The children also get SIGTERM from the
kernel if this script dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import base64
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from httpconn import Connection, Reply

_PR_SET_PDEATHSIG = 1
_READY_SECONDS = 60.0
_STOP_SECONDS = 15.0
REPO_ROOT = Path(__file__).resolve().parent.parent


class ServerFailed(Exception):
    """A server did not start, or what answers on its port is not ours."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # pid -> start time (clock ticks since boot) of each child seen, so a PID
    # the kernel gave to another process since is never signalled.
    known_children: dict[int, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The main process and all its descendants (Dockyard's workers)."""
        found, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            queue.extend(_children(pid))
        for pid in found[1:]:
            started = _start_time(pid)
            if started is not None:
                self.known_children.setdefault(pid, started)
        return found

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the main process, SIGKILL it after a grace period, then
        SIGKILL any of its children still running. Only PIDs we started."""
        if self.alive():
            self.pids()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(_STOP_SECONDS)
        for pid, started in self.known_children.items():
            if _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _children(pid: int) -> list[int]:
    result: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return result
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        result.extend(int(child) for child in text.split())
    return result


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the command name; start time is field 22 of the whole line.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _spawn(
    command: list[str], log_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    # The child keeps its own copy of the log's descriptor.
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us; we stop the servers
            # Servers start before this script runs any thread, so the usual
            # risk of preexec_fn (a lock held by another thread) does not apply.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )


def start_dockyard(
    data_dir: Path, log_path: Path, workers: int, password: str
) -> Server:
    """Dockyard on a free port; `password` is the admin's on a fresh data dir."""
    port = free_port()
    env = {
        **os.environ,
        "DOCKYARD_ADMIN_PASSWORD": password,
        "DOCKYARD_LOG_LEVEL": "warning",
    }
    env.pop("DOCKYARD_CONFIG", None)
    command = [
        str(Path(sys.executable).parent / "dockyard"),
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    server = Server(
        "dockyard", f"http://127.0.0.1:{port}", _spawn(command, log_path, env), log_path
    )
    basic = base64.b64encode(f"admin:{password}".encode()).decode()
    _wait_ready(
        server, lambda reply: reply.status == 200, {"authorization": f"Basic {basic}"}
    )
    return server


def reference_config(storage: Path, port: int, dockyard_url: str, cert: Path) -> str:
    return f"""\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {os.urandom(16).hex()}
auth:
  token:
    realm: {dockyard_url}/service/token
    service: dockyard
    issuer: dockyard-token-issuer
    rootcertbundle: {cert}
"""


def start_reference(work: Path, dockyard: Server, cert: Path) -> Server:
    """The Go registry on a free port, trusting tokens signed for `cert`."""
    storage = work / "reference"
    storage.mkdir()
    port = free_port()
    config = work / "reference.yml"
    config.write_text(reference_config(storage, port, dockyard.url, cert))
    log_path = work / "reference.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REGISTRY_")
    }
    process = _spawn(["docker-registry", "serve", str(config)], log_path, env)
    server = Server("reference", f"http://127.0.0.1:{port}", process, log_path)
    realm = f'realm="{dockyard.url}/service/token"'
    _wait_ready(
        server,
        lambda reply: (
            reply.status == 401 and realm in (reply.header("www-authenticate") or "")
        ),
        {},
    )
    return server


def _wait_ready(
    server: Server, is_ours: Callable[[Reply], bool], headers: dict[str, str]
) -> None:
    """Poll `GET /v2/` until it answers; stop the server and raise unless the
    answer passes `is_ours`, the process died, or it takes too long."""
    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerFailed(f"{server.name} exited: see {server.log_path}")
        try:
            conn = Connection(server.url, timeout=5)
            try:
                reply = conn.request("GET", "/v2/", headers)
            finally:
                conn.close()
        except OSError:
            time.sleep(0.2)
            continue
        if not is_ours(reply):
            server.stop()
            raise ServerFailed(f"what answers on {server.url} is not our {server.name}")
        return
    server.stop()
    raise ServerFailed(
        f"{server.name} not ready in {_READY_SECONDS:.0f}s: see {server.log_path}"
    )


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS over `pids` (processes that vanished count as 0)."""
    return sum(_status_kib(pid, "VmRSS:") for pid in pids) * 1024


def peak_rss_bytes(pids: list[int]) -> int:
    """Sum of VmHWM (each process's own peak RSS) over `pids`."""
    return sum(_status_kib(pid, "VmHWM:") for pid in pids) * 1024


def reset_peak_rss(pids: list[int]) -> None:
    """Reset each process's VmHWM to its current RSS (Linux clear_refs 5)."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass


def pss_bytes(pids: list[int]) -> int:
    """Sum of PSS over `pids`: pages shared between them counted once in total."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total * 1024


def _status_kib(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0
