"""Each MQTT sender's newest stored message, so a redelivery after a crash is a duplicate.

``sender_positions`` holds one row per sender (school, role, sender id): the ``(boot, bd_seq,
seq)`` and timestamps of the newest message whose rows are stored. The collector writes it in
the same transaction as those rows and reads it at start-up (docs/wire-protocol.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_positions",
        sa.Column("school", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("boot_id", sa.Text(), nullable=False),
        sa.Column("birth_seq", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.Double(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("school", "role", "sender", name=op.f("pk_sender_positions")),
    )


def downgrade() -> None:
    op.drop_table("sender_positions")
