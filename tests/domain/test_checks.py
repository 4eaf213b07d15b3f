"""Target compliance: pass / fail / unknown with a reason, for uplinks and classrooms."""

from __future__ import annotations

from edumon.config import Config, inventory_of
from edumon.domain.checks import CheckName, Verdict, check_district
from edumon.domain.models import DeviceUnreachable
from edumon.domain.state import NetworkState
from edumon.domain.targets import PROFILES, resolve_targets
from tests.domain.readings import port, reading


def polled(
    district: Config,
    core_up: bool = True,
    core_speed: float = 1000.0,
    room_speeds: tuple[float | None, float | None] = (1000.0, 1000.0),
) -> NetworkState:
    state = NetworkState(inventory_of(district))
    state.apply(reading("core", 0.0, 0, port(1, "Gi0/1", up=core_up, speed=core_speed)))
    rooms = [
        port(2 + i, f"Gi0/{2 + i}", up=s is not None, speed=s) for i, s in enumerate(room_speeds)
    ]
    state.apply(reading("acc", 0.0, 0, *rooms))
    return state


def test_all_at_target_passes_except_unmapped_classroom(district: Config) -> None:
    result = check_district(polled(district), PROFILES["district-1000m"])["S1"]
    by_room = {r.classroom: r for r in result.classrooms}
    assert by_room["S1-101"].verdict is Verdict.PASS
    assert by_room["S1-103"].verdict is Verdict.UNKNOWN
    assert "no switch port" in by_room["S1-103"].reason_en
    assert [r.verdict for r in result.uplink] == [Verdict.PASS, Verdict.PASS]
    assert result.verdict is Verdict.UNKNOWN


def test_100m_classroom_fails_district_profile_but_passes_national(district: Config) -> None:
    state = polled(district, room_speeds=(100.0, 1000.0))
    strict = check_district(state, PROFILES["district-1000m"])["S1"]
    room = next(r for r in strict.classrooms if r.classroom == "S1-101")
    assert room.verdict is Verdict.FAIL
    assert "100 Mbit/s" in room.reason_en
    assert "1000 Mbit/s" in room.reason_en
    assert strict.verdict is Verdict.FAIL
    national = check_district(state, PROFILES["national-2021"])["S1"]
    room = next(r for r in national.classrooms if r.classroom == "S1-101")
    assert room.verdict is Verdict.PASS


def test_uplink_down_fails_and_classrooms_become_unknown(district: Config) -> None:
    result = check_district(polled(district, core_up=False), PROFILES["district-1000m"])["S1"]
    up, speed = result.uplink
    assert (up.check, up.verdict) == (CheckName.UPLINK_UP, Verdict.FAIL)
    assert speed.verdict is Verdict.UNKNOWN
    assert all(r.verdict is Verdict.UNKNOWN for r in result.classrooms)
    assert "uplink is down" in result.classrooms[0].reason_en


def test_slow_uplink_fails_speed_check(district: Config) -> None:
    result = check_district(polled(district, core_speed=100.0), PROFILES["district-1000m"])["S1"]
    assert [r.verdict for r in result.uplink] == [Verdict.PASS, Verdict.FAIL]
    custom = resolve_targets("custom", uplink_mbps=100.0, classroom_mbps=100.0)
    relaxed = check_district(polled(district, core_speed=100.0), custom)["S1"]
    assert relaxed.uplink[1].verdict is Verdict.PASS


def test_down_classroom_port_is_judged_by_last_speed_seen_up(district: Config) -> None:
    state = polled(district, room_speeds=(100.0, 1000.0))
    state.apply(reading("acc", 60.0, 6000, port(2, "Gi0/2", up=False), port(3, "Gi0/3")))
    room = check_district(state, PROFILES["district-1000m"])["S1"].classrooms[0]
    assert room.verdict is Verdict.FAIL
    assert "last seen up" in room.reason_en


def test_never_seen_up_port_is_unknown(district: Config) -> None:
    state = polled(district, room_speeds=(None, 1000.0))
    room = check_district(state, PROFILES["district-1000m"])["S1"].classrooms[0]
    assert room.verdict is Verdict.UNKNOWN


def test_unreachable_access_switch_makes_classrooms_unknown(district: Config) -> None:
    state = polled(district)
    state.apply(DeviceUnreachable("acc", 60.0, "no reply after 3 attempts"))
    rooms = check_district(state, PROFILES["district-1000m"])["S1"].classrooms
    assert rooms[0].verdict is Verdict.UNKNOWN
    assert "unreachable" in rooms[0].reason_en


def test_wrong_port_name_is_unknown_with_a_hint(district: Config) -> None:
    state = NetworkState(inventory_of(district))
    state.apply(reading("core", 0.0, 0, port(1, "GigabitEthernet0/1")))
    up = check_district(state, PROFILES["district-1000m"])["S1"].uplink[0]
    assert up.verdict is Verdict.UNKNOWN
    assert "not found" in up.reason_en
    assert "ifName" in up.reason_en


def test_legacy_profile_has_no_classroom_checks(district: Config) -> None:
    result = check_district(polled(district), PROFILES["legacy-2012"])["S1"]
    assert result.classrooms == ()
    assert result.verdict is Verdict.PASS


def test_unmapped_classroom_is_judged_by_its_terminal_link_speed(district: Config) -> None:
    state = polled(district)
    slow = check_district(state, PROFILES["district-1000m"], {"S1-103": 100.0})["S1"]
    room = next(r for r in slow.classrooms if r.classroom == "S1-103")
    assert room.verdict is Verdict.FAIL
    assert "terminal" in room.reason_en
    fast = check_district(state, PROFILES["district-1000m"], {"S1-103": 1000.0})["S1"]
    assert next(r for r in fast.classrooms if r.classroom == "S1-103").verdict is Verdict.PASS
    # A mapped port's switch reading wins over what the terminal says.
    mapped = check_district(state, PROFILES["district-1000m"], {"S1-101": 100.0})["S1"]
    assert next(r for r in mapped.classrooms if r.classroom == "S1-101").verdict is Verdict.PASS


def _states(district: Config) -> list[NetworkState]:
    """The district in every condition the checks tell apart."""
    never = NetworkState(inventory_of(district))
    unreachable = polled(district)
    unreachable.apply(DeviceUnreachable("acc", 60.0, "timeout"))
    return [
        never,
        polled(district),
        polled(district, core_up=False),
        polled(district, core_speed=100.0),
        polled(district, room_speeds=(100.0, None)),
        unreachable,
    ]


def test_every_reason_is_chinese_with_an_english_twin(district: Config) -> None:
    seen = set()
    for state in _states(district):
        for profile in ("district-1000m", "national-2021"):
            for r in check_district(state, PROFILES[profile])["S1"].results:
                seen.add(r.reason)
                # Chinese for the school's administrator, English beside it, never the same.
                assert any("\u4e00" <= ch <= "\u9fff" for ch in r.reason), r.reason
                assert r.reason_en.isascii(), r.reason_en
                assert r.reason_en
                assert r.reason_en != r.reason
    assert len(seen) >= 8  # the conditions above give distinct reasons
