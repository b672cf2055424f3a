"""Bearer tokens: RS256 JWTs in the Docker registry token format.

An access token carries `access: [{type, name, actions}]` and is what `/v2`
accepts. A refresh token (Docker's `offline_token`, OAuth2 refresh grant)
carries `token_use: "refresh"` and only buys new access tokens; each kind is
refused where the other is expected.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from dockyard.auth.keys import SigningKey
from dockyard.auth.scopes import Scope

_ALGORITHM = "RS256"
_REFRESH = "refresh"
# `iat` has one-second resolution (and must stay an integer for other
# verifiers); Dockyard also records the exact moment, to tell a token from
# before a project was recreated from one issued just after.
_PRECISE_IAT = "dockyard_iat"
# The id of the robot a token was issued to: whether a subject is a robot
# must not depend on the robot name prefix of the moment, which an admin
# may change while the token lives.
_ROBOT_ID = "dockyard_robot"
# Verified access tokens are cached so that a client's every request does not
# pay for an RSA verification. Bounded; entries die with their token.
_CACHE_SIZE = 4096
# Clock skew allowed between the token service and verifiers, in seconds.
_LEEWAY = 30


class InvalidToken(Exception):
    """The token is malformed, forged, expired, or of the wrong kind."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    subject: str
    issued_at: float
    expires_at: float
    access: tuple[Scope, ...]
    robot_id: int | None = None
    """Set when the subject is a robot (tokens issued before this claim
    existed carry none)."""

    def actions_for(self, kind: str, name: str) -> frozenset[str]:
        for scope in self.access:
            if scope.type == kind and scope.name == name:
                return scope.actions
        return frozenset()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    issued_at: int
    expires_in: int


class TokenAuthority:
    """Issues and verifies tokens for one service with one signing key."""

    def __init__(
        self,
        key: SigningKey,
        *,
        issuer: str,
        service: str,
        expiration: int,
        refresh_expiration: int,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.expiration = expiration
        self.refresh_expiration = refresh_expiration
        self._verified: OrderedDict[str, AccessToken] = OrderedDict()

    def issue_access_token(
        self,
        subject: str,
        access: list[Scope],
        lifetime: int | None = None,
        robot_id: int | None = None,
    ) -> IssuedToken:
        """An access token for `access`, valid `lifetime` seconds (default: the
        authority's expiration); `robot_id` marks a robot's."""
        claims: dict[str, Any] = {"access": [scope.to_claim() for scope in access]}
        if robot_id is not None:
            claims[_ROBOT_ID] = robot_id
        return self._sign(subject, lifetime or self.expiration, claims)

    def issue_refresh_token(self, subject: str, credential: str) -> IssuedToken:
        """A refresh token bound to `credential`, a fingerprint of the account's
        current password (see `credential_fingerprint`)."""
        claims = {"token_use": _REFRESH, "cred": credential}
        return self._sign(subject, self.refresh_expiration, claims)

    def verify_access_token(self, token: str) -> AccessToken:
        """Return the token's contents; raise `InvalidToken` if it must be refused."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + _LEEWAY > time.time():
                return cached
            del self._verified[token]
        claims = self._decode(token)
        if claims.get("token_use") == _REFRESH:
            raise InvalidToken("a refresh token cannot be used as an access token")
        verified = AccessToken(
            subject=str(claims.get("sub", "")),
            issued_at=float(claims.get(_PRECISE_IAT, claims["iat"])),
            expires_at=float(claims["exp"]),
            access=_parse_access(claims.get("access")),
            robot_id=_parse_robot_id(claims.get(_ROBOT_ID)),
        )
        self._remember(token, verified)
        return verified

    def verify_refresh_token(self, token: str) -> tuple[str, str]:
        """Return (subject, credential fingerprint); `InvalidToken` if refused."""
        claims = self._decode(token)
        if claims.get("token_use") != _REFRESH:
            raise InvalidToken("not a refresh token")
        return str(claims.get("sub", "")), str(claims.get("cred", ""))

    def _sign(self, subject: str, lifetime: int, extra: dict[str, Any]) -> IssuedToken:
        moment = time.time()
        now = int(moment)
        claims = {
            _PRECISE_IAT: moment,
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            **extra,
        }
        token = jwt.encode(
            claims,
            self.key.private_key,
            algorithm=_ALGORITHM,
            headers={"kid": self.key.key_id, "typ": "JWT"},
        )
        return IssuedToken(token=token, issued_at=now, expires_in=lifetime)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self.key.public_key,
                algorithms=[_ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                leeway=_LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc

    def _remember(self, token: str, verified: AccessToken) -> None:
        self._verified[token] = verified
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)


def credential_fingerprint(password_hash: str) -> str:
    """Changes with every password change and differs between two accounts of
    the same name (salted hashes), so a refresh token dies with either."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def _parse_robot_id(value: Any) -> int | None:
    # bool is an int in Python; a signed token never holds one, but be exact.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _parse_access(value: Any) -> tuple[Scope, ...]:
    if not isinstance(value, list):
        return ()
    scopes = []
    for entry in value:
        if not isinstance(entry, dict):
            continue
        actions = entry.get("actions")
        if isinstance(actions, list) and all(isinstance(a, str) for a in actions):
            scopes.append(
                Scope(
                    str(entry.get("type")), str(entry.get("name")), frozenset(actions)
                )
            )
    return tuple(scopes)
