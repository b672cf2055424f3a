"""A hostile registry: an HTTP server on 127.0.0.1 (port 0) that answers
whatever a test tells it to.

No real registry lies about digests, pages forever or sends a catalog of
names no registry may hold, so no real one can play this part: it is a
stand-in for a registry gone bad (or an attacker's). A test maps paths
(without the query) to `Answer`s or to functions that build one; every
request is recorded with its headers, and how many body bytes each answer
got out before the client stopped reading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # bytes, or pieces sent one after the other (a stream).
    body: bytes | Iterable[bytes] = b""


@dataclass
class Seen:
    method: str
    target: str  # path and query
    headers: dict[str, str]  # names in lower case
    sent: int = 0  # body bytes written before the client went away


Route = Answer | Callable[["Seen"], Answer]


class HostileRegistry:
    """Serves `routes[path]` (an `Answer`, or a function of the request),
    else what `fallback` builds, else 404. `requests` holds every request
    seen, oldest first."""

    def __init__(
        self,
        routes: dict[str, Route] | None = None,
        fallback: Callable[[Seen], Answer] | None = None,
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.fallback = fallback
        self.requests: list[Seen] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def seen(self, path: str) -> list[Seen]:
        """The requests made for `path` (query ignored)."""
        return [r for r in self.requests if urlsplit(r.target).path == path]

    def answer(self, seen: Seen) -> Answer:
        route = self.routes.get(urlsplit(seen.target).path)
        if route is None and self.fallback is not None:
            return self.fallback(seen)
        if route is None:
            return Answer(404, {"content-type": "application/json"}, b'{"errors":[]}')
        return route(seen) if callable(route) else route


def _handler(registry: HostileRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.command, self.path, headers)
            registry.requests.append(seen)
            answer = registry.answer(seen)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            body = answer.body
            if isinstance(body, bytes) and "content-length" not in answer.headers:
                self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            pieces = [body] if isinstance(body, bytes) else body
            try:
                for piece in pieces:
                    self.wfile.write(piece)
                    seen.sent += len(piece)
            except OSError:  # the client stopped reading: that is the point
                self.close_connection = True

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler
