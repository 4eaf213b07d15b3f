"""The store's seams as Protocols, so collector and API tests can use a fake."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from edumon.domain.models import DeviceSample, Event, EventKind, TerminalSample
from edumon.domain.rollups import InterfaceRollup


@dataclass(frozen=True, slots=True)
class ClassroomAvailability:
    """One classroom's terminal on one local date: a row of the daily roll-up.

    The seconds and counts are those of ``edumon.domain.availability.Availability`` (they sum
    over days and classrooms); 在线率 = online_seconds / monitored_seconds, coverage =
    monitored_seconds / lesson_seconds (docs/availability.md).
    """

    day: date
    """The local date, in the district's time zone."""
    school: str
    classroom: str
    terminal: str
    lesson_seconds: float
    monitored_seconds: float
    online_seconds: float
    lessons: int
    lessons_monitored: int
    lessons_used: int
    terminal_days: int
    terminal_days_monitored: int
    terminals_on: int
    switched_on: bool
    """Whether the terminal was seen online at least once that day (in a lesson or not)."""
    computed_at: float
    """When the row was computed (Unix seconds); a later computation replaces it."""


@dataclass(frozen=True, slots=True)
class AgentReportRow:
    """One poll report received from a school agent (the ``agent_reports`` table)."""

    agent: str
    boot_id: str
    seq: int
    school: str
    subject: str
    """The switch (or probed terminal) the report is about."""
    observed_at: float
    received_at: float
    historical: bool


@dataclass(frozen=True, slots=True)
class AgentReportRun:
    """A run of consecutive seqs of one agent boot recorded in ``agent_reports``."""

    agent: str
    boot_id: str
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class AgentReportsRecorded:
    """What is recorded of school agents' reports observed since a time (loaded at start-up).

    Attributes:
        runs: each agent boot's recorded seqs, as runs of consecutive ones.
        newest: each subject's newest poll time (Unix seconds).
    """

    runs: tuple[AgentReportRun, ...]
    newest: Mapping[str, float]


class AgentReportStore(Protocol):
    """Where the record of school agents' reports is read (written with the collector's rows)."""

    async def agent_reports_recorded(self, since: float) -> AgentReportsRecorded: ...


@dataclass(frozen=True, slots=True)
class SenderPosition:
    """The newest message of one MQTT sender whose rows are stored (table ``sender_positions``).

    Written in the same transaction as those rows and loaded at start-up, so that a message
    the broker delivers again after a crash (stored, not yet acknowledged) is recognised as a
    duplicate (docs/wire-protocol.md, "Collector session").
    """

    school: str
    role: str
    """The topic's role level: ``terminal``."""
    sender: str
    """The sender's id within its school and role (a terminal id)."""
    boot_id: str
    birth_seq: int
    seq: int
    observed_at: float
    """The sender's clock on that message (orders sessions of different boots)."""
    at: float
    """When it was received."""


class StoreProtocol(Protocol):
    """What the collector needs from a store (a fake in unit tests, the repository otherwise)."""

    async def write(
        self,
        interface_rollups: Sequence[InterfaceRollup],
        device_samples: Sequence[DeviceSample],
        events: Sequence[Event],
        terminal_samples: Sequence[TerminalSample] = (),
        *,
        positions: Sequence[SenderPosition] = (),
        agent_reports: Sequence[AgentReportRow] = (),
    ) -> None:
        """Store a batch atomically; raise StoreError (keep the batch, retry) on failure."""
        ...

    async def upsert_availability(self, rows: Sequence[ClassroomAvailability]) -> None:
        """Insert or replace daily availability rows (keyed by day and classroom)."""
        ...

    async def prune(self, now: float, retention_seconds: float) -> int:
        """Delete samples older than the retention period; return how many."""
        ...


class StoreReader(Protocol):
    """What the API reads from a store."""

    async def events(
        self,
        *,
        school: str | None = None,
        kind: EventKind | str | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        """Events newest first; ``since`` inclusive, ``until`` exclusive."""
        ...

    async def last_events_before(
        self,
        *,
        school: str,
        devices: Collection[str],
        kinds: Collection[EventKind],
        before: float,
    ) -> list[Event]:
        """The newest event of each kind before ``before`` for each of a school's devices."""
        ...

    async def interface_history(
        self,
        device_id: str,
        interface: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[InterfaceRollup]:
        """One interface's newest ``limit`` 5-minute roll-ups in [since, until), oldest first."""
        ...

    async def device_history(
        self,
        device_id: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[DeviceSample]:
        """One switch's newest ``limit`` samples in [since, until), oldest first."""
        ...

    async def terminal_history(
        self,
        classroom: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
        *,
        school: str | None = None,
        terminal: str | None = None,
    ) -> list[TerminalSample]:
        """A classroom's (or a school's terminal's) newest ``limit`` heartbeats, oldest first."""
        ...

    async def availability(
        self,
        since_day: date,
        until_day: date,
        school: str | None = None,
        classroom: str | None = None,
    ) -> list[ClassroomAvailability]:
        """Daily availability rows for days in [since_day, until_day), by day then classroom."""
        ...

    async def rolled_up_days(self, since_day: date, until_day: date) -> set[date]:
        """The days in [since_day, until_day) with at least one roll-up row."""
        ...

    async def monitor_runs(self, since: float, until: float) -> list[tuple[float, float]]:
        """When edumon was monitoring: the runs overlapping [since, until), oldest first."""
        ...

    async def first_run_started(self) -> float | None:
        """When the first recorded run started; None before any."""
        ...

    async def ping(self) -> bool:
        """Whether the database answers (never raises)."""
        ...
