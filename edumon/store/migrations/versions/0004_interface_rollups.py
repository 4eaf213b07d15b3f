"""Interface samples become 5-minute roll-ups (raw series belong to a time-series database).

The stored raw samples are rolled up into the new table (one row per port and 5-minute bucket:
mean and peak rates, peak utilisation, polls, status and speed at the bucket's last poll), so
history already kept survives the upgrade; then the raw table goes. Device and terminal samples
keep their tables: the collector now writes fewer of them (docs/storage.md); the heartbeats'
(school, at) index goes with the availability reads it served.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUCKET_SECONDS = 300
_OPER_UP = 1


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _bucket_start(dialect: str) -> str:
    """SQL for the start of the 5-minute bucket of ``at``, in the column's stored form."""
    if dialect == "postgresql":
        return f"to_timestamp(floor(extract(epoch FROM at) / {BUCKET_SECONDS}) * {BUCKET_SECONDS})"
    # SQLite keeps naive UTC text with microseconds (edumon.store.timestamps); strftime('%s')
    # of the whole seconds, floored to the bucket, back to the same fixed-width text.
    return (
        "strftime('%Y-%m-%d %H:%M:%S', "
        f"(CAST(strftime('%s', substr(at, 1, 19)) AS INTEGER) / {BUCKET_SECONDS}) "
        f"* {BUCKET_SECONDS}, 'unixepoch') || '.000000'"
    )


def upgrade() -> None:
    """Create interface_rollups, roll the stored samples up into it, drop interface_samples."""
    op.create_table(
        "interface_rollups",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("interface", sa.Text(), nullable=False),
        sa.Column("bucket_start", _timestamp(), nullable=False),
        sa.Column("bucket_seconds", sa.Integer(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("up_polls", sa.Integer(), nullable=False),
        sa.Column("in_bps", sa.Double(), nullable=True),
        sa.Column("out_bps", sa.Double(), nullable=True),
        sa.Column("in_bps_max", sa.Double(), nullable=True),
        sa.Column("out_bps_max", sa.Double(), nullable=True),
        sa.Column("max_utilisation", sa.Double(), nullable=True),
        sa.Column("speed_mbps", sa.Double(), nullable=True),
        sa.Column("oper_status", sa.SmallInteger(), nullable=False),
        sa.Column("last_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint(
            "device_id", "interface", "bucket_start", name=op.f("pk_interface_rollups")
        ),
    )
    op.create_index("ix_interface_rollups_bucket_start", "interface_rollups", ["bucket_start"])
    bucket = _bucket_start(op.get_bind().dialect.name)
    # The larger rate of a poll (a NULL one ignored), over the speed, is its utilisation; the
    # status and speed of a bucket are those of its last poll (rn = 1).
    op.execute(
        f"""
        INSERT INTO interface_rollups (device_id, interface, bucket_start, bucket_seconds,
            polls, up_polls, in_bps, out_bps, in_bps_max, out_bps_max, max_utilisation,
            speed_mbps, oper_status, last_at)
        SELECT device_id, interface, bucket_start, {BUCKET_SECONDS},
            count(*),
            sum(CASE WHEN oper_status = {_OPER_UP} THEN 1 ELSE 0 END),
            avg(in_bps), avg(out_bps), max(in_bps), max(out_bps),
            max(CASE WHEN speed_mbps > 0 THEN
                (CASE WHEN out_bps IS NULL OR in_bps >= out_bps THEN in_bps ELSE out_bps END)
                / (speed_mbps * 1000000.0) END),
            max(CASE WHEN rn = 1 THEN speed_mbps END),
            max(CASE WHEN rn = 1 THEN oper_status END),
            max(at)
        FROM (
            SELECT device_id, interface, at, oper_status, speed_mbps, in_bps, out_bps,
                {bucket} AS bucket_start,
                row_number() OVER (
                    PARTITION BY device_id, interface, {bucket} ORDER BY at DESC
                ) AS rn
            FROM interface_samples
        ) AS polls
        GROUP BY device_id, interface, bucket_start
        """
    )
    op.drop_index("ix_interface_samples_at", table_name="interface_samples")
    op.drop_table("interface_samples")
    # It served the availability reads of every heartbeat, which events replaced; a terminal's
    # history is found by the primary key's (school, terminal) prefix.
    op.drop_index("ix_terminal_samples_school_at", table_name="terminal_samples")


def downgrade() -> None:
    """Bring back interface_samples, one row per roll-up (at its last poll), without counters."""
    op.create_index("ix_terminal_samples_school_at", "terminal_samples", ["school", "at"])
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
    op.execute(
        """
        INSERT INTO interface_samples (device_id, interface, at, oper_status, speed_mbps,
            in_bps, out_bps)
        SELECT device_id, interface, last_at, oper_status, speed_mbps, in_bps, out_bps
        FROM interface_rollups
        """
    )
    op.drop_index("ix_interface_rollups_bucket_start", table_name="interface_rollups")
    op.drop_table("interface_rollups")
