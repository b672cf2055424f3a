"""Authentication and authorisation of `/v2` requests.

Bearer tokens from the token service carry the actions they grant; HTTP Basic
credentials are checked against the access policy directly. A request that
lacks what it needs gets 401 with a challenge naming the token service and
the scope to ask for, and `error="insufficient_scope"` when the caller did
present a valid token that simply does not grant the action. Valid Basic
credentials that lack the action get 403 DENIED.

The answer to a caller who may not see a repository never depends on whether
the repository exists: authorisation runs before any lookup.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from dockyard.auth.access import AccessPolicy
from dockyard.auth.principals import ANONYMOUS, Principal
from dockyard.auth.roles import DELETE, PULL, PUSH
from dockyard.auth.tokens import AccessToken, InvalidToken, TokenAuthority
from dockyard.auth.users import LoginThrottled, UserService
from dockyard.config import Settings
from dockyard.configurations import READ_ONLY_MESSAGE, ConfigurationService
from dockyard.projects import ProjectService
from dockyard.registry.errors import Denied, TooManyRequests, Unauthorized
from dockyard.registry.reference import project_of
from dockyard.robots import RobotService


class Challenge(Unauthorized):
    """401 with a `WWW-Authenticate` header; carries what the header needs."""

    def __init__(
        self, scope: str | None, error: str | None = None, message: str | None = None
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.error = error


@dataclass(frozen=True, slots=True)
class Credentials:
    principal: Principal | None = None
    token: AccessToken | None = None

    @property
    def actor(self) -> str:
        """The name the audit log records for this caller."""
        name = (
            self.principal.username
            if self.principal
            else (self.token.subject if self.token else "")
        )
        return name or "anonymous"


class RegistryGuard:
    def __init__(
        self,
        settings: Settings,
        authority: TokenAuthority,
        users: UserService,
        projects: ProjectService,
        policy: AccessPolicy,
        configurations: ConfigurationService,
        robots: RobotService,
        refuse_push: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        # Raises `Denied` for repositories nobody may push to (proxy caches).
        self.refuse_push = refuse_push
        self.configurations = configurations
        self.robots = robots
        self.settings = settings
        self.authority = authority
        self.users = users
        self.projects = projects
        self.policy = policy

    async def authenticate(
        self, request: Request, scope: str | None = None
    ) -> Credentials:
        """Whoever the request proves to be; a challenge if it proves nothing."""
        header = request.headers.get("authorization")
        if not header:
            raise Challenge(scope)
        kind, _, value = header.partition(" ")
        kind = kind.lower()
        if kind == "bearer":
            try:
                token = self.authority.verify_access_token(value.strip())
            except InvalidToken as exc:
                raise Challenge(scope, "invalid_token", "invalid bearer token") from exc
            if not await self._subject_active(token):
                raise Challenge(scope, "invalid_token", "the token's robot is gone")
            return Credentials(token=token)
        if kind == "basic":
            username, password = _decode_basic(value)
            try:
                principal = await self.users.authenticate(
                    username, password, _client(request)
                )
            except LoginThrottled as exc:
                raise TooManyRequests(str(exc)) from exc
            if principal is not None:
                return Credentials(principal=principal)
        raise Challenge(scope, message="invalid credentials")

    async def authorize(
        self,
        request: Request,
        repository: str,
        action: str,
        also_ask: str | None = None,
    ) -> Credentials:
        """Allow `action` on `repository` or raise a challenge.

        `also_ask` is a scope a challenge should ask for besides the one
        checked (the source of a mount), so that the next token can carry it.
        """
        scope = f"repository:{repository}:{_ASKED[action]}"
        if also_ask:
            scope = f"{scope} {also_ask}"
        credentials = await self.authenticate(request, scope)
        if credentials.token is not None:
            allowed = await self._token_actions(credentials.token, repository)
        else:
            allowed = await self.policy.allowed_actions(
                credentials.principal, repository
            )
        if action in allowed:
            if action != PULL and await self.configurations.get("read_only"):
                raise Denied(READ_ONLY_MESSAGE)
            if action == PUSH and self.refuse_push is not None:
                await self.refuse_push(repository)
            return credentials
        reason = await self._denial_reason(credentials, repository, action)
        if credentials.principal is not None:
            # Basic credentials were good: asking again cannot help.
            raise Denied(reason)
        raise Challenge(scope, "insufficient_scope", reason)

    async def _denial_reason(
        self, credentials: Credentials, repository: str, action: str
    ) -> str:
        """Why a known caller is refused; anonymous callers learn nothing.

        The answer is the same for every repository of a project, so it never
        tells whether a repository exists."""
        if credentials.actor == "anonymous":
            return "access to the resource is denied"
        project = project_of(repository)
        if await self.projects.find_project(project) is None:
            return f"project {project} does not exist"
        return f"{credentials.actor} may not {action} in project {project}"

    async def authorize_catalog(self, request: Request) -> None:
        """Allow listing the catalog or raise a challenge: as in Harbor, 401
        for everyone but system admins and system robots holding (catalog,
        read); a token must carry `registry:catalog:*`."""
        credentials = await self.authenticate(request, _CATALOG_ASKED)
        if credentials.token is not None:
            allowed = "*" in credentials.token.actions_for("registry", "catalog")
        else:
            principal = await self.principal_of(credentials)
            allowed = await self.policy.may_list_catalog(principal)
        if not allowed:
            raise Challenge(
                _CATALOG_ASKED, "insufficient_scope", "unauthorized to list catalog"
            )

    async def may_pull(self, credentials: Credentials, repository: str) -> bool:
        """Whether the already authenticated caller may pull `repository` (mounts)."""
        if credentials.token is not None:
            return PULL in await self._token_actions(credentials.token, repository)
        return PULL in await self.policy.allowed_actions(
            credentials.principal, repository
        )

    async def token_could_cover(
        self, credentials: Credentials, repository: str
    ) -> bool:
        """Whether the caller holds a token without pull on `repository` although
        a new token would carry it (so a challenge is worth sending)."""
        if credentials.token is None:
            return False
        principal = await self.principal_of(credentials)
        return PULL in await self.policy.allowed_actions(principal, repository)

    async def principal_of(self, credentials: Credentials) -> Principal:
        if credentials.principal is not None:
            return credentials.principal
        token = credentials.token
        subject = token.subject if token else ""
        if token is not None and await self._robot_token(token):
            return await self._token_robot(token) or ANONYMOUS
        user = await self.users.find_user(subject) if subject else None
        if user is None:
            return ANONYMOUS
        return Principal(user["id"], user["username"], bool(user["sysadmin"]))

    async def _subject_active(self, token: AccessToken) -> bool:
        """Whether a robot a token was issued to may still act: deleting,
        disabling or expiring a robot ends its tokens too, not only its logins."""
        if not await self._robot_token(token):
            return True
        return await self._token_robot(token) is not None

    async def _robot_token(self, token: AccessToken) -> bool:
        """Whether `token` was issued to a robot, whatever the name prefix is now.

        Tokens carry the robot's id. One issued before that claim existed
        (it lives `token_expiration` at most) is told by the prefix, as then.
        """
        if token.robot_id is not None:
            return True
        return bool(token.subject) and await self.robots.is_robot_name(token.subject)

    async def _token_robot(self, token: AccessToken) -> Principal | None:
        """The robot of a robot's token, if it exists and may act now."""
        if token.robot_id is None:
            return await self.robots.principal_for(token.subject)
        login = await self.robots.find_login_by_id(token.robot_id)
        if login is None or login.name != token.subject:
            return None
        return await self.robots.principal_for(login.name)

    async def _token_actions(
        self, token: AccessToken, repository: str
    ) -> frozenset[str]:
        actions = token.actions_for("repository", repository)
        if not actions:
            return actions
        project = await self.projects.find_project(project_of(repository))
        # A project created after the token was issued is not the project the
        # token was issued for.
        if project is None or project.created_at > token.issued_at:
            return frozenset()
        return actions

    def challenge_header(self, request: Request, challenge: Challenge) -> str:
        realm = f"{self.base_url(request)}/service/token"
        parts = [f'realm="{realm}"', f'service="{self.settings.token.service}"']
        if challenge.scope:
            parts.append(f'scope="{challenge.scope}"')
        if challenge.error:
            parts.append(f'error="{challenge.error}"')
        return "Bearer " + ",".join(parts)

    def base_url(self, request: Request) -> str:
        """Dockyard's external URL: configured, or as the client reached it."""
        if self.settings.external_url:
            return self.settings.external_url
        headers = request.headers
        scheme = request.url.scheme
        host = headers.get("host", "")
        if self.settings.trust_forwarded_headers:
            scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
            host = headers.get("x-forwarded-host", host).split(",")[0].strip()
        # The value lands inside a quoted header parameter: only a host[:port].
        if not _HOST_RE.fullmatch(host):
            host = self.settings.listen
        if scheme not in ("http", "https"):
            scheme = "http"
        return f"{scheme}://{host}"


_HOST_RE = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")

# What a client should ask the token service for, per action checked.
_ASKED = {PULL: "pull", PUSH: "pull,push", DELETE: "delete"}
_CATALOG_ASKED = "registry:catalog:*"


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    username, _, password = decoded.partition(":")
    return username, password
