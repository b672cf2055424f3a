"""`/ping`, `/systeminfo`, `/health`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from dockyard import __version__
from dockyard.api.deps import CallerDep, ServicesDep

router = APIRouter(tags=["system"])


@router.get("/ping", response_class=PlainTextResponse)
async def ping() -> str:
    return "Pong"


@router.get("/systeminfo")
async def systeminfo(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """General settings; authenticated callers also see deployment details."""
    config = await services.configurations.all()
    info: dict[str, Any] = {
        "auth_mode": config["auth_mode"],
        "primary_auth_mode": False,
        "self_registration": config["self_registration"],
        "banner_message": config["banner_message"],
        "harbor_version": f"dockyard-{__version__}",
    }
    if caller.anonymous:
        return info
    base = services.settings.base_url
    return info | {
        "with_notary": False,
        "with_chartmuseum": False,
        "registry_url": base.split("://", 1)[-1],
        "external_url": base,
        "project_creation_restriction": config["project_creation_restriction"],
        "has_ca_root": False,
        "read_only": config["read_only"],
        "notification_enable": False,
        "registry_storage_provider_name": services.blobs.storage.kind,
    }


@router.get("/health")
async def health(services: ServicesDep) -> dict[str, Any]:
    components = [
        {"name": "core", "status": "healthy"},
        await _database_health(services),
    ]
    overall = (
        "healthy" if all(c["status"] == "healthy" for c in components) else "unhealthy"
    )
    return {"status": overall, "components": components}


async def _database_health(services: ServicesDep) -> dict[str, Any]:
    try:
        async with services.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means unhealthy; the reason is shown
        return {"name": "database", "status": "unhealthy", "error": type(exc).__name__}
    return {"name": "database", "status": "healthy"}
