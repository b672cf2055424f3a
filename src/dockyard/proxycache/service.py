"""The pull-through cache behind proxy-cache projects.

A repository `<project>/<path>` of a proxy-cache project mirrors `<path>` on
the project's upstream (`library/<path>` on Docker Hub when `<path>` is a
single name). What a client pulls is stored as in any project:

- manifests by digest are immutable: once cached, served from the cache;
- manifests by tag are served from the cache and compared with the upstream
  (one HEAD) at most every `proxy_revalidate_seconds` (project metadata,
  default `DEFAULT_REVALIDATE_SECONDS`); a moved tag is fetched again;
- blobs missing here are streamed from the upstream to the client while
  they are written to storage, one fill per digest at a time; the digest is
  checked as the bytes pass, the last piece is held back until it matched,
  and only then is the blob committed and the last piece sent. On a
  mismatch nothing is stored and the client's transfer is cut short, so it
  never holds a complete wrong blob (details in `dockyard.proxycache.fills`);
- a ranged request for a blob missing here is passed to the upstream (or
  cut here from the whole blob, if the upstream ignores ranges) and answered
  206; the whole blob is then fetched in the background, so that a client
  resuming with ranges (containerd) still fills the cache;
- referrers are asked of the upstream (referrers API, else the
  `sha256-<hex>` tag fallback), the referring manifests cached, and the
  cached list served.

When the upstream cannot be reached, times out, rate-limits (429), fails
(5xx) or refuses our credentials, cached content is served as it is, the
registry endpoint is marked unhealthy (healthy again on the next answer),
and a tag is not revalidated again before the next interval. What is not
cached then fails with `TOOMANYREQUESTS` (after a 429) or `UNAVAILABLE`,
carrying the upstream's `Retry-After` when it sent one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from dockyard.db.database import Database, insert_or_update
from dockyard.db.schema import (
    project_metadata,
    projects,
    proxy_checks,
    proxy_projects,
    registries,
)
from dockyard.proxycache.fills import BlobMismatch, ProxiedBlob, RangedBlob, cut
from dockyard.registry.blobs import link_blob
from dockyard.registry.digest import is_digest, parse_digest
from dockyard.registry.errors import (
    BlobUnknown,
    Denied,
    ManifestUnknown,
    NameUnknown,
    RangeNotSatisfiable,
    RegistryError,
    TooManyRequests,
    Unavailable,
)
from dockyard.registry.manifests import ManifestService, StoredManifest
from dockyard.registry.ranges import parse_content_range, parse_range, parse_size
from dockyard.registry.reference import project_of
from dockyard.registry.repositories import ensure_repository, repository_id
from dockyard.replication.client import (
    BlobStream,
    RegistryClient,
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamRangeNotSatisfiable,
)
from dockyard.replication.registries import (
    DOCKER_HUB,
    DOCKER_HUB_HOSTS,
    HEALTHY,
    UNHEALTHY,
    Registry,
    RegistryService,
)
from dockyard.state.locks import LockBusy, Locks, hold
from dockyard.state.store import StateUnavailable
from dockyard.storage.base import BlobStorage, StorageError

log = logging.getLogger(__name__)

REVALIDATE_KEY = "proxy_revalidate_seconds"
DEFAULT_REVALIDATE_SECONDS = 300
DEFAULT_TIMEOUT_SECONDS = 30.0
# The actor the audit log names for what the cache stores.
CACHE_ACTOR = "proxy-cache"
# Referrers fetched per request at most: a subject with thousands of
# referrers must not turn one request into thousands.
_MAX_REFERRERS = 100
# Fills of whole blobs started in the background (after a ranged request)
# that may run at once in one process; more are skipped, not queued.
_MAX_BACKGROUND_FILLS = 4
# A fill's lock lives this long unless renewed (`hold` renews it while the
# fill runs); a process that dies holding it frees it after this.
_FILL_LOCK_SECONDS = 60.0


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
        locks: Locks,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`timeout`: seconds to wait for an upstream to connect, and for
        each read, before giving up on it."""
        self.db = db
        self.storage = storage
        self.registries = registries
        self.manifests = manifests
        self.locks = locks
        self.timeout = timeout
        # registry id -> (its update time, client): tokens live as long.
        self._clients: dict[int, tuple[datetime, RegistryClient]] = {}
        self._fills: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        fills = list(self._fills)
        for task in fills:
            task.cancel()
        await asyncio.gather(*fills, return_exceptions=True)
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
        if local is None:
            return await self._fetch_manifest(binding, repository, tag, tag)
        try:
            head = await client.head_manifest(upstream, tag)
        except UpstreamNotFound as exc:
            raise ManifestUnknown(reference=tag) from exc
        except UpstreamError as exc:
            await self._unhealthy(binding, exc)
            # Served from the cache, and not asked again for an interval: a
            # rate-limited or failing upstream is not hit on every pull.
            await self._mark_checked(repository, tag)
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
        except UpstreamError as exc:
            unknown = ManifestUnknown(reference=reference)
            raise await self._failed(binding, exc, unknown) from exc
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
        except UpstreamError as exc:
            raise await self._failed(binding, exc, BlobUnknown(digest=digest)) from exc
        await self._healthy(binding)
        return size

    async def open_blob(
        self, binding: Binding, repository: str, digest: str
    ) -> ProxiedBlob:
        """Start fetching a blob not cached here: stored on the way unless
        another request fills it already (see `dockyard.proxycache.fills`).
        The caller sends its `chunks()` and must `aclose()` it in any case."""
        async with contextlib.AsyncExitStack() as stack:
            store = await self._hold_fill(stack, digest)
            # A fill that ended just before we took its lock stored it.
            store = store and not await self._link_if_stored(repository, digest)
            stream = await self._open_upstream(binding, repository, digest, stack)
            return ProxiedBlob(
                self,
                binding,
                repository,
                stream,
                stack.pop_all(),
                digest=digest,
                store=store,
            )

    async def open_range(
        self, binding: Binding, repository: str, digest: str, byte_range: str
    ) -> RangedBlob:
        """One range (a single-range `Range` value) of a blob not cached
        here: asked of the upstream, or cut here from the whole blob when
        the upstream ignores ranges. `RangeNotSatisfiable` beyond the blob.
        The whole blob is then fetched in the background, so that the next
        pull is a hit. The caller sends `chunks` and must `aclose()` it."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                stream = await self._open_upstream(
                    binding, repository, digest, stack, byte_range
                )
                first, last, size = _range_of(stream, byte_range)
                kept = stack.pop_all()
        except UpstreamRangeNotSatisfiable as exc:
            size = _unsatisfied_size(exc.content_range)
            if size is None:
                size = await self.blob_size(binding, repository, digest)
            raise RangeNotSatisfiable(size=size) from exc
        except UpstreamError as exc:  # a ranged answer that breaks the rules
            raise await self._failed(binding, exc, BlobUnknown(digest=digest)) from exc
        self.fill_in_background(binding, repository, digest)
        skip = 0 if stream.content_range else first
        chunks = cut(self.watched(binding, stream.chunks), skip, last - first + 1)
        return RangedBlob(first, last, size, chunks, kept)

    def fill_in_background(
        self, binding: Binding, repository: str, digest: str
    ) -> None:
        """Start caching a whole blob without a client waiting for it."""
        if len(self._fills) >= _MAX_BACKGROUND_FILLS:
            log.warning(
                "proxy_fill_skipped repository=%s digest=%s reason=busy",
                repository,
                digest,
            )
            return
        task = asyncio.create_task(self._fill(binding, repository, digest))
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    async def _fill(self, binding: Binding, repository: str, digest: str) -> None:
        """Store the blob, unless a fill of it runs already or it is stored."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                if not await self._hold_fill(stack, digest):
                    return
                if await self._link_if_stored(repository, digest):
                    return
                stream = await self._open_upstream(binding, repository, digest, stack)
                blob = ProxiedBlob(
                    self,
                    binding,
                    repository,
                    stream,
                    contextlib.AsyncExitStack(),
                    digest=digest,
                    store=True,
                )
                async for _ in blob.chunks():
                    pass
        except (RegistryError, UpstreamError, BlobMismatch, StorageError) as exc:
            log.warning(
                "proxy_fill_failed repository=%s digest=%s error=%s",
                repository,
                digest,
                exc,
            )

    async def _link_if_stored(self, repository: str, digest: str) -> bool:
        """Whether storage has the blob (committed, so verified) already;
        then it is linked to `repository` too."""
        size = await self.storage.blob_size(digest)
        if size is None:
            return False
        await self.record_blob(repository, digest, size)
        return True

    async def _hold_fill(self, stack: contextlib.AsyncExitStack, digest: str) -> bool:
        """Take the fill lock of `digest` for as long as `stack` is open;
        False when another request (in any process) holds it."""
        try:
            await stack.enter_async_context(
                hold(self.locks, f"proxy-fill:{digest}", _FILL_LOCK_SECONDS)
            )
        except LockBusy:
            return False
        except StateUnavailable as exc:
            # Without the shared locks two fills may run at once: they
            # commit the same verified bytes, which is harmless.
            log.warning("proxy_fill_unlocked digest=%s error=%s", digest, exc)
        return True

    async def _open_upstream(
        self,
        binding: Binding,
        repository: str,
        digest: str,
        stack: contextlib.AsyncExitStack,
        byte_range: str | None = None,
    ) -> BlobStream:
        """The upstream's answer for the blob, open while `stack` is."""
        client = await self._client(binding.registry)
        upstream = binding.upstream_name(repository)
        try:
            stream = await stack.enter_async_context(
                client.open_blob(upstream, digest, byte_range)
            )
        except UpstreamRangeNotSatisfiable:
            raise
        except UpstreamError as exc:
            raise await self._failed(binding, exc, BlobUnknown(digest=digest)) from exc
        await self._healthy(binding)
        return stream

    async def watched(
        self, binding: Binding, pieces: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """`pieces` of an upstream answer; an upstream that breaks off
        mid-stream is recorded as unhealthy (and the error raised on)."""
        try:
            async for piece in pieces:
                yield piece
        except UpstreamError as exc:
            await self._unhealthy(binding, exc)
            raise

    async def record_blob(self, repository: str, digest: str, size: int) -> None:
        """Link a blob that is in storage to `repository`."""
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
        client = RegistryClient(
            await self.registries.endpoint(registry),
            httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
        )
        self._clients[registry.id] = (registry.updated_at, client)
        if held is not None:
            await held[1].aclose()
        return client

    async def _failed(
        self, binding: Binding, error: UpstreamError, unknown: RegistryError
    ) -> RegistryError:
        """What the client is told when the upstream could not give what
        was not cached: `unknown` when it has no such thing; else the
        upstream is recorded unhealthy and the client asked to come back
        (with the upstream's `Retry-After`, when it gave one)."""
        if isinstance(error, UpstreamNotFound):
            return unknown
        await self._unhealthy(binding, error)
        if error.status == 429:
            return TooManyRequests(
                "not cached, and the upstream is rate-limiting us",
                retry_after=error.retry_after,
            )
        return Unavailable(
            "not cached, and the upstream is unavailable",
            retry_after=error.retry_after,
        )

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


def _range_of(stream: BlobStream, byte_range: str) -> tuple[int, int, int]:
    """(first, last, blob size) of what the client gets from `stream`, the
    upstream's answer to `byte_range`; `RangeNotSatisfiable` when it sent
    the whole blob and the range lies beyond it."""
    if stream.content_range is None:  # the whole blob came
        wanted = parse_range(byte_range, stream.size)
        if wanted is None:
            raise UpstreamInvalid(f"not a single byte range: {byte_range!r}")
        return (*wanted, stream.size)
    served = parse_content_range(stream.content_range)
    if served is None or served[1] - served[0] + 1 != stream.size:
        raise UpstreamInvalid(f"bad Content-Range {stream.content_range[:80]!r}")
    try:
        wanted = parse_range(byte_range, served[2])
    except RangeNotSatisfiable as exc:
        raise UpstreamInvalid("the upstream served a range beyond the blob") from exc
    if wanted != served[:2]:
        # Relayed, they would reach the client as the bytes it asked for.
        raise UpstreamInvalid(
            f"asked {byte_range!r}, the upstream served {stream.content_range[:80]!r}"
        )
    return served


def _unsatisfied_size(content_range: str | None) -> int | None:
    """The size in a 416's `Content-Range: bytes */<size>`, if given."""
    prefix, _, size = (content_range or "").strip().partition("*/")
    if prefix.strip() != "bytes" or not size.isdigit():
        return None
    return parse_size(size)


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
