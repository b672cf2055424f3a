"""`/ping`, `/systeminfo`, `/health`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from dockyard import __version__
from dockyard.api.deps import CallerDep, ServicesDep
from dockyard.health import overall_health

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
    """Each component's status (see `dockyard.health`). Always 200, as in
    Harbor: the body says what is unhealthy."""
    return await overall_health(services)
