"""Robot accounts: non-human logins with a fixed list of permissions.

A robot is named with the `robot_name_prefix` configuration (`robot$` by
default): a system robot is `robot$<name>`, a project robot
`robot$<project>+<name>`. The full name is stored, so a robot keeps its name
when the prefix changes later (it then no longer logs in, as in Harbor).

    robots 1-n robot_permissions
      kind "project", project_id N      (resource, action) in project N
      kind "project", project_id NULL   ... in every project (namespace `*`)
      kind "system",  project_id NULL   a system permission (namespace `/`)

A project robot has exactly one permission set, in its own project. The
secret is random (or chosen by whoever refreshes it), shown once, and only
its Argon2 hash is kept. A robot logs in while it exists, is enabled and its
`expires_at` (epoch seconds, -1 for never) has not passed; checking the
secret itself is `UserService.authenticate`'s job, so that robots and users
share the throttling of failed logins.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.auth.passwords import hash_password
from dockyard.auth.principals import Principal
from dockyard.auth.rbac import PROJECT_PERMISSIONS, SYSTEM_PERMISSIONS, Permission
from dockyard.configurations import ConfigurationService
from dockyard.db.database import Database, count_rows, storable_text
from dockyard.db.schema import projects, robot_permissions, robots
from dockyard.projects import Project, ProjectService

SYSTEM = "system"
PROJECT = "project"
EVERY_PROJECT = "*"
SYSTEM_NAMESPACE = "/"
NEVER = -1
"""`duration` and `expires_at` of a robot that never expires."""

_DAY_SECONDS = 86_400
_MAX_DURATION_DAYS = 2**31 - 1
_MAX_NAME_LENGTH = 255
# Harbor's rule: lower case letters and digits, separated by single . _ or -.
# `+` is excluded: it separates project and name in a project robot's name.
_NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SECRET_LENGTH = 32
_SECRET_ALPHABET = string.ascii_letters + string.digits


class RobotError(Exception):
    """A robot operation cannot be done; the message says why."""


class RobotInvalid(RobotError):
    """The request breaks a rule (name, duration, permissions)."""


class RobotExists(RobotError):
    pass


class RobotNotFound(RobotError):
    pass


class UnknownProject(RobotError):
    """A permission names a project that does not exist."""


@dataclass(frozen=True, slots=True)
class RobotPermission:
    """One stored permission; `project_id` None is every project (or system)."""

    kind: str
    project_id: int | None
    resource: str
    action: str


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """One permission set as Harbor's API names it: kind, namespace, access."""

    kind: str
    namespace: str
    access: tuple[Permission, ...]


@dataclass(frozen=True, slots=True)
class Robot:
    id: int
    name: str
    description: str
    level: str
    project_id: int | None
    duration: int
    expires_at: int
    disabled: bool
    creator: str
    created_at: datetime
    updated_at: datetime
    permissions: frozenset[RobotPermission]

    @property
    def project_scopes(self) -> dict[int | None, frozenset[Permission]]:
        """Project permissions by project id (None: every project)."""
        scopes: dict[int | None, set[Permission]] = {}
        for held in self.permissions:
            if held.kind == PROJECT:
                scopes.setdefault(held.project_id, set()).add(
                    (held.resource, held.action)
                )
        return {key: frozenset(value) for key, value in scopes.items()}

    @property
    def system_permissions(self) -> frozenset[Permission]:
        return frozenset(
            (held.resource, held.action)
            for held in self.permissions
            if held.kind == SYSTEM
        )


@dataclass(frozen=True, slots=True)
class RobotLogin:
    """What checking a robot's credentials needs."""

    id: int
    name: str
    secret_hash: str
    disabled: bool
    expires_at: int

    def usable(self, now: float | None = None) -> bool:
        """Enabled and not expired."""
        if self.disabled:
            return False
        moment = time.time() if now is None else now
        return self.expires_at == NEVER or self.expires_at > moment


@dataclass(frozen=True, slots=True)
class RobotChanges:
    """What an update sets; `duration` or `permissions` None keeps them."""

    description: str
    disabled: bool
    duration: int | None = None
    permissions: frozenset[RobotPermission] | None = None


class RobotService:
    def __init__(
        self,
        db: Database,
        configurations: ConfigurationService,
        projects: ProjectService,
    ) -> None:
        self.db = db
        self.configurations = configurations
        self.projects = projects

    async def prefix(self) -> str:
        return str(await self.configurations.get("robot_name_prefix"))

    async def is_robot_name(self, name: str) -> bool:
        """Whether `name` is a robot's (starts with the robot prefix)."""
        return name.startswith(await self.prefix())

    async def full_name(self, name: str, project: Project | None) -> str:
        """The stored name of a new robot; `RobotInvalid` for a bad `name`."""
        if not _NAME_RE.fullmatch(name):
            raise RobotInvalid(
                "a robot name is lower case letters and digits, "
                "separated by single '.', '_' or '-'"
            )
        middle = f"{project.name}+" if project else ""
        full = f"{await self.prefix()}{middle}{name}"
        if len(full) > _MAX_NAME_LENGTH:
            raise RobotInvalid(f"the robot name is longer than {_MAX_NAME_LENGTH}")
        return full

    async def resolve_duration(self, duration: int | None) -> int:
        """Days a new secret lives: the given, or the configured default for
        0/None; `RobotInvalid` unless -1 or positive."""
        if not duration:
            return int(await self.configurations.get("robot_token_duration"))
        check_duration(duration)
        return duration

    async def resolve_permissions(
        self, level: str, requested: list[PermissionRequest]
    ) -> frozenset[RobotPermission]:
        """Check `requested` against the catalogue and the level's rules and
        turn namespaces into project ids.

        `RobotInvalid` for a rule broken, `UnknownProject` for a namespace
        that names no project."""
        _check_shape(level, requested)
        resolved: set[RobotPermission] = set()
        for item in requested:
            project_id = await self._namespace_project(item)
            resolved.update(
                RobotPermission(item.kind, project_id, resource, action)
                for resource, action in item.access
            )
        return frozenset(resolved)

    async def create_robot(
        self,
        *,
        name: str,
        description: str,
        level: str,
        project: Project | None,
        duration: int,
        disabled: bool,
        permissions: frozenset[RobotPermission],
        secret: str,
        actor: str,
    ) -> Robot:
        """Store a robot whose secret is `secret`; `RobotExists` if the name is
        taken. `name` is the full name (see `full_name`)."""
        secret_hash = await asyncio.to_thread(hash_password, secret)
        now = datetime.now(UTC)
        values = {
            "name": name,
            "description": description,
            "level": level,
            "project_id": project.id if project else None,
            "secret_hash": secret_hash,
            "duration": duration,
            "expires_at": expiry(now, duration),
            "disabled": disabled,
            "creator": actor,
            "created_at": now,
            "updated_at": now,
        }
        project_id = values["project_id"]
        try:
            async with self.db.write() as conn:
                result = await conn.execute(insert(robots).values(**values))
                robot_id = int(result.inserted_primary_key[0])
                await _store_permissions(conn, robot_id, permissions)
                await record_change(conn, actor, "robot", "create", name, project_id)
        except IntegrityError as exc:
            raise RobotExists(f"robot {name} already exists") from exc
        return await self.get_robot(robot_id)

    async def get_robot(self, robot_id: int) -> Robot:
        """The robot with `robot_id`; `RobotNotFound` if none."""
        found, _ = await self.list_robots(
            select(robots).where(robots.c.id == robot_id), 0, 1
        )
        if not found:
            raise RobotNotFound(f"robot {robot_id} not found")
        return found[0]

    async def list_robots(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[Robot], int]:
        """A page of the robots `query` (over `robots`) finds, and their count."""
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = (
                (await conn.execute(query.offset(offset).limit(limit))).mappings().all()
            )
            held = await _permissions_of(conn, [row["id"] for row in rows])
        found = [_robot(row, held.get(row["id"], frozenset())) for row in rows]
        return found, total

    async def update_robot(
        self, robot: Robot, changes: RobotChanges, actor: str
    ) -> None:
        """Apply `changes`; a new duration counts from the robot's creation."""
        values: dict[str, Any] = {
            "description": changes.description,
            "disabled": changes.disabled,
            "updated_at": datetime.now(UTC),
        }
        if changes.duration is not None and changes.duration != robot.duration:
            values["duration"] = changes.duration
            values["expires_at"] = expiry(robot.created_at, changes.duration)
        async with self.db.write() as conn:
            await self._update_row(conn, robot, values)
            if changes.permissions is not None:
                await conn.execute(
                    delete(robot_permissions).where(
                        robot_permissions.c.robot_id == robot.id
                    )
                )
                await _store_permissions(conn, robot.id, changes.permissions)
            await record_change(
                conn, actor, "robot", "update", robot.name, robot.project_id
            )

    async def set_secret(self, robot: Robot, secret: str, actor: str) -> None:
        """Replace the secret: the old one stops working at once."""
        secret_hash = await asyncio.to_thread(hash_password, secret)
        values = {"secret_hash": secret_hash, "updated_at": datetime.now(UTC)}
        async with self.db.write() as conn:
            await self._update_row(conn, robot, values)
            await record_change(
                conn, actor, "robot", "refresh_secret", robot.name, robot.project_id
            )

    async def delete_robot(self, robot: Robot, actor: str) -> None:
        async with self.db.write() as conn:
            deleted = await conn.execute(delete(robots).where(robots.c.id == robot.id))
            if deleted.rowcount == 0:
                raise RobotNotFound(f"robot {robot.id} not found")
            await record_change(
                conn, actor, "robot", "delete", robot.name, robot.project_id
            )

    async def find_login(self, name: str) -> RobotLogin | None:
        """The login record of the robot named `name` (full name), if any."""
        if not storable_text(name):
            return None

        async def load() -> RobotLogin | None:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(
                        select(
                            robots.c.id,
                            robots.c.name,
                            robots.c.secret_hash,
                            robots.c.disabled,
                            robots.c.expires_at,
                        ).where(robots.c.name == name)
                    )
                ).first()
            if row is None:
                return None
            return RobotLogin(
                row.id, row.name, row.secret_hash, bool(row.disabled), row.expires_at
            )

        return await self.db.cache.get_or_load(("robot", name), load)

    async def find_login_by_id(self, robot_id: int) -> RobotLogin | None:
        """The login record of robot `robot_id`, if it still exists."""

        async def load() -> RobotLogin | None:
            async with self.db.read() as conn:
                name = await conn.scalar(
                    select(robots.c.name).where(robots.c.id == robot_id)
                )
            return None if name is None else await self.find_login(name)

        return await self.db.cache.get_or_load(("robot-id", robot_id), load)

    async def principal_for(self, name: str) -> Principal | None:
        """The robot `name` as a caller, if it exists and is usable now; for
        tokens issued to it, which must die with the robot's access."""
        login = await self.find_login(name)
        if login is None or not login.usable():
            return None
        return Principal(None, login.name, robot_id=login.id)

    async def system_permissions(self, robot_id: int) -> frozenset[Permission]:
        """The system-kind permissions robot `robot_id` holds."""

        async def load() -> frozenset[Permission]:
            async with self.db.read() as conn:
                rows = await conn.execute(
                    select(robot_permissions.c.resource, robot_permissions.c.action)
                    .where(robot_permissions.c.robot_id == robot_id)
                    .where(robot_permissions.c.kind == SYSTEM)
                )
                return frozenset((row.resource, row.action) for row in rows)

        return await self.db.cache.get_or_load(("robot-system", robot_id), load)

    async def project_names(self, project_ids: set[int]) -> dict[int, str]:
        """Names of the projects `project_ids` name (those that still exist)."""
        if not project_ids:
            return {}
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(projects.c.id, projects.c.name).where(
                    projects.c.id.in_(project_ids)
                )
            )
            return {row.id: row.name for row in rows}

    async def _namespace_project(self, item: PermissionRequest) -> int | None:
        if item.kind == SYSTEM or item.namespace == EVERY_PROJECT:
            return None
        project = await self.projects.find_project(item.namespace)
        if project is None:
            raise UnknownProject(f"project {item.namespace} not found")
        return project.id

    async def _update_row(
        self, conn: AsyncConnection, robot: Robot, values: dict[str, Any]
    ) -> None:
        changed = await conn.execute(
            update(robots).where(robots.c.id == robot.id).values(**values)
        )
        if changed.rowcount == 0:
            raise RobotNotFound(f"robot {robot.id} not found")


def generate_secret() -> str:
    """A random secret that also passes the password policy (upper and lower
    case letters and a digit), so that it can be given back as a chosen one."""
    while True:
        secret = "".join(
            secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH)
        )
        if (
            any(c.isupper() for c in secret)
            and any(c.islower() for c in secret)
            and any(c.isdigit() for c in secret)
        ):
            return secret


def check_duration(duration: int) -> None:
    """`RobotInvalid` unless `duration` is -1 (never) or positive days."""
    if duration != NEVER and not 0 < duration <= _MAX_DURATION_DAYS:
        raise RobotInvalid(
            f"duration {duration} is invalid: -1 (never) or a positive number of days"
        )


def expiry(created_at: datetime, duration: int) -> int:
    """`expires_at` for a secret living `duration` days from `created_at`."""
    if duration == NEVER:
        return NEVER
    return int(created_at.timestamp()) + duration * _DAY_SECONDS


def covers(held: Robot, wanted: Iterable[RobotPermission]) -> bool:
    """Whether every permission in `wanted` is one `held` has.

    A project permission is covered by the same one in that project or in
    every project; an every-project permission only by an every-project one.
    """
    mine = held.permissions
    for permission in wanted:
        everywhere = RobotPermission(
            permission.kind, None, permission.resource, permission.action
        )
        if permission not in mine and (
            permission.kind != PROJECT or everywhere not in mine
        ):
            return False
    return True


def _check_shape(level: str, requested: list[PermissionRequest]) -> None:
    if level not in (SYSTEM, PROJECT):
        raise RobotInvalid(f"level must be system or project, not {level!r}")
    if not requested:
        raise RobotInvalid("a robot needs at least one permission")
    if level == PROJECT and (
        len(requested) != 1
        or requested[0].kind != PROJECT
        or requested[0].namespace == EVERY_PROJECT
    ):
        raise RobotInvalid(
            "a project robot has exactly one permission set, of kind project, "
            "naming its project"
        )
    for item in requested:
        _check_permission_set(item)


def _check_permission_set(item: PermissionRequest) -> None:
    if item.kind == SYSTEM:
        catalogue = SYSTEM_PERMISSIONS
        if item.namespace != SYSTEM_NAMESPACE:
            raise RobotInvalid("the namespace of a system permission is '/'")
    elif item.kind == PROJECT:
        catalogue = PROJECT_PERMISSIONS
        if not item.namespace:
            raise RobotInvalid("a project permission names a project or '*'")
    else:
        raise RobotInvalid(f"permission kind must be system or project: {item.kind}")
    if not item.access:
        raise RobotInvalid("a permission set needs at least one access")
    for resource, action in item.access:
        if (resource, action) not in catalogue:
            raise RobotInvalid(f"unknown {item.kind} permission: {resource}:{action}")


async def _store_permissions(
    conn: AsyncConnection, robot_id: int, permissions: frozenset[RobotPermission]
) -> None:
    if not permissions:
        return
    await conn.execute(
        insert(robot_permissions),
        [
            {
                "robot_id": robot_id,
                "kind": held.kind,
                "project_id": held.project_id,
                "resource": held.resource,
                "action": held.action,
            }
            for held in permissions
        ],
    )


async def _permissions_of(
    conn: AsyncConnection, robot_ids: list[int]
) -> dict[int, frozenset[RobotPermission]]:
    if not robot_ids:
        return {}
    rows = await conn.execute(
        select(robot_permissions).where(robot_permissions.c.robot_id.in_(robot_ids))
    )
    held: dict[int, set[RobotPermission]] = {}
    for row in rows:
        held.setdefault(row.robot_id, set()).add(
            RobotPermission(row.kind, row.project_id, row.resource, row.action)
        )
    return {key: frozenset(value) for key, value in held.items()}


def _robot(row: Any, permissions: frozenset[RobotPermission]) -> Robot:
    return Robot(
        id=row["id"],
        name=row["name"],
        description=row["description"] or "",
        level=row["level"],
        project_id=row["project_id"],
        duration=row["duration"],
        expires_at=row["expires_at"],
        disabled=bool(row["disabled"]),
        creator=row["creator"],
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        permissions=permissions,
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
