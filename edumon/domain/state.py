"""The current truth about every switch and port, and the events its changes produce."""

from __future__ import annotations

from dataclasses import dataclass, field

from edumon.domain.counters import (
    Clocks,
    DurationHistogram,
    UptimeChange,
    counter_rate,
    extend_counter,
    judge_uptime,
    uptime_seconds,
    wraps_from_engine_time,
)
from edumon.domain.inventory import Inventory
from edumon.domain.models import (
    AdminStatus,
    DeviceReading,
    DeviceSample,
    DeviceUnreachable,
    Event,
    EventKind,
    InterfaceReading,
    InterfaceSample,
    Observation,
    OperStatus,
)


@dataclass(slots=True)
class InterfaceState:
    """One port as last seen. ``known`` is False while its switch cannot be reached."""

    device_id: str
    if_index: int
    name: str
    alias: str
    descr: str
    oper_status: OperStatus
    admin_status: AdminStatus
    speed_mbps: float | None
    last_speed_mbps: float | None
    """The speed measured the last time the port was up (for compliance while it is down)."""
    last_speed_at: float | None
    in_octets: int | None
    out_octets: int | None
    counter_bits: int
    in_errors: int | None
    out_errors: int | None
    in_bps: float | None
    out_bps: float | None
    last_change: float
    last_seen: float
    known: bool = True
    in_octets_total: int | None = None
    """Octets received as a 64-bit monotonic total: the device's counter with every 32-bit
    wrap added back; restarts only at a reboot or counter discontinuity."""
    out_octets_total: int | None = None
    in_errors_total: int | None = None
    out_errors_total: int | None = None
    speed_downgrades: int = 0
    """Speed drops seen while the port stayed up (SPEED_DOWNGRADE events), since start."""


@dataclass(slots=True)
class DeviceState:
    """One switch as last seen."""

    device_id: str
    school: str | None
    reachable: bool | None = None
    """None until the first poll finishes."""
    sys_name: str = ""
    sys_descr: str = ""
    uptime_ticks: int | None = None
    """sysUpTime at the last successful poll, as read (it wraps at 2^32)."""
    uptime_wraps: int = 0
    """How often sysUpTime has wrapped since the device's boot (seen, or from snmpEngineTime)."""
    hr_uptime_ticks: int | None = None
    engine_boots: int | None = None
    engine_time: int | None = None
    last_poll_at: float | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    poll_seconds: float = 0.0
    reboots: int = 0
    polls_ok: int = 0
    polls_failed: int = 0
    interfaces: dict[str, InterfaceState] = field(default_factory=dict)
    poll_durations: DurationHistogram = field(default_factory=DurationHistogram)
    """How long the polls applied here took (the poller keeps its own, complete, count)."""

    @property
    def uptime_seconds(self) -> float | None:
        """The true uptime: sysUpTime with its wraps at 2^32 (every 497 days) added back."""
        if self.uptime_ticks is None:
            return None
        return uptime_seconds(self.uptime_ticks, self.uptime_wraps)

    def clocks(self) -> Clocks | None:
        """The clocks read at the last successful poll, to judge the next one against."""
        if self.last_ok_at is None:
            return None
        return Clocks(
            self.last_ok_at,
            self.uptime_ticks,
            self.hr_uptime_ticks,
            self.engine_boots,
            self.engine_time,
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """What one observation changed: events to record and samples to store."""

    events: tuple[Event, ...]
    interface_samples: tuple[InterfaceSample, ...]
    device_sample: DeviceSample


class NetworkState:
    """In-memory state of all devices. Not thread-safe; owned by the collector task."""

    def __init__(self, inventory: Inventory, device_ids: list[str] | None = None) -> None:
        self.inventory = inventory
        ids = device_ids if device_ids is not None else list(inventory.switch_school)
        self.devices: dict[str, DeviceState] = {
            d: DeviceState(d, inventory.school_of_device(d)) for d in ids
        }

    def device(self, device_id: str) -> DeviceState:
        dev = self.devices.get(device_id)
        if dev is None:
            dev = self.devices[device_id] = DeviceState(
                device_id, self.inventory.school_of_device(device_id)
            )
        return dev

    def interface(self, device_id: str, name: str) -> InterfaceState | None:
        dev = self.devices.get(device_id)
        return None if dev is None else dev.interfaces.get(name)

    def apply(self, obs: Observation) -> Applied:
        """Fold one poll result into the state; return the events and samples it produced."""
        if isinstance(obs, DeviceUnreachable):
            return self._unreachable(obs)
        return self._reading(obs)

    def _event(
        self,
        dev: DeviceState,
        at: float,
        kind: EventKind,
        message: str,
        iface: str | None = None,
        **details: object,
    ) -> Event:
        owner = self.inventory.owner(dev.device_id, iface) if iface is not None else None
        return Event(
            at=at,
            kind=kind,
            device_id=dev.device_id,
            school=owner.school if owner else dev.school,
            interface=iface,
            classroom=owner.classroom if owner else None,
            message=message,
            details=dict(details),
        )

    def _unreachable(self, obs: DeviceUnreachable) -> Applied:
        dev = self.device(obs.device_id)
        events: list[Event] = []
        if dev.reachable is not False:
            events.append(
                self._event(
                    dev,
                    obs.at,
                    EventKind.DEVICE_UNREACHABLE,
                    f"switch {dev.device_id} unreachable: {obs.reason}",
                    reason=obs.reason,
                )
            )
        dev.reachable = False
        dev.last_poll_at = obs.at
        dev.last_error = obs.reason
        dev.poll_seconds = obs.poll_seconds
        dev.poll_durations.observe(obs.poll_seconds)
        dev.polls_failed += 1
        # The ports of a switch we cannot reach are unknown, not down.
        for iface in dev.interfaces.values():
            iface.known = False
            iface.in_bps = iface.out_bps = None
        sample = DeviceSample(obs.at, dev.device_id, False, None, obs.poll_seconds)
        return Applied(tuple(events), (), sample)

    def _reading(self, obs: DeviceReading) -> Applied:
        dev = self.device(obs.device_id)
        events: list[Event] = []
        if dev.reachable is False:
            events.append(
                self._event(
                    dev,
                    obs.at,
                    EventKind.DEVICE_REACHABLE,
                    f"switch {dev.device_id} reachable again",
                )
            )
        rebooted = False
        prev_at = dev.last_ok_at
        prev = dev.clocks()
        cur = Clocks(
            obs.at, obs.sys_uptime_ticks, obs.hr_uptime_ticks, obs.engine_boots, obs.engine_time
        )
        change = UptimeChange.STEADY
        if prev is not None:
            verdict = judge_uptime(prev, cur)
            change = verdict.change
            if verdict.rebooted:
                rebooted = True
                dev.reboots += 1
                now_s = (
                    uptime_seconds(obs.sys_uptime_ticks)
                    if obs.sys_uptime_ticks is not None
                    else None
                )
                events.append(
                    self._event(
                        dev,
                        obs.at,
                        EventKind.DEVICE_REBOOT,
                        f"交换机 {dev.device_id} 已重启 (switch rebooted; uptime now "
                        + (f"{now_s:.0f} s" if now_s is not None else "unknown")
                        + f", from {verdict.evidence})",
                        previous_uptime_seconds=dev.uptime_seconds,
                        uptime_seconds=now_s,
                        evidence=verdict.evidence,
                    )
                )
        self._track_uptime(dev, obs, change, first=prev is None)
        dev.reachable = True
        dev.sys_name = obs.sys_name
        dev.sys_descr = obs.sys_descr
        dev.uptime_ticks = obs.sys_uptime_ticks
        dev.hr_uptime_ticks = obs.hr_uptime_ticks
        dev.engine_boots = obs.engine_boots
        dev.engine_time = obs.engine_time
        dev.last_poll_at = dev.last_ok_at = obs.at
        dev.last_error = None
        dev.poll_seconds = obs.poll_seconds
        dev.poll_durations.observe(obs.poll_seconds)
        dev.polls_ok += 1
        seconds = obs.at - prev_at if prev_at is not None else 0.0
        samples = tuple(
            self._interface(dev, reading, obs.at, seconds, rebooted, events)
            for reading in obs.interfaces
        )
        sample = DeviceSample(obs.at, dev.device_id, True, dev.uptime_seconds, obs.poll_seconds)
        return Applied(tuple(events), samples, sample)

    @staticmethod
    def _track_uptime(
        dev: DeviceState, obs: DeviceReading, change: UptimeChange, *, first: bool
    ) -> None:
        """Keep count of sysUpTime's wraps so the uptime stays true past 497 days."""
        if change is UptimeChange.REBOOTED:
            dev.uptime_wraps = 0
        elif change is UptimeChange.WRAPPED:
            dev.uptime_wraps += 1
        ticks = obs.sys_uptime_ticks
        if ticks is None:
            return
        if first or change is UptimeChange.REBOOTED or dev.uptime_wraps == 0:
            # Seen for the first time (or since a boot): the engine's clock, which counts
            # seconds in 31 bits, tells whether the device has been up for more than one wrap.
            from_engine = wraps_from_engine_time(ticks, obs.engine_time)
            if from_engine is not None and from_engine > dev.uptime_wraps:
                dev.uptime_wraps = from_engine

    def _interface(
        self,
        dev: DeviceState,
        r: InterfaceReading,
        at: float,
        seconds: float,
        rebooted: bool,
        events: list[Event],
    ) -> InterfaceSample:
        old = dev.interfaces.get(r.name)
        up = r.oper_status is OperStatus.UP
        if old is None:
            old_known_status: OperStatus | None = None
        else:
            old_known_status = old.oper_status
        in_bps = out_bps = None
        same_counters = old is not None and old.counter_bits == r.counter_bits
        if old is not None and old.counter_bits == r.counter_bits:
            limit = r.speed_mbps if r.speed_mbps is not None else old.last_speed_mbps
            in_bps = counter_rate(
                old.in_octets,
                r.in_octets,
                seconds,
                bits=r.counter_bits,
                speed_mbps=limit,
                discontinuity=rebooted,
            )
            out_bps = counter_rate(
                old.out_octets,
                r.out_octets,
                seconds,
                bits=r.counter_bits,
                speed_mbps=limit,
                discontinuity=rebooted,
            )
        downgrades = old.speed_downgrades if old is not None else 0
        if old_known_status is not None and old is not None:
            was_up = old_known_status is OperStatus.UP
            if was_up and not up:
                events.append(
                    self._event(
                        dev,
                        at,
                        EventKind.LINK_DOWN,
                        f"{r.name} on {dev.device_id} went {r.oper_status.name.lower()}",
                        r.name,
                        oper_status=r.oper_status.name.lower(),
                    )
                )
            elif up and not was_up:
                events.append(
                    self._event(
                        dev,
                        at,
                        EventKind.LINK_UP,
                        f"{r.name} on {dev.device_id} came up"
                        + (f" at {r.speed_mbps:g} Mbit/s" if r.speed_mbps is not None else ""),
                        r.name,
                        speed_mbps=r.speed_mbps,
                    )
                )
            elif (
                up
                and was_up
                and r.speed_mbps is not None
                and old.speed_mbps is not None
                and r.speed_mbps != old.speed_mbps
            ):
                kind = (
                    EventKind.SPEED_DOWNGRADE
                    if r.speed_mbps < old.speed_mbps
                    else EventKind.SPEED_UPGRADE
                )
                downgrades += kind is EventKind.SPEED_DOWNGRADE
                events.append(
                    self._event(
                        dev,
                        at,
                        kind,
                        f"{r.name} on {dev.device_id} changed speed from {old.speed_mbps:g} "
                        f"to {r.speed_mbps:g} Mbit/s",
                        r.name,
                        previous_speed_mbps=old.speed_mbps,
                        speed_mbps=r.speed_mbps,
                    )
                )
        changed = old is None or old.oper_status is not r.oper_status or not old.known
        # A change of counter width (a firmware upgrade added the HC counters) is a
        # discontinuity as much as a reboot is.
        restart = rebooted or not same_counters
        limit = r.speed_mbps if r.speed_mbps is not None else (old.last_speed_mbps if old else None)

        def total(
            prev_total: int | None,
            prev: int | None,
            cur: int | None,
            bits: int,
            bound: float | None,
        ) -> int | None:
            return extend_counter(
                prev_total,
                prev,
                cur,
                bits=bits,
                seconds=seconds,
                speed_mbps=bound,
                discontinuity=restart,
            )

        speed = r.speed_mbps if up else None
        last_speed = speed if speed is not None else (old.last_speed_mbps if old else None)
        last_speed_at = at if speed is not None else (old.last_speed_at if old else None)
        fields = dict(
            device_id=dev.device_id,
            if_index=r.if_index,
            name=r.name,
            alias=r.alias,
            descr=r.descr,
            oper_status=r.oper_status,
            admin_status=r.admin_status,
            speed_mbps=speed,
            last_speed_mbps=last_speed,
            last_speed_at=last_speed_at,
            in_octets=r.in_octets,
            out_octets=r.out_octets,
            counter_bits=r.counter_bits,
            in_errors=r.in_errors,
            out_errors=r.out_errors,
            in_bps=in_bps,
            out_bps=out_bps,
            last_change=at if changed or old is None else old.last_change,
            last_seen=at,
            in_octets_total=total(
                old.in_octets_total if old else None,
                old.in_octets if old else None,
                r.in_octets,
                r.counter_bits,
                limit,
            ),
            out_octets_total=total(
                old.out_octets_total if old else None,
                old.out_octets if old else None,
                r.out_octets,
                r.counter_bits,
                limit,
            ),
            # ifInErrors/ifOutErrors are Counter32 on every agent (IF-MIB has no HC errors).
            in_errors_total=total(
                old.in_errors_total if old else None,
                old.in_errors if old else None,
                r.in_errors,
                32,
                None,
            ),
            out_errors_total=total(
                old.out_errors_total if old else None,
                old.out_errors if old else None,
                r.out_errors,
                32,
                None,
            ),
            speed_downgrades=downgrades,
        )
        if old is None:
            dev.interfaces[r.name] = InterfaceState(**fields)  # type: ignore[arg-type]
        else:
            # Updated in place: a port's state lives as long as its switch, so a city's
            # 285,000 of them are not remade every minute for the garbage collector to walk.
            for name, value in fields.items():
                setattr(old, name, value)
            old.known = True
        return InterfaceSample(
            at,
            dev.device_id,
            r.name,
            r.oper_status,
            speed,
            in_bps,
            out_bps,
            r.in_octets,
            r.out_octets,
        )
