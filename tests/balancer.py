"""A round-robin HTTP load balancer in front of several Dockyard replicas.

nginx from Debian, started in the foreground with a configuration of the test's
own on a free 127.0.0.1 port, and stopped by PID. Each request (not each
connection) goes to the next replica, so consecutive requests of one client,
the PATCHes of a chunked upload included, land on different replicas. Bodies
stream through unbuffered in both directions, as a production balancer should
be set up for a registry.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port, stop_process

NGINX = "/usr/sbin/nginx"
_STARTUP_SECONDS = 15

_CONFIG = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log combined;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    upstream dockyard {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size {max_body_size};
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_next_upstream error timeout;
        location / {{
            proxy_pass http://dockyard;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class Balancer:
    """nginx balancing requests across `backends` ("host:port" each)."""

    def __init__(
        self, root: Path, backends: list[str], max_body_size: str = "0"
    ) -> None:
        """`max_body_size`: nginx's `client_max_body_size` (0: no limit);
        a larger request body is answered 413."""
        self.root = root
        self.backends = backends
        self.max_body_size = max_body_size
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Balancer:
        """Start nginx; return once it answers on its port, or raise."""
        if shutil.which(NGINX) is None:
            raise RuntimeError("nginx is missing: ./scripts/test installs it")
        self.root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {b};" for b in self.backends)
        config = self.root / "nginx.conf"
        config.write_text(
            _CONFIG.format(
                root=self.root,
                servers=servers,
                port=self.port,
                max_body_size=self.max_body_size,
            )
        )
        self._process = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(config), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "stderr.log").open("ab"),
        )
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.error_log()}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not answer:\n{self.error_log()}")

    def _answers(self) -> bool:
        # Any registry's answer to /v2/ (Dockyard's, the Go registry's) carries
        # this header; nothing else on the port (had another process taken
        # it) would.
        try:
            response = httpx.get(f"{self.url}/v2/", timeout=2)
        except httpx.HTTPError:
            return False
        return response.headers.get("docker-distribution-api-version") is not None

    def access_log(self) -> str:
        path = self.root / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def error_log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
