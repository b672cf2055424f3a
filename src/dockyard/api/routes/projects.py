"""`/projects` and `/projects/{project_name_or_id}/members`.

Who may do what follows Harbor's matrix: anyone lists and reads public
projects, members read their private ones; any user creates projects (and
becomes their project admin); project admins and system admins update and
delete them and manage members; every member lists members.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import select

from dockyard.api.access import project_access, system_can
from dockyard.api.deps import CallerDep, DbInt, PageDep, ServicesDep, UserDep, paginated
from dockyard.api.errors import (
    BadRequest,
    Forbidden,
    NotFound,
)
from dockyard.api.query import apply_query
from dockyard.api.routes.allowlists import CVEAllowlistReq, allowlist_resp
from dockyard.api.routes.metadata import requested_metadata
from dockyard.api.routes.quotas import requested_limit
from dockyard.api.routes.users import harbor_time
from dockyard.auth.principals import Principal
from dockyard.auth.rbac import PROJECT_SELF
from dockyard.auth.roles import Role
from dockyard.db.schema import projects
from dockyard.projects import (
    GROUP,
    PUBLIC,
    USER,
    Member,
    MemberEntity,
    Project,
    ProjectError,
    ProjectSettings,
    visible_to,
)
from dockyard.replication.registries import RegistryNotFound
from dockyard.robots import SYSTEM as SYSTEM_LEVEL
from dockyard.services import Services

router = APIRouter(tags=["project"])

_QUERY_COLUMNS = {
    "name": projects.c.name,
    "project_id": projects.c.id,
    "public": projects.c.public,
    "owner_id": projects.c.owner_id,
    "creation_time": projects.c.created_at,
    "update_time": projects.c.updated_at,
}


class ProjectReq(BaseModel):
    project_name: str | None = Field(default=None, max_length=255)
    public: StrictBool | None = None
    # Harbor keeps project metadata as strings ("true", "low"); null is unset.
    metadata: dict[str, str | None] | None = None
    cve_allowlist: CVEAllowlistReq | None = None
    storage_limit: DbInt | None = None
    registry_id: DbInt | None = None


class MemberUser(BaseModel):
    user_id: DbInt | None = None
    username: str | None = None


class MemberGroup(BaseModel):
    """Harbor's `UserGroup`, as a member request names a group."""

    id: DbInt | None = None
    group_name: str | None = Field(default=None, max_length=255)
    group_type: DbInt | None = None
    ldap_group_dn: str | None = Field(default=None, max_length=512)


class ProjectMemberReq(BaseModel):
    role_id: DbInt
    member_user: MemberUser | None = None
    member_group: MemberGroup | None = None


class RoleRequest(BaseModel):
    role_id: DbInt


ProjectReader = project_access(PROJECT_SELF, "read")
ProjectUpdater = project_access(PROJECT_SELF, "update")
ProjectDeleter = project_access(PROJECT_SELF, "delete")
MemberLister = project_access("member", "list")
MemberReader = project_access("member", "read")
MemberCreator = project_access("member", "create")
MemberUpdater = project_access("member", "update")
MemberDeleter = project_access("member", "delete")


@router.get("/projects")
async def list_projects(
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    name: str | None = None,
    public: bool | None = None,
    owner: str | None = None,
) -> Response:
    query = select(projects).where(visible_to(caller))
    if name:
        query = query.where(projects.c.name.contains(name, autoescape=True))
    if public is not None:
        query = query.where(projects.c.public.is_(public))
    if owner:
        owner_row = await services.users.find_user(owner)
        query = query.where(
            projects.c.owner_id == (owner_row["id"] if owner_row else -1)
        )
    query = apply_query(query, q, sort, _QUERY_COLUMNS, [projects.c.id])
    total = await services.projects.count(query)
    rows = await services.projects.project_details(
        query.offset(page.offset).limit(page.size),
        await services.policy.listed_repositories(caller),
    )
    items = [await _project_resp(services, caller, row) for row in rows]
    return paginated(request, items, total, page)


@router.head("/projects")
async def project_exists(
    services: ServicesDep, caller: CallerDep, project_name: Annotated[str, Query()]
) -> Response:
    found = await services.projects.find_project(project_name)
    return Response(status_code=200 if found else 404)


@router.post("/projects", status_code=201)
async def create_project(
    body: ProjectReq, services: ServicesDep, user: UserDep
) -> Response:
    if not body.project_name:
        raise BadRequest("project_name is required")
    await _check_may_create(services, user)
    metadata = requested_metadata(body.metadata, body.public)
    settings = ProjectSettings(
        metadata=metadata,
        storage_limit=requested_limit(body.storage_limit, user, creating=True),
        allowlist=body.cve_allowlist.content() if body.cve_allowlist else None,
        registry_id=await _proxied_registry(services, user, body.registry_id),
    )
    project = await services.projects.create_project(
        body.project_name,
        public=metadata.get(PUBLIC) == "true",
        owner_id=await _owner_for(services, user),
        actor=user.username,
        settings=settings,
    )
    return Response(
        status_code=201, headers={"location": f"/api/v2.0/projects/{project.id}"}
    )


async def _owner_for(services: Services, caller: Principal) -> int:
    """Who owns (and administers) a project `caller` creates: the caller, or
    for a robot, as in Harbor, the system admin with the lowest id."""
    if caller.user_id is not None:
        return caller.user_id
    owner_id = await services.users.first_sysadmin_id()
    if owner_id is None:
        raise ProjectError("cannot create a project: no system admin to own it")
    return owner_id


async def _check_may_create(services: Services, caller: Principal) -> None:
    """403 unless `caller` may create a project: as in Harbor, never a project
    robot, and under `adminonly` only holders of the system `project` `create`
    permission (system admins, system robots given it)."""
    if caller.robot_id is not None:
        robot = await services.robots.get_robot(caller.robot_id)
        if robot.level != SYSTEM_LEVEL:
            raise Forbidden("Only system level robot can create project")
    restriction = await services.configurations.get("project_creation_restriction")
    if restriction == "adminonly" and not await system_can(
        services, caller, "project", "create"
    ):
        raise Forbidden("Only system admin can create project")


@router.get("/projects/{project_name_or_id}")
async def get_project(
    access: ProjectReader, services: ServicesDep, caller: CallerDep
) -> dict[str, Any]:
    details = await _details(services, access.project, caller)
    return await _project_resp(services, caller, details)


@router.put("/projects/{project_name_or_id}")
async def update_project(
    access: ProjectUpdater,
    body: ProjectReq,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    project, actor = access.project, caller.username
    metadata = requested_metadata(body.metadata, body.public)
    allowlist = body.cve_allowlist.content() if body.cve_allowlist else None
    limit = requested_limit(body.storage_limit, caller, creating=False)
    if metadata:
        await services.metadata.update_metadata(project, metadata, actor)
    if allowlist is not None:
        await services.allowlists.put_allowlist(
            project.id, allowlist, actor, project.name
        )
    if limit is not None:
        quota = await services.quotas.project_quota(project.id)
        await services.quotas.set_limit(quota, limit, actor)
    return Response(status_code=200)


@router.delete("/projects/{project_name_or_id}")
async def delete_project(
    access: ProjectDeleter, services: ServicesDep, caller: CallerDep
) -> Response:
    await services.projects.delete_project(access.project.id, caller.username)
    return Response(status_code=200)


@router.get("/projects/{project_name_or_id}/_deletable")
async def project_deletable(
    access: ProjectDeleter, services: ServicesDep
) -> dict[str, Any]:
    if (await _details(services, access.project))["repo_count"]:
        return {"deletable": False, "message": "the project contains repositories"}
    return {"deletable": True}


@router.get("/projects/{project_name_or_id}/summary")
async def project_summary(
    access: ProjectReader, services: ServicesDep, caller: CallerDep
) -> dict[str, Any]:
    """Repository count and members per role."""
    project = access.project
    counts = Counter(
        member.role_id for member in await services.projects.list_members(project.id)
    )
    return {
        "repo_count": (await _details(services, project, caller))["repo_count"],
        "project_admin_count": counts[Role.PROJECT_ADMIN],
        "maintainer_count": counts[Role.MAINTAINER],
        "developer_count": counts[Role.DEVELOPER],
        "guest_count": counts[Role.GUEST],
        "limited_guest_count": counts[Role.LIMITED_GUEST],
    }


@router.get("/projects/{project_name_or_id}/members")
async def list_members(
    request: Request,
    access: MemberLister,
    services: ServicesDep,
    page: PageDep,
    entityname: str | None = None,
) -> Response:
    found = await services.projects.list_members(access.project.id, entityname)
    window = found[page.offset : page.offset + page.size]
    return paginated(request, [_member_resp(m) for m in window], len(found), page)


@router.post("/projects/{project_name_or_id}/members", status_code=201)
async def create_member(
    access: MemberCreator,
    body: ProjectMemberReq,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    project = access.project
    entity = await _member_entity(services, body)
    member_id = await services.projects.create_member(
        project.id, entity, body.role_id, caller.username
    )
    location = f"/api/v2.0/projects/{project.id}/members/{member_id}"
    return Response(status_code=201, headers={"location": location})


@router.get("/projects/{project_name_or_id}/members/{mid}")
async def get_member(
    access: MemberReader, mid: DbInt, services: ServicesDep
) -> dict[str, Any]:
    return _member_resp(await _member(services, access.project, mid))


@router.put("/projects/{project_name_or_id}/members/{mid}")
async def update_member(
    access: MemberUpdater,
    mid: DbInt,
    body: RoleRequest,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    member = await _member(services, access.project, mid)
    await services.projects.update_member(member, body.role_id, caller.username)
    return Response(status_code=200)


@router.delete("/projects/{project_name_or_id}/members/{mid}")
async def delete_member(
    access: MemberDeleter, mid: DbInt, services: ServicesDep, caller: CallerDep
) -> Response:
    member = await _member(services, access.project, mid)
    await services.projects.delete_member(member, caller.username)
    return Response(status_code=200)


async def _proxied_registry(
    services: Services, user: Principal, registry_id: int | None
) -> int | None:
    """The endpoint a new proxy-cache project serves (system admins only)."""
    if registry_id is None or registry_id == 0:
        return None
    if not user.sysadmin:
        raise Forbidden("only system administrators may create proxy-cache projects")
    try:
        return (await services.registries.get_registry(registry_id)).id
    except RegistryNotFound as exc:
        raise BadRequest(str(exc)) from exc


async def _details(
    services: Services, project: Project, viewer: Principal | None = None
) -> dict[str, Any]:
    """The project's row; `repo_count` counts what `viewer` may list (all
    repositories without one)."""
    query = select(projects).where(projects.c.id == project.id)
    counted = None
    if viewer is not None:
        counted = await services.policy.listed_repositories(viewer)
    return (await services.projects.project_details(query, counted))[0]


async def _member(services: Services, project: Project, member_id: int) -> Member:
    member = await services.projects.get_member(project.id, member_id)
    if member is None:
        raise NotFound(f"member {member_id} not found")
    return member


async def _member_entity(services: Services, body: ProjectMemberReq) -> MemberEntity:
    if body.member_user is not None:
        user = body.member_user
        if user.user_id is not None:
            row = await services.users.get_user(user.user_id)
        elif user.username:
            row = await services.users.find_user(user.username)
            if row is None:
                raise NotFound(f"user {user.username} not found")
        else:
            raise BadRequest("member_user needs user_id or username")
        return MemberEntity(USER, int(row["id"]), row["username"])
    if body.member_group is not None:
        spec = body.member_group.model_dump(exclude_none=True)
        group = await services.groups.find_or_create(spec)
        return MemberEntity(GROUP, group.id, group.group_name)
    raise BadRequest("member_user or member_group is required")


async def _project_resp(
    services: Services, caller: Principal, row: dict[str, Any]
) -> dict[str, Any]:
    project = Project(row["id"], row["name"], bool(row["public"]), row["created_at"])
    role_ids = list((await services.policy.project_access(caller, project)).role_ids)
    return {
        "project_id": row["id"],
        "name": row["name"],
        "owner_id": row["owner_id"],
        "owner_name": row["owner_name"] or "",
        "registry_id": await services.proxycache.registry_of(row["id"]),
        "creation_time": harbor_time(datetime.fromtimestamp(row["created_at"], UTC)),
        "update_time": harbor_time(row["updated_at"]),
        "deleted": False,
        "togglable": True,
        "current_user_role_id": min(role_ids, default=0),
        "current_user_role_ids": role_ids,
        "repo_count": row["repo_count"],
        "metadata": await services.metadata.get_metadata(row["id"]),
        "cve_allowlist": allowlist_resp(
            await services.allowlists.get_allowlist(row["id"])
        ),
    }


def _member_resp(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "project_id": member.project_id,
        "entity_name": member.entity_name,
        "entity_id": member.entity_id,
        "entity_type": member.entity_type,
        "role_id": member.role_id,
        "role_name": member.role_name,
    }
