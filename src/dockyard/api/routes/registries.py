"""`/registries` and `/replication/adapters`: remote registry endpoints.

Only system administrators see and manage endpoints. A credential's secret
is written, never read back: answers show `access_secret` as `*****`, and an
update or ping that sends `*****` (or nothing) keeps the stored secret.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, StrictBool, model_validator
from sqlalchemy import select

from dockyard.api.deps import AdminDep, PageDep, ServicesDep, paginated
from dockyard.api.errors import BadRequest
from dockyard.api.query import apply_query
from dockyard.api.routes.users import harbor_time
from dockyard.db.database import contains_text
from dockyard.db.schema import registries
from dockyard.replication.adapters import ADAPTERS, AdapterInfo, adapter_for
from dockyard.replication.client import UpstreamError
from dockyard.replication.policies import LABELLED_SOURCE_TYPE
from dockyard.replication.registries import (
    Registry,
    RegistryFields,
)

T = TypeVar("T")

router = APIRouter(tags=["registry"])

MASKED_SECRET = "*****"
_GENERIC = "docker-registry"
_QUERY_COLUMNS = {
    "id": registries.c.id,
    "name": registries.c.name,
    "type": registries.c.type,
    "url": registries.c.url,
    "status": registries.c.status,
    "creation_time": registries.c.created_at,
    "update_time": registries.c.updated_at,
}
_SUPPORTED_FILTERS = [
    {"type": "name", "style": "input"},
    {"type": "tag", "style": "input"},
]
# Only Harbor's API (Harbor, Dockyard) shows labels to filter on.
_LABEL_FILTER = {"type": "label", "style": "list"}


def _filters_of(kind: str) -> list[dict[str, str]]:
    if kind == LABELLED_SOURCE_TYPE:
        return [*_SUPPORTED_FILTERS, _LABEL_FILTER]
    return _SUPPORTED_FILTERS


class RegistryCredential(BaseModel):
    type: str | None = Field(default=None, max_length=16)
    access_key: str | None = Field(default=None, max_length=1024)
    access_secret: str | None = Field(default=None, max_length=8192)


class RegistryReq(BaseModel):
    """Harbor's `Registry` body (create) plus `ca_certificate`."""

    name: str = Field(default="", max_length=255)
    url: str = Field(default="", max_length=1024)
    type: str = Field(default="", max_length=64)
    description: str | None = Field(default=None, max_length=8192)
    credential: RegistryCredential | None = None
    insecure: StrictBool = False
    ca_certificate: str | None = Field(default=None, max_length=65536)


class RegistryUpdateReq(BaseModel):
    """Harbor's `RegistryUpdate` (flat credential fields); absent keeps."""

    name: str | None = Field(default=None, max_length=255)
    url: str | None = Field(default=None, max_length=1024)
    description: str | None = Field(default=None, max_length=8192)
    credential_type: str | None = Field(default=None, max_length=16)
    access_key: str | None = Field(default=None, max_length=1024)
    access_secret: str | None = Field(default=None, max_length=8192)
    insecure: StrictBool | None = None
    ca_certificate: str | None = Field(default=None, max_length=65536)


class RegistryPingReq(RegistryUpdateReq):
    """Harbor's `RegistryPing`: a stored endpoint (`id`), settings, or both.
    Also takes the create body's nested `credential`, so that pinging what
    one is about to create checks its credential rather than ignoring it
    (an anonymous ping of a registry that challenges passes)."""

    id: int | None = None
    type: str | None = Field(default=None, max_length=64)
    credential: RegistryCredential | None = None

    @model_validator(mode="after")
    def _flatten_credential(self) -> RegistryPingReq:
        if self.credential is not None:
            self.credential_type = _pick(self.credential_type, self.credential.type)
            self.access_key = _pick(self.access_key, self.credential.access_key)
            self.access_secret = _pick(
                self.access_secret, self.credential.access_secret
            )
        return self


@router.get("/registries")
async def list_registries(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    name: str | None = None,
) -> Response:
    query = select(registries)
    if name:
        query = query.where(contains_text(registries.c.name, name))
    query = apply_query(query, q, sort, _QUERY_COLUMNS, [registries.c.id])
    found, total = await services.registries.list_registries(
        query, page.offset, page.size
    )
    return paginated(request, [registry_resp(r) for r in found], total, page)


@router.post("/registries", status_code=201)
async def create_registry(
    body: RegistryReq, services: ServicesDep, admin: AdminDep
) -> Response:
    credential = body.credential or RegistryCredential()
    fields = RegistryFields(
        name=body.name,
        url=body.url,
        type=body.type,
        description=body.description or "",
        credential_type=credential.type or None,
        access_key=credential.access_key,
        access_secret=credential.access_secret or "",
        insecure=body.insecure,
        ca_certificate=body.ca_certificate,
    )
    created = await services.registries.create_registry(fields, admin.username)
    return Response(
        status_code=201, headers={"location": f"/api/v2.0/registries/{created.id}"}
    )


@router.post("/registries/ping")
async def ping_registry(
    body: RegistryPingReq, services: ServicesDep, admin: AdminDep
) -> Response:
    """200 when the endpoint answers as a registry and takes the credential;
    400 saying why not."""
    stored = None
    if body.id is not None:
        stored = await services.registries.get_registry(body.id)
    fields = _merged(body, stored, body.type or (None if stored else _GENERIC))
    try:
        await services.registries.ping_fields(fields, stored)
    except UpstreamError as exc:
        raise BadRequest(f"the registry is unreachable or refused us: {exc}") from exc
    return Response(status_code=200)


@router.get("/registries/{registry_id}")
async def get_registry(
    registry_id: int, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    return registry_resp(await services.registries.get_registry(registry_id))


@router.put("/registries/{registry_id}")
async def update_registry(
    registry_id: int,
    body: RegistryUpdateReq,
    services: ServicesDep,
    admin: AdminDep,
) -> Response:
    stored = await services.registries.get_registry(registry_id)
    fields = _merged(body, stored, None)
    await services.registries.update_registry(stored, fields, admin.username)
    return Response(status_code=200)


@router.delete("/registries/{registry_id}")
async def delete_registry(
    registry_id: int, services: ServicesDep, admin: AdminDep
) -> Response:
    stored = await services.registries.get_registry(registry_id)
    await services.registries.delete_registry(stored, admin.username)
    return Response(status_code=200)


@router.get("/registries/{registry_id}/info")
async def registry_info(
    registry_id: int, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    """What the endpoint's adapter supports as a replication source."""
    stored = await services.registries.get_registry(registry_id)
    info = adapter_for(stored.type).info
    return {
        "type": stored.type,
        "description": info.description,
        "supported_resource_filters": _filters_of(stored.type),
        "supported_triggers": list(info.triggers),
    }


@router.get("/replication/adapters")
async def list_adapters(admin: AdminDep) -> list[str]:
    return list(ADAPTERS)


@router.get("/replication/adapterinfos")
async def list_adapter_infos(admin: AdminDep) -> dict[str, Any]:
    """Per type, Harbor's `RegistryProviderInfo`: how its URL is entered
    (fixed for Docker Hub and ghcr.io, free with a default or none for the
    others) and its credential pattern (null: user and password), plus
    what it supports as a replication source."""
    return {kind: _adapter_info(kind, a.info) for kind, a in ADAPTERS.items()}


def _adapter_info(kind: str, info: AdapterInfo) -> dict[str, Any]:
    return {
        "type": kind,
        "description": info.description,
        "endpoint_pattern": info.endpoint_pattern(),
        "credential_pattern": info.credential_pattern,
        "supported_resource_filters": _filters_of(kind),
        "supported_triggers": list(info.triggers),
    }


def registry_resp(registry: Registry) -> dict[str, Any]:
    """An endpoint in Harbor's shape; the secret is always masked."""
    credential: dict[str, Any] = {
        "type": registry.credential_type or "",
        "access_key": registry.access_key or "",
        "access_secret": MASKED_SECRET if registry.has_secret else "",
    }
    return {
        "id": registry.id,
        "name": registry.name,
        "description": registry.description,
        "type": registry.type,
        "url": registry.url,
        "credential": credential,
        "insecure": registry.insecure,
        "ca_certificate": registry.ca_certificate or "",
        "status": registry.status,
        "creation_time": harbor_time(registry.created_at),
        "update_time": harbor_time(registry.updated_at),
    }


def _merged(
    body: RegistryUpdateReq, stored: Registry | None, kind: str | None
) -> RegistryFields:
    """The stored settings with what `body` sets laid over them. A secret
    of `*****` or none keeps the stored secret (None); a new access key or
    credential type, or a URL on another origin, without a secret clears
    it: the stored secret never goes anywhere but where it was given for
    (else pinging it at one's own server would read it)."""
    secret = body.access_secret
    if secret == MASKED_SECRET:
        secret = None
    changes_identity = (
        stored is not None
        and secret is None
        and (
            (body.access_key is not None and body.access_key != stored.access_key)
            or (body.credential_type is not None and not body.credential_type)
            or (body.url is not None and _origin(body.url) != _origin(stored.url))
        )
    )
    if stored is None or changes_identity:
        secret = secret or ""
    credential_type = body.credential_type
    if credential_type is None:
        credential_type = stored.credential_type if stored else None
    return RegistryFields(
        name=_pick(body.name, stored.name if stored else "endpoint"),
        url=_pick(body.url, stored.url if stored else ""),
        type=kind or (stored.type if stored else ""),
        description=_pick(body.description, stored.description if stored else ""),
        credential_type=credential_type or None,
        access_key=_pick(body.access_key, stored.access_key if stored else None),
        access_secret=secret,
        insecure=_pick(body.insecure, stored.insecure if stored else False),
        ca_certificate=_pick(
            body.ca_certificate, stored.ca_certificate if stored else None
        ),
    )


def _origin(url: str) -> tuple[str, str]:
    """Scheme and host:port of `url`, as compared for the secret."""
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower()


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value
