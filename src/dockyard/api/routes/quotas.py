"""`/quotas`: each project's storage limit and usage, for system admins
(and system robots given the `quota` permissions).

Only `storage` is metered; `hard.storage` is bytes, -1 for no limit, and
`used.storage` is computed from the project's blobs and manifests.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select, literal_column

from dockyard.api.access import system_permission
from dockyard.api.deps import DbInt, PageDep, ServicesDep, paginated
from dockyard.api.errors import BadRequest
from dockyard.api.query import parse_sort
from dockyard.api.routes.users import harbor_time
from dockyard.auth.principals import Principal
from dockyard.db.schema import MAX_INTEGER, quotas
from dockyard.quotas import (
    STORAGE,
    Quota,
    check_limit,
    quota_query,
)

router = APIRouter(tags=["quota"])

# Harbor's sort keys for quotas; `used` is the computed column's label.
_SORT_COLUMNS: dict[str, Any] = {
    f"hard.{STORAGE}": quotas.c.storage_limit,
    f"used.{STORAGE}": literal_column("storage_used"),
    "creation_time": quotas.c.created_at,
    "update_time": quotas.c.updated_at,
}
_PROJECT = "project"

QuotaLister = Annotated[Principal, system_permission("quota", "list")]
QuotaReader = Annotated[Principal, system_permission("quota", "read")]
QuotaUpdater = Annotated[Principal, system_permission("quota", "update")]


class QuotaUpdateReq(BaseModel):
    hard: dict[str, DbInt]


@router.get("/quotas")
async def list_quotas(
    request: Request,
    services: ServicesDep,
    caller: QuotaLister,
    page: PageDep,
    reference: str | None = None,
    reference_id: str | None = None,
    sort: str | None = None,
) -> Response:
    query = _filtered(quota_query(), reference, reference_id)
    query = query.order_by(*_order(sort), quotas.c.id)
    found, total = await services.quotas.list_quotas(query, page.offset, page.size)
    return paginated(request, [quota_resp(quota) for quota in found], total, page)


@router.get("/quotas/{quota_id}")
async def get_quota(
    quota_id: DbInt, services: ServicesDep, caller: QuotaReader
) -> dict[str, Any]:
    return quota_resp(await services.quotas.get_quota(quota_id))


@router.put("/quotas/{quota_id}")
async def update_quota(
    quota_id: DbInt, body: QuotaUpdateReq, services: ServicesDep, caller: QuotaUpdater
) -> Response:
    unknown = sorted(set(body.hard) - {STORAGE})
    if unknown:
        raise BadRequest(f"unknown quota resource {', '.join(unknown)}")
    if STORAGE not in body.hard:
        raise BadRequest(f"hard.{STORAGE} is required")
    quota = await services.quotas.get_quota(quota_id)
    await services.quotas.set_limit(quota, body.hard[STORAGE], caller.username)
    return Response(status_code=200)


def quota_resp(quota: Quota) -> dict[str, Any]:
    return {
        "id": quota.id,
        "ref": {
            "id": quota.project_id,
            "name": quota.project_name,
            "owner_name": quota.owner_name,
        },
        "hard": {STORAGE: quota.storage_limit},
        "used": {STORAGE: quota.storage_used},
        "creation_time": harbor_time(quota.created_at),
        "update_time": harbor_time(quota.updated_at),
    }


def _filtered(query: Select, reference: str | None, reference_id: str | None) -> Select:
    # Every quota references a project: another reference type finds nothing,
    # as does an id that is not a number.
    if reference and reference != _PROJECT:
        return query.where(quotas.c.id.is_(None))
    if reference_id is not None:
        if not reference_id.isdigit() or int(reference_id) > MAX_INTEGER:
            return query.where(quotas.c.id.is_(None))
        query = query.where(quotas.c.project_id == int(reference_id))
    return query


def _order(sort: str | None) -> list[Any]:
    order = []
    for key, descending in parse_sort(sort):
        column = _SORT_COLUMNS.get(key)
        if column is None:
            known = ", ".join(sorted(_SORT_COLUMNS))
            raise BadRequest(f"unknown sort key {key!r}; known keys: {known}")
        order.append(column.desc() if descending else column.asc())
    return order


def requested_limit(value: int | None, caller: Principal, creating: bool) -> int | None:
    """The storage limit a `/projects` request sets, None to leave it as is.

    Only a system admin's value counts (on creation, a non-zero one);
    anyone else's is ignored, as Harbor ignores it (its portal sends the
    field back with every project update), so a new project gets the
    configured default and an existing one keeps its limit. `QuotaInvalid`
    for a bad value."""
    if value is None or not caller.sysadmin or (creating and value == 0):
        return None
    check_limit(value)
    return value
