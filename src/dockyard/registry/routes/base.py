"""`GET /v2/` (the API version check) and `GET /v2/_catalog`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.registry.routes.common import (
    DEFAULT_CATALOG_PAGE,
    next_link,
    page_params,
    services,
)


async def version_check(request: Request) -> Response:
    await services(request).guard.authenticate(request)
    return JSONResponse({})


async def catalog(request: Request) -> Response:
    """Every repository, for those Harbor lets list the catalog (system
    admins, system robots holding catalog read); 401 for everyone else."""
    svc = services(request)
    await svc.guard.authorize_catalog(request)
    limit, last = page_params(request, DEFAULT_CATALOG_PAGE)

    names, more = await svc.catalog.list_repositories(limit, last)

    headers = next_link("/v2/_catalog", limit, names, more)
    return JSONResponse({"repositories": names}, headers=headers)
