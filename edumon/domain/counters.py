"""Counter arithmetic: rates from octet counters, uptime wraps versus reboots."""

from __future__ import annotations

TICKS_PER_SECOND = 100
UPTIME_MODULUS = 2**32
"""sysUpTime is TimeTicks: it wraps to 0 after 2^32 hundredths of a second (≈ 497 days)."""

# A poll's timestamp and the agent's sysUpTime are read a few hundred milliseconds apart and
# agents round; allow this much disagreement before calling a jump a reboot.
_UPTIME_SLACK_SECONDS = 5.0
_UPTIME_SLACK_FRACTION = 0.05
# Counters sampled a little apart from the timestamp can overshoot the line rate slightly.
_RATE_SLACK = 1.05


def is_reboot(prev_ticks: int, prev_at: float, ticks: int, at: float) -> bool:
    """Whether the device rebooted between two uptime readings.

    A decrease that matches a wrap at 2^32 ticks is not a reboot; an uptime clearly smaller
    than the previous one plus the time elapsed is, even if it did not decrease (the device
    rebooted while we could not reach it and has been up longer than the old uptime).

    Args:
        prev_ticks: sysUpTime (1/100 s) at the previous successful poll.
        prev_at: wall-clock time of the previous poll, Unix seconds.
        ticks: sysUpTime now.
        at: wall-clock time now.
    """
    elapsed = max(0.0, at - prev_at)
    slack_ticks = (_UPTIME_SLACK_SECONDS + _UPTIME_SLACK_FRACTION * elapsed) * TICKS_PER_SECOND
    expected = prev_ticks + elapsed * TICKS_PER_SECOND
    if abs(ticks - expected) <= slack_ticks:
        return False
    if (
        expected >= UPTIME_MODULUS - slack_ticks
        and abs(ticks + UPTIME_MODULUS - expected) <= slack_ticks
    ):
        return False  # wrapped at 2^32
    return ticks < expected - slack_ticks


def uptime_seconds(ticks: int) -> float:
    """sysUpTime ticks as seconds."""
    return ticks / TICKS_PER_SECOND


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
        delta += 2**32
    rate = delta * 8 / seconds
    if speed_mbps is not None and speed_mbps > 0 and rate > speed_mbps * 1e6 * _RATE_SLACK:
        return None
    return rate
