"""Portal sessions: a browser logs in once and is then known by a cookie.

The cookie holds a random value; the `sessions` table keeps only its sha256,
so a copy of the database yields no usable cookie. Each session has its own
CSRF token, which changes made through the session must echo.

A session lives `session_timeout` minutes (configuration) without use. To
spare a write on every request, a use pushes the expiry forward only once
less than half of that time is left: an idle session ends between half and
all of the timeout after its last use. Sessions also end at logout, when the
user is deleted (the foreign key cascades) and when their password changes
(`UserService` deletes them in the same transaction).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.auth.principals import Principal
from dockyard.configurations import ConfigurationService
from dockyard.db.database import Database
from dockyard.db.schema import sessions, users

_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: who it is, and the CSRF token its changes must carry."""

    principal: Principal
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just started; `cookie` is known only to the browser."""

    cookie: str
    csrf_token: str


class SessionService:
    def __init__(self, db: Database, configurations: ConfigurationService) -> None:
        self.db = db
        self.configurations = configurations

    async def start(self, user: Principal) -> NewSession:
        """Start a session for `user` (not a robot, not anonymous) and record
        the login. Expired sessions of anyone are swept on the way."""
        assert user.user_id is not None, "sessions are for users"
        new = NewSession(_secret(), _secret())
        now = datetime.now(UTC)
        expires = now + await self._lifetime()
        async with self.db.write() as conn:
            await conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
            await conn.execute(
                insert(sessions).values(
                    id=_session_id(new.cookie),
                    user_id=user.user_id,
                    csrf_token=new.csrf_token,
                    created_at=now,
                    expires_at=expires,
                )
            )
            await record_change(conn, user.username, "user", "login", user.username)
        return new

    async def find(self, cookie: str) -> Session | None:
        """The live session `cookie` names, or None (unknown or expired)."""
        now = datetime.now(UTC)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        sessions.c.csrf_token,
                        sessions.c.expires_at,
                        users.c.id,
                        users.c.username,
                        users.c.sysadmin,
                    )
                    .join(users, users.c.id == sessions.c.user_id)
                    .where(sessions.c.id == _session_id(cookie))
                    .where(sessions.c.expires_at > now)
                )
            ).first()
        if row is None:
            return None
        await self._extend(cookie, _utc(row.expires_at), now)
        principal = Principal(row.id, row.username, bool(row.sysadmin))
        return Session(principal, row.csrf_token)

    async def end(self, cookie: str) -> bool:
        """End the session `cookie` names and record the logout; False if
        there was none (already ended, swept, or never started)."""
        async with self.db.write() as conn:
            username = await _username(conn, _session_id(cookie))
            if username is None:
                return False
            await conn.execute(
                delete(sessions).where(sessions.c.id == _session_id(cookie))
            )
            await record_change(conn, username, "user", "logout", username)
        return True

    async def _extend(self, cookie: str, expires: datetime, now: datetime) -> None:
        lifetime = await self._lifetime()
        if expires - now >= lifetime / 2:
            return
        async with self.db.write() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == _session_id(cookie))
                .values(expires_at=now + lifetime)
            )

    async def _lifetime(self) -> timedelta:
        return timedelta(minutes=await self.configurations.get("session_timeout"))


async def _username(conn: AsyncConnection, session_id: str) -> str | None:
    return await conn.scalar(
        select(users.c.username)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(sessions.c.id == session_id)
    )


def _secret() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def _session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
