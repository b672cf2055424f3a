"""The audit trail: `/audit-logs`, `/projects/{project_name_or_id}/logs`, and
Harbor 2.13's extended form `/auditlog-exts` (with a description and the
result of each operation) and `/auditlog-exts/events` (the event types).

System admins (and system robots holding `audit-log` `list`) see every
entry; other callers see the entries of the projects where they may list
logs. Entries about no project (users, configuration) are therefore for
them only, as is the list of event types.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import DateTime, Select, case, select, type_coerce
from sqlalchemy.types import TypeDecorator

from dockyard.api.access import project_access, require_system, system_can
from dockyard.api.deps import Page, PageDep, ServicesDep, UserDep, paginated
from dockyard.api.query import Match, QueryError, apply_query, parse_q
from dockyard.api.routes.users import harbor_time
from dockyard.audit import EVENT_TYPES, describe
from dockyard.auth.access import projects_granting
from dockyard.auth.principals import Principal
from dockyard.db.schema import audit_logs
from dockyard.services import Services

router = APIRouter(tags=["auditlog"])

_LOG_LIST = ("log", "list")
_AUDIT_LIST = ("audit-log", "list")
LogLister = project_access(*_LOG_LIST)


class _OpTime(TypeDecorator):
    """`op_time` compared with the text of a `q` range: bound as a datetime
    (in UTC when no zone is given), as every database driver wants."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str):
            return parse_time(value)
        return value


def parse_time(text: str) -> datetime:
    """`2024-01-31`, `2024-01-31 12:00:00` or `2024-01-31T12:00:00Z`, as UTC
    unless a zone is given; ValueError otherwise."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_QUERY_COLUMNS = {
    "username": audit_logs.c.username,
    "resource": audit_logs.c.resource,
    "resource_type": audit_logs.c.resource_type,
    "operation": audit_logs.c.operation,
    "op_time": type_coerce(audit_logs.c.op_time, _OpTime()),
}
# A failed login is stored as `login_failed`; the extended API shows it as
# Harbor does, operation `login` with operation_result false.
_EXT_OPERATION = case(
    (audit_logs.c.operation == "login_failed", "login"),
    else_=audit_logs.c.operation,
)
_EXT_QUERY_COLUMNS = {**_QUERY_COLUMNS, "operation": _EXT_OPERATION}


@router.get("/audit-logs")
async def list_audit_logs(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = await _visible_to(services, user, select(audit_logs))
    return await _page(request, services, query, q, sort, page, _log_resp)


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
    return await _page(request, services, query, q, sort, page, _log_resp)


@router.get("/auditlog-exts")
async def list_audit_log_exts(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = await _visible_to(services, user, select(audit_logs))
    return await _page(request, services, query, q, sort, page, _ext_resp, ext=True)


@router.get("/auditlog-exts/events")
async def list_audit_log_event_types(
    services: ServicesDep, user: UserDep
) -> list[dict[str, str]]:
    """Every event type Dockyard records, the names
    `disabled_audit_log_event_types` takes; 403 without the system `audit-log`
    `list` permission, as in Harbor."""
    await require_system(services, user, *_AUDIT_LIST)
    return [{"event_type": name} for name in EVENT_TYPES]


@router.get("/projects/{project_name_or_id}/auditlog-exts")
async def list_project_audit_log_exts(
    request: Request,
    access: LogLister,
    services: ServicesDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = select(audit_logs).where(audit_logs.c.project_id == access.project.id)
    return await _page(request, services, query, q, sort, page, _ext_resp, ext=True)


async def _visible_to(services: Services, user: Principal, query: Select) -> Select:
    if await system_can(services, user, *_AUDIT_LIST):
        return query
    readable = projects_granting(user, _LOG_LIST)
    return query.where(audit_logs.c.project_id.in_(readable))


async def _page(
    request: Request,
    services: Services,
    query: Select,
    q: str | None,
    sort: str | None,
    page: Page,
    render: Callable[[dict[str, Any]], dict[str, Any]],
    ext: bool = False,
) -> Response:
    _check_times(q)
    columns = _EXT_QUERY_COLUMNS if ext else _QUERY_COLUMNS
    query = apply_query(query, q, sort, columns, [])
    rows, total = await services.audit.list_entries(query, page.offset, page.size)
    return paginated(request, [render(row) for row in rows], total, page)


def _check_times(q: str | None) -> None:
    """Refuse an `op_time` that is not a time (400, before any SQL runs)."""
    for condition in parse_q(q):
        if condition.key != "op_time":
            continue
        if condition.match is Match.FUZZY:
            raise QueryError("op_time takes a time or a range [from~to], not ~")
        for value in condition.values:
            if not value:
                continue
            try:
                parse_time(value)
            except ValueError:
                raise QueryError(f"op_time {value!r} is not a time") from None


def _log_resp(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "resource": row["resource"],
        "resource_type": row["resource_type"],
        "operation": row["operation"],
        "op_time": harbor_time(row["op_time"]),
    }


def _ext_resp(row: dict[str, Any]) -> dict[str, Any]:
    operation = "login" if row["operation"] == "login_failed" else row["operation"]
    description = row["description"] or describe(
        row["resource_type"], row["operation"], row["resource"]
    )
    return {
        "id": row["id"],
        "username": row["username"],
        "resource": row["resource"],
        "resource_type": row["resource_type"],
        "operation": operation,
        "operation_description": description,
        "operation_result": bool(row["result"]),
        "op_time": harbor_time(row["op_time"]),
    }
