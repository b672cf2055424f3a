"""Access control as data: `/roles`, `/permissions`, `/users/current/permissions`
and `/projects/{project_name_or_id}/grants`.

`/roles` and `/projects/.../grants` are Dockyard's own (Harbor has neither
custom roles nor repository-scoped grants); their shapes follow Harbor's
conventions. `/permissions` and `/users/current/permissions` are Harbor's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from dockyard.api.access import project_access, project_named
from dockyard.api.deps import (
    AdminDep,
    CallerDep,
    DbInt,
    PageDep,
    ServicesDep,
    UserDep,
    paginated,
)
from dockyard.api.errors import (
    BadRequest,
    Forbidden,
)
from dockyard.api.routes.users import harbor_time
from dockyard.auth.rbac import (
    PROJECT_PERMISSIONS,
    SYSTEM_PERMISSIONS,
    Permission,
    catalogue_resource,
    listed_resource,
)
from dockyard.grants import (
    Grant,
    Holder,
    RoleView,
)

router = APIRouter(tags=["access"])

GrantLister = project_access("member", "list")
GrantCreator = project_access("member", "create")
GrantDeleter = project_access("member", "delete")


class Access(BaseModel):
    resource: str = Field(max_length=64)
    action: str = Field(max_length=32)


class RoleReq(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=1024)
    permissions: list[Access] = Field(default_factory=list, max_length=500)


class HolderReq(BaseModel):
    kind: str
    id: DbInt | None = None
    name: str | None = Field(default=None, max_length=255)


class GrantReq(BaseModel):
    holder: HolderReq
    role_id: DbInt
    repository_pattern: str = Field(min_length=1, max_length=255)


@router.get("/permissions")
async def list_permission_catalogue(
    services: ServicesDep, caller: UserDep
) -> dict[str, Any]:
    """Every permission a robot or a role can hold, by kind; as in Harbor,
    for system admins, and the project kind for project admins."""
    if not caller.sysadmin and not await services.policy.administers_a_project(caller):
        raise Forbidden("only system and project admins may list permissions")
    system = SYSTEM_PERMISSIONS if caller.sysadmin else frozenset()
    return {
        "system": _accesses(system),
        "project": [
            {**access, "resource": listed_resource(access["resource"])}
            for access in _accesses(PROJECT_PERMISSIONS)
        ],
    }


@router.get("/users/current/permissions")
async def current_user_permissions(
    services: ServicesDep,
    caller: UserDep,
    scope: str = "",
    relative: bool = False,
) -> list[dict[str, str]]:
    """What the caller may do in `scope` (`/project/{id}`), from the evaluator
    the token service and `/v2` use; without a scope, system permissions."""
    if not scope or scope == "/":
        held = SYSTEM_PERMISSIONS if caller.sysadmin else frozenset()
        return _accesses(held, "" if relative else "/system")
    kind, ident, below = (scope.strip("/").split("/", 2) + ["", ""])[:3]
    if kind != "project" or not ident:
        raise BadRequest("scope must be / or /project/{project_id}[/resource]")
    project = await project_named(services, ident, is_name=not ident.isdigit())
    access = await services.policy.project_access(caller, project)
    held = access.permissions
    if below:
        held = frozenset((r, a) for r, a in held if r == below)
    if relative:
        return _accesses(held, "", below)
    return _accesses(held, f"/project/{project.id}")


@router.get("/roles")
async def list_roles(services: ServicesDep, caller: UserDep) -> list[dict[str, Any]]:
    """Builtin and custom roles, for whoever is logged in (a member or grant
    form needs them); changing them is for system admins."""
    return [_role_resp(role) for role in await services.grants.list_roles()]


@router.get("/roles/{role_id}")
async def get_role(role_id: DbInt, services: ServicesDep, caller: UserDep) -> dict:
    return _role_resp(await services.grants.get_role(role_id))


@router.post("/roles", status_code=201)
async def create_role(
    body: RoleReq, services: ServicesDep, admin: AdminDep
) -> Response:
    role_id = await services.grants.create_role(
        body.name, body.description, _permissions(body.permissions), admin.username
    )
    return Response(status_code=201, headers={"location": f"/api/v2.0/roles/{role_id}"})


@router.put("/roles/{role_id}")
async def update_role(
    role_id: DbInt, body: RoleReq, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.grants.update_role(
        role_id,
        body.name,
        body.description,
        _permissions(body.permissions),
        admin.username,
    )
    return Response(status_code=200)


@router.delete("/roles/{role_id}")
async def delete_role(
    role_id: DbInt, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.grants.delete_role(role_id, admin.username)
    return Response(status_code=200)


@router.get("/projects/{project_name_or_id}/grants")
async def list_grants(
    request: Request, access: GrantLister, services: ServicesDep, page: PageDep
) -> Response:
    found = await services.grants.list_grants(access.project.id)
    window = found[page.offset : page.offset + page.size]
    return paginated(request, [_grant_resp(g) for g in window], len(found), page)


@router.post("/projects/{project_name_or_id}/grants", status_code=201)
async def create_grant(
    body: GrantReq, access: GrantCreator, services: ServicesDep, caller: CallerDep
) -> Response:
    project = access.project
    holder = await services.grants.find_holder(
        body.holder.kind, body.holder.id, body.holder.name
    )
    grant_id = await services.grants.create_grant(
        project.id, holder, body.role_id, body.repository_pattern, caller.username
    )
    location = f"/api/v2.0/projects/{project.id}/grants/{grant_id}"
    return Response(status_code=201, headers={"location": location})


@router.get("/projects/{project_name_or_id}/grants/{grant_id}")
async def get_grant(
    grant_id: DbInt, access: GrantLister, services: ServicesDep
) -> dict:
    grant = await services.grants.get_grant(access.project.id, grant_id)
    return _grant_resp(grant)


@router.delete("/projects/{project_name_or_id}/grants/{grant_id}")
async def delete_grant(
    grant_id: DbInt, access: GrantDeleter, services: ServicesDep, caller: CallerDep
) -> Response:
    grant = await services.grants.get_grant(access.project.id, grant_id)
    await services.grants.delete_grant(grant, caller.username)
    return Response(status_code=200)


def _permissions(accesses: list[Access]) -> set[Permission]:
    return {(catalogue_resource(a.resource), a.action) for a in accesses}


def _accesses(
    held: frozenset[Permission], prefix: str = "", scope: str = ""
) -> list[dict[str, str]]:
    """`held` as Harbor's access objects: resource names prefixed with the
    scope path, or relative to `scope` ("." for the scope itself)."""

    def resource(name: str) -> str:
        if scope:
            return "."
        if not prefix:
            return name
        return f"{prefix}/{name}" if name else prefix

    return [{"resource": resource(r), "action": a} for r, a in sorted(held)]


def _role_resp(role: RoleView) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "description": role.description,
        "builtin": role.builtin,
        "permissions": _accesses(role.permissions),
        "creation_time": harbor_time(role.created_at),
        "update_time": harbor_time(role.updated_at),
    }


def _grant_resp(grant: Grant) -> dict[str, Any]:
    holder: Holder = grant.holder
    return {
        "id": grant.id,
        "project_id": grant.project_id,
        "holder": {"kind": holder.kind, "id": holder.id, "name": holder.name},
        "role_id": grant.role_id,
        "role_name": grant.role_name,
        "repository_pattern": grant.repository_pattern,
        "creation_time": harbor_time(grant.created_at),
    }
