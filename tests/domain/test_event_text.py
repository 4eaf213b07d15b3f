"""Event messages in Chinese and English, and the kind of device each event is about."""

from __future__ import annotations

import pytest

from edumon.domain.event_text import DEVICE_KINDS, Names, describe, device_kind, device_of
from edumon.domain.models import Event, EventKind

NAMES = Names(school="第一小学", classroom="一年级(1)班")


@pytest.mark.parametrize(
    ("event", "zh", "en"),
    [
        (
            Event(
                0, EventKind.LINK_DOWN, "sw-a", "A", "Gi0/1", "A-101", "x", {"oper_status": "down"}
            ),
            "第一小学 一年级(1)班（A-101） 交换机 sw-a 端口 Gi0/1 断开（down）",
            "Gi0/1 on sw-a went down (school A, classroom A-101)",
        ),
        (
            Event(
                0,
                EventKind.SPEED_DOWNGRADE,
                "sw-a",
                "A",
                "Gi0/1",
                None,
                "x",
                {"previous_speed_mbps": 1000.0, "speed_mbps": 100.0},
            ),
            "第一小学 交换机 sw-a 端口 Gi0/1 降速：1000 Mbit/s → 100 Mbit/s",
            "Gi0/1 on sw-a changed speed from 1000 Mbit/s to 100 Mbit/s (school A)",
        ),
        (
            # Stored before the reason was kept in details: it is read from the message.
            Event(
                0,
                EventKind.DEVICE_UNREACHABLE,
                "core",
                None,
                None,
                None,
                "switch core unreachable: timeout",
            ),
            "交换机 core 无法访问：timeout",
            "switch core unreachable: timeout",
        ),
        (
            Event(
                0,
                EventKind.TERMINAL_OFFLINE,
                "A-101",
                "A",
                None,
                "A-101",
                "x",
                {"reason": "timeout"},
            ),
            "第一小学 一年级(1)班（A-101） 终端 A-101 离线：心跳停止（断电或断网）",
            "terminal A-101 is offline: its heartbeats stopped (power loss or network cut) "
            "(school A, classroom A-101)",
        ),
        (
            Event(
                0,
                EventKind.SCHOOL_OUTAGE,
                "core",
                "A",
                None,
                None,
                "第一小学（A）上联中断，自 09-01 08:00 起 / school cut off",
            ),
            "第一小学（A）上联中断，自 09-01 08:00 起",
            "school cut off",
        ),
    ],
)
def test_messages(event: Event, zh: str, en: str) -> None:
    assert describe(event, NAMES if event.school else Names()) == (zh, en)


def test_every_kind_has_one_device_kind() -> None:
    kinds = [k for ks in DEVICE_KINDS.values() for k in ks]
    assert sorted(kinds) == sorted(EventKind)


def test_a_school_outage_is_about_the_school_not_its_uplink_switch() -> None:
    outage = Event(0, EventKind.SCHOOL_OUTAGE, "core", "A")
    assert (device_kind(outage.kind), device_of(outage)) == ("school", "A")
    offline = Event(0, EventKind.TERMINAL_OFFLINE, "A-101", "A", classroom="A-101")
    assert (device_kind(offline.kind), device_of(offline)) == ("terminal", "A-101")
