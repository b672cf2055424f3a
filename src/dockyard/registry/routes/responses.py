"""Responses the data plane needs beyond Starlette's: OCI errors and blobs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from dockyard.registry.errors import RegistryError

# Bytes read per step when a range of a blob goes through Python.
_RANGE_READ_SIZE = 1024 * 1024


def error_response(
    error: RegistryError, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(error.to_body(), status_code=error.status, headers=headers)


class BlobResponse(Response):
    """A blob from a local file (`path`): sent by the server itself (zero-copy)
    when it supports the ASGI `pathsend` extension, else streamed; ranges are
    streamed. Or a blob from elsewhere (`body`, the bytes of the range)."""

    def __init__(
        self,
        size: int,
        headers: dict[str, str],
        byte_range: tuple[int, int] | None = None,
        *,
        path: Path | None = None,
        body: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.path = path
        self.body_stream = body
        self.byte_range = byte_range
        self.status_code = 206 if byte_range else 200
        self.background = None
        start, end = byte_range or (0, size - 1)
        headers = {
            **headers,
            "content-length": str(end - start + 1),
            "accept-ranges": "bytes",
        }
        if byte_range:
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        self.media_type = "application/octet-stream"
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            }
        )
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
        elif self.body_stream is not None:
            await self._relay(self.body_stream, send)
        elif self.byte_range is None and "http.response.pathsend" in scope.get(
            "extensions", {}
        ):
            await send({"type": "http.response.pathsend", "path": str(self.path)})
        else:
            await self._stream(send)

    async def _relay(self, body: AsyncIterator[bytes], send: Send) -> None:
        async for data in body:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _stream(self, send: Send) -> None:
        assert self.path is not None
        start, end = self.byte_range or (0, int(self.headers["content-length"]) - 1)
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            position = start
            while position <= end:
                count = min(_RANGE_READ_SIZE, end - position + 1)
                data = await asyncio.to_thread(os.pread, descriptor, count, position)
                if not data:
                    break
                position += len(data)
                await send(
                    {"type": "http.response.body", "body": data, "more_body": True}
                )
        finally:
            os.close(descriptor)
        await send({"type": "http.response.body", "body": b""})
