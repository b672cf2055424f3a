"""`HEAD`/`GET`/`DELETE /v2/<name>/blobs/<digest>`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dockyard.auth.roles import DELETE, PULL
from dockyard.registry.digest import parse_digest
from dockyard.registry.errors import BlobUnknown
from dockyard.registry.ranges import parse_range
from dockyard.registry.routes.common import repository_name, services
from dockyard.registry.routes.proxied import proxied_blob
from dockyard.registry.routes.responses import BlobResponse


async def get_blob(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PULL)
    digest = str(parse_digest(request.path_params["digest"]))

    try:
        blob = await svc.blobs.stat_blob(name, digest)
    except BlobUnknown:
        binding = await svc.proxycache.binding(name)
        if binding is None:
            raise
        return await proxied_blob(request, binding, name, digest)

    byte_range = parse_range(request.headers.get("range"), blob.size)
    headers = {"docker-content-digest": digest, "etag": f'"{digest}"'}
    if request.method == "HEAD":
        return BlobResponse(blob.size, headers, byte_range, path=blob.path)
    url = await svc.blobs.redirect_url(digest)
    if url is not None:
        # Clients drop Authorization on a redirect to another host; the
        # signed URL carries its own.
        return RedirectResponse(url, status_code=307, headers=headers)
    if blob.path is not None:
        return BlobResponse(blob.size, headers, byte_range, path=blob.path)
    body = await svc.blobs.open_blob(digest, byte_range)
    return BlobResponse(blob.size, headers, byte_range, body=body)


async def delete_blob(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    credentials = await svc.guard.authorize(request, name, DELETE)
    digest = str(parse_digest(request.path_params["digest"]))

    await svc.blobs.delete_blob(name, digest, credentials.actor)

    return Response(status_code=202, headers={"docker-content-digest": digest})
