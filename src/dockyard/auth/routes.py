"""`/service/token`: the Docker registry token service.

GET (Docker token spec): anonymous or HTTP Basic; one `scope` parameter per
scope or space-separated; `offline_token=true` adds a refresh token.
POST (OAuth2 form, as containerd and the docker CLI send it):
`grant_type=password` with username/password, or `grant_type=refresh_token`.

The token holds the intersection of what was asked and what the caller may
do; asking for more than allowed is not an error, the registry says no later.
Bad credentials are 401, in the registry's error format.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dockyard.auth.principals import ANONYMOUS, Principal
from dockyard.auth.scopes import parse_scopes
from dockyard.auth.tokens import InvalidToken, credential_fingerprint
from dockyard.auth.users import LoginThrottled

if TYPE_CHECKING:
    from dockyard.services import Services

log = logging.getLogger(__name__)

_MAX_FORM_BYTES = 64 * 1024


class TokenRequestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def get_token(request: Request) -> Response:
    svc: Services = request.app.state.services
    params = request.query_params
    principal = await _basic_principal(svc, request)
    offline = params.get("offline_token", "").lower() == "true"
    return await _token_response(svc, principal, params.getlist("scope"), offline)


async def post_token(request: Request) -> Response:
    svc: Services = request.app.state.services
    form = await _read_form(request)
    grant = form.get("grant_type")
    if grant == "password":
        username, password = (
            str(form.get("username", "")),
            str(form.get("password", "")),
        )
        principal = await _login(svc, request, username, password)
        offline = form.get("access_type") == "offline"
    elif grant == "refresh_token":
        principal = await _refreshed_principal(svc, str(form.get("refresh_token", "")))
        offline = False
    else:
        raise TokenRequestError(
            400, "UNSUPPORTED", "grant_type must be password or refresh_token"
        )
    scopes = [str(value) for value in form.getlist("scope")]
    return await _token_response(svc, principal, scopes, offline)


class _Form:
    """An `application/x-www-form-urlencoded` body (all OAuth2 token requests are)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return self.fields.get(name, [])


async def _read_form(request: Request) -> _Form:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise TokenRequestError(400, "UNSUPPORTED", "token request too large")
    try:
        return _Form(parse_qs(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise TokenRequestError(
            400, "UNSUPPORTED", "token request is not UTF-8"
        ) from exc


async def _token_response(
    svc: Services, principal: Principal, scope_params: list[str], offline: bool
) -> Response:
    granted = await svc.policy.grant(principal, parse_scopes(scope_params))
    lifetime = await svc.configurations.get("token_expiration") * 60
    issued = svc.authority.issue_access_token(
        principal.username, granted, lifetime, robot_id=principal.robot_id
    )
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": _rfc3339(issued.issued_at),
    }
    if offline and not principal.anonymous:
        credential = await _credential_hash(svc, principal)
        if credential is not None:
            refresh = svc.authority.issue_refresh_token(
                principal.username, credential_fingerprint(credential)
            )
            body["refresh_token"] = refresh.token
    return JSONResponse(body, headers={"cache-control": "no-store"})


async def _basic_principal(svc: Services, request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS
    kind, _, value = header.partition(" ")
    if kind.lower() != "basic":
        raise TokenRequestError(
            401, "UNAUTHORIZED", "only Basic credentials are accepted here"
        )
    try:
        username, _, password = (
            base64.b64decode(value.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TokenRequestError(
            401, "UNAUTHORIZED", "malformed Basic credentials"
        ) from exc
    return await _login(svc, request, username, password)


async def _login(
    svc: Services, request: Request, username: str, password: str
) -> Principal:
    client = request.client.host if request.client else "-"
    try:
        principal = (
            await svc.users.authenticate(username, password, client)
            if username
            else None
        )
    except LoginThrottled as exc:
        raise TokenRequestError(429, "TOOMANYREQUESTS", str(exc)) from exc
    if principal is None:
        raise TokenRequestError(401, "UNAUTHORIZED", "authentication failed")
    return principal


async def _refreshed_principal(svc: Services, token: str) -> Principal:
    try:
        username, credential = svc.authority.verify_refresh_token(token)
    except InvalidToken as exc:
        log.warning("refresh_token_refused reason=%s", exc)
        raise TokenRequestError(401, "UNAUTHORIZED", "invalid refresh token") from exc
    if await svc.robots.is_robot_name(username):
        return await _refreshed_robot(svc, username, credential)
    user = await svc.users.find_user(username)
    # A password change retires every refresh token issued before it.
    if user is None or credential_fingerprint(user["password_hash"]) != credential:
        raise TokenRequestError(401, "UNAUTHORIZED", "invalid refresh token")
    return Principal(user["id"], user["username"], bool(user["sysadmin"]))


async def _refreshed_robot(svc: Services, name: str, credential: str) -> Principal:
    # A new secret retires the refresh tokens, as a new password does; a
    # disabled, expired or deleted robot gets no more access tokens.
    login = await svc.robots.find_login(name)
    if (
        login is None
        or not login.usable()
        or credential_fingerprint(login.secret_hash) != credential
    ):
        raise TokenRequestError(401, "UNAUTHORIZED", "invalid refresh token")
    return Principal(None, login.name, robot_id=login.id)


async def _credential_hash(svc: Services, principal: Principal) -> str | None:
    """The stored hash a refresh token for `principal` is bound to."""
    if principal.robot:
        login = await svc.robots.find_login(principal.username)
        return login.secret_hash if login else None
    user = await svc.users.find_user(principal.username)
    return user["password_hash"] if user else None


def _rfc3339(timestamp: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def handle_token_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenRequestError)
    body = {"errors": [{"code": exc.code, "message": exc.message}]}
    return JSONResponse(body, status_code=exc.status)


ROUTES = [
    Route("/service/token", get_token, methods=["GET"]),
    Route("/service/token", post_token, methods=["POST"]),
]
