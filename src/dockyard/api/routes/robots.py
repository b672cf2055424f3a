"""`/robots` (Harbor's robot accounts, v2) and `/projects/{p}/robots`.

Who may act on a robot follows its level: a system robot needs the system
permission (robot, <action>), which system admins hold and a system robot can
be given; a project robot needs (robot, <action>) in its project, which
project admins hold. A robot that creates or updates robots may only hand out
permissions it holds itself, and may not refresh the secret of, or update, a
robot holding more than it does. The secret appears in the answer to creation
and to a refresh, never again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import Select, String, func, select

from dockyard.api.access import project_access, require, system_can
from dockyard.api.deps import DbInt, Page, PageDep, ServicesDep, UserDep, paginated
from dockyard.api.errors import (
    BadRequest,
    Forbidden,
    NotFound,
)
from dockyard.api.query import apply_query, parse_q
from dockyard.api.routes.users import harbor_time
from dockyard.auth.passwords import PasswordTooWeak, check_password_policy
from dockyard.auth.principals import Principal
from dockyard.auth.rbac import catalogue_resource, listed_resource
from dockyard.db.schema import MAX_INTEGER, robots
from dockyard.projects import Project
from dockyard.robots import (
    EVERY_PROJECT,
    PROJECT,
    SYSTEM,
    SYSTEM_NAMESPACE,
    PermissionRequest,
    Robot,
    RobotChanges,
    RobotInvalid,
    RobotNotFound,
    RobotPermission,
    check_duration,
    covers,
    generate_secret,
)
from dockyard.services import Services

router = APIRouter(tags=["robot"])

RobotLister = project_access("robot", "list")

_ALLOW = "allow"


class Access(BaseModel):
    resource: str = Field(max_length=64)
    action: str = Field(max_length=32)
    effect: str | None = None


class RobotPermissionReq(BaseModel):
    kind: str
    namespace: str = ""
    access: list[Access] = []


class RobotCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    secret: str | None = None
    level: str
    disable: StrictBool = False
    duration: DbInt | None = None
    permissions: list[RobotPermissionReq] = []


class RobotUpdate(BaseModel):
    """Harbor's `Robot` model; read-only fields sent back are ignored."""

    name: str | None = None
    description: str | None = None
    level: str | None = None
    disable: StrictBool = False
    duration: DbInt | None = None
    permissions: list[RobotPermissionReq] | None = None


class RobotSec(BaseModel):
    secret: str | None = None


@router.post("/robots", status_code=201)
async def create_robot(
    body: RobotCreate, services: ServicesDep, caller: UserDep
) -> Response:
    requested = _permission_requests(body.permissions)
    project = await _project_of_request(services, body.level, requested)
    await _require(services, caller, body.level, project, "create")

    name = await services.robots.full_name(body.name, project)
    duration = await services.robots.resolve_duration(body.duration)
    permissions = await services.robots.resolve_permissions(body.level, requested)
    secret = _chosen_secret(body.secret) or generate_secret()
    await _require_subset(services, caller, permissions)

    robot = await services.robots.create_robot(
        name=name,
        description=body.description or "",
        level=body.level,
        project=project,
        duration=duration,
        disabled=body.disable,
        permissions=permissions,
        secret=secret,
        actor=caller.username,
    )

    created = {
        "id": robot.id,
        "name": robot.name,
        "secret": secret,
        "creation_time": harbor_time(robot.created_at),
        "expires_at": robot.expires_at,
    }
    location = f"/api/v2.0/robots/{robot.id}"
    return JSONResponse(created, status_code=201, headers={"location": location})


@router.get("/robots")
async def list_robots(
    request: Request,
    services: ServicesDep,
    caller: UserDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    """Harbor's rule: system robots unless `q` says `Level=project` with a
    `ProjectID` (a `ProjectID` alone implies the project level)."""
    level, project = await _listed_scope(services, q)
    await _require(services, caller, level, project, "list")

    query = select(robots).where(robots.c.level == level)
    if project is not None:
        query = query.where(robots.c.project_id == project.id)
    columns = await _query_columns(services)
    query = apply_query(query, q, sort, columns, [robots.c.id])
    return await _robot_page(request, services, query, page)


@router.get("/robots/{robot_id}")
async def get_robot(
    robot_id: DbInt, services: ServicesDep, caller: UserDep
) -> dict[str, Any]:
    robot = await services.robots.get_robot(robot_id)
    await _require_on(services, caller, robot, "read")
    names = await services.robots.project_names(_project_ids([robot]))
    return robot_resp(robot, names)


@router.put("/robots/{robot_id}")
async def update_robot(
    robot_id: DbInt, body: RobotUpdate, services: ServicesDep, caller: UserDep
) -> Response:
    robot = await services.robots.get_robot(robot_id)
    await _require_on(services, caller, robot, "update")
    await _require_no_stronger(services, caller, robot)

    await _check_immutable(services, robot, body)
    changes = await _changes(services, robot, body)
    if changes.permissions is not None:
        await _require_subset(services, caller, changes.permissions)

    await services.robots.update_robot(robot, changes, caller.username)
    return Response(status_code=200)


@router.patch("/robots/{robot_id}")
async def refresh_secret(
    robot_id: DbInt, body: RobotSec, services: ServicesDep, caller: UserDep
) -> dict[str, Any]:
    """A new random secret, returned; or the caller's own choice, not echoed.
    The robot itself may always renew its secret."""
    robot = await services.robots.get_robot(robot_id)
    if caller.robot_id != robot.id:
        await _require_on(services, caller, robot, "update")
        await _require_no_stronger(services, caller, robot)

    chosen = _chosen_secret(body.secret)
    secret = chosen or generate_secret()

    await services.robots.set_secret(robot, secret, caller.username)
    return {} if chosen else {"secret": secret}


@router.delete("/robots/{robot_id}")
async def delete_robot(
    robot_id: DbInt, services: ServicesDep, caller: UserDep
) -> Response:
    robot = await services.robots.get_robot(robot_id)
    await _require_on(services, caller, robot, "delete")
    await services.robots.delete_robot(robot, caller.username)
    return Response(status_code=200)


@router.get("/projects/{project_name_or_id}/robots")
async def list_project_robots(
    request: Request, access: RobotLister, services: ServicesDep, page: PageDep
) -> Response:
    """The project's own robots (the listing of Harbor's first robot API)."""
    query = (
        select(robots)
        .where(robots.c.level == PROJECT)
        .where(robots.c.project_id == access.project.id)
        .order_by(robots.c.id)
    )
    return await _robot_page(request, services, query, page)


def robot_resp(robot: Robot, project_names: dict[int, str]) -> dict[str, Any]:
    """Harbor's `Robot` model; the secret is never part of it."""
    return {
        "id": robot.id,
        "name": robot.name,
        "description": robot.description,
        "level": robot.level,
        "duration": robot.duration,
        "editable": True,
        "disable": robot.disabled,
        "expires_at": robot.expires_at,
        "permissions": _permissions_resp(robot, project_names),
        "creation_time": harbor_time(robot.created_at),
        "update_time": harbor_time(robot.updated_at),
    }


def _permissions_resp(
    robot: Robot, project_names: dict[int, str]
) -> list[dict[str, Any]]:
    sets = []
    for project_id, held in sorted(
        robot.project_scopes.items(), key=lambda item: item[0] or 0
    ):
        if project_id is None:
            namespace = EVERY_PROJECT
        elif project_id in project_names:
            namespace = project_names[project_id]
        else:
            continue
        sets.append(_permission_set(PROJECT, namespace, held))
    if robot.system_permissions:
        sets.append(_permission_set(SYSTEM, SYSTEM_NAMESPACE, robot.system_permissions))
    return sets


def _permission_set(
    kind: str, namespace: str, held: frozenset[tuple[str, str]]
) -> dict[str, Any]:
    access = [
        {"resource": _listed_name(kind, resource), "action": action, "effect": _ALLOW}
        for resource, action in sorted(held)
    ]
    return {"kind": kind, "namespace": namespace, "access": access}


def _catalogue_name(kind: str, resource: str) -> str:
    return catalogue_resource(resource) if kind == PROJECT else resource


def _listed_name(kind: str, resource: str) -> str:
    return listed_resource(resource) if kind == PROJECT else resource


def _permission_requests(items: list[RobotPermissionReq]) -> list[PermissionRequest]:
    requested = []
    for item in items:
        # Deny effects would need a column to keep them; refuse rather than
        # silently store an allow.
        if any(entry.effect not in (None, "", _ALLOW) for entry in item.access):
            raise BadRequest("only the effect 'allow' is supported")
        access = tuple(
            (_catalogue_name(item.kind, entry.resource), entry.action)
            for entry in item.access
        )
        requested.append(PermissionRequest(item.kind, item.namespace, access))
    return requested


async def _project_of_request(
    services: Services, level: str, requested: list[PermissionRequest]
) -> Project | None:
    """The project a new project robot belongs to (its permission's
    namespace); None for a system robot. 400 or 404 when unusable."""
    if level == SYSTEM:
        return None
    if level != PROJECT:
        raise BadRequest(f"level must be system or project, not {level!r}")
    if len(requested) != 1 or requested[0].namespace in ("", EVERY_PROJECT):
        raise BadRequest("a project robot has exactly one permission, in its project")
    project = await services.projects.find_project(requested[0].namespace)
    if project is None:
        raise NotFound(f"project {requested[0].namespace} not found")
    return project


async def _require(
    services: Services,
    caller: Principal,
    level: str,
    project: Project | None,
    action: str,
) -> None:
    """403 unless `caller` may do `action` on robots of this level/project."""
    if project is not None:
        await require(services, caller, project, "robot", action)
        return
    if await system_can(services, caller, "robot", action):
        return
    raise Forbidden(f"you may not {action} system robots")


async def _require_on(
    services: Services, caller: Principal, robot: Robot, action: str
) -> None:
    project = None
    if robot.project_id is not None:
        project = await services.projects.project_by_id(robot.project_id)
        if project is None:
            raise NotFound(f"robot {robot.id} not found")
    await _require(services, caller, robot.level, project, action)


async def _require_subset(
    services: Services, caller: Principal, wanted: frozenset[RobotPermission]
) -> None:
    """A robot hands out no permission it does not hold itself."""
    if caller.robot_id is None:
        return
    try:
        creator = await services.robots.get_robot(caller.robot_id)
    except RobotNotFound as exc:
        raise Forbidden("the calling robot no longer exists") from exc
    if not covers(creator, wanted):
        raise Forbidden(
            "a robot may only grant permissions it holds itself: "
            f"{caller.username} does not hold them all"
        )


async def _require_no_stronger(
    services: Services, caller: Principal, robot: Robot
) -> None:
    """A robot changes no robot that holds more than it does: enabling it or
    learning its new secret would give the caller what it may not grant."""
    if caller.robot_id is not None and caller.robot_id != robot.id:
        await _require_subset(services, caller, robot.permissions)


def _chosen_secret(secret: str | None) -> str | None:
    """A secret the caller chose, if it meets the password policy (else 400)."""
    if not secret:
        return None
    try:
        check_password_policy(secret)
    except PasswordTooWeak as exc:
        raise BadRequest(f"the secret is too weak: {exc}") from exc
    return secret


async def _check_immutable(services: Services, robot: Robot, body: RobotUpdate) -> None:
    if body.level is not None and body.level != robot.level:
        raise BadRequest("the level of a robot cannot be changed")
    if body.name is None:
        return
    # Clients send back the full name, or the name they created it with.
    prefix = await services.robots.prefix()
    short = robot.name.removeprefix(prefix)
    if body.name not in (robot.name, short, short.rpartition("+")[2]):
        raise BadRequest("the name of a robot cannot be changed")


async def _changes(services: Services, robot: Robot, body: RobotUpdate) -> RobotChanges:
    if body.duration is not None:
        check_duration(body.duration)
    permissions = None
    if body.permissions is not None:
        requested = _permission_requests(body.permissions)
        permissions = await services.robots.resolve_permissions(robot.level, requested)
        if robot.level == PROJECT and any(
            held.project_id != robot.project_id for held in permissions
        ):
            raise RobotInvalid("a project robot's project cannot be changed")
    return RobotChanges(
        description=body.description or "",
        disabled=body.disable,
        duration=body.duration,
        permissions=permissions,
    )


async def _listed_scope(
    services: Services, q: str | None
) -> tuple[str, Project | None]:
    """The level and project a listing's `q` asks for (400/404 if unusable)."""
    given = {c.key: c.values[0] for c in parse_q(q) if c.key in ("Level", "ProjectID")}
    level = given.get("Level") or (PROJECT if "ProjectID" in given else SYSTEM)
    if level not in (SYSTEM, PROJECT):
        raise BadRequest(f"Level must be system or project, not {level!r}")
    if level == SYSTEM:
        return level, None
    project_id = given.get("ProjectID", "")
    if not project_id.isdigit() or not 0 < int(project_id) <= MAX_INTEGER:
        raise BadRequest("ProjectID must be a positive integer for project robots")
    project = await services.projects.project_by_id(int(project_id))
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return level, project


async def _query_columns(services: Services) -> dict[str, Any]:
    # Harbor's clients filter on the name without the robot prefix
    # (`name=library+ci`, `name=~ci`).
    prefix_length = len(await services.robots.prefix())
    short_name = func.substr(robots.c.name, prefix_length + 1, type_=String)
    return {
        "name": short_name,
        "Level": robots.c.level,
        "ProjectID": robots.c.project_id,
        "id": robots.c.id,
        "disable": robots.c.disabled,
        "creation_time": robots.c.created_at,
        "update_time": robots.c.updated_at,
    }


async def _robot_page(
    request: Request, services: Services, query: Select, page: Page
) -> Response:
    found, total = await services.robots.list_robots(query, page.offset, page.size)
    names = await services.robots.project_names(_project_ids(found))
    return paginated(request, [robot_resp(r, names) for r in found], total, page)


def _project_ids(found: list[Robot]) -> set[int]:
    return {
        project_id
        for robot in found
        for project_id in robot.project_scopes
        if project_id is not None
    }
