"""Projects and their members.

A project owns every repository whose name starts with the project's name
and a slash. Public projects can be pulled by anyone; the rest only by
members, with the role deciding what else they may do.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import CLI_ACTOR, record_change
from dockyard.auth.principals import Principal
from dockyard.auth.roles import Role
from dockyard.db.database import Database, insert_or_update
from dockyard.db.schema import members, projects, repositories, users

# Harbor's rule for project names (a single repository path component).
_PROJECT_NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")


class ProjectError(Exception):
    """A project operation cannot be done; the message says why."""


class ProjectExists(ProjectError):
    pass


class ProjectNotFound(ProjectError):
    pass


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    public: bool
    created_at: float


class MemberExists(ProjectError):
    pass


class NotEmpty(ProjectError):
    """The project still holds repositories."""


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    project_id: int
    user_id: int
    username: str
    role: Role


class ProjectService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_project(
        self,
        name: str,
        *,
        public: bool,
        owner_id: int | None = None,
        actor: str = CLI_ACTOR,
    ) -> Project:
        if len(name) > 255 or not _PROJECT_NAME_RE.fullmatch(name):
            raise ProjectError(
                "a project name is lower case letters, digits and '.', '_', '-' "
                "between them"
            )
        created_at = time.time()
        row = {
            "name": name,
            "public": public,
            "owner_id": owner_id,
            "created_at": created_at,
            "updated_at": datetime.now(UTC),
        }
        try:
            async with self.db.write() as conn:
                result = await conn.execute(insert(projects).values(**row))
                project_id = int(result.inserted_primary_key[0])
                if owner_id is not None:
                    await _put_member(conn, project_id, owner_id, Role.PROJECT_ADMIN)
                await record_change(conn, actor, "project", "create", name, project_id)
        except IntegrityError as exc:
            raise ProjectExists(f"project {name!r} already exists") from exc
        return Project(project_id, name, public, created_at)

    async def find_project(self, name: str) -> Project | None:
        async def load() -> Project | None:
            async with self.db.read() as conn:
                return await find_project(conn, name)

        return await self.db.cache.get_or_load(("project", name), load)

    async def member_role(self, project_id: int, user_id: int) -> Role | None:
        async def load() -> Role | None:
            async with self.db.read() as conn:
                role = await conn.scalar(
                    select(members.c.role).where(
                        (members.c.project_id == project_id)
                        & (members.c.user_id == user_id)
                    )
                )
            return Role(role) if role is not None else None

        return await self.db.cache.get_or_load(("member", project_id, user_id), load)

    async def add_member(
        self, project_name: str, username: str, role: Role, actor: str = CLI_ACTOR
    ) -> None:
        """Give `username` `role` in the project, replacing any role it had."""
        async with self.db.write() as conn:
            project = await find_project(conn, project_name)
            if project is None:
                raise ProjectNotFound(f"no project {project_name!r}")
            user_id = await conn.scalar(
                select(users.c.id).where(users.c.username == username)
            )
            if user_id is None:
                raise ProjectError(f"no user {username!r}")
            await _put_member(conn, project.id, user_id, role)
            await record_change(conn, actor, "member", "create", username, project.id)

    async def project_by_id(self, project_id: int) -> Project | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        projects.c.id,
                        projects.c.name,
                        projects.c.public,
                        projects.c.created_at,
                    ).where(projects.c.id == project_id)
                )
            ).first()
        return (
            Project(row.id, row.name, bool(row.public), row.created_at) if row else None
        )

    async def project_details(self, query: Select) -> list[dict[str, Any]]:
        """Rows of `query` (over `projects`) with owner name and repository count."""
        repo_count = (
            select(func.count(repositories.c.id))
            .where(repositories.c.project_id == projects.c.id)
            .scalar_subquery()
        )
        detailed = query.add_columns(
            users.c.username.label("owner_name"), repo_count.label("repo_count")
        ).outerjoin(users, users.c.id == projects.c.owner_id)
        async with self.db.read() as conn:
            return [
                dict(row) for row in (await conn.execute(detailed)).mappings().all()
            ]

    async def count(self, query: Select) -> int:
        async with self.db.read() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(query.order_by(None).subquery())
            )
        return int(total or 0)

    async def set_public(self, project_id: int, public: bool, actor: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(projects)
                .where(projects.c.id == project_id)
                .values(public=public, updated_at=datetime.now(UTC))
            )
            name = await conn.scalar(
                select(projects.c.name).where(projects.c.id == project_id)
            )
            await record_change(conn, actor, "project", "update", name, project_id)

    async def delete_project(self, project_id: int, actor: str) -> None:
        """Delete an empty project; `NotEmpty` while it holds repositories."""
        async with self.db.write() as conn:
            name = await conn.scalar(
                select(projects.c.name).where(projects.c.id == project_id)
            )
            held = await conn.scalar(
                select(func.count(repositories.c.id)).where(
                    repositories.c.project_id == project_id
                )
            )
            if held:
                raise NotEmpty(f"project {project_id} still holds {held} repositories")
            await conn.execute(delete(projects).where(projects.c.id == project_id))
            await record_change(conn, actor, "project", "delete", name, project_id)

    async def list_members(
        self, project_id: int, name_filter: str | None = None
    ) -> list[Member]:
        query = (
            select(
                members.c.id,
                members.c.project_id,
                members.c.user_id,
                members.c.role,
                users.c.username,
            )
            .join(users, users.c.id == members.c.user_id)
            .where(members.c.project_id == project_id)
            .order_by(members.c.id)
        )
        if name_filter:
            query = query.where(users.c.username == name_filter)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Member(r.id, r.project_id, r.user_id, r.username, Role(r.role))
            for r in rows
        ]

    async def get_member(self, project_id: int, member_id: int) -> Member | None:
        found = [m for m in await self.list_members(project_id) if m.id == member_id]
        return found[0] if found else None

    async def create_member(
        self, project_id: int, user_id: int, role: Role, actor: str
    ) -> int:
        """Add a user to the project; `MemberExists` if already a member."""
        try:
            async with self.db.write() as conn:
                result = await conn.execute(
                    insert(members).values(
                        project_id=project_id,
                        user_id=user_id,
                        role=int(role),
                        created_at=datetime.now(UTC),
                    )
                )
                username = await conn.scalar(
                    select(users.c.username).where(users.c.id == user_id)
                )
                await record_change(
                    conn, actor, "member", "create", username, project_id
                )
        except IntegrityError as exc:
            raise MemberExists("the user is already a member of the project") from exc
        return int(result.inserted_primary_key[0])

    async def update_member(self, member: Member, role: Role, actor: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(members).where(members.c.id == member.id).values(role=int(role))
            )
            await record_change(
                conn, actor, "member", "update", member.username, member.project_id
            )

    async def delete_member(self, member: Member, actor: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(members).where(members.c.id == member.id))
            await record_change(
                conn, actor, "member", "delete", member.username, member.project_id
            )


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """A condition on `projects`: those whose repositories `principal` may pull."""
    if principal.sysadmin:
        return true()
    if principal.user_id is None:
        return projects.c.public.is_(True)
    mine = select(members.c.project_id).where(members.c.user_id == principal.user_id)
    return or_(projects.c.public.is_(True), projects.c.id.in_(mine))


async def find_project(conn: AsyncConnection, name: str) -> Project | None:
    row = (
        await conn.execute(
            select(
                projects.c.id, projects.c.name, projects.c.public, projects.c.created_at
            ).where(projects.c.name == name)
        )
    ).first()
    return Project(row.id, row.name, bool(row.public), row.created_at) if row else None


async def _put_member(
    conn: AsyncConnection, project_id: int, user_id: int, role: Role
) -> None:
    """Make the user a member with `role`, keeping the membership if it exists."""
    values = {
        "project_id": project_id,
        "user_id": user_id,
        "role": int(role),
        "created_at": datetime.now(UTC),
    }
    keys = ["project_id", "user_id"]
    await conn.execute(
        insert_or_update(conn, members, keys, values, {"role": int(role)})
    )
