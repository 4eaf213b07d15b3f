"""Initial schema: inventory, interface and device samples, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "districts",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_districts")),
    )
    op.create_table(
        "schools",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("district", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("uplink_switch", sa.Text(), nullable=False),
        sa.Column("uplink_port", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district"],
            ["districts.code"],
            name=op.f("fk_schools_district_districts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_schools")),
    )
    op.create_index(op.f("ix_schools_district"), "schools", ["district"])
    op.create_table(
        "classrooms",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("school", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("switch", sa.Text(), nullable=True),
        sa.Column("port", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school"],
            ["schools.code"],
            name=op.f("fk_classrooms_school_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classrooms")),
    )
    op.create_index(op.f("ix_classrooms_school"), "classrooms", ["school"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("district", sa.Text(), nullable=False),
        sa.Column("school", sa.Text(), nullable=True),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district"],
            ["districts.code"],
            name=op.f("fk_devices_district_districts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school"],
            ["schools.code"],
            name=op.f("fk_devices_school_schools"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_district"), "devices", ["district"])
    op.create_index(op.f("ix_devices_school"), "devices", ["school"])
    op.create_table(
        "interfaces",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("first_seen", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "name", name=op.f("pk_interfaces")),
    )
    op.create_table(
        "interface_samples",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("interface", sa.Text(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("oper_status", sa.SmallInteger(), nullable=False),
        sa.Column("speed_mbps", sa.Double(), nullable=True),
        sa.Column("in_bps", sa.Double(), nullable=True),
        sa.Column("out_bps", sa.Double(), nullable=True),
        sa.Column("in_octets", sa.BigInteger(), nullable=True),
        sa.Column("out_octets", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("device_id", "interface", "at", name=op.f("pk_interface_samples")),
    )
    op.create_index("ix_interface_samples_at", "interface_samples", ["at"])
    op.create_table(
        "device_samples",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("uptime_seconds", sa.Double(), nullable=True),
        sa.Column("poll_seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "at", name=op.f("pk_device_samples")),
    )
    op.create_index("ix_device_samples_at", "device_samples", ["at"])
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("school", sa.Text(), nullable=True),
        sa.Column("interface", sa.Text(), nullable=True),
        sa.Column("classroom", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_school_at", "events", ["school", "at"])
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_index("ix_events_device_id_at", "events", ["device_id", "at"])


def downgrade() -> None:
    """Drop every table (losing all data)."""
    for table in (
        "events",
        "device_samples",
        "interface_samples",
        "interfaces",
        "devices",
        "classrooms",
        "schools",
        "districts",
    ):
        op.drop_table(table)
