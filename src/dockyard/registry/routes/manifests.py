"""`PUT`/`GET`/`HEAD`/`DELETE /v2/<name>/manifests/<reference>`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.roles import DELETE, PULL, PUSH
from dockyard.registry import mediatypes
from dockyard.registry.errors import ManifestTooLarge, ManifestUnknown
from dockyard.registry.routes.common import repository_name, services


async def get_manifest(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PULL)
    reference = request.path_params["reference"]

    manifest = await svc.manifests.get_manifest(name, reference)
    # Clients may send several Accept headers; together they are one list.
    accept = ",".join(request.headers.getlist("accept"))
    if not mediatypes.accepts(accept, manifest.media_type):
        raise ManifestUnknown(
            "the manifest's media type is not in the Accept header",
            mediaType=manifest.media_type,
        )

    headers = {
        "docker-content-digest": manifest.digest,
        "etag": f'"{manifest.digest}"',
        "content-length": str(len(manifest.content)),
    }
    body = b"" if request.method == "HEAD" else manifest.content
    return Response(body, media_type=manifest.media_type, headers=headers)


async def put_manifest(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PUSH)
    reference = request.path_params["reference"]
    content = await _read_limited(request, svc.settings.max_manifest_bytes)

    manifest = await svc.manifests.put_manifest(
        name, reference, request.headers.get("content-type"), content
    )

    headers = {
        "location": f"/v2/{name}/manifests/{manifest.digest}",
        "docker-content-digest": manifest.digest,
    }
    if manifest.subject:
        headers["oci-subject"] = manifest.subject
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, DELETE)

    await svc.manifests.delete_manifest(name, request.path_params["reference"])

    return Response(status_code=202)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing to buffer more than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ManifestTooLarge(limit=limit, size=int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ManifestTooLarge(limit=limit)
    return bytes(body)
