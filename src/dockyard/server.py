"""The serving process: granian running the application in worker processes.

`dockyard serve` validates the settings, prepares the data directory and then
replaces itself with this module (`exec`), so that the long-lived supervisor
process holds only granian, not everything the start-up checks imported.
The settings arrive as JSON in `SETTINGS_ENV`, without secrets.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

SETTINGS_ENV = "DOCKYARD_INTERNAL_SETTINGS"
# prometheus-client's switch to multiprocess mode (see dockyard.metrics).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def main() -> None:
    from granian import Granian

    settings = json.loads(os.environ[SETTINGS_ENV])
    # Fresh worker processes, not forks of this one: a fork inherits granian's
    # supervisor signal handler and swallows a SIGTERM that comes while it
    # still loads the app (before it installs its own), and the supervisor then
    # waits out the whole shutdown timeout. A spawned worker that is not
    # serving yet simply ends on SIGTERM.
    multiprocessing.set_start_method("spawn")
    host, _, port = settings["listen"].rpartition(":")
    refuse_taken_address(settings["listen"], host, int(port))
    _start_metrics(settings)
    server = Granian(
        "dockyard.app:app_from_environment",
        factory=True,
        address=host,
        port=int(port),
        interface="asgi",
        workers=settings["workers"],
        log_access=False,
        log_dictconfig=_granian_log_config(settings),
        backlog=2048,
        # SIGTERM: stop accepting, let requests in flight finish, and stop
        # workers hard only after this long.
        workers_kill_timeout=settings["shutdown_timeout_seconds"],
    )
    try:
        server.serve()
    except RuntimeError as exc:
        # Binding fails in granian's Rust core, surfacing as RuntimeError.
        if "address already in use" not in str(exc).lower():
            raise
        listen = settings["listen"]
        print(
            f"error: cannot listen on {listen}: address already in use", file=sys.stderr
        )
        sys.exit(2)


def _start_metrics(settings: dict[str, Any]) -> None:
    """Prepare multiprocess metrics before any worker starts and, with
    `metrics.listen`, serve them from this process on that address."""
    options = settings["metrics"]
    if not options["enabled"]:
        return
    directory = Path(options["directory"] or Path(settings["data_dir"]) / "metrics")
    enable_multiprocess(directory)
    if options["listen"] is None:
        return
    from prometheus_client import start_http_server

    from dockyard.metrics import multiprocess_registry

    host, _, port = options["listen"].rpartition(":")
    refuse_taken_address(options["listen"], host, int(port))
    start_http_server(int(port), host.strip("[]"), registry=multiprocess_registry())


def enable_multiprocess(directory: Path) -> None:
    """Make this process and the workers it starts write metric samples under
    `directory`, emptied first (stale files would add old counts). Must run
    before prometheus-client is imported: it picks file-backed values then."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROCESS_ENV] = str(directory)


def _granian_log_config(settings: dict[str, Any]) -> dict[str, Any] | None:
    """Granian's own lines in the chosen format (JSON lines need our formatter)."""
    if settings["log_format"] != "json":
        return None
    from dockyard.logging import granian_json_config

    return granian_json_config(settings["log_level"])


def refuse_taken_address(listen: str, host: str, port: int, hint: str = "") -> None:
    """Exit (code 2) if something listens on the address already, printing
    `hint` after the reason. Granian binds with SO_REUSEPORT, which would let
    a second server share the port silently."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    # Connections a stopped server closed linger in TIME_WAIT for a minute;
    # with SO_REUSEADDR (as granian binds) only a live listener refuses us.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host.strip("[]"), port))
    except OSError as exc:
        print(
            f"error: cannot listen on {listen}: {exc.strerror.lower()}{hint}",
            file=sys.stderr,
        )
        sys.exit(2)
    finally:
        probe.close()


if __name__ == "__main__":
    main()
