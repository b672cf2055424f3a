"""The serving process: granian running the application in worker processes.

`dockyard serve` validates the settings, prepares the data directory and then
replaces itself with this module (`exec`), so that the long-lived supervisor
process holds only granian, not everything the start-up checks imported.
The settings arrive as JSON in `SETTINGS_ENV`, without secrets.
"""

from __future__ import annotations

import json
import os
import socket
import sys

SETTINGS_ENV = "DOCKYARD_INTERNAL_SETTINGS"


def main() -> None:
    from granian import Granian

    settings = json.loads(os.environ[SETTINGS_ENV])
    host, _, port = settings["listen"].rpartition(":")
    _refuse_taken_address(settings["listen"], host, int(port))
    server = Granian(
        "dockyard.app:app_from_environment",
        factory=True,
        address=host,
        port=int(port),
        interface="asgi",
        workers=settings["workers"],
        log_access=False,
        backlog=2048,
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


def _refuse_taken_address(listen: str, host: str, port: int) -> None:
    """Exit if something listens on the address already. Granian binds with
    SO_REUSEPORT, which would let a second server share the port silently."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.bind((host.strip("[]"), port))
    except OSError as exc:
        print(
            f"error: cannot listen on {listen}: {exc.strerror.lower()}", file=sys.stderr
        )
        sys.exit(2)
    finally:
        probe.close()


if __name__ == "__main__":
    main()
