"""What a principal may do: one evaluator for `/v2`, the token service and the API.

A principal's permissions in a project come from four places, all data:

- the roles it holds as a member, directly or through a user group
  (builtin Harbor roles or custom ones, each a set of permissions);
- repository grants: a role on the repositories whose name (below the
  project) matches a pattern, reaching only repository-level resources;
- for a robot, the permission list it was created with;
- the project being public, which lets anyone pull and read.

A system admin holds every project permission everywhere. Nothing is allowed
in a project that does not exist, not even to an admin: a repository cannot
live outside a project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth.principals import Principal
from dockyard.auth.rbac import (
    PROJECT_PERMISSIONS,
    PROJECT_SELF,
    PUBLIC_PROJECT,
    REPOSITORY_RESOURCES,
    Permission,
    registry_actions,
)
from dockyard.auth.scopes import Scope
from dockyard.db.schema import (
    members,
    projects,
    repositories,
    repository_grants,
    robot_permissions,
    role_permissions,
    user_group_users,
)
from dockyard.projects import Project, ProjectService
from dockyard.registry.reference import is_valid_name, project_of

NO_ACTIONS: frozenset[str] = frozenset()
NO_PERMISSIONS: frozenset[Permission] = frozenset()
CATALOG_SCOPE = ("registry", "catalog")


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """What one principal may do in one project."""

    project: Project
    permissions: frozenset[Permission]
    """Held in the whole project."""
    grants: tuple[tuple[str, frozenset[Permission]], ...] = ()
    """(repository pattern, permissions) pairs from repository grants."""
    role_ids: tuple[int, ...] = ()
    """Roles held as a member, directly or through groups."""

    def can(self, resource: str, action: str) -> bool:
        return (resource, action) in self.permissions

    def in_repository(self, repository: str) -> frozenset[Permission]:
        """Permissions in `repository` (a full name, project included)."""
        below = repository.split("/", 1)[1] if "/" in repository else ""
        held = set(self.permissions)
        for pattern, permissions in self.grants:
            if pattern_matches(pattern, below):
                held |= permissions
        return frozenset(held)

    def can_in_repository(self, repository: str, resource: str, action: str) -> bool:
        return (resource, action) in self.in_repository(repository)

    @property
    def reaches_repositories(self) -> bool:
        """Whether some repository of the project can be listed or pulled."""
        if self.can("repository", "list") or self.can("repository", "pull"):
            return True
        return any(("repository", "pull") in held for _, held in self.grants)

    @property
    def any_access(self) -> bool:
        return bool(self.permissions or self.grants)


class AccessPolicy:
    def __init__(self, projects: ProjectService) -> None:
        self.projects = projects

    async def project_access(
        self, principal: Principal, project: Project
    ) -> ProjectAccess:

        async def load() -> ProjectAccess:
            async with self.projects.db.read() as conn:
                return await _load_access(conn, principal, project)

        key = ("access", project.id, principal.user_id, principal.robot_id)
        access = await self.projects.db.cache.get_or_load(key, load)
        if principal.sysadmin:
            return replace(access, permissions=PROJECT_PERMISSIONS)
        return access

    async def access_by_name(
        self, principal: Principal, project_name: str
    ) -> ProjectAccess | None:
        project = await self.projects.find_project(project_name)
        if project is None:
            return None
        return await self.project_access(principal, project)

    async def allowed_actions(
        self, principal: Principal, repository: str
    ) -> frozenset[str]:
        """The registry actions `principal` may take on `repository`."""
        access = await self.access_by_name(principal, project_of(repository))
        if access is None:
            return NO_ACTIONS
        return registry_actions(access.in_repository(repository))

    async def listed_repositories(self, principal: Principal) -> ColumnElement[bool]:
        """A condition on `repositories`: those `principal` sees in listings
        across projects, by the rule of a project's own listing.

        Every repository of a public project or of one where it may list or
        pull project-wide; elsewhere those its repository grants let it pull.
        """
        if principal.sysadmin:
            return true()
        whole = or_(
            repositories.c.project_id.in_(
                select(projects.c.id).where(projects.c.public.is_(True))
            ),
            holds_project_wide(principal, ("repository", "list")),
            holds_project_wide(principal, ("repository", "pull")),
        )
        granted: list[int] = []
        async with self.projects.db.read() as conn:
            rows = (await conn.execute(_projects_with_grants(principal))).all()
        for row in rows:
            project = Project(row.id, row.name, bool(row.public), row.created_at)
            access = await self.project_access(principal, project)
            granted += [i for i, _ in await self.granted_repositories(access)]
        return or_(whole, repositories.c.id.in_(granted))

    async def granted_repositories(
        self, access: ProjectAccess
    ) -> list[tuple[int, str]]:
        """(id, name) of the project's repositories `access` may pull, by
        name; those its repository grants reach included."""
        query = (
            select(repositories.c.id, repositories.c.name)
            .where(repositories.c.project_id == access.project.id)
            .order_by(repositories.c.name)
        )
        async with self.projects.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            (row.id, row.name)
            for row in rows
            if access.can_in_repository(row.name, "repository", "pull")
        ]

    async def may_list_catalog(self, principal: Principal) -> bool:
        """Whether `principal` may list `/v2/_catalog`: as in Harbor, system
        admins and system robots holding (catalog, read), nobody else."""
        if principal.sysadmin:
            return True
        if principal.robot_id is None:
            return False
        query = select(robot_permissions.c.id).where(
            (robot_permissions.c.robot_id == principal.robot_id)
            & (robot_permissions.c.kind == "system")
            & (robot_permissions.c.resource == "catalog")
            & (robot_permissions.c.action == "read")
        )
        async with self.projects.db.read() as conn:
            return await conn.scalar(query.limit(1)) is not None

    async def administers_a_project(self, principal: Principal) -> bool:
        """Whether `principal` is a user who manages the members of some
        project (Harbor's test for a project admin)."""
        if principal.user_id is None:
            return False
        query = projects_granting(principal, ("member", "create")).limit(1)
        async with self.projects.db.read() as conn:
            return await conn.scalar(query) is not None

    async def grant(self, principal: Principal, requested: list[Scope]) -> list[Scope]:
        """Each requested scope cut down to what `principal` is allowed."""
        granted = []
        for scope in requested:
            if scope.type == "repository" and is_valid_name(scope.name):
                allowed = await self.allowed_actions(principal, scope.name)
                actions = _expand(scope.actions, allowed)
            elif (scope.type, scope.name) == CATALOG_SCOPE:
                may_list = await self.may_list_catalog(principal)
                actions = scope.actions & {"*"} if may_list else NO_ACTIONS
            else:
                actions = NO_ACTIONS
            if actions:
                granted.append(Scope(scope.type, scope.name, actions))
        return granted


def projects_granting(principal: Principal, permission: Permission) -> Select:
    """Ids of the projects where `principal` holds `permission` project-wide.

    For listings across projects; a system admin holds it everywhere and
    public projects are not included (callers add them where they apply).
    """
    resource, action = permission
    if principal.user_id is not None:
        roles_holding = select(role_permissions.c.role_id).where(
            (role_permissions.c.resource == resource)
            & (role_permissions.c.action == action)
        )
        return select(members.c.project_id).where(
            or_(
                members.c.user_id == principal.user_id,
                members.c.group_id.in_(_groups_of(principal.user_id)),
            )
            & members.c.role.in_(roles_holding)
        )
    if principal.robot_id is not None:
        return select(robot_permissions.c.project_id).where(
            (robot_permissions.c.robot_id == principal.robot_id)
            & (robot_permissions.c.kind == "project")
            & (robot_permissions.c.resource == resource)
            & (robot_permissions.c.action == action)
        )
    return select(members.c.project_id).where(false())


def holds_project_wide(
    principal: Principal, permission: Permission
) -> ColumnElement[bool]:
    """A condition on `repositories`: those in a project where `principal`
    holds `permission` project-wide, a system robot's every project included.
    """
    held = repositories.c.project_id.in_(projects_granting(principal, permission))
    if principal.robot_id is None:
        return held
    resource, action = permission
    everywhere = (
        select(robot_permissions.c.id)
        .where(
            (robot_permissions.c.robot_id == principal.robot_id)
            & (robot_permissions.c.kind == "project")
            & robot_permissions.c.project_id.is_(None)
            & (robot_permissions.c.resource == resource)
            & (robot_permissions.c.action == action)
        )
        .exists()
    )
    return or_(held, everywhere)


def _projects_with_grants(principal: Principal) -> Select:
    """The projects where `principal` holds some repository grant."""
    holders = _grant_holders(principal) or [false()]
    return select(
        projects.c.id, projects.c.name, projects.c.public, projects.c.created_at
    ).where(
        projects.c.id.in_(select(repository_grants.c.project_id).where(or_(*holders)))
    )


def _grant_holders(principal: Principal) -> list[ColumnElement[bool]]:
    """Conditions on `repository_grants`: grants held by `principal`, as a
    user, through its groups or as a robot."""
    holders = []
    if principal.user_id is not None:
        holders.append(repository_grants.c.user_id == principal.user_id)
        holders.append(repository_grants.c.group_id.in_(_groups_of(principal.user_id)))
    if principal.robot_id is not None:
        holders.append(repository_grants.c.robot_id == principal.robot_id)
    return holders


async def _load_access(
    conn: AsyncConnection, principal: Principal, project: Project
) -> ProjectAccess:
    held: set[Permission] = set(PUBLIC_PROJECT) if project.public else set()
    role_ids: list[int] = []
    if principal.user_id is not None:
        role_ids = await _member_role_ids(conn, project.id, principal.user_id)
        held |= await _role_permissions(conn, role_ids)
    if principal.robot_id is not None:
        held |= await _robot_permissions(conn, project.id, principal.robot_id)
    grants = await _repository_grants(conn, project.id, principal)
    if grants:
        # Whoever reaches some of its repositories may see the project.
        held.add((PROJECT_SELF, "read"))
    return ProjectAccess(project, frozenset(held), grants, tuple(role_ids))


def _groups_of(user_id: int) -> Select:
    return select(user_group_users.c.group_id).where(
        user_group_users.c.user_id == user_id
    )


async def _member_role_ids(
    conn: AsyncConnection, project_id: int, user_id: int
) -> list[int]:
    rows = await conn.execute(
        select(members.c.role)
        .where(members.c.project_id == project_id)
        .where(
            or_(
                members.c.user_id == user_id,
                members.c.group_id.in_(_groups_of(user_id)),
            )
        )
        .distinct()
    )
    return sorted(rows.scalars().all())


async def _role_permissions(
    conn: AsyncConnection, role_ids: list[int]
) -> set[Permission]:
    if not role_ids:
        return set()
    rows = await conn.execute(
        select(role_permissions.c.resource, role_permissions.c.action).where(
            role_permissions.c.role_id.in_(role_ids)
        )
    )
    return {(row.resource, row.action) for row in rows}


async def _robot_permissions(
    conn: AsyncConnection, project_id: int, robot_id: int
) -> set[Permission]:
    # A NULL project is a system robot's "every project" (namespace `*`).
    rows = await conn.execute(
        select(robot_permissions.c.resource, robot_permissions.c.action).where(
            (robot_permissions.c.robot_id == robot_id)
            & (robot_permissions.c.kind == "project")
            & or_(
                robot_permissions.c.project_id == project_id,
                robot_permissions.c.project_id.is_(None),
            )
        )
    )
    return {(row.resource, row.action) for row in rows}


async def _repository_grants(
    conn: AsyncConnection, project_id: int, principal: Principal
) -> tuple[tuple[str, frozenset[Permission]], ...]:
    holders = _grant_holders(principal)
    if not holders:
        return ()
    rows = await conn.execute(
        select(
            repository_grants.c.repository_pattern,
            role_permissions.c.resource,
            role_permissions.c.action,
        )
        .join(role_permissions, role_permissions.c.role_id == repository_grants.c.role)
        .where((repository_grants.c.project_id == project_id) & or_(*holders))
    )
    by_pattern: dict[str, set[Permission]] = {}
    for row in rows:
        if row.resource in REPOSITORY_RESOURCES:
            by_pattern.setdefault(row.repository_pattern, set()).add(
                (row.resource, row.action)
            )
    return tuple((p, frozenset(held)) for p, held in sorted(by_pattern.items()))


# One path component of a repository name, where `*` and `?` may stand for
# name characters; or `**` alone.
_COMPONENT_RE = re.compile(r"\*\*|[a-z0-9*?]+(?:[._-]+[a-z0-9*?]+)*")


def is_valid_pattern(pattern: str) -> bool:
    """A repository pattern: name components joined by `/`, with `*`, `?`
    inside a component, or `**` as a whole component."""
    return len(pattern) <= 255 and all(
        _COMPONENT_RE.fullmatch(part) for part in pattern.split("/")
    )


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether a repository name (below its project) matches a grant's pattern.

    `**` matches across `/`, `*` and `?` within one path component.
    """
    return _compiled(pattern).fullmatch(name) is not None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wildcards = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def _expand(asked: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    # "*" in a request means every action the caller holds.
    if "*" in asked and "*" in allowed:
        return allowed
    return asked & allowed
