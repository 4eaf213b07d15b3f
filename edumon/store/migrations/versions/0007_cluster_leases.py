"""Scale-out: shard leases and the collectors alive (docs/city-deployment.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_leases",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_cluster_leases")),
    )
    op.create_table(
        "cluster_members",
        sa.Column("collector_id", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("alive_until", sa.Double(), nullable=False),
        sa.Column("shards_held", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("collector_id", name=op.f("pk_cluster_members")),
    )


def downgrade() -> None:
    op.drop_table("cluster_members")
    op.drop_table("cluster_leases")
