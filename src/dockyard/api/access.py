"""Project lookups and permission checks shared by the API's route modules.

A route that acts inside a project declares the permission it needs:

    access: Annotated[ProjectAccess, project_permission("member", "create")]

and receives the caller's `ProjectAccess` (with `.project`) or the request
ends with 404 (no such project), 401 (anonymous) or 403 (not allowed). The
check is the same evaluator the token service and `/v2` use.

A route over system resources (global labels, quotas, all audit logs) asks
`system_can`/`require_system` instead: a system admin holds every system
permission, a system robot those it was given, and nobody else any, as in
Harbor's system namespace.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header

from dockyard.api.deps import CallerDep, ServicesDep
from dockyard.api.errors import Forbidden, NotFound, Unauthorized
from dockyard.auth.access import ProjectAccess
from dockyard.auth.principals import Principal
from dockyard.db.schema import MAX_INTEGER
from dockyard.projects import Project
from dockyard.services import Services


async def project_named(services: Services, name_or_id: str, is_name: bool) -> Project:
    """The project a path names (by id unless `X-Is-Resource-Name`); 404 if none.

    Digits beyond the id range are a name, as in Harbor (they parse as no id)."""
    if not is_name and name_or_id.isdigit() and int(name_or_id) <= MAX_INTEGER:
        project = await services.projects.project_by_id(int(name_or_id))
    else:
        project = await services.projects.find_project(name_or_id)
    if project is None:
        raise NotFound(f"project {name_or_id} not found")
    return project


async def require(
    services: Services,
    caller: Principal,
    project: Project,
    resource: str,
    action: str,
) -> ProjectAccess:
    """The caller's access to `project` if it holds (resource, action)."""
    access = await services.policy.project_access(caller, project)
    if access.can(resource, action):
        return access
    if caller.anonymous:
        raise Unauthorized("authentication required")
    if not access.any_access:
        raise Forbidden(f"you are not a member of project {project.name}")
    what = resource or "the project"
    raise Forbidden(f"you may not {action} {what} in project {project.name}")


async def system_can(
    services: Services, caller: Principal, resource: str, action: str
) -> bool:
    """Whether `caller` holds the system permission (resource, action)."""
    if caller.sysadmin:
        return True
    if caller.robot_id is None:
        return False
    held = await services.robots.system_permissions(caller.robot_id)
    return (resource, action) in held


async def require_system(
    services: Services, caller: Principal, resource: str, action: str
) -> Principal:
    """`caller`, if it holds the system permission; 401 or 403 if not."""
    if caller.anonymous:
        raise Unauthorized("authentication required")
    if not await system_can(services, caller, resource, action):
        raise Forbidden(f"you may not {action} the system's {resource} resources")
    return caller


def system_permission(resource: str, action: str) -> Any:
    """A dependency: the caller, if it holds the system permission."""

    async def check(services: ServicesDep, caller: CallerDep) -> Principal:
        return await require_system(services, caller, resource, action)

    return Depends(check)


def project_permission(resource: str, action: str) -> Any:
    """A dependency: the caller's access to the path's project, if allowed."""

    async def check(
        project_name_or_id: str,
        services: ServicesDep,
        caller: CallerDep,
        x_is_resource_name: Annotated[bool, Header()] = False,
    ) -> ProjectAccess:
        project = await project_named(services, project_name_or_id, x_is_resource_name)
        return await require(services, caller, project, resource, action)

    return Depends(check)


def project_access(resource: str, action: str) -> Any:
    """`Annotated[ProjectAccess, ...]` for a route parameter."""
    return Annotated[ProjectAccess, project_permission(resource, action)]
