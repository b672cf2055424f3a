"""Every table Dockyard keeps, in one SQLAlchemy Core metadata.

Blob content lives in the blob store; everything else a registry needs to
answer quickly lives here: which repository may read which blob, manifests
(their bytes too, they are small and read often), tags, the edges from a
manifest to what it references, and uploads in flight.

    projects 1-n repositories 1-n manifests 1-n tags
    repositories n-m blobs            (repository_blobs: blobs a repository may read)
    manifests 1-n manifest_references (blobs and child manifests it points at)
    users n-m projects                (members, with a role)
    audit_logs                        (who did what to which resource, when)
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

members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("role", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "user_id"),
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
