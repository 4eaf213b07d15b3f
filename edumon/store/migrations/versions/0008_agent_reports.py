"""School agents' poll reports, each (agent, boot id, seq) once (docs/wire-protocol.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_reports",
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("boot_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("school", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("agent", "boot_id", "seq", name="pk_agent_reports"),
    )
    op.create_index("ix_agent_reports_observed_at", "agent_reports", ["observed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_agent_reports_observed_at", table_name="agent_reports")
    op.drop_table("agent_reports")
