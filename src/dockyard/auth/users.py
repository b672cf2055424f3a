"""Local user accounts: creation, passwords, the system admin flag, login.

Verifying an Argon2 hash costs tens of milliseconds by design, and clients
that use HTTP Basic send the password on every request; successful checks are
therefore remembered for a short while (shared by replicas through Redis when
it is configured), keyed by an HMAC of the credentials and the stored hash
under a secret derived from the token key: what is remembered is no faster
to guess passwords against than the Argon2 hash itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dockyard.audit import CLI_ACTOR, AuditEntry, AuditLog, record_change
from dockyard.auth.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
)
from dockyard.auth.principals import Principal
from dockyard.auth.throttle import FailedLogins, MemoryFailedLogins
from dockyard.db.database import Database, count_rows, storable_text
from dockyard.db.schema import projects, sessions, users
from dockyard.state.expiring import ExpiringKeys, MemoryExpiringKeys

if TYPE_CHECKING:
    from dockyard.robots import RobotService

log = logging.getLogger(__name__)

# Harbor's forbidden characters (`$` keeps users apart from `robot$` names),
# plus ':' (it ends the name in Basic credentials), '/' and spaces.
_FORBIDDEN_IN_USERNAMES = ',"~#%$:/ '
_LOGIN_CACHE_SECONDS = 60
_CONCURRENT_HASHES = 2
# A hash of no one's password, with the default parameters, checked against
# when the username is unknown (fixed text: computing it would cost start-up).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$yyzCoEZ/9GllxIt9XTWf+g$"
    "wlfwZM7BSGzwQYdlVUmiwFBz/hX5VoLUDVsl8GqssVE"
)


class UserError(Exception):
    """A user operation cannot be done; the message says why."""


class UserExists(UserError):
    pass


class UserNotFound(UserError):
    pass


class WrongPassword(UserError):
    """The old password given to change it is not the user's password."""


class LoginThrottled(UserError):
    """Too many failed logins for this user from this client; try later."""


class UserService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        robots: RobotService | None = None,
        *,
        failed_logins: FailedLogins | None = None,
        recent_logins: ExpiringKeys | None = None,
        login_secret: bytes | None = None,
    ) -> None:
        """`failed_logins` and `recent_logins` default to this process's own;
        `login_secret` keys the remembered logins (random if not given)."""
        self.db = db
        self.audit = audit
        self.robots = robots
        self._recent_logins = recent_logins or MemoryExpiringKeys()
        self._login_secret = login_secret or secrets.token_bytes(32)
        self._failed_logins = failed_logins or MemoryFailedLogins()
        self._hashing = asyncio.Semaphore(_CONCURRENT_HASHES)

    async def create_user(
        self,
        username: str,
        password: str,
        *,
        sysadmin: bool = False,
        email: str | None = None,
        realname: str | None = None,
        comment: str | None = None,
        enforce_policy: bool = True,
        actor: str = CLI_ACTOR,
    ) -> int:
        """Create a user and return its id; raise `UserExists` or `PasswordTooWeak`."""
        if (
            not 0 < len(username) <= 255
            or not username.isprintable()
            or any(c in username for c in _FORBIDDEN_IN_USERNAMES)
        ):
            raise UserError(
                "a username must be 1-255 characters without spaces or any of "
                + " ".join(_FORBIDDEN_IN_USERNAMES.strip())
            )
        _check_profile(email=email, realname=realname)
        if enforce_policy:
            check_password_policy(password)
        now = datetime.now(UTC)
        row = {
            "username": username,
            "password_hash": hash_password(password),
            "email": email,
            "realname": realname,
            "comment": comment,
            "sysadmin": sysadmin,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.db.write() as conn:
                result = await conn.execute(insert(users).values(**row))
                await record_change(conn, actor, "user", "create", username)
        except IntegrityError as exc:
            raise UserExists(f"user {username!r} already exists") from exc
        return int(result.inserted_primary_key[0])

    async def set_password(self, username: str, password: str) -> None:
        check_password_policy(password)
        await self._update(
            username,
            password_hash=hash_password(password),
        )

    async def set_sysadmin(self, username: str, sysadmin: bool) -> None:
        await self._update(username, sysadmin=sysadmin)

    async def first_sysadmin_id(self) -> int | None:
        """The id of the system admin with the lowest id (the built-in admin
        unless it lost the flag); None if there is no system admin."""
        query = select(func.min(users.c.id)).where(users.c.sysadmin.is_(True))
        async with self.db.read() as conn:
            return await conn.scalar(query)

    async def get_user(self, user_id: int) -> dict:
        """The user row with `user_id`; `UserNotFound` if none."""
        async with self.db.read() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.id == user_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise UserNotFound(f"user {user_id} not found")
        return dict(row)

    async def list_users(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[dict], int]:
        """A page of the users `query` (over `users`) finds, and their count."""
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = (
                (
                    await conn.execute(
                        query.order_by(users.c.id).offset(offset).limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows], total

    async def update_profile(
        self, user_id: int, actor: str, **fields: str | None
    ) -> None:
        """Set the given profile fields; `UserError` for a name or address
        with control characters."""
        changes = {k: v for k, v in fields.items() if v is not None}
        _check_profile(email=changes.get("email"), realname=changes.get("realname"))
        await self._update_by_id(user_id, actor, "update", **changes)

    async def change_password(
        self, user_id: int, new_password: str, old_password: str | None, actor: str
    ) -> None:
        """Set a new password; when `old_password` is given it must be right.

        Raise `PasswordTooWeak`, `WrongPassword`, `UserError` (unchanged
        password)."""
        user = await self.get_user(user_id)
        if old_password is not None and not verify_password(
            user["password_hash"], old_password
        ):
            raise WrongPassword("the old password is wrong")
        if verify_password(user["password_hash"], new_password):
            raise UserError("the new password must differ from the old one")
        check_password_policy(new_password)
        await self._update_by_id(
            user_id,
            actor,
            "change_password",
            password_hash=hash_password(new_password),
        )

    async def set_sysadmin_by_id(
        self, user_id: int, sysadmin: bool, actor: str
    ) -> None:
        await self._update_by_id(user_id, actor, "update", sysadmin=sysadmin)

    async def delete_user(self, user_id: int, actor: str) -> None:
        async with self.db.write() as conn:
            # Projects outlive their creator; memberships go with the user.
            await conn.execute(
                update(projects)
                .where(projects.c.owner_id == user_id)
                .values(owner_id=None)
            )
            name = await conn.scalar(
                select(users.c.username).where(users.c.id == user_id)
            )
            if name is None:
                raise UserNotFound(f"user {user_id} not found")
            await conn.execute(delete(users).where(users.c.id == user_id))
            await record_change(conn, actor, "user", "delete", name)

    async def _update_by_id(
        self, user_id: int, actor: str, operation: str, **values: object
    ) -> None:
        values["updated_at"] = datetime.now(UTC)
        async with self.db.write() as conn:
            name = await conn.scalar(
                select(users.c.username).where(users.c.id == user_id)
            )
            if name is None:
                raise UserNotFound(f"user {user_id} not found")
            await conn.execute(
                update(users).where(users.c.id == user_id).values(**values)
            )
            if "password_hash" in values:
                # A new password logs the user out of every portal session.
                await conn.execute(
                    delete(sessions).where(sessions.c.user_id == user_id)
                )
            await record_change(conn, actor, "user", operation, name)

    async def find_user(self, username: str) -> dict | None:
        if not storable_text(username):
            return None

        async def load() -> dict | None:
            async with self.db.read() as conn:
                row = (
                    (
                        await conn.execute(
                            select(users).where(users.c.username == username)
                        )
                    )
                    .mappings()
                    .first()
                )
            return dict(row) if row else None

        return await self.db.cache.get_or_load(("user", username), load)

    async def authenticate(
        self, username: str, password: str, client: str = "-"
    ) -> Principal | None:
        """The user or robot these credentials prove, or None. Failures are
        logged; `LoginThrottled` once a client failed too often for one name.

        Names with the robot prefix are robots' (`RobotService`); a robot
        that is disabled or expired is refused like a wrong secret."""
        if await self._failed_logins.throttled(username, client):
            raise LoginThrottled("too many failed logins; try again later")
        robot = self.robots is not None and await self.robots.is_robot_name(username)
        if robot:
            principal, reason = await self._authenticate_robot(username, password)
        else:
            principal, reason = await self._authenticate_user(username, password)
        if principal is None:
            kind = "robot" if robot else "user"
            await self._record_failure(username, client, reason, kind)
        return principal

    async def _authenticate_user(
        self, username: str, password: str
    ) -> tuple[Principal | None, str]:
        user = await self.find_user(username)
        if user is None:
            # Spend the same time as for a real account: timing must not tell
            # which usernames exist.
            await self._verify(_DUMMY_HASH, password)
            return None, "unknown user"
        if not await self._password_matches(
            user["username"], user["password_hash"], password
        ):
            return None, "wrong password"
        return Principal(user["id"], user["username"], bool(user["sysadmin"])), ""

    async def _authenticate_robot(
        self, name: str, secret: str
    ) -> tuple[Principal | None, str]:
        assert self.robots is not None
        robot = await self.robots.find_login(name)
        if robot is None:
            await self._verify(_DUMMY_HASH, secret)
            return None, "unknown robot"
        # The secret first: whether a robot is disabled is nobody else's business.
        if not await self._password_matches(robot.name, robot.secret_hash, secret):
            return None, "wrong secret"
        if not robot.usable():
            return None, "robot disabled or expired"
        return Principal(None, robot.name, robot_id=robot.id), ""

    async def _record_failure(
        self, username: str, client: str, reason: str, resource_type: str
    ) -> None:
        log.warning(
            "login_failed username=%r client=%s reason=%s",
            username[:64],
            client,
            reason,
        )
        await self._failed_logins.record(username, client)
        self.audit.record_later(
            AuditEntry(
                username=username[:255] or "anonymous",
                resource=f"{username[:200]} from {client}",
                resource_type=resource_type,
                operation="login_failed",
                result=False,
            )
        )

    async def _verify(self, password_hash: str, password: str) -> bool:
        # Argon2 takes tens of milliseconds of CPU on purpose: never on the
        # event loop, and only a few at once.
        async with self._hashing:
            return await asyncio.to_thread(verify_password, password_hash, password)

    async def _password_matches(
        self, name: str, password_hash: str, password: str
    ) -> bool:
        # Keyed on the stored hash too: a changed password (in any process)
        # makes every remembered check miss.
        key = hmac.new(
            self._login_secret,
            f"{name}\0{password}\0{password_hash}".encode(),
            hashlib.sha256,
        ).hexdigest()
        if await self._recent_logins.contains(key):
            return True
        if not await self._verify(password_hash, password):
            return False
        await self._recent_logins.add(key, _LOGIN_CACHE_SECONDS)
        return True

    async def _update(self, username: str, **values: object) -> None:
        """Change a user from the CLI (recorded as `CLI_ACTOR`)."""
        user = await self.find_user(username)
        if user is None:
            raise UserNotFound(f"no user {username!r}")
        await self._update_by_id(user["id"], CLI_ACTOR, "update", **values)


def _check_profile(**fields: str | None) -> None:
    """`UserError` if a name or address holds control or invisible characters."""
    for field, value in fields.items():
        if value is not None and not value.isprintable():
            raise UserError(f"{field} holds control or invisible characters")
