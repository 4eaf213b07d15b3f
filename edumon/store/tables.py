"""The database schema as SQLAlchemy Core tables (the migrations in ``migrations/`` create it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from edumon.store.timestamps import UtcDateTime

# Constraint names are fixed by convention so that later migrations can refer to them on
# both backends (SQLite otherwise leaves them unnamed).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_UINT64_MAX = 2**64 - 1
_INT64_RANGE = 2**63


class Unsigned64(TypeDecorator[int]):
    """An unsigned 64-bit counter (Counter64) in a signed BIGINT column.

    Values at or above 2**63 are stored in two's complement, so every Counter64 fits exactly
    without the size and speed cost of NUMERIC. Never compare these columns in SQL.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        value = int(value)
        if not 0 <= value <= _UINT64_MAX:
            raise ValueError(f"counter value {value} is outside 0..2**64-1")
        return value - 2**64 if value >= _INT64_RANGE else value

    def process_result_value(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return value + 2**64 if value < 0 else value


def _json() -> Any:
    # JSONB on PostgreSQL: smaller, indexable, and what operators expect to query.
    return JSON().with_variant(JSONB(), "postgresql")


def _serial() -> Any:
    # SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT.
    return BigInteger().with_variant(Integer(), "sqlite")


metadata = MetaData(naming_convention=NAMING_CONVENTION)

# --- inventory, synced from the configuration -------------------------------------------------

districts = Table(
    "districts",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
)

schools = Table(
    "schools",
    metadata,
    Column("code", Text, primary_key=True),
    Column(
        "district",
        Text,
        ForeignKey("districts.code", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("uplink_switch", Text, nullable=False),
    Column("uplink_port", Text, nullable=False),
)

classrooms = Table(
    "classrooms",
    metadata,
    Column("id", Text, primary_key=True),
    Column(
        "school",
        Text,
        ForeignKey("schools.code", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", Text, nullable=False),
    Column("switch", Text, nullable=True),
    Column("port", Text, nullable=True),
    # The id the classroom's terminal agent reports (the classroom id unless configured).
    Column("terminal", Text, nullable=True),
)

# Switches: where they are and how to reach them, never their SNMP credentials.
devices = Table(
    "devices",
    metadata,
    Column("id", Text, primary_key=True),
    Column(
        "district",
        Text,
        ForeignKey("districts.code", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column(
        "school",
        Text,
        ForeignKey("schools.code", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    Column("host", Text, nullable=False),
    Column("port", Integer, nullable=False),
)

# Interfaces as first seen in samples. No foreign key to devices: samples may arrive from
# agents for switches this collector's configuration does not list.
interfaces = Table(
    "interfaces",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("device_id", "name"),
)

# --- samples, thinned, pruned after the retention period ---------------------------------------

# Raw series (every poll, every heartbeat) are for a time-series database scraping /metrics
# (docs/storage.md); SQL keeps 5-minute roll-ups of the ports that matter (edumon.domain.rollups).
# A bucket written twice (a restart in mid-bucket, a late poll) is merged by the upsert in
# Store.write, so the primary key stays one row per port and bucket.
interface_rollups = Table(
    "interface_rollups",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("interface", Text, nullable=False),
    Column("bucket_start", UtcDateTime, nullable=False),
    Column("bucket_seconds", Integer, nullable=False),
    Column("polls", Integer, nullable=False),
    Column("up_polls", Integer, nullable=False),
    Column("in_bps", Double, nullable=True),
    Column("out_bps", Double, nullable=True),
    Column("in_bps_max", Double, nullable=True),
    Column("out_bps_max", Double, nullable=True),
    Column("max_utilisation", Double, nullable=True),
    Column("speed_mbps", Double, nullable=True),
    Column("oper_status", SmallInteger, nullable=False),
    Column("last_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("device_id", "interface", "bucket_start"),
    Index("ix_interface_rollups_bucket_start", "bucket_start"),
)

# At most one per switch per 5 minutes, plus one on every reachability change and reboot.
device_samples = Table(
    "device_samples",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("reachable", Boolean, nullable=False),
    Column("uptime_seconds", Double, nullable=True),
    Column("poll_seconds", Double, nullable=False),
    PrimaryKeyConstraint("device_id", "at"),
    Index("ix_device_samples_at", "at"),
)

# At most one accepted heartbeat per terminal per 5 minutes, plus one whenever its boot or link
# speed changes (availability comes from the online/offline events, not from these). The
# primary key is the wire protocol's deduplication key, so a heartbeat replayed from an agent's
# spool, or a batch retried after an ambiguous commit, adds nothing. ``at`` is when the
# collector received the heartbeat.
terminal_samples = Table(
    "terminal_samples",
    metadata,
    Column("school", Text, nullable=False),
    Column("terminal", Text, nullable=False),
    Column("boot_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("classroom", Text, nullable=False),
    Column("uptime_seconds", Double, nullable=False),
    Column("link_speed_mbps", Double, nullable=True),
    Column("cpu_percent", Double, nullable=True),
    Column("memory_used_bytes", BigInteger, nullable=True),
    Column("disk_used_bytes", BigInteger, nullable=True),
    PrimaryKeyConstraint("school", "terminal", "boot_id", "seq"),
    # A classroom's history by (classroom, at); a terminal's by the primary key's (school,
    # terminal) prefix; pruning by time alone.
    Index("ix_terminal_samples_classroom_at", "classroom", "at"),
    Index("ix_terminal_samples_at", "at"),
)

# The newest stored message of each MQTT sender (migration 0006): written with the rows, read
# at start-up, so a redelivery after a crash is a duplicate (docs/wire-protocol.md).
sender_positions = Table(
    "sender_positions",
    metadata,
    Column("school", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("boot_id", Text, nullable=False),
    Column("birth_seq", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("observed_at", Double, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("school", "role", "sender"),
)

# --- daily roll-ups and events, kept long -----------------------------------------------------

# The daily roll-up (migration 0005): 在线率, 开机率 and 使用率 inputs per classroom and local
# date, seconds and counts that sum (edumon.domain.availability.Availability). Written for every
# day once it is over (and back-filled on start-up); monthly figures read these rows. A day that
# is not a school day has a row too (zeros), so "rolled up" and "not yet rolled up" differ.
classroom_availability_daily = Table(
    "classroom_availability_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("classroom", Text, nullable=False),
    Column("school", Text, nullable=False),
    Column("terminal", Text, nullable=False),
    Column("lesson_seconds", Double, nullable=False),
    Column("monitored_seconds", Double, nullable=False),
    Column("online_seconds", Double, nullable=False),
    Column("lessons", Integer, nullable=False),
    Column("lessons_monitored", Integer, nullable=False),
    Column("lessons_used", Integer, nullable=False),
    Column("terminal_days", Integer, nullable=False),
    Column("terminal_days_monitored", Integer, nullable=False),
    Column("terminals_on", Integer, nullable=False),
    Column("switched_on", Boolean, nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("day", "classroom"),
    Index("ix_classroom_availability_daily_school_day", "school", "day"),
    Index("ix_classroom_availability_daily_classroom_day", "classroom", "day"),
)

# When edumon was monitoring (migration 0005): one row per daemon run, its end moved forward
# while it runs. Lesson time outside every run is "not monitored": no data, not offline.
monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("alive_until", UtcDateTime, nullable=False),
    Index("ix_monitor_runs_alive_until", "alive_until"),
)

events = Table(
    "events",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("device_id", Text, nullable=False),
    Column("school", Text, nullable=True),
    Column("interface", Text, nullable=True),
    Column("classroom", Text, nullable=True),
    Column("message", Text, nullable=False),
    Column("details", _json(), nullable=False),
    # One index per filter the API offers, each ending in (at, id): the order of a page, so
    # that a keyset page ("older than (at, id)") reads one index range (migration 0003).
    Index("ix_events_at_id", "at", "id"),
    Index("ix_events_school_at_id", "school", "at", "id"),
    Index("ix_events_kind_at_id", "kind", "at", "id"),
    Index("ix_events_device_id_at_id", "device_id", "at", "id"),
)

# --- school agents (migration 0008) -----------------------------------------------------------

# Every poll report received from a school agent, once: the primary key is the wire protocol's
# deduplication key, so a report redelivered by the broker or replayed from the agent's spool
# adds nothing. ``observed_at`` is the poll's own time, ``received_at`` the collector's;
# ``historical`` marks one replayed after an outage (docs/wire-protocol.md). The record of what
# each agent delivered, which the stored samples (thinned, docs/storage.md) cannot be.
agent_reports = Table(
    "agent_reports",
    metadata,
    Column("agent", Text, nullable=False),
    Column("boot_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("school", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("observed_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("historical", Boolean, nullable=False),
    PrimaryKeyConstraint("agent", "boot_id", "seq"),
    Index("ix_agent_reports_observed_at", "observed_at"),
)

# --- scale-out: shard leases and the collectors alive (migration 0007) ------------------------

# One row per shard (edumon.cluster, docs/city-deployment.md). A collector holds a shard while
# ``owner`` is its id and ``expires_at`` (Unix seconds by the database's clock) lies ahead; it
# renews only while ``epoch`` is still the one it acquired (the fencing token), and a shard
# whose lease ran out is taken by a conditional UPDATE, so two collectors never both win it.
cluster_leases = Table(
    "cluster_leases",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("owner", Text, nullable=True),
    Column("expires_at", Double, nullable=False),
    Column("epoch", BigInteger, nullable=False),
)

# Every collector's heartbeat: how many are alive decides each one's fair share of shards.
cluster_members = Table(
    "cluster_members",
    metadata,
    Column("collector_id", Text, primary_key=True),
    Column("started_at", Double, nullable=False),
    Column("alive_until", Double, nullable=False),
    Column("shards_held", Integer, nullable=False),
)
