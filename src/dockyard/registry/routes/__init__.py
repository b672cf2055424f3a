"""The `/v2` routes, one module per resource, and the error handler for them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dockyard.registry.errors import RangeNotSatisfiable, RegistryError
from dockyard.registry.routes import base, blobs, manifests, referrers, tags, uploads
from dockyard.registry.routes.guard import Challenge
from dockyard.registry.routes.responses import error_response

_NAME = "{name:path}"

ROUTES = [
    Route("/v2/", base.version_check, methods=["GET"]),
    Route("/v2/_catalog", base.catalog, methods=["GET"]),
    Route(f"/v2/{_NAME}/tags/list", tags.list_repository_tags, methods=["GET"]),
    Route(f"/v2/{_NAME}/blobs/uploads/", uploads.start_upload, methods=["POST"]),
    Route(
        f"/v2/{_NAME}/blobs/uploads/{{upload_id}}",
        uploads.upload_status,
        methods=["GET"],
    ),
    Route(
        f"/v2/{_NAME}/blobs/uploads/{{upload_id}}",
        uploads.append_chunk,
        methods=["PATCH"],
    ),
    Route(
        f"/v2/{_NAME}/blobs/uploads/{{upload_id}}",
        uploads.finish_upload,
        methods=["PUT"],
    ),
    Route(
        f"/v2/{_NAME}/blobs/uploads/{{upload_id}}",
        uploads.cancel_upload,
        methods=["DELETE"],
    ),
    Route(f"/v2/{_NAME}/blobs/{{digest}}", blobs.get_blob, methods=["GET", "HEAD"]),
    Route(f"/v2/{_NAME}/blobs/{{digest}}", blobs.delete_blob, methods=["DELETE"]),
    Route(
        f"/v2/{_NAME}/manifests/{{reference}}",
        manifests.get_manifest,
        methods=["GET", "HEAD"],
    ),
    Route(
        f"/v2/{_NAME}/manifests/{{reference}}", manifests.put_manifest, methods=["PUT"]
    ),
    Route(
        f"/v2/{_NAME}/manifests/{{reference}}",
        manifests.delete_manifest,
        methods=["DELETE"],
    ),
    Route(
        f"/v2/{_NAME}/referrers/{{digest}}", referrers.list_referrers, methods=["GET"]
    ),
]


async def handle_registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    headers = dict(exc.headers)
    if isinstance(exc, Challenge):
        headers["www-authenticate"] = (
            request.app.state.services.guard.challenge_header(request, exc)
        )
    if isinstance(exc, RangeNotSatisfiable):
        headers["content-range"] = f"bytes */{exc.detail['size']}"
    return error_response(exc, headers)
