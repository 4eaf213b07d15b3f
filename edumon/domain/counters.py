"""Counter arithmetic: rates and 64-bit totals from octet counters, uptime wraps versus reboots."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

TICKS_PER_SECOND = 100
UPTIME_MODULUS = 2**32
"""sysUpTime is TimeTicks: it wraps to 0 after 2^32 hundredths of a second (≈ 497 days)."""
COUNTER32_MODULUS = 2**32

# A poll's timestamp and the agent's sysUpTime are read a little apart and agents round; allow
# this much disagreement before believing that a boot happened after the previous poll.
_UPTIME_SLACK_SECONDS = 5.0
_UPTIME_SLACK_FRACTION = 0.05
# Counters sampled a little apart from the timestamp can overshoot the line rate slightly.
_RATE_SLACK = 1.05
# snmpEngineTime and sysUpTime count from the same start on the agents we know; allow this much
# disagreement (seconds) before using one to say how often the other has wrapped.
_ENGINE_UPTIME_SLACK_SECONDS = 3600.0


class UptimeChange(enum.StrEnum):
    """What happened to a device's uptime between two polls."""

    STEADY = "steady"
    """It advanced (at whatever pace: a frozen, slow or fast clock is still no reboot)."""
    WRAPPED = "wrapped"
    """sysUpTime went past 2^32 ticks and restarted from 0."""
    REBOOTED = "rebooted"


@dataclass(frozen=True, slots=True)
class Clocks:
    """What one poll read of a device's clocks.

    Attributes:
        at: when the reply arrived, collector wall-clock seconds.
        sys_uptime_ticks: SNMPv2-MIB sysUpTime (1/100 s since the agent started).
        hr_uptime_ticks: HOST-RESOURCES-MIB hrSystemUptime (1/100 s since the host booted), where
            the agent has it.
        engine_boots: snmpEngineBoots (how often the SNMP engine re-initialised), where known.
        engine_time: snmpEngineTime (seconds since the last boot), where known.
    """

    at: float
    sys_uptime_ticks: int | None
    hr_uptime_ticks: int | None = None
    engine_boots: int | None = None
    engine_time: int | None = None


@dataclass(frozen=True, slots=True)
class UptimeVerdict:
    """The judgement of one poll's clocks against the previous poll's."""

    change: UptimeChange
    evidence: str
    """Which clock decided: sysUpTime, hrSystemUptime or snmpEngineBoots."""

    @property
    def rebooted(self) -> bool:
        return self.change is UptimeChange.REBOOTED


def ticks_change(prev_ticks: int, prev_at: float, ticks: int, at: float) -> UptimeChange:
    """Judge one TimeTicks clock (sysUpTime or hrSystemUptime) between two polls.

    A reboot moves the boot time *later than the previous poll*: the uptime went back (beyond
    what one wrap at 2^32 explains) and the new uptime is no longer than the wall time elapsed
    since the previous poll (plus a tolerance). Everything else is not a reboot: a clock that
    is frozen (a cached value), slow, fast or jumps forward, one that jumps back by less than
    the elapsed interval, and a collector clock that jumped forward (a stalled loop).

    Args:
        prev_ticks: the clock at the previous successful poll, 1/100 s.
        prev_at: the collector's wall-clock time of the previous poll, Unix seconds.
        ticks: the clock now.
        at: the collector's wall-clock time now.
    """
    if ticks >= prev_ticks:
        return UptimeChange.STEADY
    elapsed = max(0.0, at - prev_at)
    slack = _UPTIME_SLACK_SECONDS + _UPTIME_SLACK_FRACTION * elapsed
    # Went back. Past 2^32 the clock restarts at 0: the advance is then what lies beyond the
    # wrap, and it cannot be more than the time elapsed (a fast clock within the tolerance).
    wrapped_advance = ticks + UPTIME_MODULUS - prev_ticks
    if wrapped_advance <= (elapsed + slack) * TICKS_PER_SECOND:
        return UptimeChange.WRAPPED
    if ticks <= (elapsed + slack) * TICKS_PER_SECOND:
        return UptimeChange.REBOOTED
    return UptimeChange.STEADY  # jumped back, but the boot it implies is before the last poll


def is_reboot(prev_ticks: int, prev_at: float, ticks: int, at: float) -> bool:
    """Whether a device rebooted between two readings of one TimeTicks clock (see ticks_change)."""
    return ticks_change(prev_ticks, prev_at, ticks, at) is UptimeChange.REBOOTED


def judge_uptime(prev: Clocks, cur: Clocks) -> UptimeVerdict:
    """Whether a device rebooted or its sysUpTime wrapped between two polls.

    The host's own clock decides where the agent has one (hrSystemUptime: an SNMP agent that
    restarts resets sysUpTime, not the host's uptime); else snmpEngineBoots (a count of the
    engine's boots: an increase is a reboot, no increase none); else sysUpTime alone.
    Whether sysUpTime wrapped is always read from sysUpTime.
    """
    sys_change = UptimeChange.STEADY
    if prev.sys_uptime_ticks is not None and cur.sys_uptime_ticks is not None:
        sys_change = ticks_change(prev.sys_uptime_ticks, prev.at, cur.sys_uptime_ticks, cur.at)
    wrapped = UptimeChange.WRAPPED if sys_change is UptimeChange.WRAPPED else UptimeChange.STEADY
    if prev.hr_uptime_ticks is not None and cur.hr_uptime_ticks is not None:
        hr_change = ticks_change(prev.hr_uptime_ticks, prev.at, cur.hr_uptime_ticks, cur.at)
        rebooted = hr_change is UptimeChange.REBOOTED
        return UptimeVerdict(UptimeChange.REBOOTED if rebooted else wrapped, "hrSystemUptime")
    if (
        prev.engine_boots is not None
        and cur.engine_boots is not None
        and cur.engine_boots >= prev.engine_boots
    ):
        # A boots count that went down was reset (configuration wiped): no evidence either way.
        rebooted = cur.engine_boots > prev.engine_boots
        return UptimeVerdict(UptimeChange.REBOOTED if rebooted else wrapped, "snmpEngineBoots")
    return UptimeVerdict(sys_change, "sysUpTime")


def wraps_from_engine_time(ticks: int, engine_time: int | None) -> int | None:
    """How often sysUpTime has wrapped, from snmpEngineTime (seconds since the same boot).

    Returns None when there is no engine time, or when the two clocks do not agree on a whole
    number of wraps (an agent whose engine started at another time than its sysUpTime).
    """
    if engine_time is None:
        return None
    behind = engine_time * TICKS_PER_SECOND - ticks
    wraps = round(behind / UPTIME_MODULUS)
    if wraps < 0:
        return None
    off = abs(behind - wraps * UPTIME_MODULUS) / TICKS_PER_SECOND
    return wraps if off <= _ENGINE_UPTIME_SLACK_SECONDS else None


def uptime_seconds(ticks: int, wraps: int = 0) -> float:
    """sysUpTime ticks as seconds, with the wraps at 2^32 seen since the boot added back."""
    return (ticks + wraps * UPTIME_MODULUS) / TICKS_PER_SECOND


def counter_rate(
    prev: int | None,
    cur: int | None,
    seconds: float,
    *,
    bits: int,
    speed_mbps: float | None,
    discontinuity: bool = False,
) -> float | None:
    """Bits per second between two octet-counter readings, or None when there is no honest rate.

    A 32-bit counter that went backwards wrapped once; a 64-bit counter that went backwards
    was reset (reboot, counter discontinuity). A rate above the link speed is a spike from a
    discontinuity and is discarded. Never negative.

    Args:
        prev: the counter at the previous poll.
        cur: the counter now.
        seconds: time between the two polls.
        bits: 32 or 64, the counter's width.
        speed_mbps: the link speed, used to discard impossible rates; None when unknown.
        discontinuity: the device rebooted in between, so the counters restarted.
    """
    if prev is None or cur is None or seconds <= 0 or discontinuity:
        return None
    delta = cur - prev
    if delta < 0:
        if bits != 32:
            return None
        delta += COUNTER32_MODULUS
    rate = delta * 8 / seconds
    if speed_mbps is not None and speed_mbps > 0 and rate > speed_mbps * 1e6 * _RATE_SLACK:
        return None
    return rate


def extend_counter(
    total: int | None,
    prev: int | None,
    cur: int | None,
    *,
    bits: int,
    seconds: float,
    speed_mbps: float | None = None,
    discontinuity: bool = False,
) -> int | None:
    """A monotonic 64-bit total from a device counter that may be 32 bits wide and wrap.

    The total is the device's counter with every wrap edumon saw added back: for a 64-bit
    source it equals the counter; for a 32-bit one it goes on past 2^32 where the counter
    restarts from 0, so Prometheus never mistakes a wrap for a reset. It restarts from the
    device's counter only at a real discontinuity: a reboot, a 64-bit counter going back, or
    an increase faster than the link (a counter reset the uptime did not show).

    Args:
        total: the total after the previous poll (None: not started).
        prev: the device's counter at the previous poll.
        cur: the device's counter now (None: not read; the total is unknown until it is).
        bits: 32 or 64, the counter's width.
        seconds: time between the two polls (for the line-rate bound).
        speed_mbps: the link speed for octet counters; None for counters without a bound.
        discontinuity: the device rebooted in between, so its counters restarted.

    Returns:
        The new total, or None when ``cur`` is None.
    """
    if cur is None:
        return None
    if total is None or prev is None or discontinuity:
        return cur
    delta = cur - prev
    if delta < 0:
        if bits != 32:
            return cur
        delta += COUNTER32_MODULUS
    if (
        speed_mbps is not None
        and speed_mbps > 0
        and seconds > 0
        and delta * 8 / seconds > speed_mbps * 1e6 * _RATE_SLACK
    ):
        return cur
    return total + delta


POLL_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds of the poll-duration histogram: a quick LAN switch answers a whole poll in
tens of milliseconds, a slow control plane with retries takes seconds, a poll that times out
takes up to the interval."""


@dataclass(slots=True)
class DurationHistogram:
    """Cumulative counts of durations per upper bound, as a Prometheus histogram wants them."""

    bounds: tuple[float, ...] = POLL_SECONDS_BUCKETS
    counts: list[int] = field(default_factory=list)
    """Observations at or below each bound (cumulative), one per bound."""
    total: int = 0
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def merge(self, other: DurationHistogram) -> None:
        """Add another histogram's counts (with the same bounds) to this one."""
        if other.bounds != self.bounds:
            raise ValueError("histograms with different bounds cannot be merged")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.sum += other.sum

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.total += 1
        self.sum += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1
