"""replication policies, and executions that belong to something

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_job_executions_owner_id"), ["owner", "id"], unique=False
        )
    op.create_table(
        "replication_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("src_registry_id", sa.Integer(), nullable=True),
        sa.Column("dest_registry_id", sa.Integer(), nullable=True),
        sa.Column("dest_namespace", sa.String(length=255), nullable=True),
        sa.Column("dest_namespace_replace_count", sa.Integer(), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("replicate_deletion", sa.Boolean(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("speed", sa.Integer(), nullable=False),
        sa.Column("copy_by_chunk", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["src_registry_id"],
            ["registries.id"],
            name=op.f("fk_replication_policies_src_registry_id_registries"),
        ),
        sa.ForeignKeyConstraint(
            ["dest_registry_id"],
            ["registries.id"],
            name=op.f("fk_replication_policies_dest_registry_id_registries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replication_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_replication_policies_name")),
    )
    op.create_index(
        op.f("ix_replication_policies_src_registry_id"),
        "replication_policies",
        ["src_registry_id"],
    )
    op.create_index(
        op.f("ix_replication_policies_dest_registry_id"),
        "replication_policies",
        ["dest_registry_id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_replication_policies_dest_registry_id"),
        table_name="replication_policies",
    )
    op.drop_index(
        op.f("ix_replication_policies_src_registry_id"),
        table_name="replication_policies",
    )
    op.drop_table("replication_policies")
    with op.batch_alter_table("job_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_executions_owner_id"))
        batch_op.drop_column("owner")
