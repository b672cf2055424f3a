"""What every API handler needs: the services, the caller, the page asked for.

Callers authenticate with HTTP Basic, or with the portal's session cookie
(`sid`, from `/c/login`) when they send no `Authorization` header; with
neither they are anonymous, and handlers decide what an anonymous caller may
see. Bad Basic credentials are always 401, never silently anonymous; a
cookie whose session has ended is ignored (the browser may keep it).

A change (POST, PUT, PATCH, DELETE) authenticated by the cookie must carry
the session's CSRF token in `X-Harbor-Csrf-Token`, else 403: a cookie is
sent by the browser whoever made the page, the header only by our portal.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from annotated_types import Interval
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse

from dockyard.api.errors import Forbidden, Unauthorized
from dockyard.auth.principals import ANONYMOUS, Principal
from dockyard.configurations import READ_ONLY_MESSAGE
from dockyard.db.schema import MAX_INTEGER
from dockyard.services import Services

MAX_PAGE_SIZE = 100

DbInt = Annotated[int, Interval(ge=-MAX_INTEGER - 1, le=MAX_INTEGER)]
"""An integer from the request that a database column can hold; a larger one
is a 400, not an overflow deep inside the database driver."""


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


SESSION_COOKIE = "sid"
CSRF_HEADER = "X-Harbor-Csrf-Token"
# Where a session-authenticated request keeps its CSRF token, for the
# middleware that returns it in every response (`request.state`).
CSRF_STATE = "session_csrf_token"


async def get_caller(request: Request, services: ServicesDep) -> Principal:
    header = request.headers.get("authorization")
    if header:
        return await _basic_caller(request, services, header)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _session_caller(request, services, cookie)
    return ANONYMOUS


async def _session_caller(
    request: Request, services: Services, cookie: str
) -> Principal:
    session = await services.sessions.find(cookie)
    if session is None:
        return ANONYMOUS
    setattr(request.state, CSRF_STATE, session.csrf_token)
    sent = request.headers.get(CSRF_HEADER, "")
    if request.method in _CHANGES and not hmac.compare_digest(
        sent.encode(), session.csrf_token.encode()
    ):
        raise Forbidden(f"CSRF token missing or invalid: send it in {CSRF_HEADER}")
    return session.principal


async def _basic_caller(request: Request, services: Services, header: str) -> Principal:
    kind, _, value = header.partition(" ")
    if kind.lower() != "basic":
        raise Unauthorized("only Basic credentials are accepted")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    username, _, password = decoded.partition(":")
    client = request.client.host if request.client else "-"
    principal = await services.users.authenticate(username, password, client)
    if principal is None:
        raise Unauthorized("invalid credentials")
    return principal


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_user(caller: CallerDep) -> Principal:
    if caller.anonymous:
        raise Unauthorized("authentication required")
    return caller


UserDep = Annotated[Principal, Depends(get_user)]


async def get_admin(user: UserDep) -> Principal:
    if not user.sysadmin:
        raise Forbidden("only system administrators may do this")
    return user


AdminDep = Annotated[Principal, Depends(get_admin)]


_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SETTINGS = "/configurations"


async def refuse_changes_when_read_only(
    request: Request, services: ServicesDep
) -> None:
    """In read-only mode every change is refused, except turning it off."""
    # The route, not the path's tail: a repository or tag may be named
    # `configurations` too.
    route = request.scope.get("route")
    if request.method not in _CHANGES or getattr(route, "path", "") == _SETTINGS:
        return
    if await services.configurations.get("read_only"):
        raise Forbidden(READ_ONLY_MESSAGE)


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def get_page(
    page: Annotated[int, Query(ge=1, le=MAX_INTEGER // MAX_PAGE_SIZE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
) -> Page:
    return Page(page, page_size)


PageDep = Annotated[Page, Depends(get_page)]


def paginated(
    request: Request, items: list[Any], total: int, page: Page
) -> JSONResponse:
    """A page of `items` with `X-Total-Count` and `Link` (prev/next) headers."""
    headers = {"x-total-count": str(total)}
    links = []
    if page.number > 1:
        links.append(_link(request, page.number - 1, page.size, "prev"))
    if page.offset + len(items) < total:
        links.append(_link(request, page.number + 1, page.size, "next"))
    if links:
        headers["link"] = ", ".join(links)
    return JSONResponse(items, headers=headers)


def _link(request: Request, number: int, size: int, rel: str) -> str:
    params = dict(request.query_params)
    params.update(page=str(number), page_size=str(size))
    return f'<{request.url.path}?{urlencode(params)}>; rel="{rel}"'
