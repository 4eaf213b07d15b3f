"""The state turns poll results into events: link, speed, reboot, reachability."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edumon.config import Config, inventory_of
from edumon.domain.models import DeviceUnreachable, OperStatus
from edumon.domain.state import NetworkState
from tests.domain.readings import port, reading


def kinds(applied_events: tuple[object, ...]) -> list[str]:
    return [e.kind.value for e in applied_events]  # type: ignore[attr-defined]


def test_first_poll_has_no_events_and_fills_state(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    applied = state.apply(reading("acc", 100.0, 5000, port(2, "Gi0/2"), port(3, "Gi0/3", up=False)))
    assert applied.events == ()
    assert state.devices["acc"].reachable is True
    assert state.devices["acc"].uptime_seconds == 50.0
    assert state.interface("acc", "Gi0/2").speed_mbps == 1000.0  # type: ignore[union-attr]
    assert state.interface("acc", "Gi0/3").speed_mbps is None  # type: ignore[union-attr]
    assert len(applied.interface_samples) == 2


def test_link_down_and_up_events_carry_the_classroom(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 0, port(2, "Gi0/2")))
    down = state.apply(reading("acc", 60.0, 6000, port(2, "Gi0/2", up=False)))
    assert kinds(down.events) == ["link_down"]
    event = down.events[0]
    assert (event.school, event.classroom, event.interface) == ("S1", "S1-101", "Gi0/2")
    up = state.apply(reading("acc", 120.0, 12000, port(2, "Gi0/2", speed=100.0)))
    assert kinds(up.events) == ["link_up"]
    assert up.events[0].details["speed_mbps"] == 100.0


def test_speed_downgrade_on_an_up_port(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 0, port(2, "Gi0/2", speed=1000.0)))
    applied = state.apply(reading("acc", 60.0, 6000, port(2, "Gi0/2", speed=100.0)))
    assert kinds(applied.events) == ["speed_downgrade"]
    assert applied.events[0].details == {"previous_speed_mbps": 1000.0, "speed_mbps": 100.0}


def test_reboot_is_an_event_and_a_counter_discontinuity(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 9_000_000, port(2, "Gi0/2", octets=10**9)))
    applied = state.apply(reading("acc", 60.0, 1500, port(2, "Gi0/2", octets=1000)))
    assert kinds(applied.events) == ["device_reboot"]
    assert state.devices["acc"].reboots == 1
    assert applied.interface_samples[0].in_bps is None  # never a negative or spike rate


def test_uptime_wrap_is_not_a_reboot(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 2**32 - 3000, port(2, "Gi0/2", octets=0)))
    applied = state.apply(reading("acc", 60.0, 3000, port(2, "Gi0/2", octets=750_000_000)))
    assert applied.events == ()
    assert applied.interface_samples[0].in_bps == 1e8


def test_unreachable_switch_makes_ports_unknown_not_down(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 0, port(2, "Gi0/2")))
    applied = state.apply(DeviceUnreachable("acc", 60.0, "no reply after 3 attempts"))
    assert kinds(applied.events) == ["device_unreachable"]
    iface = state.interface("acc", "Gi0/2")
    assert iface is not None
    assert iface.known is False
    assert iface.oper_status is OperStatus.UP  # last known, flagged unknown; no link_down event
    again = state.apply(DeviceUnreachable("acc", 120.0, "no reply"))
    assert again.events == ()  # one event per transition, not per failed poll
    back = state.apply(reading("acc", 180.0, 18000, port(2, "Gi0/2")))
    assert kinds(back.events) == ["device_reachable"]
    assert state.interface("acc", "Gi0/2").known is True  # type: ignore[union-attr]


def test_events_are_not_raised_for_ports_after_reconnect_if_unchanged(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("core", 0.0, 0, port(1, "Gi0/1")))
    state.apply(DeviceUnreachable("core", 60.0, "timeout"))
    back = state.apply(reading("core", 120.0, 12000, port(1, "Gi0/1")))
    assert kinds(back.events) == ["device_reachable"]
    assert back.events[0].school == "S1"


DAY = 86_400 * 100  # ticks
WRAP = 2**32


def uptime_series(district: Config, polls: list[tuple[float, int]]) -> tuple[int, list[float]]:
    """Reboots seen, and the rates of a port carrying 100 Mbit/s, over a series of polls."""
    state = NetworkState(inventory_of(district))
    rates: list[float] = []
    for at, ticks in polls:
        octets = int(at * 12_500_000)
        applied = state.apply(reading("acc", at, ticks, port(2, "Gi0/2", octets=octets)))
        rate = applied.interface_samples[0].in_bps
        if rate is not None:
            rates.append(rate)
    return state.devices["acc"].reboots, rates


@pytest.mark.parametrize(
    ("name", "ticks_at"),
    [
        ("frozen", lambda n, at: 5 * DAY),
        ("slow", lambda n, at: 5 * DAY + n * 10),
        ("fast", lambda n, at: 5 * DAY + n * 60_000),
        ("jumps-forward", lambda n, at: 5 * DAY + n * 6000 + (DAY if n == 5 else 0)),
        ("jumps-back-10s", lambda n, at: 5 * DAY + n * 6000 - (1000 if n >= 5 else 0)),
        ("wraps", lambda n, at: (WRAP - 30_000 + n * 6000) % WRAP),
    ],
)
def test_a_misbehaving_clock_raises_no_reboot_and_keeps_rates(
    district: Config, name: str, ticks_at: Callable[[int, float], int]
) -> None:
    polls = [(n * 60.0, ticks_at(n, n * 60.0)) for n in range(20)]
    reboots, rates = uptime_series(district, polls)
    assert reboots == 0, name
    assert rates == [pytest.approx(1e8)] * 19, name


def test_a_collector_clock_racing_ahead_raises_no_reboot(district: Config) -> None:
    # A fake clock moving ten minutes per real second: the agent's uptime advances by a second.
    polls = [(n * 600.0, 5 * DAY + n * 100) for n in range(20)]
    reboots, _ = uptime_series(district, polls)
    assert reboots == 0


def test_a_real_reboot_among_clock_trouble_is_seen_once(district: Config) -> None:
    polls = [(n * 60.0, 5 * DAY) for n in range(5)]  # frozen
    polls += [(300.0 + n * 60.0, 3000 + n * 6000) for n in range(5)]  # rebooted, counting again
    reboots, _ = uptime_series(district, polls)
    assert reboots == 1


def test_uptime_stays_true_across_the_497_day_wrap(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, WRAP - 3000, port(2, "Gi0/2")))
    applied = state.apply(reading("acc", 60.0, 3000, port(2, "Gi0/2")))
    dev = state.devices["acc"]
    assert applied.events == ()
    assert dev.uptime_wraps == 1
    assert dev.uptime_seconds == pytest.approx((WRAP + 3000) / 100)
    assert applied.device_sample.uptime_seconds == dev.uptime_seconds
    # A reboot afterwards starts the count again.
    state.apply(reading("acc", 120.0, 500, port(2, "Gi0/2")))
    assert (dev.reboots, dev.uptime_wraps, dev.uptime_seconds) == (1, 0, 5.0)


def test_uptime_of_a_device_first_seen_after_a_wrap_comes_from_the_engine_time(
    district: Config,
) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 98, port(2, "Gi0/2"), engine_boots=3, engine_time=WRAP // 100))
    assert state.devices["acc"].uptime_seconds == pytest.approx((WRAP + 98) / 100)


def test_engine_boots_decide_where_the_agent_has_them(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 1000, port(2, "Gi0/2"), engine_boots=3))
    # Up longer than it was, but its engine booted again while we were away.
    applied = state.apply(reading("acc", 600.0, 30_000, port(2, "Gi0/2"), engine_boots=4))
    assert kinds(applied.events) == ["device_reboot"]
    assert applied.events[0].details["evidence"] == "snmpEngineBoots"
    # sysUpTime back to 0 but the same boots: the agent restarted, not the switch.
    applied = state.apply(reading("acc", 660.0, 100, port(2, "Gi0/2"), engine_boots=4))
    assert applied.events == ()


def test_host_uptime_tells_an_agent_restart_from_a_reboot(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("acc", 0.0, 9 * DAY, port(2, "Gi0/2"), hr_ticks=9 * DAY))
    applied = state.apply(reading("acc", 60.0, 500, port(2, "Gi0/2"), hr_ticks=9 * DAY + 6000))
    assert applied.events == ()
    applied = state.apply(reading("acc", 120.0, 900, port(2, "Gi0/2"), hr_ticks=1000))
    assert kinds(applied.events) == ["device_reboot"]


def test_32bit_counters_become_a_monotonic_total(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    raw = WRAP - 6_000_000_000 // 8 // 2  # wraps within the first minute at 100 Mbit/s
    state.apply(reading("acc", 0.0, 0, port(2, "Gi0/2", octets=raw, bits=32)))
    totals = []
    for n in range(1, 10):
        cur = (raw + n * 750_000_000) % WRAP
        state.apply(reading("acc", n * 60.0, n * 6000, port(2, "Gi0/2", octets=cur, bits=32)))
        iface = state.interface("acc", "Gi0/2")
        assert iface is not None
        totals.append(iface.in_octets_total)
        assert iface.in_bps == pytest.approx(1e8)
    assert totals == [raw + n * 750_000_000 for n in range(1, 10)]
    # A reboot restarts the total from the switch's counter: a real reset.
    state.apply(reading("acc", 600.0, 100, port(2, "Gi0/2", octets=5000, bits=32)))
    assert state.interface("acc", "Gi0/2").in_octets_total == 5000  # type: ignore[union-attr]


def test_speed_downgrades_are_counted_per_port(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    speeds = [1000.0, 100.0, 1000.0, 10.0, 10.0]
    for n, speed in enumerate(speeds):
        state.apply(reading("acc", n * 60.0, n * 6000, port(2, "Gi0/2", speed=speed)))
    state.apply(reading("acc", 300.0, 30_000, port(2, "Gi0/2", up=False)))
    state.apply(reading("acc", 360.0, 36_000, port(2, "Gi0/2", speed=1.0)))  # down, then up
    assert state.interface("acc", "Gi0/2").speed_downgrades == 2  # type: ignore[union-attr]
