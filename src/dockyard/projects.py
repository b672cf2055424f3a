"""Projects and their members.

A project owns every repository whose name starts with the project's name
and a slash. Public projects can be pulled by anyone; the rest only by
members, with the role deciding what else they may do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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

from dockyard.allowlists import AllowlistContent, write_allowlist
from dockyard.audit import CLI_ACTOR, record_change
from dockyard.auth.principals import Principal
from dockyard.auth.roles import Role
from dockyard.db.database import Database, count_rows, insert_or_update
from dockyard.db.schema import (
    members,
    project_metadata,
    projects,
    proxy_projects,
    repositories,
    repository_grants,
    robot_permissions,
    roles,
    user_group_users,
    user_groups,
    users,
)
from dockyard.quotas import create_quota

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


USER = "u"
GROUP = "g"


@dataclass(frozen=True, slots=True)
class MemberEntity:
    """Who becomes a member: a user (`USER`) or a user group (`GROUP`)."""

    type: str
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    project_id: int
    entity_type: str
    entity_id: int
    entity_name: str
    role_id: int
    role_name: str


class UnknownRole(ProjectError):
    pass


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """What a creator sets beside the name: metadata (from `check_metadata`;
    `public` there is ignored, it is an argument of its own), a storage limit
    (None: the configured default), a CVE allowlist and, for a proxy-cache
    project, the registry endpoint it serves."""

    metadata: dict[str, str] = field(default_factory=dict)
    storage_limit: int | None = None
    allowlist: AllowlistContent | None = None
    registry_id: int | None = None


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
        settings: ProjectSettings | None = None,
    ) -> Project:
        """Create the project with its owner as project admin, its quota and
        what `settings` holds (checked beforehand by the caller)."""
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
                await _write_settings(conn, project_id, settings or ProjectSettings())
                await record_change(conn, actor, "project", "create", name, project_id)
        except IntegrityError as exc:
            raise ProjectExists(f"project {name!r} already exists") from exc
        return Project(project_id, name, public, created_at)

    async def find_project(self, name: str) -> Project | None:
        async def load() -> Project | None:
            async with self.db.read() as conn:
                return await find_project(conn, name)

        return await self.db.cache.get_or_load(("project", name), load)

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

    async def project_details(
        self, query: Select, counted: ColumnElement[bool] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of `query` (over `projects`) with owner name and the count of
        their repositories that meet `counted` (a condition on
        `repositories`; all of them when None)."""
        repo_count = (
            select(func.count(repositories.c.id))
            .where(repositories.c.project_id == projects.c.id)
            .where(true() if counted is None else counted)
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
            return await count_rows(conn, query)

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
        """Members of a project, users and groups, oldest first."""
        entity_name = func.coalesce(users.c.username, user_groups.c.group_name)
        query = (
            select(
                members.c.id,
                members.c.project_id,
                members.c.user_id,
                members.c.group_id,
                members.c.role,
                entity_name.label("entity_name"),
                roles.c.name.label("role_name"),
            )
            .outerjoin(users, users.c.id == members.c.user_id)
            .outerjoin(user_groups, user_groups.c.id == members.c.group_id)
            .join(roles, roles.c.id == members.c.role)
            .where(members.c.project_id == project_id)
            .order_by(members.c.id)
        )
        if name_filter:
            query = query.where(entity_name == name_filter)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_member(row) for row in rows]

    async def get_member(self, project_id: int, member_id: int) -> Member | None:
        found = [m for m in await self.list_members(project_id) if m.id == member_id]
        return found[0] if found else None

    async def create_member(
        self, project_id: int, entity: MemberEntity, role_id: int, actor: str
    ) -> int:
        """Add a user or group to the project; `MemberExists` if already one."""
        column = "user_id" if entity.type == USER else "group_id"
        try:
            async with self.db.write() as conn:
                await _require_role(conn, role_id)
                result = await conn.execute(
                    insert(members).values(
                        project_id=project_id,
                        role=role_id,
                        created_at=datetime.now(UTC),
                        **{column: entity.id},
                    )
                )
                await record_change(
                    conn, actor, "member", "create", entity.name, project_id
                )
        except IntegrityError as exc:
            raise MemberExists(f"{entity.name} is already a member") from exc
        return int(result.inserted_primary_key[0])

    async def update_member(self, member: Member, role_id: int, actor: str) -> None:
        async with self.db.write() as conn:
            await _require_role(conn, role_id)
            await conn.execute(
                update(members).where(members.c.id == member.id).values(role=role_id)
            )
            await record_change(
                conn, actor, "member", "update", member.entity_name, member.project_id
            )

    async def delete_member(self, member: Member, actor: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(members).where(members.c.id == member.id))
            await record_change(
                conn, actor, "member", "delete", member.entity_name, member.project_id
            )


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """A condition on `projects`: those `principal` can see into.

    Public projects, and those where it is a member (directly or through a
    group), holds a repository grant, or (a robot) holds permissions.
    """
    if principal.sysadmin:
        return true()
    reachable = [projects.c.public.is_(True)]
    if principal.user_id is not None:
        groups = select(user_group_users.c.group_id).where(
            user_group_users.c.user_id == principal.user_id
        )
        membership = select(members.c.project_id).where(
            or_(
                members.c.user_id == principal.user_id,
                members.c.group_id.in_(groups),
            )
        )
        granted = select(repository_grants.c.project_id).where(
            or_(
                repository_grants.c.user_id == principal.user_id,
                repository_grants.c.group_id.in_(groups),
            )
        )
        reachable += [projects.c.id.in_(membership), projects.c.id.in_(granted)]
    if principal.robot_id is not None:
        reachable.append(_robot_projects(principal.robot_id))
    return or_(*reachable)


def _robot_projects(robot_id: int) -> ColumnElement[bool]:
    held = robot_permissions.c.robot_id == robot_id
    held &= robot_permissions.c.kind == "project"
    every_project = (
        select(robot_permissions.c.id)
        .where(held & robot_permissions.c.project_id.is_(None))
        .exists()
    )
    named = select(robot_permissions.c.project_id).where(held)
    granted = select(repository_grants.c.project_id).where(
        repository_grants.c.robot_id == robot_id
    )
    return or_(every_project, projects.c.id.in_(named), projects.c.id.in_(granted))


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


def _member(row: Any) -> Member:
    if row.user_id is not None:
        entity_type, entity_id = USER, row.user_id
    else:
        entity_type, entity_id = GROUP, row.group_id
    return Member(
        row.id,
        row.project_id,
        entity_type,
        entity_id,
        row.entity_name,
        row.role,
        row.role_name,
    )


async def _require_role(conn: AsyncConnection, role_id: int) -> None:
    if await conn.scalar(select(roles.c.id).where(roles.c.id == role_id)) is None:
        raise UnknownRole(f"no role with id {role_id}")


async def _write_settings(
    conn: AsyncConnection, project_id: int, settings: ProjectSettings
) -> None:
    await create_quota(conn, project_id, settings.storage_limit)
    metadata = {k: v for k, v in settings.metadata.items() if k != PUBLIC}
    await _store_metadata(conn, project_id, metadata)
    if settings.allowlist is not None:
        await write_allowlist(conn, project_id, settings.allowlist)
    if settings.registry_id is not None:
        await conn.execute(
            insert(proxy_projects).values(
                project_id=project_id,
                registry_id=settings.registry_id,
                created_at=datetime.now(UTC),
            )
        )


# Project metadata: Harbor's per-project settings, every value a string
# ("true", "low", "30"). `public` is the `projects.public` column, read and
# written as metadata; the other keys are rows of `project_metadata`.

PUBLIC = "public"
_BOOLEAN_KEYS = frozenset(
    {
        PUBLIC,
        "enable_content_trust",
        "enable_content_trust_cosign",
        "prevent_vul",
        "auto_scan",
        "auto_sbom_generation",
        "reuse_sys_cve_allowlist",
    }
)
# `proxy_revalidate_seconds` is Dockyard's: how often a proxy-cache project
# compares a cached tag with its upstream.
_INTEGER_KEYS = frozenset(
    {"proxy_speed_kb", "retention_id", "proxy_revalidate_seconds"}
)
_SEVERITIES = ("none", "low", "medium", "high", "critical")
METADATA_KEYS = _BOOLEAN_KEYS | _INTEGER_KEYS | {"severity"}
# The spellings Go's strconv.ParseBool accepts, which Harbor's clients may send.
_TRUE = ("1", "t", "true")
_FALSE = ("0", "f", "false")
_INTEGER_RE = re.compile(r"-?[0-9]{1,10}")


class MetadataInvalid(ProjectError):
    pass


class MetadataExists(ProjectError):
    pass


class MetadataNotFound(ProjectError):
    pass


def check_metadata(values: Mapping[str, str]) -> dict[str, str]:
    """The values in Harbor's canonical form ("TRUE" becomes "true");
    `MetadataInvalid` for an unknown key or a value the key does not take."""
    return {key: _canonical(key, value) for key, value in values.items()}


def _canonical(key: str, value: str) -> str:
    text = value.strip().lower()
    if key in _BOOLEAN_KEYS:
        if text in _TRUE + _FALSE:
            return "true" if text in _TRUE else "false"
    elif key == "severity":
        if text in _SEVERITIES:
            return text
    elif key in _INTEGER_KEYS:
        if _INTEGER_RE.fullmatch(text):
            return str(int(text))
    else:
        known = ", ".join(sorted(METADATA_KEYS))
        raise MetadataInvalid(f"invalid metadata key {key!r}; known keys: {known}")
    raise MetadataInvalid(f"invalid value {value!r} for metadata {key}")


class ProjectMetadataService:
    """Reads and writes project metadata; values must come from `check_metadata`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_metadata(self, project_id: int) -> dict[str, str]:
        """Every key the project has, `public` always among them."""
        async with self.db.read() as conn:
            return await _stored_metadata(conn, project_id)

    async def add_metadata(
        self, project: Project, values: dict[str, str], actor: str
    ) -> None:
        """Set keys the project does not have; `MetadataExists` if one is set."""
        async with self.db.write() as conn:
            taken = sorted(set(values) & set(await _stored_metadata(conn, project.id)))
            if taken:
                raise MetadataExists(f"metadata {', '.join(taken)} already set")
            await _store_metadata(conn, project.id, values)
            await _record_metadata(conn, actor, "create", project, values)

    async def update_metadata(
        self,
        project: Project,
        values: dict[str, str],
        actor: str,
        *,
        must_exist: bool = False,
    ) -> None:
        """Set the keys, added or replaced; with `must_exist`, raise
        `MetadataNotFound` unless the project already has each of them."""
        async with self.db.write() as conn:
            if must_exist:
                stored = await _stored_metadata(conn, project.id)
                missing = sorted(set(values) - set(stored))
                if missing:
                    raise MetadataNotFound(f"metadata {', '.join(missing)} not found")
            await _store_metadata(conn, project.id, values)
            await _record_metadata(conn, actor, "update", project, values)

    async def delete_metadata(self, project: Project, name: str, actor: str) -> None:
        """Remove a key; `MetadataNotFound` if unset, `MetadataInvalid` for
        `public`, which every project has."""
        if name == PUBLIC:
            raise MetadataInvalid("metadata public cannot be deleted")
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(project_metadata).where(
                    (project_metadata.c.project_id == project.id)
                    & (project_metadata.c.name == name)
                )
            )
            if result.rowcount == 0:
                raise MetadataNotFound(f"metadata {name} not found")
            await _record_metadata(conn, actor, "delete", project, {name: ""})


async def _stored_metadata(conn: AsyncConnection, project_id: int) -> dict[str, str]:
    public = await conn.scalar(
        select(projects.c.public).where(projects.c.id == project_id)
    )
    rows = await conn.execute(
        select(project_metadata.c.name, project_metadata.c.value)
        .where(project_metadata.c.project_id == project_id)
        .order_by(project_metadata.c.name)
    )
    return {PUBLIC: "true" if public else "false", **{r.name: r.value for r in rows}}


async def _store_metadata(
    conn: AsyncConnection, project_id: int, values: Mapping[str, str]
) -> None:
    for name, value in values.items():
        if name == PUBLIC:
            await conn.execute(
                update(projects)
                .where(projects.c.id == project_id)
                .values(public=value == "true", updated_at=datetime.now(UTC))
            )
            continue
        row = {"project_id": project_id, "name": name, "value": value}
        await conn.execute(
            insert_or_update(
                conn, project_metadata, ["project_id", "name"], row, {"value": value}
            )
        )


async def _record_metadata(
    conn: AsyncConnection,
    actor: str,
    operation: str,
    project: Project,
    values: Mapping[str, str],
) -> None:
    resource = f"{project.name}:{','.join(sorted(values))}"
    await record_change(
        conn, actor, "project-metadata", operation, resource, project.id
    )
