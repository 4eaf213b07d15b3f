"""School agents' reports into the collector: their own MQTT subscription, dedup and loss count.

A school whose configuration says ``switches = "agent"`` has its switches polled by its agent
(agents/school), which publishes each poll on ``edumon/v1/{district}/{school}/agent/{id}/poll``
(docs/wire-protocol.md). This module subscribes to those topics with a persistent session of
its own (a fixed client id, clean session off: what agents publish while the collector is away
waits at the broker), and:

- deduplicates by (agent, boot, seq): a redelivered or replayed report is applied once;
- counts gaps in an agent boot's ``seq`` as loss (``missing``; filled when the report arrives
  late, as a spool replayed after the current state does);
- applies a poll newer than any seen for its switch to the current state, and hands an older
  one (replayed history) to the collector as history: stored at its own time, never moving
  "now" nor raising alerts;
- records every report in the ``agent_reports`` table, each (agent, boot, seq) once, in the
  collector's transaction that stores its rows, and only then acknowledges it to the broker:
  a collector killed before that gets it again, and one killed after finds the record at
  start-up (``restore``) and takes the report, if it comes again, as a duplicate.

Reports about a switch that is not the reporting school's, or from a school whose switches the
district polls itself, are refused and counted: a school's agent speaks only for its school.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edumon.domain import observation_codec as codec
from edumon.domain.models import DeviceUnreachable, Observation
from edumon.sources.mqtt.ingest import MqttSettings
from edumon.store.protocol import AgentReportRow, AgentReportStore
from edumon.wire import (
    KIND_POLL,
    KIND_STATUS,
    AgentStatus,
    Heartbeat,
    PollReport,
    Status,
    WireError,
    agent_filter,
    parse_agent_message,
)

log = logging.getLogger(__name__)

REASON_NOT_AGENT_SCHOOL: Final = "not_agent_school"
"""The school's switches are polled centrally (``switches = "central"``), or no such school."""
REASON_FOREIGN_DEVICE: Final = "foreign_device"
"""A report about a switch that is not the reporting school's."""
REASON_BAD_OBSERVATION: Final = "bad_observation"
_MAX_MISSING: Final = 100_000
DEFAULT_SILENCE_SECONDS: Final = 180.0
"""Three polls at the default interval (the daemon passes 3 × ``[polling] interval_seconds``)."""
RESTORE_LOOKBACK_SECONDS: Final = 7 * 86400.0
"""How far back ``restore`` reads the record: beyond the broker's session expiry (3 days in the
shipped Mosquitto config), so anything the broker can deliver again is found."""


class ReportSink(Protocol):
    """Where decoded reports go (the collector)."""

    def submit_nowait(self, obs: Observation) -> None: ...

    def accept_report(
        self,
        obs: Observation | None,
        *,
        historical: bool,
        row: AgentReportRow,
        ack: Callable[[], None],
    ) -> None: ...

    def submit_terminal(self, msg: Heartbeat | Status, received_at: float) -> None: ...


@dataclass(slots=True)
class AgentView:
    """What the collector knows of one school agent."""

    school: str
    online: bool | None = None
    session: tuple[str, int] | None = None
    last_status_at: float | None = None
    last_report_at: float | None = None
    spool_pending: int | None = None
    spool_dropped: int | None = None
    reports: int = 0


@dataclass(slots=True)
class _BootSeqs:
    """The seqs seen from one agent boot: the highest, and those below it not yet received.

    A boot restored from the store (``AgentReports.restore``) knows only what was recorded
    within the look-back: seqs below the first one recorded (``floor``) may be a backlog still
    to come, and are taken once each (``below``) rather than counted as missing.
    """

    high: int = 0
    missing: set[int] = field(default_factory=set)
    floor: int = 1
    below: set[int] = field(default_factory=set)


@dataclass(slots=True)
class AgentReportStats:
    """Counts for /metrics and the fault tests."""

    received_total: int = 0
    accepted_total: int = 0
    historical_total: int = 0
    """Accepted polls older than the newest of their switch (stored, state unchanged)."""
    duplicates_total: int = 0
    """Reports received again (same agent, boot and seq): applied and stored once."""
    filled_late_total: int = 0
    """Reports that arrived after a later seq of their boot (a spool drained after the present)."""
    gaps_total: int = 0
    """Seqs found missing when a later one arrived (some may arrive late: see ``missing``)."""
    rejected_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    recorded_total: int = 0
    """Reports recorded with their rows and acknowledged."""
    restored_boots: int = 0
    """Agent boots whose recorded seqs were loaded at start-up."""
    sessions: dict[str, bool] = field(default_factory=dict)
    """Whether each subscription (by client id) is connected now."""

    @property
    def connected(self) -> bool:
        """Every subscription is connected (one per held shard in a cluster, else one)."""
        return bool(self.sessions) and all(self.sessions.values())


class AgentReports:
    """Handles school agents' messages (``handle``) and records them (``run``).

    Args:
        sink: the collector.
        store: where the reports are recorded.
        district: the district's code (other districts' reports are refused).
        agent_schools: the schools whose switches their agents report.
        switch_school: each switch's school.
        clock: wall clock (Unix seconds).
        silence_seconds: a switch of an agent school with no report for this long (while the
            subscription is connected) is unreachable from the district (``watch_silence``).
        ack_after_store: acknowledge a report only once recorded with its rows (an external
            broker keeps it until then); else on receipt (the embedded broker dies with the
            process, so there is nothing to keep, and it stops waiting for an ack after 5 s).
    """

    def __init__(
        self,
        sink: ReportSink,
        store: AgentReportStore,
        *,
        district: str,
        agent_schools: frozenset[str],
        switch_school: Mapping[str, str | None],
        clock: Callable[[], float] = time.time,
        silence_seconds: float = DEFAULT_SILENCE_SECONDS,
        ack_after_store: bool = True,
    ) -> None:
        self._sink = sink
        self._store = store
        self._ack_after_store = ack_after_store
        self._district = district
        self.agent_schools = agent_schools
        self._switch_school = switch_school
        self._clock = clock
        self.stats = AgentReportStats()
        self.agents: dict[str, AgentView] = {}
        self._boots: dict[tuple[str, str], _BootSeqs] = {}
        self._newest: dict[str, float] = {}
        self._silence = silence_seconds
        self._agent_switches = tuple(
            sorted(sw for sw, school in switch_school.items() if school in agent_schools)
        )
        self._heard: dict[str, float] = {}  # each agent switch's last report (receive time)
        self._sighted_at: float | None = None  # since when every subscription is connected
        self.silent: dict[str, float] = {}
        """Agent switches declared unreachable for their agent's silence, and when: until the
        agent reports a poll newer than that (an older one, sent from its spool, is history)."""

    @property
    def missing(self) -> int:
        """Seqs below an agent boot's highest that never arrived: loss, unless they still do."""
        return sum(len(b.missing) for b in self._boots.values())

    async def restore(self, lookback_seconds: float = RESTORE_LOOKBACK_SECONDS) -> int:
        """Load what is recorded of the reports polled within the look-back (at start-up).

        A report recorded before a crash but not acknowledged comes again: it is then a
        duplicate. Seqs between two recorded runs of a boot are missing, as they were before
        the crash. Returns the number of agent boots loaded.

        Raises:
            StoreError: the database failed.
        """
        recorded = await self._store.agent_reports_recorded(self._clock() - lookback_seconds)
        runs: dict[tuple[str, str], list[tuple[int, int]]] = collections.defaultdict(list)
        for run in recorded.runs:
            runs[(run.agent, run.boot_id)].append((run.first, run.last))
        for key, spans in runs.items():
            spans.sort()
            boot = self._boots.setdefault(key, _BootSeqs())
            boot.floor = spans[0][0]
            boot.high = max(boot.high, spans[-1][1])
            for (_, last), (first, _) in itertools.pairwise(spans):
                if len(boot.missing) + first - last - 1 <= _MAX_MISSING:
                    boot.missing.update(range(last + 1, first))
        for subject, at in recorded.newest.items():
            self._newest[subject] = max(at, self._newest.get(subject, at))
        self.stats.restored_boots = len(runs)
        return len(runs)

    def silence(self, now: float) -> list[DeviceUnreachable]:
        """The agent switches that just became unreachable: no report for ``silence_seconds``.

        From the district, a school whose agent says nothing is a school it cannot see (a cut
        uplink, a dead agent host): like a centrally polled switch that does not answer, and
        with the same consequences (one school alert; its classrooms unknown rather than each
        one offline). Silence counts only while every subscription to the agents is connected,
        and from when it last connected: the collector's own broker link down is not the
        school's doing. Each switch is declared once, until its agent reports again.
        """
        if not self.stats.connected:
            self._sighted_at = None
            return []
        if self._sighted_at is None:
            self._sighted_at = now
        out = []
        for switch in self._agent_switches:
            heard = max(self._heard.get(switch, self._sighted_at), self._sighted_at)
            if switch not in self.silent and now - heard > self._silence:
                self.silent[switch] = now
                quiet = now - heard
                out.append(
                    DeviceUnreachable(
                        switch,
                        now,
                        f"学校代理 {quiet:.0f} 秒无报告（学校断网或代理停止？）/ "
                        f"no report from the school agent for {quiet:.0f} s "
                        "(school cut off or agent stopped?)",
                    )
                )
        return out

    async def watch_silence(self, every_seconds: float = 1.0) -> None:
        """Declare silent agent switches unreachable (``silence``), every ``every_seconds``."""
        while True:
            for obs in self.silence(self._clock()):
                log.warning(
                    "交换机 %s 的学校代理无报告 / school agent silent for switch %s: %s",
                    obs.device_id,
                    obs.device_id,
                    obs.reason,
                    extra={
                        "device": obs.device_id,
                        "school": self._switch_school.get(obs.device_id),
                    },
                )
                self._sink.submit_nowait(obs)
            await asyncio.sleep(every_seconds)

    def handle(
        self, topic: str, payload: bytes, received_at: float, ack: Callable[[], None]
    ) -> None:
        """One message from the broker; ``ack`` acknowledges it (now, or once recorded)."""
        self.stats.received_total += 1
        try:
            msg = parse_agent_message(topic, payload)
        except WireError as exc:
            self._reject(exc.reason, topic)
            ack()
            return
        if msg.district != self._district or msg.school not in self.agent_schools:
            self._reject(REASON_NOT_AGENT_SCHOOL, topic)
            ack()
            return
        if isinstance(msg, AgentStatus):
            self._status(msg, received_at)
            ack()
            return
        self._report(msg, received_at, ack)

    def _reject(self, reason: str, topic: str) -> None:
        self.stats.rejected_total[reason] += 1
        if self.stats.rejected_total[reason] == 1:
            log.warning("school agent message refused (%s) on %r", reason, topic[:160])

    def _status(self, msg: AgentStatus, received_at: float) -> None:
        view = self.agents.setdefault(msg.agent, AgentView(msg.school))
        if msg.state == "offline" and view.session not in (None, msg.session):
            return  # a late Will of a session the agent has since replaced
        view.online = msg.state == "online"
        view.session = msg.session
        view.last_status_at = received_at
        view.spool_pending = msg.spool_pending
        view.spool_dropped = msg.spool_dropped
        level = logging.INFO if view.online else logging.WARNING
        log.log(
            level,
            "学校代理 %s (%s) %s (school agent %s: %s, reason %s; spool %s waiting, %s dropped)",
            msg.agent,
            msg.school,
            "在线" if view.online else "离线",
            msg.agent,
            msg.state,
            msg.reason,
            msg.spool_pending,
            msg.spool_dropped,
            extra={"school": msg.school, "agent": msg.agent},
        )

    def _first_time(self, msg: PollReport) -> bool:
        """Note the report's seq; False when it was seen before (a duplicate)."""
        boot = self._boots.setdefault((msg.agent, msg.boot_id), _BootSeqs())
        seq = msg.seq
        if seq > boot.high:
            if seq > boot.high + 1:
                gap = range(boot.high + 1, seq)
                self.stats.gaps_total += len(gap)
                if len(boot.missing) + len(gap) <= _MAX_MISSING:
                    boot.missing.update(gap)
            boot.high = seq
            return True
        if seq in boot.missing:
            boot.missing.discard(seq)
            self.stats.filled_late_total += 1
            return True
        if seq < boot.floor and seq not in boot.below and len(boot.below) < _MAX_MISSING:
            boot.below.add(seq)
            return True
        return False

    def _report(self, msg: PollReport, received_at: float, ack: Callable[[], None]) -> None:
        if not self._first_time(msg):
            self.stats.duplicates_total += 1
            ack()
            return
        try:
            item = codec.decode(msg.observation)
        except codec.ObservationFormatError as exc:
            self._reject(REASON_BAD_OBSERVATION, f"{msg.agent}: {exc}")
            ack()
            return
        obs: Observation | None = None
        historical = False
        if isinstance(item, codec.TerminalProbe):
            subject = item.terminal
            self._probe(msg, item, received_at)
        else:
            subject = item.device_id
            if self._switch_school.get(subject) != msg.school:
                self._reject(REASON_FOREIGN_DEVICE, f"{msg.agent}: {subject}")
                ack()
                return
            obs = item
            self._heard[subject] = received_at
            # The current state only moves forward: past the newest poll applied, and past
            # the moment the switch was declared unreachable for its agent's silence.
            newest = max(self._newest.get(subject, -1.0), self.silent.get(subject, -1.0))
            if item.at > newest:
                self._newest[subject] = item.at
                self.silent.pop(subject, None)
            else:
                historical = True
                self.stats.historical_total += 1
        self.stats.accepted_total += 1
        view = self.agents.setdefault(msg.agent, AgentView(msg.school))
        view.reports += 1
        view.last_report_at = received_at
        row = AgentReportRow(
            msg.agent,
            msg.boot_id,
            msg.seq,
            msg.school,
            subject,
            msg.observed_at,
            received_at,
            msg.historical,
        )
        stats = self.stats
        if not self._ack_after_store:
            ack()

        def recorded() -> None:
            stats.recorded_total += 1
            if self._ack_after_store:
                ack()

        self._sink.accept_report(obs, historical=historical, row=row, ack=recorded)

    def _probe(self, msg: PollReport, probe: codec.TerminalProbe, received_at: float) -> None:
        """A terminal that answered a probe is alive, like one that sent a heartbeat.

        Only the present counts: a replayed probe says nothing about now, and a terminal that
        stops answering goes offline by the heartbeat timeout, as an agent's would.
        """
        key = f"probe:{msg.school}/{probe.terminal}"
        newest = self._newest.get(key)
        if not probe.up or (newest is not None and probe.at <= newest):
            return
        self._newest[key] = probe.at
        heartbeat = Heartbeat(
            district=msg.district,
            school=msg.school,
            terminal=probe.terminal,
            boot_id=f"probe-{msg.boot_id}"[:64],
            # Each answer is a session of its own: the agent's seq counts all its reports (and
            # old probes are not forwarded), so gaps in it are no terminal message lost.
            seq=msg.seq,
            birth_seq=msg.seq,
            observed_at=probe.at,
            uptime_seconds=0.0,
            agent_version=msg.agent_version,
            nic=None,
            link_speed_mbps=None,
            duplex="unknown",
            ip=None,
            mac=None,
            cpu_percent=None,
            memory_used_bytes=None,
            memory_total_bytes=None,
            disk_used_bytes=None,
            disk_total_bytes=None,
        )
        self._sink.submit_terminal(heartbeat, received_at)


def agents_shard_client_id(district: str, shard: int) -> str:
    """The client id of a shard's subscription to its school agents, the same on every
    collector."""
    return f"edumon-agents-{district}-shard-{shard}"


def agent_subscribers(
    settings: MqttSettings,
    reports: AgentReports,
    district: str,
    shards: Mapping[int, Sequence[str]] | None,
) -> list[AgentSubscriber]:
    """One subscription for the district, or in a cluster one per held shard with agents."""
    if shards is None:
        return [AgentSubscriber(settings, reports, district)]
    return [
        AgentSubscriber(settings, reports, district, shard=(shard, agents))
        for shard, schools in sorted(shards.items())
        if (agents := [code for code in schools if code in reports.agent_schools])
    ]


class AgentSubscriber:
    """The MQTT subscription to school agents' topics (paho in its own network thread).

    A persistent session: clean session off and a fixed client id (``client_id``, or
    ``edumon-agents-{district}``), so reports published while the collector is away are kept by
    the broker (within its ``max_queued_messages``) and delivered when it returns. Reports are
    acknowledged only once recorded (paho's manual acknowledgement).

    In a cluster each held shard has a subscription of its own (``shard``), to its schools'
    topics only, with the shard's client id: the same on every collector, so what the broker
    queued for a dead collector's shard goes to the collector that takes the shard over, and no
    two collectors share (and fight over) one session (docs/city-deployment.md).
    """

    def __init__(
        self,
        settings: MqttSettings,
        reports: AgentReports,
        district: str,
        *,
        shard: tuple[int, Sequence[str]] | None = None,
    ) -> None:
        self._settings = settings
        self._reports = reports
        self._district = district
        base = settings.client_id or f"edumon-agents-{district}"
        self.client_id = base if settings.client_id is None else f"{base}-agents"
        self._schools: Sequence[str] = ("+",)
        if shard is not None:
            self.client_id = agents_shard_client_id(district, shard[0])
            self._schools = tuple(shard[1])

    def _client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        s = self._settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        client.max_queued_messages_set(0)
        if s.username is not None:
            password = s.password
            secret = password if isinstance(password, str) or password is None else None
            if password is not None and not isinstance(password, str):
                secret = password.get_secret_value()
            client.username_pw_set(s.username, secret)
        if s.tls is not None:
            context = ssl.create_default_context(
                cafile=str(s.tls.ca_file) if s.tls.ca_file else None
            )
            if s.tls.cert_file is not None and s.tls.key_file is not None:
                context.load_cert_chain(s.tls.cert_file, s.tls.key_file)
            if s.tls.insecure:
                context.check_hostname = False
            client.tls_set_context(context)
        client.reconnect_delay_set(1, 5)  # capped at a few seconds (issue: blind no longer)
        reports = self._reports
        stats = reports.stats
        filters = [
            (agent_filter(kind, self._district, school), 1)
            for school in self._schools
            for kind in (KIND_STATUS, KIND_POLL)
        ]
        sessions = stats.sessions
        client_id = self.client_id

        def on_connect(c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
            if rc.is_failure:
                log.warning("agent reports: broker refused the connection: %s", rc)
                return
            c.subscribe(filters)
            loop.call_soon_threadsafe(sessions.__setitem__, client_id, True)
            log.info("agent reports: subscribed to school agents' topics")

        def on_disconnect(
            _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
        ) -> None:
            loop.call_soon_threadsafe(sessions.__setitem__, client_id, False)
            log.warning("agent reports: broker connection lost (%s); reconnecting", rc)

        def on_message(c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            received_at = time.time()
            mid, qos = message.mid, message.qos

            def ack() -> None:
                if qos > 0:
                    c.ack(mid, qos)

            loop.call_soon_threadsafe(
                reports.handle, message.topic, bytes(message.payload), received_at, ack
            )

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        return client

    async def run(self) -> None:
        """Stay subscribed until cancelled (paho reconnects by itself)."""
        loop = asyncio.get_running_loop()
        client = self._client(loop)
        s = self._settings
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
        client.loop_start()
        try:
            await asyncio.Event().wait()
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()
