"""`GET /v2/` (the API version check) and `GET /v2/_catalog`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.auth.roles import PULL
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
    svc = services(request)
    credentials = await svc.guard.authenticate(request, "registry:catalog:*")
    principal = await svc.guard.principal_of(credentials)
    limit, last = page_params(request, DEFAULT_CATALOG_PAGE)

    may_pull = None
    if not (principal.sysadmin or principal.anonymous):

        async def may_pull(name: str) -> bool:
            return PULL in await svc.policy.allowed_actions(principal, name)

    names, more = await svc.catalog.list_repositories(principal, limit, last, may_pull)

    headers = next_link("/v2/_catalog", limit, names, more)
    return JSONResponse({"repositories": names}, headers=headers)
