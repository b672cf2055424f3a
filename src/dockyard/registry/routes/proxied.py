"""Blobs of proxy-cache projects that are not cached yet: sent to the client
as they arrive from the upstream (and stored on the way, see
`dockyard.proxycache.fills`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dockyard.proxycache.fills import ProxiedBlob, RangedBlob
from dockyard.proxycache.service import Binding
from dockyard.registry.ranges import parse_range, single_range
from dockyard.registry.routes.common import services
from dockyard.registry.routes.responses import BlobResponse


async def proxied_blob(
    request: Request, binding: Binding, repository: str, digest: str
) -> Response:
    """HEAD: the upstream's size; GET: the bytes, streamed and cached. A
    single byte range is answered 206 as for cached blobs (several ranges
    get the whole blob, as RFC 9110 allows)."""
    cache = services(request).proxycache
    headers = {"docker-content-digest": digest, "etag": f'"{digest}"'}
    byte_range = single_range(request.headers.get("range"))

    if request.method == "HEAD":
        size = await cache.blob_size(binding, repository, digest)
        return BlobResponse(size, headers, parse_range(byte_range, size))
    if byte_range is not None:
        ranged = await cache.open_range(binding, repository, digest, byte_range)
        return RangedBlobResponse(ranged, headers)
    return ProxiedBlobResponse(
        await cache.open_blob(binding, repository, digest), headers
    )


class ProxiedBlobResponse(Response):
    """Streams a `ProxiedBlob`. When its bytes turn out wrong the exception
    propagates, and the server cuts the connection before the declared
    length was sent: the client sees a broken transfer, never a whole blob."""

    def __init__(self, blob: ProxiedBlob, headers: dict[str, str]) -> None:
        self.blob = blob
        self.status_code = 200
        self.background = None
        self.media_type = "application/octet-stream"
        self.init_headers(
            {**headers, "content-length": str(blob.size), "accept-ranges": "bytes"}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.blob.chunks():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        finally:
            await self.blob.aclose()


class RangedBlobResponse(BlobResponse):
    """206 with the bytes of a `RangedBlob`; the upstream's answer is closed
    at the end whatever happened. A short upstream answer raises, so the
    connection is cut rather than the range looking complete."""

    def __init__(self, blob: RangedBlob, headers: dict[str, str]) -> None:
        super().__init__(
            blob.size, headers, (blob.first, blob.last), body=blob.chunks
        )
        self.blob = blob

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.blob.aclose()
