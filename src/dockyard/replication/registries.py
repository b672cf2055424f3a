"""Registry endpoints: remote registries Dockyard pulls from (proxy cache)
and, later, replicates to and from.

An endpoint has a type (the adapter, see `ADAPTERS`), a URL, optional
credentials, TLS settings and the health its last contact showed. The
secret is encrypted with the data directory's credential key before it
reaches the database, and never leaves this module in clear except inside
an `Endpoint` built for a request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dockyard.audit import record_change
from dockyard.db.database import Database, count_rows
from dockyard.db.schema import (
    projects,
    proxy_projects,
    registries,
    replication_policies,
)
from dockyard.replication import adapters
from dockyard.replication.client import (
    Endpoint,
    RegistryClient,
    UpstreamError,
    transport_verify,
)
from dockyard.replication.credentials import CredentialBox

log = logging.getLogger(__name__)

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"

# Adapter type -> what it is (the adapters hold each service's quirks).
ADAPTERS: dict[str, str] = {
    kind: adapter.info.description for kind, adapter in adapters.ADAPTERS.items()
}
DOCKER_HUB = adapters.DOCKER_HUB
# The names containerd gives Docker Hub in `?ns=`.
DOCKER_HUB_HOSTS = adapters.HUB_HOSTS
CREDENTIAL_TYPES = ("basic", "oauth")


class RegistryError(Exception):
    """A registry endpoint operation cannot be done; the message says why."""


class RegistryInvalid(RegistryError):
    pass


class RegistryNotFound(RegistryError):
    pass


class RegistryExists(RegistryError):
    pass


class RegistryInUse(RegistryError):
    pass


@dataclass(frozen=True, slots=True)
class RegistryFields:
    """What a caller sets. `access_secret` None keeps the stored secret."""

    name: str
    url: str
    type: str
    description: str = ""
    credential_type: str | None = None
    access_key: str | None = None
    access_secret: str | None = None
    insecure: bool = False
    ca_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class Registry:
    id: int
    name: str
    description: str
    type: str
    url: str
    credential_type: str | None
    access_key: str | None
    has_secret: bool
    insecure: bool
    ca_certificate: str | None
    status: str
    created_at: datetime
    updated_at: datetime

    @property
    def host(self) -> str:
        """`host[:port]` of the URL, as containerd names it in `?ns=`."""
        return urlsplit(self.url).netloc.lower()


def check_fields(fields: RegistryFields) -> RegistryFields:
    """The fields, normalised; `RegistryInvalid` for what cannot work."""
    name = fields.name.strip()
    if not name or len(name) > 255:
        raise RegistryInvalid("name is required (at most 255 characters)")
    if not name.isprintable():
        raise RegistryInvalid("name holds control or invisible characters")
    try:
        url = adapters.adapter_for(fields.type).checked_url(fields.url)
    except adapters.EndpointInvalid as exc:
        raise RegistryInvalid(str(exc)) from exc
    credential_type = fields.credential_type or None
    if credential_type not in (None, *CREDENTIAL_TYPES):
        raise RegistryInvalid("credential type must be basic or oauth")
    if fields.ca_certificate:
        try:
            transport_verify(Endpoint(url="", ca_certificate=fields.ca_certificate))
        except UpstreamError as exc:
            raise RegistryInvalid(str(exc)) from exc
    return replace(
        fields,
        name=name,
        url=_checked_url(url),
        credential_type=credential_type,
    )


def _checked_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryInvalid("url must be http(s)://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise RegistryInvalid("url must not hold credentials, a query or a fragment")
    try:
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError as exc:
        raise RegistryInvalid("url has an invalid port") from exc
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class RegistryService:
    def __init__(self, db: Database, box: CredentialBox) -> None:
        self.db = db
        self.box = box

    async def list_registries(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[Registry], int]:
        """A page of `query` (over `registries`) and how many rows it has."""
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [_registry(row) for row in rows], total

    async def get_registry(self, registry_id: int) -> Registry:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(registries).where(registries.c.id == registry_id)
                )
            ).first()
        if row is None:
            raise RegistryNotFound(f"registry {registry_id} not found")
        return _registry(row)

    async def create_registry(self, fields: RegistryFields, actor: str) -> Registry:
        """Store a checked endpoint; its health is what a first ping shows."""
        fields = check_fields(fields)
        status = await self.probe(fields.type, self._endpoint(fields, None))
        now = datetime.now(UTC)
        values = {
            **self._stored(fields, None),
            "status": status,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.db.write() as conn:
                result = await conn.execute(insert(registries).values(**values))
                await record_change(conn, actor, "registry", "create", fields.name)
        except IntegrityError as exc:
            raise RegistryExists(f"registry {fields.name!r} already exists") from exc
        return await self.get_registry(int(result.inserted_primary_key[0]))

    async def update_registry(
        self, registry: Registry, fields: RegistryFields, actor: str
    ) -> Registry:
        """Replace the endpoint's settings; a None secret keeps the old one."""
        fields = check_fields(fields)
        sealed = await self._sealed_secret(registry.id)
        status = await self.probe(fields.type, self._endpoint(fields, sealed))
        values = {
            **self._stored(fields, sealed),
            "status": status,
            "updated_at": datetime.now(UTC),
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    update(registries)
                    .where(registries.c.id == registry.id)
                    .values(**values)
                )
                await record_change(conn, actor, "registry", "update", fields.name)
        except IntegrityError as exc:
            raise RegistryExists(f"registry {fields.name!r} already exists") from exc
        return await self.get_registry(registry.id)

    async def delete_registry(self, registry: Registry, actor: str) -> None:
        """Delete an endpoint no proxy-cache project or replication policy uses
        (`RegistryInUse`, naming them)."""
        async with self.db.write() as conn:
            users = await _users_of(conn, registry.id)
            if users:
                raise RegistryInUse(
                    f"registry {registry.id} is used by {users}: delete them "
                    "first (or move the policies to another registry)"
                )
            await conn.execute(delete(registries).where(registries.c.id == registry.id))
            await record_change(conn, actor, "registry", "delete", registry.name)

    async def endpoint(self, registry: Registry) -> Endpoint:
        """How to reach `registry`'s `/v2/`, its secret decrypted."""
        configured = await self._configured(registry)
        return adapters.adapter_for(registry.type).registry_endpoint(configured)

    async def list_repositories(
        self, registry_id: int, patterns: list[str]
    ) -> list[str]:
        """The repositories of `registry_id` a pull-based policy with these
        name filters (`matches` patterns) may select, listed the way its
        service allows; `RegistryInvalid` for a filter it cannot list,
        `UpstreamError` when the service fails."""
        registry = await self.get_registry(registry_id)
        adapter = adapters.adapter_for(registry.type)
        configured = await self._configured(registry)
        client = RegistryClient(adapter.registry_endpoint(configured))
        try:
            return await adapter.list_repositories(configured, client, patterns)
        except adapters.ListingUnsupported as exc:
            raise RegistryInvalid(str(exc)) from exc
        finally:
            await client.aclose()

    async def _configured(self, registry: Registry) -> Endpoint:
        """The endpoint as the administrator set it, its secret decrypted."""
        fields = RegistryFields(
            name=registry.name,
            url=registry.url,
            type=registry.type,
            credential_type=registry.credential_type,
            access_key=registry.access_key,
            insecure=registry.insecure,
            ca_certificate=registry.ca_certificate,
        )
        return self._endpoint(fields, await self._sealed_secret(registry.id))

    async def ping_fields(
        self, fields: RegistryFields, registry: Registry | None
    ) -> None:
        """Ping unsaved settings (a None secret: the stored one of `registry`);
        `UpstreamError` if the endpoint does not answer as a registry."""
        fields = check_fields(fields)
        sealed = await self._sealed_secret(registry.id) if registry else None
        await ping(fields.type, self._endpoint(fields, sealed))

    async def probe(self, kind: str, endpoint: Endpoint) -> str:
        """The health of a configured endpoint of type `kind`."""
        try:
            await ping(kind, endpoint)
        except (UpstreamError, RegistryInvalid) as exc:
            log.warning("registry_unhealthy url=%s error=%s", endpoint.url, exc)
            return UNHEALTHY
        return HEALTHY

    async def record_status(self, registry_id: int, status: str) -> None:
        """Remember what the last contact showed (written only on change)."""
        async with self.db.write() as conn:
            await conn.execute(
                update(registries)
                .where(
                    (registries.c.id == registry_id) & (registries.c.status != status)
                )
                .values(status=status)
            )

    async def _sealed_secret(self, registry_id: int) -> str | None:
        async with self.db.read() as conn:
            return await conn.scalar(
                select(registries.c.access_secret).where(registries.c.id == registry_id)
            )

    def _stored(self, fields: RegistryFields, sealed: str | None) -> dict[str, Any]:
        if fields.access_secret is not None:
            sealed = (
                self.box.seal(fields.access_secret) if fields.access_secret else None
            )
        anonymous = fields.credential_type is None
        return {
            "name": fields.name,
            "description": fields.description,
            "type": fields.type,
            "url": fields.url,
            "credential_type": fields.credential_type,
            "access_key": None if anonymous else fields.access_key,
            "access_secret": None if anonymous else sealed,
            "insecure": fields.insecure,
            "ca_certificate": fields.ca_certificate or None,
        }

    def _endpoint(self, fields: RegistryFields, sealed: str | None) -> Endpoint:
        secret = fields.access_secret
        if secret is None and sealed:
            secret = self.box.open(sealed)
        anonymous = fields.credential_type is None
        return Endpoint(
            url=fields.url,
            access_key=None if anonymous else fields.access_key,
            access_secret=None if anonymous else secret,
            credential_type=fields.credential_type,
            insecure=fields.insecure,
            ca_certificate=fields.ca_certificate,
        )


async def _users_of(conn: Any, registry_id: int) -> str:
    """The proxy-cache projects and replication policies that use the
    endpoint, in words ("" for none)."""
    projects_using = await conn.scalars(
        select(projects.c.name)
        .join(proxy_projects, proxy_projects.c.project_id == projects.c.id)
        .where(proxy_projects.c.registry_id == registry_id)
        .order_by(projects.c.name)
    )
    policies_using = await conn.scalars(
        select(replication_policies.c.name)
        .where(
            (replication_policies.c.src_registry_id == registry_id)
            | (replication_policies.c.dest_registry_id == registry_id)
        )
        .order_by(replication_policies.c.name)
    )
    named = [
        f"{kind} {', '.join(names)}"
        for kind, names in (
            ("proxy-cache project(s)", projects_using.all()),
            ("replication policy(ies)", policies_using.all()),
        )
        if names
    ]
    return " and ".join(named)


async def ping(kind: str, endpoint: Endpoint) -> None:
    """Return if the configured endpoint is healthy the way its type
    judges it; `UpstreamError` if not."""
    adapter = adapters.adapter_for(kind)
    client = RegistryClient(adapter.registry_endpoint(endpoint))
    try:
        await adapter.check_health(endpoint, client)
    finally:
        await client.aclose()


def _registry(row: Any) -> Registry:
    return Registry(
        id=row.id,
        name=row.name,
        description=row.description or "",
        type=row.type,
        url=row.url,
        credential_type=row.credential_type,
        access_key=row.access_key,
        has_secret=bool(row.access_secret),
        insecure=bool(row.insecure),
        ca_certificate=row.ca_certificate,
        status=row.status,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
