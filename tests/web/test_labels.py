"""The status page's words and figures: pure functions, table-driven."""

from __future__ import annotations

import re

import pytest

from edumon.domain.models import Event, EventKind
from edumon.exporters.web.labels import (
    CLASSROOM_STATES,
    SCHOOL_STATES,
    State,
    bits_per_second,
    duration,
    event_text,
    mbps,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (100, "100M"), (1000, "1000M"), (2500, "2500M"), (10000, "10G"), (40000, "40G")],
)
def test_mbps(value: float | None, text: str) -> None:
    assert mbps(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0, "0 bit/s"),
        (999, "999 bit/s"),
        (1500, "1.5 kbit/s"),
        (2_000_000, "2.0 Mbit/s"),
        (9.87e8, "987.0 Mbit/s"),
        (1.25e9, "1.2 Gbit/s"),
    ],
)
def test_bits_per_second(value: float | None, text: str) -> None:
    assert bits_per_second(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0秒"), (45, "45秒"), (720, "12分"), (3600, "1小时"), (11100, "3小时5分"),
     (86400 * 2 + 3600 * 4, "2天4小时"), (86400, "1天")],
)  # fmt: skip
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_every_state_has_chinese_and_english_names_and_an_order() -> None:
    for state in State:
        assert re.search(r"[\u4e00-\u9fff]", state.zh), state
        assert state.en
        assert state.en.isascii()
    ranks = [s.rank for s in SCHOOL_STATES]
    assert ranks == sorted(ranks)  # listed worst first
    assert State.OFFLINE_IN_LESSON in CLASSROOM_STATES
    assert State.CUT_OFF not in CLASSROOM_STATES  # a school is cut off, not a classroom


EVENTS = [
    (EventKind.LINK_DOWN, {"oper_status": "down"}, "端口断开：sw-a Gi0/2"),
    (EventKind.LINK_UP, {"speed_mbps": 1000.0}, "端口恢复：sw-a Gi0/2，速率 1000M"),
    (
        EventKind.SPEED_DOWNGRADE,
        {"previous_speed_mbps": 1000.0, "speed_mbps": 100.0},
        "端口降速：sw-a Gi0/2 1000M → 100M",
    ),
    (
        EventKind.SPEED_UPGRADE,
        {"previous_speed_mbps": 100.0, "speed_mbps": 1000.0},
        "端口升速：sw-a Gi0/2 100M → 1000M",
    ),
    (EventKind.DEVICE_REBOOT, {}, "交换机 sw-a 已重启"),
    (EventKind.DEVICE_UNREACHABLE, {}, "交换机 sw-a 失联（SNMP 无应答）"),
    (EventKind.DEVICE_REACHABLE, {}, "交换机 sw-a 恢复应答"),
    (EventKind.TERMINAL_ONLINE, {}, "终端 sw-a 上线"),
    (EventKind.TERMINAL_OFFLINE, {"reason": "timeout"}, "终端 sw-a 离线（心跳中断）"),
    (EventKind.SCHOOL_OUTAGE, {}, "第一小学 断网（学校与城域网中断）"),
    (EventKind.SCHOOL_RESTORED, {"duration_seconds": 125}, "第一小学 恢复连通，持续 2分"),
    (EventKind.CLASSROOM_OUTAGE, {"lesson": "第1节 08:00-08:45"}, "上课时间终端离线（第1节"),
    (EventKind.CLASSROOM_RESTORED, {"duration_seconds": 30}, "离线结束，持续 30秒"),
]


def test_every_event_kind_is_described() -> None:
    assert {kind for kind, _, _ in EVENTS} == set(EventKind)


@pytest.mark.parametrize(("kind", "details", "expected"), EVENTS)
def test_events_read_in_chinese_with_the_classroom_named(
    kind: EventKind, details: dict[str, object], expected: str
) -> None:
    interface = "Gi0/2" if kind.value.startswith(("link", "speed")) else None
    event = Event(
        at=0.0,
        kind=kind,
        device_id="sw-a",
        school="A",
        interface=interface,
        classroom="A-102",
        message="an English message the page does not show",
        details=details,
    )
    text = event_text(event, "第一小学", "一年级(2)班")
    assert expected in text
    assert "English" not in text
    about_a_classroom = not kind.value.startswith(("school", "device"))
    if about_a_classroom:
        assert text.startswith("一年级(2)班（A-102）")
