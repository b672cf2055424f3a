"""The services one process runs, built once from the settings.

The app factory and the CLI both build a `Services`; HTTP handlers reach it
through `request.app.state.services`. Nothing here is a module global.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.allowlists import AllowlistService
from dockyard.audit import AuditLog
from dockyard.auth.access import AccessPolicy
from dockyard.auth.keys import derived_secret, load_signing_key
from dockyard.auth.throttle import FailedLogins, MemoryFailedLogins, RedisFailedLogins
from dockyard.auth.tokens import TokenAuthority
from dockyard.auth.users import UserService
from dockyard.config import Settings
from dockyard.configurations import ConfigurationService
from dockyard.db.database import Database
from dockyard.grants import GrantService
from dockyard.groups import GroupService
from dockyard.jobs.queue import JobQueue, MemoryQueue, RedisQueue
from dockyard.jobs.records import JobService
from dockyard.labels import LabelService
from dockyard.metrics import Metrics
from dockyard.projects import ProjectMetadataService, ProjectService
from dockyard.proxycache.service import ProxyCache
from dockyard.quotas import QuotaService
from dockyard.registry.artifacts import ArtifactService
from dockyard.registry.blobs import BlobService
from dockyard.registry.manifests import ManifestService
from dockyard.registry.pulls import PullTracker
from dockyard.registry.repositories import Catalog
from dockyard.registry.routes.guard import RegistryGuard
from dockyard.registry.uploads import UploadService
from dockyard.replication.credentials import load_credential_box
from dockyard.replication.policies import PolicyService
from dockyard.replication.registries import RegistryService
from dockyard.replication.runner import Replication
from dockyard.robots import RobotService
from dockyard.sessions import SessionService
from dockyard.state.expiring import (
    ExpiringKeys,
    MemoryExpiringKeys,
    RedisExpiringKeys,
)
from dockyard.state.generation import RedisGeneration
from dockyard.state.locks import Locks, MemoryLocks, RedisLocks
from dockyard.state.store import RedisStore
from dockyard.storage import open_storage


@dataclass
class Services:
    settings: Settings
    db: Database
    users: UserService
    projects: ProjectService
    policy: AccessPolicy
    authority: TokenAuthority
    guard: RegistryGuard
    audit: AuditLog
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    catalog: Catalog
    artifacts: ArtifactService
    pulls: PullTracker
    configurations: ConfigurationService
    groups: GroupService
    labels: LabelService
    quotas: QuotaService
    allowlists: AllowlistService
    metadata: ProjectMetadataService
    robots: RobotService
    grants: GrantService
    sessions: SessionService
    registries: RegistryService
    proxycache: ProxyCache
    locks: Locks
    jobs: JobService
    replication: Replication
    redis: RedisStore | None = None
    metrics: Metrics = field(default_factory=Metrics)

    async def close(self) -> None:
        await self.replication.drain_events()
        await self.proxycache.close()
        await self.db.close()
        if self.redis is not None:
            await self.redis.close()


@dataclass
class SharedState:
    """What replicas share: in this process, or in Redis with `redis_url`."""

    redis: RedisStore | None
    locks: Locks
    failed_logins: FailedLogins
    recent_logins: ExpiringKeys
    queue: JobQueue


def build_shared_state(settings: Settings) -> SharedState:
    if settings.redis_url is None:
        return SharedState(
            None,
            MemoryLocks(),
            MemoryFailedLogins(),
            MemoryExpiringKeys(),
            MemoryQueue(),
        )
    store = RedisStore(settings.redis_url, settings.redis_prefix)
    return SharedState(
        store,
        RedisLocks(store),
        RedisFailedLogins(store),
        RedisExpiringKeys(store, "logins"),
        RedisQueue(store),
    )


def build_services(settings: Settings) -> Services:
    shared = build_shared_state(settings)
    db = Database(
        settings.sqlalchemy_url,
        # SQLite keeps its own generation; other databases need Redis's.
        generation=(
            RedisGeneration(shared.redis)
            if shared.redis and not settings.sqlalchemy_url.startswith("sqlite")
            else None
        ),
    )
    storage = open_storage(
        settings.storage_url,
        settings.data_dir / "storage",
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        options=settings.storage_options,
    )
    key = load_signing_key(settings.key_directory)
    authority = TokenAuthority(
        key,
        issuer=settings.token.issuer,
        service=settings.token.service,
        expiration=settings.token.expiration_seconds,
        refresh_expiration=settings.token.refresh_expiration_seconds,
    )
    configurations = ConfigurationService(db, settings.token.expiration_seconds)
    audit = AuditLog(db)
    projects = ProjectService(db)
    robots = RobotService(db, configurations, projects)
    users = UserService(
        db,
        audit,
        robots,
        failed_logins=shared.failed_logins,
        recent_logins=shared.recent_logins,
        login_secret=derived_secret(key, "remembered-logins"),
    )
    policy = AccessPolicy(projects)
    manifests = ManifestService(db, settings.max_manifest_bytes)
    registries = RegistryService(db, load_credential_box(settings.key_directory))
    proxycache = ProxyCache(
        db,
        storage,
        registries,
        manifests,
        shared.locks,
        settings.proxy_timeout_seconds,
    )
    blob_service = BlobService(db, storage, redirect=settings.storage_redirect)
    jobs = JobService(db, shared.queue)
    return Services(
        settings=settings,
        db=db,
        users=users,
        projects=projects,
        policy=policy,
        authority=authority,
        guard=RegistryGuard(
            settings,
            authority,
            users,
            projects,
            policy,
            configurations,
            robots,
            proxycache.refuse_push,
        ),
        audit=audit,
        blobs=blob_service,
        uploads=UploadService(db, storage),
        manifests=manifests,
        catalog=Catalog(db),
        artifacts=ArtifactService(db, storage),
        pulls=PullTracker(db),
        configurations=configurations,
        groups=GroupService(db),
        labels=LabelService(db),
        quotas=QuotaService(db),
        allowlists=AllowlistService(db),
        metadata=ProjectMetadataService(db),
        robots=robots,
        grants=GrantService(db),
        sessions=SessionService(db, configurations),
        registries=registries,
        proxycache=proxycache,
        locks=shared.locks,
        jobs=jobs,
        replication=Replication(
            db,
            jobs,
            PolicyService(db),
            registries,
            manifests,
            blob_service,
            shared.locks,
            projects,
        ),
        redis=shared.redis,
    )
