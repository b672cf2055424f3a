"""Every table Dockyard keeps, in one SQLAlchemy Core metadata.

Blob content lives in the blob store; everything else a registry needs to
answer quickly lives here: which repository may read which blob, manifests
(their bytes too, they are small and read often), tags, the edges from a
manifest to what it references, and uploads in flight.

    projects 1-n repositories 1-n manifests 1-n tags
    repositories n-m blobs            (repository_blobs: blobs a repository may read)
    manifests 1-n manifest_references (blobs and child manifests it points at)
    users, user groups n-m projects   (members, with a role)
    roles 1-n role_permissions        (builtin Harbor roles and custom ones)
    repository_grants                 (a role on the repositories of a pattern)
    robots 1-n robot_permissions      (robot accounts and what they may do)
    labels n-m manifests              (artifact_labels)
    projects 1-1 quotas, cve_allowlists; 1-n project_metadata
    audit_logs                        (who did what to which resource, when)
    sessions                          (portal logins)
    registries 1-n proxy_projects     (remote endpoints; projects caching one)
    proxy_checks                      (when a cached tag was last revalidated)
    job_executions 1-n job_tasks      (background work, its status and log)
    replication_policies              (what to copy between registries, when)
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

MAX_INTEGER = 2**63 - 1
"""The largest value an integer column holds (64-bit, in SQLite and PostgreSQL)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("email", String(255)),
    Column("realname", String(255)),
    Column("comment", Text),
    Column("sysadmin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("public", Boolean, nullable=False, default=False),
    Column("owner_id", Integer, ForeignKey("users.id")),
    # Seconds since the epoch, with fractions: tokens issued before this moment
    # must not open a project that was deleted and created again.
    Column("created_at", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

roles = Table(
    "roles",
    metadata,
    # Ids 1-5 are Harbor's five project roles; custom roles come after them.
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

role_permissions = Table(
    "role_permissions",
    metadata,
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("action", String(32), primary_key=True),
)

user_groups = Table(
    "user_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("group_name", String(255), nullable=False),
    # Harbor's group types: 1 LDAP, 2 HTTP, 3 OIDC.
    Column("group_type", Integer, nullable=False),
    Column("ldap_group_dn", String(512)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("group_type", "group_name"),
)

user_group_users = Table(
    "user_group_users",
    metadata,
    Column(
        "group_id", ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index(None, "user_id"),
)

members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    # A member is a user or a user group: exactly one of the two is set.
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE")),
    Column("group_id", ForeignKey("user_groups.id", ondelete="CASCADE")),
    Column("role", ForeignKey("roles.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "user_id"),
    UniqueConstraint("project_id", "group_id"),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("pull_count", BigInteger, nullable=False, default=0),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(160), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", String(160), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255)),
    Column("subject_digest", String(160)),
    Column("annotations", Text),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("pull_time", DateTime(timezone=True)),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "repository_id", "subject_digest"),
)

manifest_references = Table(
    "manifest_references",
    metadata,
    Column(
        "manifest_id",
        ForeignKey("manifests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(160), primary_key=True),
    # "blob" (config, layers) or "manifest" (children of an index).
    Column("kind", String(16), nullable=False),
    Index(None, "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(128), nullable=False),
    Column(
        "manifest_id",
        ForeignKey("manifests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("pull_time", DateTime(timezone=True)),
    UniqueConstraint("repository_id", "name"),
    Index(None, "manifest_id"),
)

configurations = Table(
    "configurations",
    metadata,
    Column("key", String(64), primary_key=True),
    # JSON-encoded value.
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer),
    Column("username", String(255), nullable=False),
    # What was acted on, e.g. "library/busybox:1.36" or "project library".
    Column("resource", String(512), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("result", Boolean, nullable=False, default=True),
    # What happened, in words, for /auditlog-exts ("create user alice").
    Column("description", Text),
    Column("op_time", DateTime(timezone=True), nullable=False),
    Index(None, "op_time"),
    Index(None, "project_id", "op_time"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

robots = Table(
    "robots",
    metadata,
    Column("id", Integer, primary_key=True),
    # The full name, prefix included: "robot$ci" or "robot$library+ci".
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    # "system" or "project"; a project robot belongs to `project_id`.
    Column("level", String(16), nullable=False),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE")),
    Column("secret_hash", String(255), nullable=False),
    # Days the secret lives, -1 for ever; `expires_at` is epoch seconds or -1.
    Column("duration", Integer, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("creator", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

robot_permissions = Table(
    "robot_permissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("robot_id", ForeignKey("robots.id", ondelete="CASCADE"), nullable=False),
    # "project" with a project id, or "system" / every project when NULL.
    Column("kind", String(16), nullable=False),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE")),
    Column("resource", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Index(None, "robot_id"),
)

repository_grants = Table(
    "repository_grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    # Who holds the grant: exactly one of these is set.
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE")),
    Column("group_id", ForeignKey("user_groups.id", ondelete="CASCADE")),
    Column("robot_id", ForeignKey("robots.id", ondelete="CASCADE")),
    Column("role", ForeignKey("roles.id", ondelete="CASCADE"), nullable=False),
    # A glob on the repository name below the project ("team-a/**", "web").
    Column("repository_pattern", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "project_id"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("description", Text),
    Column("color", String(16)),
    # "g" (global, made by an admin) or "p" (belongs to `project_id`).
    Column("scope", String(1), nullable=False),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "scope", "project_id"),
)

artifact_labels = Table(
    "artifact_labels",
    metadata,
    Column(
        "manifest_id", ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("label_id", ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

project_metadata = Table(
    "project_metadata",
    metadata,
    Column(
        "project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("name", String(64), primary_key=True),
    # Harbor keeps every metadata value as a string ("true", "low", "30").
    Column("value", Text, nullable=False),
)

quotas = Table(
    "quotas",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "project_id",
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    # Bytes, -1 for no limit. Usage is computed from the blobs, not stored.
    Column("storage_limit", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

cve_allowlists = Table(
    "cve_allowlists",
    metadata,
    Column("id", Integer, primary_key=True),
    # NULL for the system allowlist, else the project's own.
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), unique=True),
    Column("expires_at", BigInteger),
    # JSON list of {"cve_id": ...}.
    Column("items", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    # sha256 of the cookie value; the cookie itself is never stored.
    Column("id", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_id"),
)

registries = Table(
    "registries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    # An adapter type: "harbor", "docker-registry", "docker-hub", ...
    Column("type", String(64), nullable=False),
    Column("url", String(1024), nullable=False),
    # "basic" or "oauth"; NULL for anonymous access.
    Column("credential_type", String(16)),
    Column("access_key", String(1024)),
    # Encrypted with registry-credentials.key in the keys directory.
    Column("access_secret", Text),
    Column("insecure", Boolean, nullable=False, default=False),
    # PEM bundle trusted for this endpoint besides the system's CAs.
    Column("ca_certificate", Text),
    # "healthy", "unhealthy" or "unknown": what the last contact showed.
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

proxy_projects = Table(
    "proxy_projects",
    metadata,
    # A proxy-cache project serves what `registry_id` holds.
    Column(
        "project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("registry_id", ForeignKey("registries.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "registry_id"),
)

proxy_checks = Table(
    "proxy_checks",
    metadata,
    # When a cached tag was last compared with the upstream (epoch seconds).
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(128), primary_key=True),
    Column("checked_at", Float, nullable=False),
)

# Background work (see dockyard.jobs): an execution is one run of a job (by
# schedule, by hand, on an event); its tasks are the units workers claim.
# One execution per schedule tick: the unique key is what makes a tick fire
# once across every replica, even if the scheduler lock failed.
job_executions = Table(
    "job_executions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_type", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_message", Text),
    Column("params", Text, nullable=False),
    Column("schedule", String(64)),
    Column("scheduled_for", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    # What the execution belongs to, e.g. "replication_policy:7"; NULL for
    # system jobs. Lists of one policy's runs are read by it.
    Column("owner", String(64)),
    UniqueConstraint("schedule", "scheduled_for"),
    Index(None, "job_type", "id"),
    Index(None, "owner", "id"),
)

job_tasks = Table(
    "job_tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "execution_id",
        Integer,
        ForeignKey("job_executions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("status", String(16), nullable=False),
    Column("status_message", Text),
    Column("params", Text, nullable=False),
    Column("run_count", Integer, nullable=False, default=0),
    Column("worker", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("log", Text, nullable=False, default=""),
    Index(None, "status", "queued_at"),
)

# A replication policy copies from `src_registry_id` into Dockyard (pull)
# or from Dockyard to `dest_registry_id` (push); exactly one is set.
# `filters` and `trigger` are JSON in Harbor's shapes.
replication_policies = Table(
    "replication_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    Column("src_registry_id", ForeignKey("registries.id")),
    Column("dest_registry_id", ForeignKey("registries.id")),
    Column("dest_namespace", String(255)),
    Column("dest_namespace_replace_count", Integer, nullable=False, default=-1),
    Column("filters", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("replicate_deletion", Boolean, nullable=False, default=False),
    Column("override", Boolean, nullable=False, default=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("speed", Integer, nullable=False, default=-1),
    Column("copy_by_chunk", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "src_registry_id"),
    Index(None, "dest_registry_id"),
)
