"""Counter and uptime arithmetic, table-driven."""

import pytest

from edumon.domain.counters import counter_rate, is_reboot

WRAP = 2**32


@pytest.mark.parametrize(
    ("prev_ticks", "prev_at", "ticks", "at", "reboot"),
    [
        pytest.param(1_000_000, 0.0, 1_006_000, 60.0, False, id="steady-60s"),
        pytest.param(WRAP - 3000, 0.0, 3000, 60.0, False, id="wrap-at-2^32-not-a-reboot"),
        pytest.param(WRAP - 100, 0.0, 5900, 60.0, False, id="wrap-just-before"),
        pytest.param(90_000_000, 0.0, 3000, 60.0, True, id="decrease-is-reboot"),
        pytest.param(1000, 0.0, 30_000, 600.0, True, id="rebooted-while-unreachable"),
        pytest.param(WRAP - 3000, 0.0, 2_000_000, 60.0, True, id="near-wrap-but-reboot"),
        pytest.param(1_000_000, 0.0, 1_006_200, 60.0, False, id="poll-jitter-2s"),
        pytest.param(1_000_000, 0.0, 1_000_000, 0.0, False, id="same-instant"),
    ],
)
def test_is_reboot(prev_ticks: int, prev_at: float, ticks: int, at: float, reboot: bool) -> None:
    assert is_reboot(prev_ticks, prev_at, ticks, at) is reboot


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
