"""Custom roles and repository grants: access control beyond Harbor's.

A role is a named set of project permissions. Harbor's five roles are builtin
rows that nobody may change; a system admin defines more from the same
catalogue (`dockyard.auth.rbac.PROJECT_PERMISSIONS`). Any role can be held
project-wide, as a member, or on the repositories of one project whose names
match a pattern, as a repository grant (to a user, a group or a robot).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.auth.access import is_valid_pattern
from dockyard.auth.rbac import PROJECT_PERMISSIONS, Permission
from dockyard.db.database import Database
from dockyard.db.schema import (
    members,
    repository_grants,
    robots,
    role_permissions,
    roles,
    user_groups,
    users,
)

_ROLE_NAME_MAX = 255


class GrantError(Exception):
    """A role or grant operation cannot be done; the message says why."""


class RoleNotFound(GrantError):
    pass


class RoleExists(GrantError):
    pass


class RoleInUse(GrantError):
    pass


class BuiltinRole(GrantError):
    pass


class GrantNotFound(GrantError):
    pass


@dataclass(frozen=True, slots=True)
class RoleView:
    id: int
    name: str
    description: str
    builtin: bool
    permissions: frozenset[Permission]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a grant: `kind` is "user", "group" or "robot"."""

    kind: str
    id: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    project_id: int
    holder: Holder
    role_id: int
    role_name: str
    repository_pattern: str
    created_at: datetime


class GrantService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Roles

    async def list_roles(self) -> list[RoleView]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(roles).order_by(roles.c.id))).all()
            held = await _permissions_by_role(conn)
        return [_role_view(row, held.get(row.id, frozenset())) for row in rows]

    async def get_role(self, role_id: int) -> RoleView:
        for role in await self.list_roles():
            if role.id == role_id:
                return role
        raise RoleNotFound(f"role {role_id} not found")

    async def create_role(
        self,
        name: str,
        description: str,
        permissions: set[Permission],
        actor: str,
    ) -> int:
        _check_role(name, permissions)
        now = datetime.now(UTC)
        try:
            async with self.db.write() as conn:
                result = await conn.execute(
                    insert(roles).values(
                        name=name,
                        description=description,
                        builtin=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
                role_id = int(result.inserted_primary_key[0])
                await _store_permissions(conn, role_id, permissions)
                await record_change(conn, actor, "role", "create", name)
        except IntegrityError as exc:
            raise RoleExists(f"a role named {name!r} already exists") from exc
        return role_id

    async def update_role(
        self,
        role_id: int,
        name: str,
        description: str,
        permissions: set[Permission],
        actor: str,
    ) -> None:
        _check_role(name, permissions)
        try:
            async with self.db.write() as conn:
                await _custom_role(conn, role_id)
                await conn.execute(
                    update(roles)
                    .where(roles.c.id == role_id)
                    .values(
                        name=name, description=description, updated_at=datetime.now(UTC)
                    )
                )
                await _store_permissions(conn, role_id, permissions)
                await record_change(conn, actor, "role", "update", name)
        except IntegrityError as exc:
            raise RoleExists(f"a role named {name!r} already exists") from exc

    async def delete_role(self, role_id: int, actor: str) -> None:
        """Delete a custom role; `RoleInUse` while a member holds it."""
        async with self.db.write() as conn:
            name = await _custom_role(conn, role_id)
            held = await conn.scalar(
                select(func.count())
                .select_from(members)
                .where(members.c.role == role_id)
            )
            if held:
                raise RoleInUse(f"role {name!r} is held by {held} project members")
            # Repository grants of the role go with it (ON DELETE CASCADE).
            await conn.execute(delete(roles).where(roles.c.id == role_id))
            await record_change(conn, actor, "role", "delete", name)

    # Repository grants

    async def list_grants(self, project_id: int) -> list[Grant]:
        holder_name = func.coalesce(
            users.c.username, user_groups.c.group_name, robots.c.name
        )
        query = (
            select(
                repository_grants,
                roles.c.name.label("role_name"),
                holder_name.label("holder_name"),
            )
            .join(roles, roles.c.id == repository_grants.c.role)
            .outerjoin(users, users.c.id == repository_grants.c.user_id)
            .outerjoin(user_groups, user_groups.c.id == repository_grants.c.group_id)
            .outerjoin(robots, robots.c.id == repository_grants.c.robot_id)
            .where(repository_grants.c.project_id == project_id)
            .order_by(repository_grants.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_grant(row) for row in rows]

    async def get_grant(self, project_id: int, grant_id: int) -> Grant:
        for grant in await self.list_grants(project_id):
            if grant.id == grant_id:
                return grant
        raise GrantNotFound(f"grant {grant_id} not found in project {project_id}")

    async def create_grant(
        self,
        project_id: int,
        holder: Holder,
        role_id: int,
        pattern: str,
        actor: str,
    ) -> int:
        if not is_valid_pattern(pattern):
            raise GrantError(
                "repository_pattern is repository name characters, '/', and the "
                "wildcards '*', '**' and '?'"
            )
        async with self.db.write() as conn:
            if (
                await conn.scalar(select(roles.c.id).where(roles.c.id == role_id))
                is None
            ):
                raise RoleNotFound(f"role {role_id} not found")
            result = await conn.execute(
                insert(repository_grants).values(
                    project_id=project_id,
                    role=role_id,
                    repository_pattern=pattern,
                    created_at=datetime.now(UTC),
                    **{f"{holder.kind}_id": holder.id},
                )
            )
            await record_change(
                conn,
                actor,
                "grant",
                "create",
                f"{holder.kind} {holder.name} on {pattern}",
                project_id,
            )
        return int(result.inserted_primary_key[0])

    async def delete_grant(self, grant: Grant, actor: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                delete(repository_grants).where(repository_grants.c.id == grant.id)
            )
            await record_change(
                conn,
                actor,
                "grant",
                "delete",
                f"{grant.holder.kind} {grant.holder.name}"
                f" on {grant.repository_pattern}",
                grant.project_id,
            )

    async def find_holder(
        self, kind: str, ident: int | None, name: str | None
    ) -> Holder:
        """The user, group or robot a grant request names (by id or by name)."""
        table, name_column = {
            "user": (users, users.c.username),
            "group": (user_groups, user_groups.c.group_name),
            "robot": (robots, robots.c.name),
        }.get(kind, (None, None))
        if table is None or name_column is None:
            raise GrantError('holder kind must be "user", "group" or "robot"')
        condition = table.c.id == ident if ident is not None else name_column == name
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(table.c.id, name_column).where(condition))
            ).first()
        if row is None:
            raise GrantNotFound(
                f"{kind} {ident if ident is not None else name} not found"
            )
        return Holder(kind, row[0], row[1])


def _check_role(name: str, permissions: set[Permission]) -> None:
    if not name or len(name) > _ROLE_NAME_MAX:
        raise GrantError(f"a role name is 1 to {_ROLE_NAME_MAX} characters")
    if not name.isprintable():
        raise GrantError("a role name may not hold control or invisible characters")
    unknown = sorted(permissions - PROJECT_PERMISSIONS)
    if unknown:
        shown = ", ".join(f"{r or '(project)'}:{a}" for r, a in unknown)
        raise GrantError(f"unknown permissions: {shown}")


async def _custom_role(conn: AsyncConnection, role_id: int) -> str:
    row = (
        await conn.execute(
            select(roles.c.name, roles.c.builtin).where(roles.c.id == role_id)
        )
    ).first()
    if row is None:
        raise RoleNotFound(f"role {role_id} not found")
    if row.builtin:
        raise BuiltinRole(f"role {row.name!r} is builtin and cannot be changed")
    return row.name


async def _store_permissions(
    conn: AsyncConnection, role_id: int, permissions: set[Permission]
) -> None:
    await conn.execute(
        delete(role_permissions).where(role_permissions.c.role_id == role_id)
    )
    if permissions:
        await conn.execute(
            insert(role_permissions),
            [
                {"role_id": role_id, "resource": resource, "action": action}
                for resource, action in sorted(permissions)
            ],
        )


async def _permissions_by_role(
    conn: AsyncConnection,
) -> dict[int, frozenset[Permission]]:
    held: dict[int, set[Permission]] = {}
    for row in await conn.execute(select(role_permissions)):
        held.setdefault(row.role_id, set()).add((row.resource, row.action))
    return {role_id: frozenset(p) for role_id, p in held.items()}


def _role_view(row: Any, permissions: frozenset[Permission]) -> RoleView:
    return RoleView(
        row.id,
        row.name,
        row.description or "",
        bool(row.builtin),
        permissions,
        row.created_at,
        row.updated_at,
    )


def _grant(row: Any) -> Grant:
    values = row._mapping
    kind = next(k for k in ("user", "group", "robot") if values[f"{k}_id"] is not None)
    holder = Holder(kind, values[f"{kind}_id"], row.holder_name)
    return Grant(
        row.id,
        row.project_id,
        holder,
        row.role,
        row.role_name,
        row.repository_pattern,
        row.created_at,
    )
