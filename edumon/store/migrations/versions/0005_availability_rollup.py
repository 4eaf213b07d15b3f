"""The daily availability roll-up with coverage, and the record of when edumon was monitoring.

``classroom_availability_daily`` (from 0002) was never written: it is replaced by one that keeps
the summable seconds and counts of ``edumon.domain.availability.Availability``, monitored time
included, so a day edumon did not watch reads "no data" rather than 0 %. ``monitor_runs``
records each daemon run (start, and the last moment it was known alive).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _serial() -> sa.types.TypeEngine[int]:
    # BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY auto-increments.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _indexes(table: str) -> None:
    op.create_index(
        "ix_classroom_availability_daily_school_day", table, ["school", "day"], unique=False
    )
    op.create_index(
        "ix_classroom_availability_daily_classroom_day", table, ["classroom", "day"], unique=False
    )


def upgrade() -> None:
    op.drop_table("classroom_availability_daily")
    table = "classroom_availability_daily"
    op.create_table(
        table,
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("classroom", sa.Text(), nullable=False),
        sa.Column("school", sa.Text(), nullable=False),
        sa.Column("terminal", sa.Text(), nullable=False),
        sa.Column("lesson_seconds", sa.Double(), nullable=False),
        sa.Column("monitored_seconds", sa.Double(), nullable=False),
        sa.Column("online_seconds", sa.Double(), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("lessons_monitored", sa.Integer(), nullable=False),
        sa.Column("lessons_used", sa.Integer(), nullable=False),
        sa.Column("terminal_days", sa.Integer(), nullable=False),
        sa.Column("terminal_days_monitored", sa.Integer(), nullable=False),
        sa.Column("terminals_on", sa.Integer(), nullable=False),
        sa.Column("switched_on", sa.Boolean(), nullable=False),
        sa.Column("computed_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("day", "classroom", name=op.f("pk_classroom_availability_daily")),
    )
    _indexes(table)
    op.create_table(
        "monitor_runs",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("alive_until", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_runs")),
    )
    op.create_index("ix_monitor_runs_alive_until", "monitor_runs", ["alive_until"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_monitor_runs_alive_until", table_name="monitor_runs")
    op.drop_table("monitor_runs")
    op.drop_table("classroom_availability_daily")
    table = "classroom_availability_daily"
    op.create_table(
        table,
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
    _indexes(table)
