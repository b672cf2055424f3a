"""`/audit-logs` and `/projects/{project_name_or_id}/logs`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, select

from dockyard.api.access import project_access
from dockyard.api.deps import Page, PageDep, ServicesDep, UserDep, paginated
from dockyard.api.query import apply_query
from dockyard.api.routes.users import harbor_time
from dockyard.auth.access import projects_granting
from dockyard.db.schema import audit_logs
from dockyard.services import Services

router = APIRouter(tags=["auditlog"])

_QUERY_COLUMNS = {
    "username": audit_logs.c.username,
    "resource": audit_logs.c.resource,
    "resource_type": audit_logs.c.resource_type,
    "operation": audit_logs.c.operation,
    "op_time": audit_logs.c.op_time,
}

_LOG_LIST = ("log", "list")
LogLister = project_access(*_LOG_LIST)


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
        readable = projects_granting(user, _LOG_LIST)
        query = query.where(audit_logs.c.project_id.in_(readable))
    return await _page(request, services, query, q, sort, page)


@router.get("/projects/{project_name_or_id}/logs")
async def list_project_logs(
    request: Request,
    access: LogLister,
    services: ServicesDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = select(audit_logs).where(audit_logs.c.project_id == access.project.id)
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
