"""Counter and uptime arithmetic, table-driven."""

import pytest

from edumon.domain.counters import (
    Clocks,
    DurationHistogram,
    UptimeChange,
    counter_rate,
    extend_counter,
    is_reboot,
    judge_uptime,
    ticks_change,
    uptime_seconds,
    wraps_from_engine_time,
)

WRAP = 2**32
DAY = 86_400 * 100  # ticks
STEADY, WRAPPED, REBOOTED = UptimeChange.STEADY, UptimeChange.WRAPPED, UptimeChange.REBOOTED


@pytest.mark.parametrize(
    ("prev_ticks", "prev_at", "ticks", "at", "change"),
    [
        pytest.param(1_000_000, 0.0, 1_006_000, 60.0, STEADY, id="steady-60s"),
        pytest.param(1_000_000, 0.0, 1_006_200, 60.0, STEADY, id="poll-jitter-2s"),
        pytest.param(1_000_000, 0.0, 1_000_000, 0.0, STEADY, id="same-instant"),
        # The agent's clock misbehaves; none of it is a reboot.
        pytest.param(1_000_000, 0.0, 1_000_000, 60.0, STEADY, id="frozen-clock"),
        pytest.param(1_000_000, 0.0, 1_000_100, 60.0, STEADY, id="slow-clock"),
        pytest.param(1_000_000, 0.0, 1_600_000, 60.0, STEADY, id="fast-clock-10x"),
        pytest.param(1_000_000, 0.0, 90_000_000, 60.0, STEADY, id="clock-jumps-forward"),
        pytest.param(9 * DAY, 0.0, 9 * DAY - 3000, 60.0, STEADY, id="clock-back-30s-of-60"),
        pytest.param(9 * DAY, 0.0, 8 * DAY, 60.0, STEADY, id="clock-back-a-day"),
        pytest.param(
            WRAP - 3000, 0.0, 2_000_000, 60.0, STEADY, id="near-wrap-jump-boot-before-last-poll"
        ),
        # The collector's own clock jumps (a stalled loop, a fast fake clock in tests).
        pytest.param(1_000_000, 0.0, 1_000_100, 600.0, STEADY, id="collector-clock-jumps"),
        pytest.param(1_000_000, 0.0, 1_000_100, 10**6, STEADY, id="collector-clock-jumps-far"),
        pytest.param(1_000_000, 60.0, 1_006_000, 0.0, STEADY, id="collector-clock-back"),
        # Wraps at 2^32 ticks (497 days).
        pytest.param(WRAP - 3000, 0.0, 3000, 60.0, WRAPPED, id="wrap-at-2^32"),
        pytest.param(WRAP - 100, 0.0, 5900, 60.0, WRAPPED, id="wrap-just-before"),
        pytest.param(WRAP - 100, 0.0, 100, 600.0, WRAPPED, id="wrap-collector-jumped"),
        # Just before 2^32 and small after a long gap: a wrap and a reboot both explain it;
        # the wrap is taken (no false reboot), the engine boots or host uptime tell them apart.
        pytest.param(WRAP - 3000, 0.0, 3000, 6000.0, WRAPPED, id="near-wrap-long-gap"),
        # Real reboots: the boot time moved past the previous poll.
        pytest.param(90_000_000, 0.0, 3000, 60.0, REBOOTED, id="decrease-is-reboot"),
        pytest.param(90_000_000, 0.0, 6300, 60.0, REBOOTED, id="reboot-up-for-whole-interval"),
        pytest.param(9 * DAY, 0.0, 5 * DAY, 7 * 86_400.0, REBOOTED, id="rebooted-while-away"),
        pytest.param(1_000_000, 0.0, 30_000, 600.0, REBOOTED, id="reboot-collector-jumped"),
        # Went up while we could not see it: only the engine boots / host uptime can tell.
        pytest.param(1000, 0.0, 30_000, 600.0, STEADY, id="up-less-than-wall-clock"),
    ],
)
def test_ticks_change(prev_ticks: int, prev_at: float, ticks: int, at: float, change: str) -> None:
    assert ticks_change(prev_ticks, prev_at, ticks, at) is change
    assert is_reboot(prev_ticks, prev_at, ticks, at) is (change is REBOOTED)


def test_a_frozen_clock_polled_for_a_day_never_reboots() -> None:
    prev_at, ticks = 0.0, 5 * DAY
    for poll in range(1, 1441):
        at = poll * 60.0
        assert ticks_change(ticks, prev_at, ticks, at) is STEADY
        prev_at = at


@pytest.mark.parametrize(
    ("prev", "cur", "change", "evidence"),
    [
        pytest.param(
            Clocks(0.0, 9 * DAY), Clocks(60.0, 3000), REBOOTED, "sysUpTime", id="sysuptime-alone"
        ),
        pytest.param(
            Clocks(0.0, 9 * DAY, hr_uptime_ticks=40 * DAY),
            Clocks(60.0, 3000, hr_uptime_ticks=40 * DAY + 6000),
            STEADY,
            "hrSystemUptime",
            id="agent-restart-host-up",
        ),
        pytest.param(
            Clocks(0.0, 9 * DAY, hr_uptime_ticks=9 * DAY),
            Clocks(60.0, 3000, hr_uptime_ticks=3100),
            REBOOTED,
            "hrSystemUptime",
            id="host-rebooted",
        ),
        pytest.param(
            Clocks(0.0, 9 * DAY, engine_boots=7),
            Clocks(600.0, 10 * DAY, engine_boots=8),
            REBOOTED,
            "snmpEngineBoots",
            id="engine-boots-up",
        ),
        pytest.param(
            Clocks(0.0, 9 * DAY, engine_boots=7),
            Clocks(60.0, 3000, engine_boots=7),
            STEADY,
            "snmpEngineBoots",
            id="engine-boots-same",
        ),
        pytest.param(
            Clocks(0.0, WRAP - 3000, engine_boots=7),
            Clocks(60.0, 3000, engine_boots=7),
            WRAPPED,
            "snmpEngineBoots",
            id="engine-boots-same-wrap",
        ),
        pytest.param(
            Clocks(0.0, 9 * DAY, engine_boots=7),
            Clocks(60.0, 3000, engine_boots=0),
            REBOOTED,
            "sysUpTime",
            id="engine-boots-reset-falls-back",
        ),
        pytest.param(
            Clocks(0.0, None), Clocks(60.0, 3000), STEADY, "sysUpTime", id="no-uptime-before"
        ),
    ],
)
def test_judge_uptime(prev: Clocks, cur: Clocks, change: str, evidence: str) -> None:
    verdict = judge_uptime(prev, cur)
    assert (verdict.change, verdict.evidence) == (change, evidence)


@pytest.mark.parametrize(
    ("ticks", "engine_time", "wraps"),
    [
        pytest.param(98, None, None, id="no-engine-time"),
        pytest.param(5 * DAY, 5 * 86_400, 0, id="agree-no-wrap"),
        pytest.param(98, WRAP // 100 + 1, 1, id="one-wrap-0.98s"),
        pytest.param(98, 2 * WRAP // 100 + 1, 2, id="two-wraps"),
        pytest.param(50 * DAY, 3 * 86_400, None, id="engine-restarted-later"),
        pytest.param(98, WRAP // 100 + 86_400, None, id="disagree-by-a-day"),
    ],
)
def test_wraps_from_engine_time(ticks: int, engine_time: int | None, wraps: int | None) -> None:
    assert wraps_from_engine_time(ticks, engine_time) == wraps


def test_uptime_after_a_wrap_is_the_true_uptime() -> None:
    assert uptime_seconds(98) == 0.98
    assert uptime_seconds(98, wraps=1) == pytest.approx(42_949_673.94)


@pytest.mark.parametrize(
    ("prev", "cur", "seconds", "bits", "speed", "disc", "expected"),
    [
        pytest.param(0, 750_000_000, 60.0, 64, 1000.0, False, 1e8, id="100Mbps-on-1G"),
        pytest.param(WRAP - 1000, 1000, 1.0, 32, 1000.0, False, 16000.0, id="32bit-wrap"),
        pytest.param(5000, 1000, 1.0, 64, 1000.0, False, None, id="64bit-reset-no-rate"),
        pytest.param(1000, 5000, 1.0, 64, 1000.0, True, None, id="reboot-discontinuity"),
        pytest.param(0, 10**12, 1.0, 64, 1000.0, False, None, id="above-link-speed-spike"),
        pytest.param(0, 10**12, 1.0, 64, None, False, 8e12, id="speed-unknown-no-bound"),
        pytest.param(None, 10, 1.0, 64, 1000.0, False, None, id="first-sample"),
        pytest.param(10, 20, 0.0, 64, 1000.0, False, None, id="no-time-elapsed"),
        pytest.param(100, 100, 10.0, 32, 100.0, False, 0.0, id="idle"),
    ],
)
def test_counter_rate(
    prev: int | None,
    cur: int,
    seconds: float,
    bits: int,
    speed: float | None,
    disc: bool,
    expected: float | None,
) -> None:
    rate = counter_rate(prev, cur, seconds, bits=bits, speed_mbps=speed, discontinuity=disc)
    assert rate == expected
    assert rate is None or rate >= 0


@pytest.mark.parametrize(
    ("total", "prev", "cur", "bits", "speed", "disc", "expected"),
    [
        pytest.param(None, None, 500, 32, 1000.0, False, 500, id="first-reading"),
        pytest.param(100, 100, None, 32, 1000.0, False, None, id="not-read"),
        pytest.param(100, 100, 700, 32, 1000.0, False, 700, id="32bit-steady"),
        pytest.param(WRAP - 10, WRAP - 10, 90, 32, 1000.0, False, WRAP + 90, id="32bit-wrap"),
        pytest.param(7 * WRAP, WRAP - 10, 90, 32, 1000.0, False, 7 * WRAP + 100, id="8th-wrap"),
        pytest.param(2**63, 2**63, 2**63 + 5, 64, 1000.0, False, 2**63 + 5, id="64bit-steady"),
        pytest.param(9000, 9000, 100, 64, 1000.0, False, 100, id="64bit-back-restarts"),
        pytest.param(5 * WRAP, 9000, 100, 32, 1000.0, True, 100, id="reboot-restarts"),
        pytest.param(5000, 5000, 4000, 32, 0.001, False, 4000, id="wrap-faster-than-link"),
        pytest.param(5000, 5000, 4000, 32, None, False, WRAP + 4000, id="errors-no-bound"),
    ],
)
def test_extend_counter(
    total: int | None,
    prev: int | None,
    cur: int | None,
    bits: int,
    speed: float | None,
    disc: bool,
    expected: int | None,
) -> None:
    got = extend_counter(
        total, prev, cur, bits=bits, seconds=60.0, speed_mbps=speed, discontinuity=disc
    )
    assert got == expected


def test_a_wrapping_32bit_counter_gives_a_monotonic_total() -> None:
    # 100 Mbit/s for an hour through a 32-bit counter: it wraps every ~5.7 minutes.
    rate = 12_500_000  # octets per second
    total: int | None = None
    prev: int | None = None
    totals = []
    for minute in range(61):
        raw = (10**6 + rate * 60 * minute) % WRAP
        total = extend_counter(total, prev, raw, bits=32, seconds=60.0, speed_mbps=1000.0)
        prev = raw
        assert total is not None
        totals.append(total)
    assert totals == sorted(totals)
    assert totals[-1] - totals[0] == rate * 3600


@pytest.mark.parametrize(
    ("durations", "counts"),
    [
        pytest.param([], [0] * 9, id="empty"),
        pytest.param([0.01], [1] * 9, id="fast"),
        pytest.param([0.05, 0.051], [1, 2, 2, 2, 2, 2, 2, 2, 2], id="on-a-bound"),
        pytest.param([3.0, 45.0], [0, 0, 0, 0, 0, 0, 1, 1, 1], id="slow-and-beyond"),
    ],
)
def test_duration_histogram(durations: list[float], counts: list[int]) -> None:
    hist = DurationHistogram()
    for d in durations:
        hist.observe(d)
    assert hist.counts == counts
    assert (hist.total, hist.sum) == (len(durations), pytest.approx(sum(durations)))
