"""Blobs of proxy-cache projects that are not cached yet: sent to the client
as they arrive from the upstream (and stored on the way, see
`dockyard.proxycache.service`)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dockyard.proxycache.service import Binding, ProxiedBlob
from dockyard.registry.routes.common import services

log = logging.getLogger(__name__)


async def proxied_blob(
    request: Request, binding: Binding, repository: str, digest: str
) -> Response:
    """HEAD: the upstream's size; GET: the bytes, streamed and cached.
    A `Range` is ignored on a miss (the whole blob comes, as RFC 9110 allows)."""
    cache = services(request).proxycache
    headers = {"docker-content-digest": digest, "etag": f'"{digest}"'}
    if request.method == "HEAD":
        size = await cache.blob_size(binding, repository, digest)
        headers["content-length"] = str(size)
        return Response(b"", media_type="application/octet-stream", headers=headers)
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
        self.init_headers({**headers, "content-length": str(blob.size)})

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
