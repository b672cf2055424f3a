"""Local user accounts: creation, passwords, the system admin flag, login.

Verifying an Argon2 hash costs tens of milliseconds by design, and clients
that use HTTP Basic send the password on every request; successful checks are
therefore remembered for a short while, keyed by a hash of the credentials.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from dockyard.auth.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
)
from dockyard.auth.principals import Principal
from dockyard.db.database import Database
from dockyard.db.schema import users

log = logging.getLogger(__name__)

_LOGIN_CACHE_SECONDS = 60
_LOGIN_CACHE_SIZE = 1024
# Failed logins allowed per (username, client) within the window before
# further attempts are refused without checking the password.
_MAX_FAILURES = 10
_FAILURE_WINDOW_SECONDS = 300


class UserError(Exception):
    """A user operation cannot be done; the message says why."""


class UserExists(UserError):
    pass


class UserNotFound(UserError):
    pass


class LoginThrottled(UserError):
    """Too many failed logins for this user from this client; try later."""


class UserService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._recent_logins: dict[bytes, tuple[float, Principal]] = {}
        self._failures: dict[tuple[str, str], list[float]] = {}

    async def create_user(
        self,
        username: str,
        password: str,
        *,
        sysadmin: bool = False,
        email: str | None = None,
        enforce_policy: bool = True,
    ) -> int:
        """Create a user and return its id; raise `UserExists` or `PasswordTooWeak`."""
        if not username or len(username) > 255 or any(c in username for c in ':/ "'):
            raise UserError("a username must be 1-255 characters without ':', '/', '\"' or spaces")
        if enforce_policy:
            check_password_policy(password)
        now = datetime.now(UTC)
        row = {
            "username": username,
            "password_hash": hash_password(password),
            "email": email,
            "sysadmin": sysadmin,
            "created_at": now,
            "updated_at": now,
            "password_version": 1,
        }
        try:
            async with self.db.write() as conn:
                result = await conn.execute(insert(users).values(**row))
        except IntegrityError as exc:
            raise UserExists(f"user {username!r} already exists") from exc
        return int(result.inserted_primary_key[0])

    async def set_password(self, username: str, password: str) -> None:
        check_password_policy(password)
        await self._update(
            username,
            password_hash=hash_password(password),
            password_version=users.c.password_version + 1,
        )
        self._recent_logins.clear()

    async def set_sysadmin(self, username: str, sysadmin: bool) -> None:
        await self._update(username, sysadmin=sysadmin)
        self._recent_logins.clear()

    async def find_user(self, username: str) -> dict | None:
        async def load() -> dict | None:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(select(users).where(users.c.username == username))
                ).mappings().first()
            return dict(row) if row else None

        return await self.db.cache.get_or_load(("user", username), load)

    async def authenticate(
        self, username: str, password: str, client: str = "-"
    ) -> Principal | None:
        """The user these credentials prove, or None. Failures are logged;
        `LoginThrottled` once a client failed too often for one username."""
        key = hashlib.sha256(f"{username}\0{password}".encode()).digest()
        cached = self._recent_logins.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        self._check_throttle(username, client)
        user = await self.find_user(username)
        if user is None or not verify_password(user["password_hash"], password):
            log.warning(
                "login_failed username=%s client=%s reason=%s",
                username[:64],
                client,
                "unknown user" if user is None else "wrong password",
            )
            self._record_failure(username, client)
            return None
        principal = Principal(user["id"], user["username"], bool(user["sysadmin"]))
        self._remember_login(key, principal)
        return principal

    def _check_throttle(self, username: str, client: str) -> None:
        recent = self._failures.get((username, client))
        if not recent:
            return
        horizon = time.monotonic() - _FAILURE_WINDOW_SECONDS
        recent[:] = [moment for moment in recent if moment > horizon]
        if len(recent) >= _MAX_FAILURES:
            raise LoginThrottled("too many failed logins; try again later")

    def _record_failure(self, username: str, client: str) -> None:
        if len(self._failures) >= _LOGIN_CACHE_SIZE:
            self._failures.clear()
        self._failures.setdefault((username, client), []).append(time.monotonic())

    def _remember_login(self, key: bytes, principal: Principal) -> None:
        if len(self._recent_logins) >= _LOGIN_CACHE_SIZE:
            self._recent_logins.clear()
        expires = time.monotonic() + _LOGIN_CACHE_SECONDS
        self._recent_logins[key] = (expires, principal)

    async def _update(self, username: str, **values: object) -> None:
        values["updated_at"] = datetime.now(UTC)
        async with self.db.write() as conn:
            result = await conn.execute(
                update(users).where(users.c.username == username).values(**values)
            )
        if result.rowcount == 0:
            raise UserNotFound(f"no user {username!r}")
