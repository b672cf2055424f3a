"""A fault-injecting reverse proxy for tests, put between Dockyard and a real
upstream registry (Debian's docker-registry).

It is no stand-in: every request goes to the real registry and its answer
comes back byte for byte, until a test switches a fault on. Then requests
whose path matches the fault are answered by the proxy instead:

- `status`: an error status (429 with `Retry-After` and `RateLimit-*`
  headers, 500, 502, 503) and a small JSON body;
- `hang`: nothing is answered until the fault is cleared or the proxy
  stops (the client's timeout fires first);
- `reset`: the connection is reset (TCP RST) before any answer;
- `cut`: the real answer starts, and the connection is reset after
  `after_bytes` of its body (an upstream dying mid-stream);
- `stall`: the real answer starts, and after `after_bytes` of its body the
  proxy waits until `release()` (to hold one transfer open at a known
  point); `reached` is set when it got there;
- `ignore_range`: the `Range` header is dropped on the way (an upstream
  that ignores ranges).

`count` limits a fault to the first so many matching requests. Every
request is recorded in `seen` (method, path, Range header), so a test can
tell that Dockyard really asked the upstream, and once its whole answer was
relayed, in `completed`.

The proxy is a threaded HTTP/1.1 server on 127.0.0.1, on a port the system
chose; `stop()` ends it and frees whatever waits in it.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers of one hop only: never forwarded (RFC 9110, section 7.6.1).
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_PIECE = 64 * 1024
# How long a hung or stalled request waits at most, so that no thread of a
# failed test outlives it for long.
_MAX_WAIT_SECONDS = 120


@dataclass
class Fault:
    kind: str
    path: str = r".*"
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    after_bytes: int = 0
    count: int | None = None
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def applies(self, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if re.search(self.path, path) is None:
            return False
        if self.count is not None:
            self.count -= 1
        return True

    def release(self) -> None:
        self.released.set()


def rate_limited(retry_after: int = 7, path: str = r".*") -> Fault:
    """429 as Docker Hub answers it: Retry-After and RateLimit headers."""
    return Fault(
        "status",
        path,
        429,
        {
            "retry-after": str(retry_after),
            "ratelimit-limit": "100;w=21600",
            "ratelimit-remaining": "0;w=21600",
        },
    )


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    range: str | None


class FaultyProxy:
    def __init__(self, target: str) -> None:
        """`target`: the real upstream's HOST:PORT."""
        self.target = target
        self.seen: list[Seen] = []
        self.completed: list[Seen] = []
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever)

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        """Switch `fault` on (None: forward everything again). What waited
        in the previous fault is let go."""
        with self._lock:
            previous, self._fault = self._fault, fault
        if previous is not None:
            previous.release()

    def clear(self) -> None:
        self.fault = None

    def asked(
        self, method: str, pattern: str, completed: bool = False
    ) -> list[Seen]:
        """The requests seen (or `completed`) with `method` and a path
        matching `pattern`."""
        with self._lock:
            seen = list(self.completed if completed else self.seen)
        return [s for s in seen if s.method == method and re.search(pattern, s.path)]

    def _complete(self, seen: Seen) -> None:
        with self._lock:
            self.completed.append(seen)

    def _record(self, seen: Seen) -> Fault | None:
        with self._lock:
            self.seen.append(seen)
            fault = self._fault
            if fault is not None and fault.applies(seen.path):
                return fault
            return None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """Connections the client or a fault broke are expected here."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _handler_for(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        owner = proxy

    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultyProxy

    def log_message(self, format, *args):  # noqa: A002 - the base's name
        pass  # the test's output stays readable

    def do_GET(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self):
        body = self._request_body()
        seen = Seen(self.command, self.path, self.headers.get("range"))
        fault = self.owner._record(seen)
        kind = fault.kind if fault else None
        if kind == "status":
            return self._answer_status(fault)
        if kind == "hang":
            fault.released.wait(_MAX_WAIT_SECONDS)
            return self._reset()
        if kind == "reset":
            return self._reset()
        if self._forward(body, fault):
            self.owner._complete(seen)

    def _request_body(self) -> bytes | None:
        length = self.headers.get("content-length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        return None

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline()

    def _answer_status(self, fault: Fault) -> None:
        body = json.dumps(
            {"errors": [{"code": "UNAVAILABLE", "message": "injected fault"}]}
        ).encode()
        self.send_response(fault.status)
        for name, value in fault.headers.items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
        self.close_connection = True
        self.rfile.close()  # the last other reference to the socket's file
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.connection.close()

    def _forward(self, body: bytes | None, fault: Fault | None) -> bool:
        """Relay the request and its answer; False if the answer was cut."""
        upstream = http.client.HTTPConnection(self.owner.target, timeout=60)
        try:
            upstream.request(
                self.command, self.path, body=body, headers=self._forwarded(fault)
            )
            response = upstream.getresponse()
            return self._relay(response, fault)
        finally:
            upstream.close()

    def _forwarded(self, fault: Fault | None) -> dict[str, str]:
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP
        }
        if fault is not None and fault.kind == "ignore_range":
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        return headers

    def _relay(self, response: http.client.HTTPResponse, fault: Fault | None) -> bool:
        length = response.getheader("content-length")
        content = None
        if length is None and self.command != "HEAD":
            content = response.read()
            length = str(len(content))
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        if length is not None:
            self.send_header("content-length", length)
        self.end_headers()
        if self.command == "HEAD":
            return True
        if content is not None:
            self.wfile.write(content)
            return True
        return self._relay_body(response, fault)

    def _relay_body(
        self, response: http.client.HTTPResponse, fault: Fault | None
    ) -> bool:
        sent = 0
        declared = int(response.getheader("content-length") or 0)
        waits = fault is not None and fault.kind in ("cut", "stall")
        while piece := response.read(_PIECE):
            if waits and sent + len(piece) >= fault.after_bytes:
                head = piece[: fault.after_bytes - sent]
                self.wfile.write(head)
                sent += len(head)
                piece = piece[len(head) :]
                waits = False
                if fault.kind == "cut":
                    self._reset()
                    return False
                fault.reached.set()
                fault.released.wait(_MAX_WAIT_SECONDS)
            self.wfile.write(piece)
            sent += len(piece)
        if sent < declared:
            # The upstream ended its answer early (the Go registry's 416
            # declares the blob's length): end ours the same way.
            self.close_connection = True
        return True
