"""User groups: project members that stand for many users at once.

Harbor fills groups from LDAP or OIDC claims. Dockyard also lets an admin
put local users into a group (any type), so that groups work in database
authentication mode too; LDAP and OIDC sync will add members the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dockyard.audit import CLI_ACTOR, record_change
from dockyard.db.database import Database, count_rows, insert_or_ignore
from dockyard.db.schema import user_group_users, user_groups, users

LDAP_GROUP, HTTP_GROUP, OIDC_GROUP = 1, 2, 3
GROUP_TYPES = (LDAP_GROUP, HTTP_GROUP, OIDC_GROUP)


class GroupError(Exception):
    """A group operation cannot be done; the message says why."""


class GroupNotFound(GroupError):
    pass


class GroupExists(GroupError):
    pass


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    group_name: str
    group_type: int
    ldap_group_dn: str


class GroupService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list_query(self) -> Select:
        return select(user_groups)

    async def list_groups(self, query: Select, offset: int, limit: int) -> list[Group]:
        async with self.db.read() as conn:
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [_group(row) for row in rows]

    async def count(self, query: Select) -> int:
        async with self.db.read() as conn:
            return await count_rows(conn, query)

    async def get_group(self, group_id: int) -> Group:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(user_groups).where(user_groups.c.id == group_id)
                )
            ).first()
        if row is None:
            raise GroupNotFound(f"user group {group_id} not found")
        return _group(row)

    async def create_group(
        self,
        name: str,
        group_type: int,
        ldap_group_dn: str = "",
        actor: str = CLI_ACTOR,
    ) -> Group:
        _validate(name, group_type, ldap_group_dn)
        now = datetime.now(UTC)
        try:
            async with self.db.write() as conn:
                result = await conn.execute(
                    insert(user_groups).values(
                        group_name=name,
                        group_type=group_type,
                        ldap_group_dn=ldap_group_dn or None,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await record_change(conn, actor, "user_group", "create", name)
        except IntegrityError as exc:
            raise GroupExists(f"user group {name!r} already exists") from exc
        return Group(
            int(result.inserted_primary_key[0]), name, group_type, ldap_group_dn
        )

    async def find_or_create(self, spec: dict[str, Any]) -> Group:
        """The group a member request names: by `id`, or by name and type
        (created when absent, as Harbor does for HTTP and OIDC groups)."""
        if spec.get("id"):
            return await self.get_group(int(spec["id"]))
        name = str(spec.get("group_name") or "")
        group_type = int(spec.get("group_type") or HTTP_GROUP)
        _validate(name, group_type, str(spec.get("ldap_group_dn") or ""))
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(user_groups).where(
                        (user_groups.c.group_name == name)
                        & (user_groups.c.group_type == group_type)
                    )
                )
            ).first()
        if row is not None:
            return _group(row)
        return await self.create_group(
            name, group_type, spec.get("ldap_group_dn") or ""
        )

    async def rename_group(self, group_id: int, name: str, actor: str) -> None:
        group = await self.get_group(group_id)
        _validate(name, group.group_type)
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    update(user_groups)
                    .where(user_groups.c.id == group_id)
                    .values(group_name=name, updated_at=datetime.now(UTC))
                )
                await record_change(conn, actor, "user_group", "update", name)
        except IntegrityError as exc:
            raise GroupExists(f"user group {name!r} already exists") from exc

    async def delete_group(self, group_id: int, actor: str) -> None:
        """Delete a group; its memberships and grants go with it."""
        group = await self.get_group(group_id)
        async with self.db.write() as conn:
            await conn.execute(delete(user_groups).where(user_groups.c.id == group_id))
            await record_change(conn, actor, "user_group", "delete", group.group_name)

    async def list_users(self, group_id: int) -> list[dict[str, Any]]:
        await self.get_group(group_id)
        query = (
            select(users.c.id, users.c.username)
            .join(user_group_users, user_group_users.c.user_id == users.c.id)
            .where(user_group_users.c.group_id == group_id)
            .order_by(users.c.username)
        )
        async with self.db.read() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    async def add_user(self, group_id: int, user_id: int, actor: str) -> None:
        group = await self.get_group(group_id)
        async with self.db.write() as conn:
            await conn.execute(
                insert_or_ignore(
                    conn, user_group_users, group_id=group_id, user_id=user_id
                )
            )
            await record_change(
                conn, actor, "user_group", "update", f"{group.group_name} +{user_id}"
            )

    async def remove_user(self, group_id: int, user_id: int, actor: str) -> None:
        group = await self.get_group(group_id)
        async with self.db.write() as conn:
            await conn.execute(
                delete(user_group_users).where(
                    (user_group_users.c.group_id == group_id)
                    & (user_group_users.c.user_id == user_id)
                )
            )
            await record_change(
                conn, actor, "user_group", "update", f"{group.group_name} -{user_id}"
            )


def _validate(name: str, group_type: int, ldap_group_dn: str = "") -> None:
    if not name or len(name) > 255:
        raise GroupError("group_name must be 1 to 255 characters")
    if not name.isprintable():
        raise GroupError("group_name holds control or invisible characters")
    if not ldap_group_dn.isprintable():
        raise GroupError("ldap_group_dn holds control or invisible characters")
    if group_type not in GROUP_TYPES:
        raise GroupError("group_type must be 1 (LDAP), 2 (HTTP) or 3 (OIDC)")


def _group(row: Any) -> Group:
    return Group(row.id, row.group_name, row.group_type, row.ldap_group_dn or "")
