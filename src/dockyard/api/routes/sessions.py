"""The portal's login and logout, where Harbor's portal calls them:

    POST /c/login     form fields `principal`, `password` -> 200 and cookie `sid`
    GET  /c/log_out   ends the session, clears the cookie

These sit outside `/api/v2.0` (they are Starlette routes of the main app);
what the cookie then opens, and the CSRF rule for changes, is in
`api/deps.py`. `CsrfHeader` returns the session's CSRF token on every API
response to a request the cookie authenticated, so the portal always holds it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.api.deps import CSRF_HEADER, CSRF_STATE, SESSION_COOKIE
from dockyard.api.errors import STATUS_CODES, error_body
from dockyard.auth.users import LoginThrottled

if TYPE_CHECKING:
    from dockyard.services import Services

log = logging.getLogger(__name__)

_MAX_FORM_BYTES = 16 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"


async def login(request: Request) -> Response:
    svc: Services = request.app.state.services
    form = await _read_form(request)
    if isinstance(form, Response):
        return form
    principal_name, password = form.get("principal", ""), form.get("password", "")

    client = request.client.host if request.client else "-"
    try:
        principal = (
            await svc.users.authenticate(principal_name, password, client)
            if principal_name
            else None
        )
    except LoginThrottled as exc:
        return _error("TOO_MANY_REQUESTS", str(exc))
    if principal is None:
        return _error("UNAUTHORIZED", "invalid username or password")
    if principal.robot:
        # Robots work through the API and the registry, never the portal.
        return _error("UNAUTHORIZED", "robot accounts cannot log in to the portal")

    session = await svc.sessions.start(principal)
    log.debug("session_started username=%s", principal.username)

    response = Response(status_code=200, headers={CSRF_HEADER: session.csrf_token})
    secure = svc.guard.base_url(request).startswith("https://")
    response.headers.append("set-cookie", _cookie(session.cookie, secure))
    return response


async def log_out(request: Request) -> Response:
    svc: Services = request.app.state.services
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and await svc.sessions.end(cookie):
        log.debug("session_ended")
    response = Response(status_code=200)
    secure = svc.guard.base_url(request).startswith("https://")
    response.headers.append("set-cookie", _cookie("", secure, clear=True))
    return response


ROUTES = [
    Route("/c/login", login, methods=["POST"]),
    Route("/c/log_out", log_out, methods=["GET"]),
]


def _cookie(value: str, secure: bool, clear: bool = False) -> str:
    # No Max-Age: the cookie lasts the browser session; the server decides
    # when the session itself ends.
    parts = [f"{SESSION_COOKIE}={value}", "HttpOnly", "Path=/", "SameSite=Lax"]
    if clear:
        parts.append("Max-Age=0")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


async def _read_form(request: Request) -> dict[str, str] | Response:
    """The form's first value per field, or the error response to send."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type.lower() != _FORM_TYPE:
        return _error("UNSUPPORTED_MEDIA_TYPE", f"send the login as {_FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return _error("BAD_REQUEST", "login form too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return _error("BAD_REQUEST", "login form is not UTF-8")
    return {name: values[0] for name, values in fields.items()}


def _error(code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=STATUS_CODES[code])


class CsrfHeader:
    """Adds `X-Harbor-Csrf-Token` to the response when the request was
    authenticated by a session cookie (`get_caller` noted its token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: Message) -> None:
            token = scope.get("state", {}).get(CSRF_STATE)
            if message["type"] == "http.response.start" and token:
                headers = message.setdefault("headers", [])
                headers.append((CSRF_HEADER.lower().encode(), token.encode()))
            await send(message)

        await self.app(scope, receive, send_with_token)
