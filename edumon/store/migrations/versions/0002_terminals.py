"""Classroom terminals: heartbeat samples, daily availability, each classroom's terminal id.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the terminal tables and the classrooms' terminal column."""
    with op.batch_alter_table("classrooms") as batch:
        batch.add_column(sa.Column("terminal", sa.Text(), nullable=True))
    # A classroom's terminal id is the classroom id unless configured otherwise; the next
    # inventory sync writes the configured ones.
    op.execute("UPDATE classrooms SET terminal = id WHERE terminal IS NULL")

    op.create_table(
        "terminal_samples",
        sa.Column("school", sa.Text(), nullable=False),
        sa.Column("terminal", sa.Text(), nullable=False),
        sa.Column("boot_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("classroom", sa.Text(), nullable=False),
        sa.Column("uptime_seconds", sa.Double(), nullable=False),
        sa.Column("link_speed_mbps", sa.Double(), nullable=True),
        sa.Column("cpu_percent", sa.Double(), nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("disk_used_bytes", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "school", "terminal", "boot_id", "seq", name=op.f("pk_terminal_samples")
        ),
    )
    op.create_index("ix_terminal_samples_classroom_at", "terminal_samples", ["classroom", "at"])
    op.create_index("ix_terminal_samples_school_at", "terminal_samples", ["school", "at"])
    op.create_index("ix_terminal_samples_at", "terminal_samples", ["at"])

    op.create_table(
        "classroom_availability_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("classroom", sa.Text(), nullable=False),
        sa.Column("school", sa.Text(), nullable=False),
        sa.Column("scheduled_minutes", sa.Double(), nullable=False),
        sa.Column("online_minutes", sa.Double(), nullable=False),
        sa.Column("scheduled_lessons", sa.Integer(), nullable=False),
        sa.Column("lessons_with_terminal_on", sa.Integer(), nullable=False),
        sa.Column("switched_on", sa.Boolean(), nullable=False),
        sa.Column("computed_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("day", "classroom", name=op.f("pk_classroom_availability_daily")),
    )
    op.create_index(
        "ix_classroom_availability_daily_school_day",
        "classroom_availability_daily",
        ["school", "day"],
    )
    op.create_index(
        "ix_classroom_availability_daily_classroom_day",
        "classroom_availability_daily",
        ["classroom", "day"],
    )


def downgrade() -> None:
    """Drop the terminal tables and the classrooms' terminal column (losing their data)."""
    op.drop_table("classroom_availability_daily")
    op.drop_table("terminal_samples")
    with op.batch_alter_table("classrooms") as batch:
        batch.drop_column("terminal")
