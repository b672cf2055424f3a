"""The pull-through cache behind proxy-cache projects.

A repository `<project>/<path>` of a proxy-cache project mirrors `<path>` on
the project's upstream (`library/<path>` on Docker Hub when `<path>` is a
single name). What a client pulls is stored as in any project:

- manifests by digest are immutable: once cached, served from the cache;
- manifests by tag are served from the cache and compared with the upstream
  (one HEAD) at most every `proxy_revalidate_seconds` (project metadata,
  default `DEFAULT_REVALIDATE_SECONDS`); a moved tag is fetched again;
- blobs missing here are streamed from the upstream to the client while
  they are written to storage; the digest is checked as the bytes pass, the
  last piece is held back until it matched, and only then is the blob
  committed and the last piece sent. On a mismatch nothing is stored and
  the client's transfer is cut short, so it never holds a complete wrong
  blob;
- referrers are asked of the upstream (referrers API, else the
  `sha256-<hex>` tag fallback), the referring manifests cached, and the
  cached list served.

When the upstream cannot be reached, rate-limits (429), fails (5xx) or
refuses our credentials, cached content is served as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from dockyard.db.database import Database, insert_or_update
from dockyard.db.schema import (
    project_metadata,
    projects,
    proxy_checks,
    proxy_projects,
    registries,
)
from dockyard.registry.blobs import link_blob
from dockyard.registry.digest import is_digest, parse_digest
from dockyard.registry.errors import (
    BlobUnknown,
    Denied,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    Unavailable,
)
from dockyard.registry.manifests import ManifestService, StoredManifest
from dockyard.registry.reference import project_of
from dockyard.registry.repositories import ensure_repository, repository_id
from dockyard.replication.client import (
    BlobStream,
    RegistryClient,
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
)
from dockyard.replication.registries import (
    DOCKER_HUB,
    DOCKER_HUB_HOSTS,
    HEALTHY,
    UNHEALTHY,
    Registry,
    RegistryService,
)
from dockyard.storage.base import BlobStorage, StorageError

log = logging.getLogger(__name__)

REVALIDATE_KEY = "proxy_revalidate_seconds"
DEFAULT_REVALIDATE_SECONDS = 300
# The actor the audit log names for what the cache stores.
CACHE_ACTOR = "proxy-cache"
# Referrers fetched per request at most: a subject with thousands of
# referrers must not turn one request into thousands.
_MAX_REFERRERS = 100
# Pieces of an upstream blob waiting for the storage writer.
_QUEUED_PIECES = 8


class BlobMismatch(Exception):
    """The upstream's bytes do not match the digest they were asked for."""


@dataclass(frozen=True, slots=True)
class Binding:
    """A proxy-cache project and its upstream."""

    project_id: int
    project: str
    registry: Registry
    revalidate_seconds: float

    def upstream_name(self, repository: str) -> str:
        """`repository` (in the project) as the upstream names it."""
        path = repository.split("/", 1)[1] if "/" in repository else ""
        if not path:
            # The project alone names nothing upstream.
            raise NameUnknown(name=repository)
        if self.registry.type == DOCKER_HUB and "/" not in path:
            return f"library/{path}"
        return path


class ProxyCache:
    def __init__(
        self,
        db: Database,
        storage: BlobStorage,
        registries: RegistryService,
        manifests: ManifestService,
    ) -> None:
        self.db = db
        self.storage = storage
        self.registries = registries
        self.manifests = manifests
        # registry id -> (its update time, client): tokens live as long.
        self._clients: dict[int, tuple[datetime, RegistryClient]] = {}

    async def close(self) -> None:
        for _, client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    # Which projects are proxies.

    async def binding(self, repository: str) -> Binding | None:
        """The upstream of `repository`'s project, None for other projects."""
        project = project_of(repository)
        found = await self.db.cache.get_or_load(
            ("proxy-binding", project), lambda: self._load_binding(project)
        )
        if found is None:
            return None
        project_id, registry_id, revalidate = found
        registry = await self.db.cache.get_or_load(
            ("registry", registry_id),
            lambda: self.registries.get_registry(registry_id),
        )
        return Binding(project_id, project, registry, revalidate)

    async def _load_binding(self, project: str) -> tuple[int, int, float] | None:
        query = (
            select(proxy_projects.c.project_id, proxy_projects.c.registry_id)
            .join(projects, projects.c.id == proxy_projects.c.project_id)
            .where(projects.c.name == project)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            value = await conn.scalar(
                select(project_metadata.c.value).where(
                    (project_metadata.c.project_id == row.project_id)
                    & (project_metadata.c.name == REVALIDATE_KEY)
                )
            )
        seconds = DEFAULT_REVALIDATE_SECONDS if value is None else max(int(value), 0)
        return row.project_id, row.registry_id, float(seconds)

    async def registry_of(self, project_id: int) -> int | None:
        """The registry id a project proxies, None for a normal project."""
        async with self.db.read() as conn:
            return await conn.scalar(
                select(proxy_projects.c.registry_id).where(
                    proxy_projects.c.project_id == project_id
                )
            )

    async def project_for_host(self, host: str) -> str | None:
        """The proxy-cache project whose upstream is `host` (containerd's
        `?ns=`); the oldest such project when there are several."""
        host = host.strip().lower()
        table = await self.db.cache.get_or_load(("proxy-hosts",), self._load_hosts)
        return table.get(host)

    async def _load_hosts(self) -> dict[str, str]:
        query = (
            select(projects.c.name, registries.c.url, registries.c.type)
            .select_from(proxy_projects)
            .join(projects, projects.c.id == proxy_projects.c.project_id)
            .join(registries, registries.c.id == proxy_projects.c.registry_id)
            .order_by(projects.c.id.desc())
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        table: dict[str, str] = {}
        for row in rows:  # newest first, so the oldest project wins
            hosts = {urlsplit(row.url).netloc.lower()}
            if row.type == DOCKER_HUB:
                hosts |= DOCKER_HUB_HOSTS
            table.update(dict.fromkeys(hosts, row.name))
        return table

    async def refuse_push(self, repository: str) -> None:
        """`Denied` when `repository` is in a proxy-cache project."""
        if await self.binding(repository) is not None:
            raise Denied(
                f"project {project_of(repository)} is a proxy cache: "
                "pushes are refused",
            )

    # Manifests.

    async def get_manifest(
        self, binding: Binding, repository: str, reference: str
    ) -> StoredManifest:
        """The manifest, from the cache when it may be, else the upstream."""
        local = await self._cached_manifest(repository, reference)
        if is_digest(reference):
            if local is not None:
                return local
            return await self._fetch_manifest(binding, repository, reference, None)
        if local is not None and not await self._due(
            repository, reference, binding.revalidate_seconds
        ):
            return local
        return await self._revalidate(binding, repository, reference, local)

    async def _revalidate(
        self,
        binding: Binding,
        repository: str,
        tag: str,
        local: StoredManifest | None,
    ) -> StoredManifest:
        """The tag as the upstream has it now; the cached copy when the
        upstream cannot say."""
        client = await self._client(binding.registry)
        upstream = binding.upstream_name(repository)
        try:
            if local is None:
                return await self._fetch_manifest(binding, repository, tag, tag)
            head = await client.head_manifest(upstream, tag)
        except UpstreamNotFound as exc:
            raise ManifestUnknown(reference=tag) from exc
        except UpstreamError as exc:
            await self._unhealthy(binding, exc)
            if local is None:
                raise Unavailable(
                    "not cached, and the upstream is unavailable"
                ) from exc
            return local
        await self._healthy(binding)
        if head.digest == local.digest:
            await self._mark_checked(repository, tag)
            return local
        log.info(
            "proxy_tag_moved repository=%s tag=%s digest=%s",
            repository,
            tag,
            head.digest,
        )
        return await self._fetch_manifest(binding, repository, head.digest, tag)

    async def _fetch_manifest(
        self, binding: Binding, repository: str, reference: str, tag: str | None
    ) -> StoredManifest:
        """Get `reference` from the upstream, store it (under `tag` too)."""
        client = await self._client(binding.registry)
        try:
            fetched = await client.get_manifest(
                binding.upstream_name(repository), reference
            )
        except UpstreamNotFound as exc:
            raise ManifestUnknown(reference=reference) from exc
        except UpstreamError as exc:
            await self._unhealthy(binding, exc)
            raise Unavailable("not cached, and the upstream is unavailable") from exc
        await self._healthy(binding)
        stored = await self.manifests.put_manifest(
            repository,
            tag or fetched.digest,
            fetched.media_type or None,
            fetched.content,
            CACHE_ACTOR,
            check_references=False,
        )
        if tag is not None:
            await self._mark_checked(repository, tag)
        return stored

    async def _cached_manifest(
        self, repository: str, reference: str
    ) -> StoredManifest | None:
        try:
            return await self.manifests.get_manifest(repository, reference)
        except ManifestUnknown:
            return None

    async def _due(self, repository: str, tag: str, interval: float) -> bool:
        async def load() -> float | None:
            async with self.db.read() as conn:
                repo_id = await repository_id(conn, repository)
                return await conn.scalar(
                    select(proxy_checks.c.checked_at).where(
                        (proxy_checks.c.repository_id == repo_id)
                        & (proxy_checks.c.tag == tag)
                    )
                )

        checked = await self.db.cache.get_or_load(
            ("proxy-check", repository, tag), load
        )
        return checked is None or time.time() - checked >= interval

    async def _mark_checked(self, repository: str, tag: str) -> None:
        now = time.time()
        async with self.db.write() as conn:
            repo_id = await ensure_repository(conn, repository)
            values = {"repository_id": repo_id, "tag": tag, "checked_at": now}
            await conn.execute(
                insert_or_update(
                    conn,
                    proxy_checks,
                    ["repository_id", "tag"],
                    values,
                    {"checked_at": now},
                )
            )

    # Blobs.

    async def blob_size(self, binding: Binding, repository: str, digest: str) -> int:
        """The size the upstream gives a blob not cached here (for HEAD)."""
        client = await self._client(binding.registry)
        try:
            size = await client.head_blob(binding.upstream_name(repository), digest)
        except UpstreamNotFound as exc:
            raise BlobUnknown(digest=digest) from exc
        except UpstreamError as exc:
            await self._unhealthy(binding, exc)
            raise Unavailable("not cached, upstream unavailable") from exc
        return size

    async def open_blob(
        self, binding: Binding, repository: str, digest: str
    ) -> ProxiedBlob:
        """Start fetching a blob not cached here; the caller sends its
        `chunks()` to the client and must `aclose()` it in any case."""
        client = await self._client(binding.registry)
        stack = contextlib.AsyncExitStack()
        try:
            stream = await stack.enter_async_context(
                client.open_blob(binding.upstream_name(repository), digest)
            )
        except UpstreamNotFound as exc:
            await stack.aclose()
            raise BlobUnknown(digest=digest) from exc
        except UpstreamError as exc:
            await stack.aclose()
            await self._unhealthy(binding, exc)
            raise Unavailable("not cached, upstream unavailable") from exc
        return ProxiedBlob(self, repository, digest, stream, stack)

    async def _store_blob(self, repository: str, digest: str, size: int) -> None:
        async with self.db.write() as conn:
            await link_blob(
                conn, await ensure_repository(conn, repository), digest, size
            )

    # Referrers.

    async def list_referrers(
        self,
        binding: Binding,
        repository: str,
        digest: str,
        artifact_type: str | None,
    ) -> list[dict[str, Any]]:
        """The referrers of `digest` after caching what the upstream lists
        (asked at most once per revalidation interval)."""
        # A sha512 digest would not fit the column: the key is a hash of it.
        key = "referrers@" + hashlib.sha256(digest.encode()).hexdigest()
        if await self._due(repository, key, binding.revalidate_seconds):
            await self._cache_referrers(binding, repository, digest)
            await self._mark_checked(repository, key)
        return await self.manifests.list_referrers(repository, digest, artifact_type)

    async def _cache_referrers(
        self, binding: Binding, repository: str, digest: str
    ) -> None:
        try:
            descriptors = await self._upstream_referrers(binding, repository, digest)
        except UpstreamError as exc:
            await self._unhealthy(binding, exc)
            return
        for descriptor in descriptors[:_MAX_REFERRERS]:
            wanted = descriptor.get("digest")
            if not isinstance(wanted, str) or not _is_digest(wanted):
                continue
            if await self._cached_manifest(repository, wanted) is not None:
                continue
            try:
                await self._fetch_manifest(binding, repository, wanted, None)
            except RegistryError as exc:
                log.warning(
                    "proxy_referrer_skipped repository=%s digest=%s error=%s",
                    repository,
                    wanted,
                    exc.message,
                )

    async def _upstream_referrers(
        self, binding: Binding, repository: str, digest: str
    ) -> list[dict[str, Any]]:
        client = await self._client(binding.registry)
        upstream = binding.upstream_name(repository)
        found = await client.list_referrers(upstream, digest)
        if found is not None:
            return found
        # No referrers API there: the spec's fallback tag holds an index.
        algorithm, _, encoded = digest.partition(":")
        try:
            index = await client.get_manifest(upstream, f"{algorithm}-{encoded}")
        except UpstreamNotFound:
            return []
        return _index_manifests(index.content)

    # Upstream clients and health.

    async def _client(self, registry: Registry) -> RegistryClient:
        held = self._clients.get(registry.id)
        if held is not None and held[0] == registry.updated_at:
            return held[1]
        client = RegistryClient(await self.registries.endpoint(registry))
        self._clients[registry.id] = (registry.updated_at, client)
        if held is not None:
            await held[1].aclose()
        return client

    async def _unhealthy(self, binding: Binding, error: Exception) -> None:
        log.warning(
            "proxy_upstream_failed project=%s registry=%d error=%s",
            binding.project,
            binding.registry.id,
            error,
        )
        if binding.registry.status != UNHEALTHY:
            await self.registries.record_status(binding.registry.id, UNHEALTHY)

    async def _healthy(self, binding: Binding) -> None:
        if binding.registry.status != HEALTHY:
            await self.registries.record_status(binding.registry.id, HEALTHY)


class ProxiedBlob:
    """A blob on its way from the upstream to a client and to storage."""

    def __init__(
        self,
        cache: ProxyCache,
        repository: str,
        digest: str,
        stream: BlobStream,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        self.cache = cache
        self.repository = repository
        self.digest = digest
        self.size = stream.size
        self._stream = stream
        self._stack = stack

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The blob's bytes, written to storage as they pass. The last piece
        comes only after the digest matched and the blob was committed;
        `BlobMismatch` instead when it did not (nothing is then stored)."""
        storage = self.cache.storage
        upload_id = f"proxy-{uuid.uuid4()}"
        await storage.create_upload(upload_id)
        hasher = hashlib.new(parse_digest(self.digest).algorithm)
        # The storage side reads from this queue while the client side is
        # served; bounded, so a slow store slows the upstream read too.
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUED_PIECES)
        committed = False
        try:
            async with storage.open_upload(upload_id) as upload:
                writer = asyncio.create_task(
                    upload.append(_drained(queue), start=0, hasher=hasher)
                )
                try:
                    received = 0
                    held: bytes | None = None
                    async for piece in self._stream.chunks:
                        received += len(piece)
                        await _feed(queue, piece, writer)
                        if received > self.size:
                            break
                        if held:
                            yield held
                        held = piece
                    await _feed(queue, None, writer)
                    await writer
                finally:
                    if not writer.done():
                        writer.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await writer
                self._verify(received, hasher)
                await upload.commit(self.digest, verified=True)
                committed = True
            await self.cache._store_blob(self.repository, self.digest, self.size)
            log.info(
                "proxy_blob_cached repository=%s digest=%s size=%d",
                self.repository,
                self.digest,
                self.size,
            )
            if held:
                yield held
        finally:
            if not committed:
                await storage.delete_upload(upload_id)

    def _verify(self, received: int, hasher: Any) -> None:
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if received != self.size or actual != self.digest:
            log.warning(
                "proxy_blob_mismatch repository=%s digest=%s actual=%s size=%d "
                "received=%d",
                self.repository,
                self.digest,
                actual,
                self.size,
                received,
            )
            raise BlobMismatch(f"upstream sent {actual} for {self.digest}")


async def _drained(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """The pieces put on `queue`, up to the None that ends them."""
    while (piece := await queue.get()) is not None:
        yield piece


async def _feed(
    queue: asyncio.Queue[bytes | None], piece: bytes | None, writer: asyncio.Task
) -> None:
    """Put `piece` on `queue`, unless the storage writer ended first (then
    its error, or `StorageError`, is raised rather than waiting forever)."""
    put = asyncio.ensure_future(queue.put(piece))
    await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
    if put.done():
        return
    put.cancel()
    writer.result()
    raise StorageError("the blob's storage writer stopped early")


def _is_digest(text: str) -> bool:
    try:
        parse_digest(text)
    except RegistryError:
        return False
    return True


def _index_manifests(content: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(content)
    except ValueError as exc:
        raise UpstreamInvalid("the referrers fallback tag is not JSON") from exc
    manifests = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(manifests, list):
        return []
    return [d for d in manifests if isinstance(d, dict)]
