"""One keep-alive HTTP/1.1 connection to a server on the loopback interface.

The benchmark moves hundreds of megabytes per request, so bodies are sent from
`bytes` (one `sendall`) or from an iterator of pieces without joining them, and
downloads are read into one reused buffer and thrown away. `http.client` is
used underneath: it adds nothing between the socket and these buffers.

Every target must be a path, or an absolute URL naming this connection's own
host and port: a `Location` that points anywhere else raises `ForeignTarget`
instead of being followed.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_READ_SIZE = 1 << 20
_RETRIABLE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    ConnectionResetError,
    BrokenPipeError,
)


class ForeignTarget(Exception):
    """A URL that names a host other than the one this connection serves."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Connection:
    def __init__(self, base_url: str, timeout: float = 900.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"base URL needs a host and a port: {base_url}")
        self.host, self.port = parts.hostname, parts.port
        self._timeout = timeout
        self._conn = self._open()

    def _open(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self._timeout)

    def target(self, url: str) -> str:
        """The request target for `url` (a path, or an absolute URL of this host)."""
        parts = urlsplit(url)
        if parts.netloc and (parts.hostname, parts.port) != (self.host, self.port):
            raise ForeignTarget(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | memoryview | Iterable[bytes] | None = None,
    ) -> Reply:
        """Send one request and read the whole answer.

        A request whose body can be sent again (none, or bytes) is retried once
        on a fresh connection when the server had closed the idle one.
        """
        resendable = body is None or isinstance(body, (bytes, memoryview))
        try:
            return self._exchange(method, url, headers or {}, body)
        except _RETRIABLE:
            self.reopen()
            if not resendable:
                raise
            return self._exchange(method, url, headers or {}, body)

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: object
    ) -> Reply:
        self._conn.request(method, self.target(url), body=body, headers=headers)
        response = self._conn.getresponse()
        data = response.read()
        return Reply(response.status, response.headers, data)

    def download(self, url: str, headers: dict[str, str]) -> tuple[int, int]:
        """GET `url` and discard the body; return (status, bytes received)."""
        try:
            self._conn.request("GET", self.target(url), headers=headers)
            response = self._conn.getresponse()
        except _RETRIABLE:
            self.reopen()
            self._conn.request("GET", self.target(url), headers=headers)
            response = self._conn.getresponse()
        buffer = bytearray(_READ_SIZE)
        received = 0
        while count := response.readinto(buffer):
            received += count
        return response.status, received

    def reopen(self) -> None:
        self._conn.close()
        self._conn = self._open()

    def close(self) -> None:
        self._conn.close()
