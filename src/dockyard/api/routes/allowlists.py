"""`/system/CVEAllowlist`, and the CVE allowlist as part of a project.

Any signed-in user reads the system allowlist; only system admins replace
it. A project's own allowlist is read and written through `/projects`
(`cve_allowlist`), with the project's read and update permissions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from dockyard.allowlists import (
    Allowlist,
    AllowlistContent,
    check_content,
)
from dockyard.api.deps import AdminDep, DbInt, ServicesDep, UserDep
from dockyard.api.routes.users import harbor_time

router = APIRouter(tags=["SystemCVEAllowlist"])

# What Harbor shows for a time that was never set.
_ZERO_TIME = "0001-01-01T00:00:00.000Z"


class CVEAllowlistItem(BaseModel):
    cve_id: str = Field(max_length=1024)


class CVEAllowlistReq(BaseModel):
    """Harbor's CVEAllowlist; `id`, `project_id` and the times are ignored."""

    id: DbInt | None = None
    project_id: DbInt | None = None
    expires_at: DbInt | None = None
    items: list[CVEAllowlistItem] | None = None

    def content(self) -> AllowlistContent:
        """The checked content; `AllowlistInvalid` for bad items or expiry."""
        cve_ids = (item.cve_id for item in self.items or [])
        return check_content(cve_ids, self.expires_at)


@router.get("/system/CVEAllowlist")
async def get_system_allowlist(services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return allowlist_resp(await services.allowlists.get_allowlist(None))


@router.put("/system/CVEAllowlist")
async def put_system_allowlist(
    body: CVEAllowlistReq, services: ServicesDep, admin: AdminDep
) -> Response:
    await services.allowlists.put_allowlist(None, body.content(), admin.username)
    return Response(status_code=200)


def allowlist_resp(allowlist: Allowlist) -> dict[str, Any]:
    """Harbor's shape: the system allowlist has project_id 0."""
    return {
        "id": allowlist.id,
        "project_id": allowlist.project_id or 0,
        "expires_at": allowlist.expires_at,
        "items": [{"cve_id": cve_id} for cve_id in allowlist.cve_ids],
        "creation_time": _time(allowlist.created_at),
        "update_time": _time(allowlist.updated_at),
    }


def _time(moment: Any) -> str:
    return harbor_time(moment) if moment is not None else _ZERO_TIME
