"""`/audit-logs` and `/projects/{project_name_or_id}/logs`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from sqlalchemy import Select, select

from dockyard.api.deps import Page, PageDep, ServicesDep, UserDep, paginated
from dockyard.api.errors import Forbidden
from dockyard.api.query import apply_query
from dockyard.api.routes.projects import project_named
from dockyard.api.routes.users import harbor_time
from dockyard.auth.roles import Role
from dockyard.db.schema import audit_logs, members
from dockyard.services import Services

router = APIRouter(tags=["auditlog"])

_QUERY_COLUMNS = {
    "username": audit_logs.c.username,
    "resource": audit_logs.c.resource,
    "resource_type": audit_logs.c.resource_type,
    "operation": audit_logs.c.operation,
    "op_time": audit_logs.c.op_time,
}

# Roles that may read a project's logs (Harbor's matrix: not guests).
_LOG_READERS = {Role.PROJECT_ADMIN, Role.MAINTAINER, Role.DEVELOPER}


@router.get("/audit-logs")
async def list_audit_logs(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = select(audit_logs)
    if not user.sysadmin:
        readable = select(members.c.project_id).where(
            (members.c.user_id == user.user_id)
            & members.c.role.in_([int(r) for r in _LOG_READERS])
        )
        query = query.where(audit_logs.c.project_id.in_(readable))
    return await _page(request, services, query, q, sort, page)


@router.get("/projects/{project_name_or_id}/logs")
async def list_project_logs(
    request: Request,
    project_name_or_id: str,
    services: ServicesDep,
    user: UserDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    x_is_resource_name: Annotated[bool, Header()] = False,
) -> Response:
    project = await project_named(services, project_name_or_id, x_is_resource_name)
    if not user.sysadmin:
        role = await services.projects.member_role(project.id, user.user_id)
        if role not in _LOG_READERS:
            raise Forbidden("you may not read this project's logs")
    query = select(audit_logs).where(audit_logs.c.project_id == project.id)
    return await _page(request, services, query, q, sort, page)


async def _page(
    request: Request,
    services: Services,
    query: Select,
    q: str | None,
    sort: str | None,
    page: Page,
) -> Response:
    query = apply_query(query, q, sort, _QUERY_COLUMNS, [])
    rows, total = await services.audit.list_entries(query, page.offset, page.size)
    return paginated(request, [_log_resp(row) for row in rows], total, page)


def _log_resp(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "resource": row["resource"],
        "resource_type": row["resource_type"],
        "operation": row["operation"],
        "op_time": harbor_time(row["op_time"]),
    }
