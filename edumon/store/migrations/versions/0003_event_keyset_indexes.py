"""Events: indexes ending in (at, id), for keyset pages of /events.

A page of /events is "the newest ``limit`` events older than (at, id)", optionally of one
school, kind or switch. Each index below serves one filter and holds the rows in exactly that
order, so a page reads one index range however large the table is; the former (…, at)
indexes are dropped (each new one covers what it served).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = {
    "ix_events_at_id": ["at", "id"],
    "ix_events_school_at_id": ["school", "at", "id"],
    "ix_events_kind_at_id": ["kind", "at", "id"],
    "ix_events_device_id_at_id": ["device_id", "at", "id"],
}
_OLD = {
    "ix_events_at": ["at"],
    "ix_events_school_at": ["school", "at"],
    "ix_events_kind_at": ["kind", "at"],
    "ix_events_device_id_at": ["device_id", "at"],
}


def upgrade() -> None:
    """Create the (…, at, id) indexes, then drop the (…, at) ones they replace."""
    for name, columns in _NEW.items():
        op.create_index(name, "events", columns)
    for name in _OLD:
        op.drop_index(name, table_name="events")


def downgrade() -> None:
    """Back to the (…, at) indexes of revision 0002."""
    for name, columns in _OLD.items():
        op.create_index(name, "events", columns)
    for name in _NEW:
        op.drop_index(name, table_name="events")
