"""`GET /v2/<name>/tags/list`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.auth.roles import PULL
from dockyard.registry.errors import NameUnknown
from dockyard.registry.routes.common import (
    next_link,
    page_params,
    repository_name,
    services,
)
from dockyard.registry.tags import list_tags


async def list_repository_tags(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PULL)
    limit, last = page_params(request, None)

    page = await list_tags(svc.db, name, limit, last)
    if page is None:
        raise NameUnknown(name=name)
    names, more = page

    headers = next_link(f"/v2/{name}/tags/list", limit, names, more)
    return JSONResponse({"name": name, "tags": names}, headers=headers)
