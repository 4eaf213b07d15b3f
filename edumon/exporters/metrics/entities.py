"""Each entity's sample lines, rendered from its state: a switch, a school, a classroom.

Every function here renders one entity into one text per family of its kind (the tuples of
``edumon.exporters.metrics.families``), encoded once; ``EntityCache`` keeps those texts and
re-renders an entity only when its change key differs from the one its text was made from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter

from edumon.domain.checks import SchoolCompliance, Verdict
from edumon.domain.counters import DurationHistogram
from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef
from edumon.domain.models import OperStatus
from edumon.domain.state import DeviceState
from edumon.domain.terminals import TerminalState
from edumon.domain.topology import Condition, SchoolLink
from edumon.exporters.metrics import families as f
from edumon.exporters.metrics.text import Family, number, pairs
from edumon.views import ClassroomNow

BYTES_PER_MBIT = 1_000_000 / 8
"""Link speeds are configured and reported in Mbit/s; Prometheus wants bytes per second."""

_VERDICTS = tuple(Verdict)


def mbps_to_bytes(mbps: float) -> float:
    """Mbit/s (as switches and targets state them) to bytes per second."""
    return mbps * BYTES_PER_MBIT


class Lines:
    """Sample lines being rendered for one entity, one list per family of its kind.

    ``kind`` is the families exported (``families.shown``): a line of any other family is
    not rendered.
    """

    def __init__(self, kind: tuple[Family, ...]) -> None:
        self._index = {family: i for i, family in enumerate(kind)}
        self._lines: list[list[str]] = [[] for _ in kind]

    def add(self, family: Family, value: float, *labels: str) -> None:
        i = self._index.get(family)
        if i is not None:
            self._lines[i].append(family.line(value, *labels))

    def add_at(self, family: Family, base: str, value: float, *extra: str) -> None:
        """A line whose leading labels are rendered in ``base`` (see ``Family.line_at``)."""
        i = self._index.get(family)
        if i is not None:
            self._lines[i].append(family.line_at(base, value, *extra))

    def done(self) -> tuple[bytes, ...]:
        return tuple("".join(lines).encode() for lines in self._lines)


@dataclass(slots=True)
class Cached:
    """One entity's rendered text and the change key it was rendered for."""

    key: object
    text: tuple[bytes, ...]


class _Group:
    """The entities of one school (or of the district's own switches), and their joined text."""

    __slots__ = ("entries", "text")

    def __init__(self) -> None:
        self.entries: dict[str, Cached] = {}
        self.text: tuple[bytes, ...] | None = None
        """Every entry's text joined per family; None after a change."""


class EntityCache:
    """Rendered text of every entity of one kind, grouped by school.

    A scrape joins one block per school and family, not one per entity, and a school's block
    is joined again only when one of its entities changed. The district-wide text of a family
    is joined at each scrape and dropped once sent: kept, it would double the memory for a
    saving only a city where nothing changed in 15 s would see.
    """

    def __init__(self, kind: tuple[Family, ...]) -> None:
        self.kind = kind
        self._groups: dict[str, _Group] = {}
        self._where: dict[str, _Group] = {}
        self.rendered = 0
        """Entities rendered since start (a first render or a change)."""

    def fresh(self, ident: str, key: object) -> bool:
        """Whether ``ident``'s text was rendered for ``key`` (then it stands as it is)."""
        group = self._where.get(ident)
        if group is None:
            return False
        return group.entries[ident].key == key

    def store(self, ident: str, key: object, text: tuple[bytes, ...], group: str = "") -> None:
        """Keep ``ident``'s newly rendered text and the key it was rendered for."""
        if len(text) != len(self.kind):
            raise ValueError(f"{ident}: {len(text)} texts for {len(self.kind)} families")
        where = self._where.get(ident)
        if where is None:
            where = self._groups.get(group)
            if where is None:
                where = self._groups[group] = _Group()
            self._where[ident] = where
        where.entries[ident] = Cached(key, text)
        where.text = None
        self.rendered += 1

    def __len__(self) -> int:
        return len(self._where)

    def join(self) -> None:
        """Join the blocks of the groups (schools) whose entities changed since."""
        for group in self._groups.values():
            if group.text is None:
                texts = [entry.text for entry in group.entries.values()]
                group.text = tuple(b"".join(column) for column in zip(*texts, strict=True))

    def families(self) -> Iterator[tuple[Family, bytes]]:
        """Each family of this kind with every entity's lines of it."""
        self.join()
        blocks = [group.text for group in self._groups.values() if group.text is not None]
        for i, family in enumerate(self.kind):
            yield family, b"".join([block[i] for block in blocks])


# -- a switch ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Port:
    """A port of a switch that is exported: its name, role and rendered labels."""

    name: str
    role: str
    labels: str


def exported_ports(dev: DeviceState, inventory: Inventory, *, all_ports: bool) -> tuple[Port, ...]:
    """The ports of ``dev`` on /metrics: those the inventory names, or all with ``all_ports``."""
    school = dev.school or ""
    out = []
    for name in dev.interfaces:
        owner = inventory.owner(dev.device_id, name)
        if owner is not None:
            role = owner.role.value
        elif (dev.device_id, name) in inventory.link_ports:
            role = "link"
        elif all_ports:
            role = "none"
        else:
            continue  # not a port that matters: in the API, not on /metrics
        values = (
            dev.device_id,
            name,
            owner.school if owner is not None else school,
            (owner.classroom or "") if owner is not None else "",
        )
        out.append(Port(name, role, pairs(f.IF_UP.labels, values)))
    return tuple(out)


_PORT_STATE = attrgetter(
    "oper_status", "admin_status", "speed_mbps", "known", "last_change", "speed_downgrades"
)
_PORT_NAMES = attrgetter("alias", "if_index")


def switch_state_key(dev: DeviceState, condition: Condition, ports: tuple[Port, ...]) -> object:
    """Everything ``render_switch`` reads: equal keys, equal text."""
    ifaces = dev.interfaces
    return (
        dev.reachable,
        condition,
        dev.sys_name,
        dev.reboots,
        tuple([(_PORT_STATE(ifaces[p.name]), _PORT_NAMES(ifaces[p.name])) for p in ports]),
    )


def _encoded(*columns: list[str]) -> tuple[bytes, ...]:
    return tuple("".join(lines).encode() for lines in columns)


def render_switch(
    dev: DeviceState,
    condition: Condition,
    ports: tuple[Port, ...],
    *,
    host: str,
    kind: tuple[Family, ...] = f.SWITCH,
) -> tuple[bytes, ...]:
    """A switch's state lines (``kind``: ``families.SWITCH`` or those of it exported).

    Ports of a switch that cannot be reached are unknown, not down: their status and speed
    lines are left out while ``edumon_interface_info`` stays.
    """
    out = Lines(kind)
    ids = pairs(f.DEVICE_UP.labels, (dev.device_id, dev.school or ""))
    # Only the host is rendered from the switch's configuration: its SNMP credentials never
    # leave the config object.
    out.add_at(f.DEVICE_INFO, ids, 1, host, dev.sys_name)
    out.add_at(f.DEVICE_REBOOTS, ids, dev.reboots)
    if dev.reachable is not None:
        out.add_at(f.DEVICE_UP, ids, 1 if dev.reachable else 0)
    out.add_at(f.DEVICE_STATE, ids, 1, condition.value)
    for port in ports:
        iface = dev.interfaces[port.name]
        out.add_at(f.IF_INFO, port.labels, 1, port.role, str(iface.if_index), iface.alias)
        out.add_at(f.IF_LAST_CHANGE, port.labels, iface.last_change)
        out.add_at(f.IF_DOWNGRADES, port.labels, iface.speed_downgrades)
        if not (dev.reachable and iface.known):
            continue  # its last reading no longer stands
        out.add_at(f.IF_UP, port.labels, 1 if iface.oper_status is OperStatus.UP else 0)
        out.add_at(f.IF_ADMIN, port.labels, int(iface.admin_status))
        if iface.speed_mbps is not None:
            out.add_at(f.IF_SPEED, port.labels, mbps_to_bytes(iface.speed_mbps))
    return out.done()


_PORT_COUNTERS = (f.IF_IN_BYTES, f.IF_OUT_BYTES, f.IF_IN_ERRORS, f.IF_OUT_ERRORS)
_PORT_TOTALS = attrgetter(
    "in_octets_total", "out_octets_total", "in_errors_total", "out_errors_total"
)


def render_counters(
    dev: DeviceState, ports: tuple[Port, ...], kind: tuple[Family, ...] = f.SWITCH_COUNTERS
) -> tuple[bytes, ...]:
    """What a poll moves (``kind``: ``families.SWITCH_COUNTERS`` or those of it exported):
    written without ``Lines``, as it is rendered for a quarter of a city's switches between
    two scrapes."""
    ids = pairs(f.DEVICE_UP.labels, (dev.device_id, dev.school or ""))
    uptime: list[str] = []
    last_poll: list[str] = []
    last_ok: list[str] = []
    if dev.reachable and (seconds := dev.uptime_seconds) is not None:
        uptime.append(f"{f.DEVICE_UPTIME.sample}{{{ids}}} {number(seconds)}\n")
    if dev.last_poll_at is not None:
        last_poll.append(f"{f.DEVICE_LAST_POLL.sample}{{{ids}}} {number(dev.last_poll_at)}\n")
    if dev.last_ok_at is not None:
        last_ok.append(f"{f.DEVICE_LAST_OK.sample}{{{ids}}} {number(dev.last_ok_at)}\n")
    wanted = [family in kind for family in _PORT_COUNTERS]
    columns: tuple[list[str], ...] = ([], [], [], [])
    names = tuple(family.sample for family in _PORT_COUNTERS)
    if dev.reachable:
        for port in ports:
            iface = dev.interfaces[port.name]
            if not iface.known:
                continue
            values = _PORT_TOTALS(iface)
            for column, name, value, want in zip(columns, names, values, wanted, strict=True):
                if want and value is not None:
                    column.append(f"{name}{{{port.labels}}} {number(value)}\n")
    rendered = dict(zip(f.SWITCH_COUNTERS, (uptime, last_poll, last_ok, *columns), strict=True))
    return _encoded(*[rendered[family] for family in kind])


@dataclass(frozen=True, slots=True)
class PollFigures:
    """One switch's poll figures, from the poller's statistics or, without one, the state."""

    polls_ok: int
    polls_failed: int
    last_poll_seconds: float
    requests: int | None = None
    """None: no poller in this process, only what the state recorded is rendered."""
    timeouts: int = 0
    retries: int = 0
    varbinds: int = 0
    walks_aborted: int = 0
    last_varbinds: int = 0
    max_repetitions: int = 0


def render_polled(
    device: str, p: PollFigures, kind: tuple[Family, ...] = f.POLLED
) -> tuple[bytes, ...]:
    """A switch's edumon_snmp_* lines (``kind``: ``families.POLLED`` or those exported)."""
    out = Lines(kind)
    ids = pairs(f.SNMP_REQUESTS.labels, (device,))
    out.add_at(f.SNMP_POLLS, ids, p.polls_ok, "ok")
    out.add_at(f.SNMP_POLLS, ids, p.polls_failed, "failed")
    polled = p.polls_ok + p.polls_failed > 0
    if p.requests is None:
        if polled:
            out.add_at(f.SNMP_LAST_DURATION, ids, p.last_poll_seconds)
        return out.done()
    for family, value in (
        (f.SNMP_REQUESTS, p.requests),
        (f.SNMP_TIMEOUTS, p.timeouts),
        (f.SNMP_RETRIES, p.retries),
        (f.SNMP_VARBINDS, p.varbinds),
        (f.SNMP_WALKS_ABORTED, p.walks_aborted),
    ):
        out.add_at(family, ids, value)
    if polled:  # not polled yet: no last poll to describe
        out.add_at(f.SNMP_LAST_DURATION, ids, p.last_poll_seconds)
        out.add_at(f.SNMP_LAST_VARBINDS, ids, p.last_varbinds)
        out.add_at(f.SNMP_MAX_REPETITIONS, ids, p.max_repetitions)
    return out.done()


class HistogramSum:
    """The district's poll-duration histogram, kept as switches' histograms change.

    Summing 5,000 switches' histograms at every scrape costs more than the rest of a scrape;
    instead each switch's last contribution is remembered and replaced when it changes.
    """

    def __init__(self) -> None:
        self.total = DurationHistogram()
        self._parts: dict[str, tuple[tuple[int, ...], int, float]] = {}

    def update(self, device: str, hist: DurationHistogram) -> None:
        new = (tuple(hist.counts), hist.total, hist.sum)
        old = self._parts.get(device)
        if old == new:
            return
        if hist.bounds != self.total.bounds:
            raise ValueError("histograms with different bounds cannot be summed")
        counts = self.total.counts
        if old is not None:
            for i, c in enumerate(old[0]):
                counts[i] -= c
            self.total.total -= old[1]
            self.total.sum -= old[2]
        for i, c in enumerate(new[0]):
            counts[i] += c
        self.total.total += new[1]
        self.total.sum += new[2]
        self._parts[device] = new


# -- a school ---------------------------------------------------------------------------------


def render_school_names(
    school: SchoolRef, kind: tuple[Family, ...] = f.SCHOOL_NAMES
) -> tuple[bytes, ...]:
    """edumon_school_info and edumon_classroom_info: what joins give names to ids."""
    out = Lines(kind)
    out.add(
        f.SCHOOL_INFO,
        1,
        school.code,
        school.name,
        school.kind,
        school.uplink_switch,
        school.uplink_port,
    )
    for room in school.classrooms:
        out.add(
            f.CLASSROOM_INFO, 1, school.code, room.id, room.name, room.switch or "", room.port or ""
        )
    return out.done()


def render_compliance(
    sc: SchoolCompliance, kind: tuple[Family, ...] = f.COMPLIANCE
) -> tuple[bytes, ...]:
    """One series per check with its current verdict, and the school's totals."""
    out = Lines(kind)
    code = sc.school
    for result in sc.results:
        ids = (code, result.check.value, result.classroom or "")
        out.add(f.CHECK_STATUS, 1, *ids, result.verdict.value)
        if result.speed_mbps is not None:
            out.add(f.CHECK_SPEED, mbps_to_bytes(result.speed_mbps), *ids)
    out.add(f.SCHOOL_COMPLIANCE, 1, code, sc.verdict.value)
    for verdict in _VERDICTS:
        count = sum(1 for r in sc.classrooms if r.verdict is verdict)
        out.add(f.SCHOOL_CLASSROOMS, count, code, verdict.value)
    return out.done()


def render_school_link(
    link: SchoolLink,
    outage_started: float | None,
    *,
    outages: bool,
    kind: tuple[Family, ...] = f.SCHOOL_LINK,
) -> tuple[bytes, ...]:
    """The school's connectivity, and its outage when edumon tracks outages."""
    out = Lines(kind)
    out.add(f.SCHOOL_CONNECTIVITY, 1, link.school, link.connectivity.value)
    if outages:
        out.add(f.SCHOOL_OUTAGE, 0 if outage_started is None else 1, link.school)
        if outage_started is not None:
            out.add(f.SCHOOL_OUTAGE_START, outage_started, link.school)
    return out.done()


# -- a classroom ------------------------------------------------------------------------------


def render_classroom(
    c: ClassroomNow,
    outage: bool | None,
    room: str,
    terminal: str,
    kind: tuple[Family, ...] = f.CLASSROOM,
) -> tuple[bytes, ...]:
    """A classroom's state lines (``families.CLASSROOM``).

    Args:
        c: the classroom now.
        outage: whether it is in an outage; None when edumon tracks none.
        room: its school and classroom labels, rendered (``pairs``).
        terminal: those and its terminal's, rendered.
        kind: the families exported (``families.CLASSROOM`` or those of it).
    """
    out = Lines(kind)
    if c.expected_online is not None:
        out.add_at(f.CLASSROOM_EXPECTED, room, 1 if c.expected_online else 0)
    st = c.terminal
    if st is None:
        return out.done()
    if outage is not None:
        out.add_at(f.CLASSROOM_OUTAGE, room, 1 if outage else 0)
    online = c.online
    out.add_at(f.TERMINAL_UP, terminal, 1 if online else 0)
    reason = c.offline_reason
    if not online and reason is not None:
        out.add_at(f.TERMINAL_OFFLINE_REASON, terminal, 1, reason)
    out.add_at(f.TERMINAL_INFO, terminal, 1, st.agent_version or "", st.nic or "", st.duplex)
    since = c.since
    if since is not None:
        out.add_at(f.TERMINAL_LAST_CHANGE, terminal, since)
    if online and st.link_speed_mbps is not None:
        out.add_at(f.TERMINAL_SPEED, terminal, mbps_to_bytes(st.link_speed_mbps))
    in_lesson = c.offline_in_lesson
    if in_lesson is not None and not c.uplink_down and not c.stale:
        out.add_at(f.CLASSROOM_IN_LESSON, room, 1 if in_lesson else 0)
    return out.done()


def render_heartbeat(
    st: TerminalState, terminal: str, kind: tuple[Family, ...] = f.HEARTBEAT
) -> tuple[bytes, ...]:
    """What a heartbeat moves (``kind``: ``families.HEARTBEAT`` or those of it exported);
    ``terminal``: its labels, rendered.

    Half a city's terminals send one between two scrapes: two lines, formatted directly.
    """
    if not kind:
        return ()
    seen = b""
    if st.last_seen is not None:
        seen = f"{f.TERMINAL_LAST_SEEN.sample}{{{terminal}}} {number(st.last_seen)}\n".encode()
    uptime = b""
    if st.online and st.uptime_seconds is not None:
        line = f"{f.TERMINAL_UPTIME.sample}{{{terminal}}} {number(st.uptime_seconds)}\n"
        uptime = line.encode()
    if kind == f.HEARTBEAT:
        return (seen, uptime)
    return tuple(t for fam, t in zip(f.HEARTBEAT, (seen, uptime), strict=True) if fam in kind)


def unmapped(school: SchoolRef) -> tuple[ClassroomRef, ...]:
    """Classrooms without a switch port: the compliance check reads their terminal's speed."""
    return tuple(r for r in school.classrooms if r.switch is None or r.port is None)
