"""The state turns poll results into events: link, speed, reboot, reachability."""

from __future__ import annotations

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
