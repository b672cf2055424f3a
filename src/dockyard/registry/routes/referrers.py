"""`GET /v2/<name>/referrers/<digest>`: manifests whose subject is the digest."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.auth.roles import PULL
from dockyard.registry import mediatypes
from dockyard.registry.digest import parse_digest
from dockyard.registry.routes.common import repository_name, services


async def list_referrers(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PULL)
    digest = str(parse_digest(request.path_params["digest"]))
    artifact_type = request.query_params.get("artifactType") or None

    binding = await svc.proxycache.binding(name)
    if binding is not None:
        descriptors = await svc.proxycache.list_referrers(
            binding, name, digest, artifact_type
        )
    else:
        descriptors = await svc.manifests.list_referrers(name, digest, artifact_type)

    # Always a valid image index, empty when nothing refers to the digest.
    index = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": descriptors,
    }
    headers = {"oci-filters-applied": "artifactType"} if artifact_type else {}
    return JSONResponse(index, media_type=mediatypes.OCI_INDEX, headers=headers)
