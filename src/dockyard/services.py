"""The services one process runs, built once from the settings.

The app factory and the CLI both build a `Services`; HTTP handlers reach it
through `request.app.state.services`. Nothing here is a module global.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.allowlists import AllowlistService
from dockyard.audit import AuditLog
from dockyard.auth.access import AccessPolicy
from dockyard.auth.keys import load_signing_key
from dockyard.auth.tokens import TokenAuthority
from dockyard.auth.users import UserService
from dockyard.config import Settings
from dockyard.configurations import ConfigurationService
from dockyard.db.database import Database
from dockyard.grants import GrantService
from dockyard.groups import GroupService
from dockyard.labels import LabelService
from dockyard.projects import ProjectMetadataService, ProjectService
from dockyard.quotas import QuotaService
from dockyard.registry.artifacts import ArtifactService
from dockyard.registry.blobs import BlobService
from dockyard.registry.manifests import ManifestService
from dockyard.registry.pulls import PullTracker
from dockyard.registry.repositories import Catalog
from dockyard.registry.routes.guard import RegistryGuard
from dockyard.registry.uploads import UploadService
from dockyard.robots import RobotService
from dockyard.sessions import SessionService
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

    async def close(self) -> None:
        await self.db.close()


def build_services(settings: Settings) -> Services:
    db = Database(settings.sqlalchemy_url)
    storage = open_storage(
        settings.storage_url,
        settings.data_dir / "storage",
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        options=settings.storage_options,
    )
    key = load_signing_key(settings.data_dir / "keys")
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
    users = UserService(db, audit, robots)
    policy = AccessPolicy(projects)
    return Services(
        settings=settings,
        db=db,
        users=users,
        projects=projects,
        policy=policy,
        authority=authority,
        guard=RegistryGuard(
            settings, authority, users, projects, policy, configurations, robots
        ),
        audit=audit,
        blobs=BlobService(db, storage, redirect=settings.storage_redirect),
        uploads=UploadService(db, storage),
        manifests=ManifestService(db, settings.max_manifest_bytes),
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
    )
