"""`/configurations`: system settings a system admin changes at run time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from dockyard.api.deps import AdminDep, ServicesDep

router = APIRouter(tags=["configure"])


@router.get("/configurations")
async def get_configurations(services: ServicesDep, admin: AdminDep) -> dict[str, Any]:
    values = await services.configurations.all()
    return {key: {"value": value, "editable": True} for key, value in values.items()}


@router.put("/configurations")
async def update_configurations(
    services: ServicesDep, admin: AdminDep, changes: Annotated[dict[str, Any], Body()]
) -> Response:
    await services.configurations.update(changes, admin.username)
    return Response(status_code=200)
