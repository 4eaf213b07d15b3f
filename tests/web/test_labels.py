"""The status page's words and figures: pure functions, table-driven."""

from __future__ import annotations

import re

import pytest

from edumon.exporters.web.labels import (
    CLASSROOM_STATES,
    SCHOOL_STATES,
    State,
    bits_per_second,
    duration,
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
