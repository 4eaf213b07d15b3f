"""The city benchmark's pure figures (bench/city_stats.py): percentiles, poll coverage and gaps."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the module from its file.
    path = Path(__file__).resolve().parents[2] / "bench" / "city_stats.py"
    spec = importlib.util.spec_from_file_location("city_stats", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("city_stats", module)
    spec.loader.exec_module(module)
    return module


cs = _load()


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([3.0], 99, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        (list(map(float, range(1, 101))), 99, 99.01),
    ],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    got = cs.percentile(values, q)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_percentile_rejects_q_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        cs.percentile([1.0], 101)


@pytest.mark.parametrize(
    ("arrivals", "expected"),
    [
        ([], []),
        ([0.0, 60.0, 120.0], [0.0, 60.0, 120.0]),
        # A retry 2 s after the first GET is the same poll.
        ([0.0, 2.0, 4.0, 60.0], [0.0, 60.0]),
        ([60.0, 0.0], [0.0, 60.0]),
    ],
)
def test_poll_starts(arrivals: list[float], expected: list[float]) -> None:
    assert cs.poll_starts(arrivals, same_poll_within=15) == expected


def test_gaps_anchor_on_the_poll_before_the_window_and_count_the_tail() -> None:
    polls = {
        "steady": [95.0, 155.0, 215.0, 275.0],
        # Last polled 40 s into the window: the 60 s to the end is its worst gap.
        "stopped": [90.0, 140.0],
        # Polled before the window, then only 80 s later.
        "late": [99.0, 179.0, 239.0, 280.0],
    }
    gaps = cs.poll_gaps(polls, start=100.0, end=300.0, limit=66.0)
    assert gaps.worst == pytest.approx(160.0)
    assert gaps.worst_switch == "stopped"
    assert gaps.over == 2
    assert gaps.never_polled == 0


def test_a_switch_never_polled_is_one_gap_of_the_whole_window() -> None:
    gaps = cs.poll_gaps({"a": [110.0, 170.0]}, 100.0, 200.0, 66.0, switches=["a", "b"])
    assert gaps.never_polled == 1
    assert gaps.worst == pytest.approx(100.0)
    assert gaps.worst_switch == "b"
    assert gaps.over == 1


def test_coverage_counts_whole_cycles_only() -> None:
    polls = {"a": [10.0, 70.0, 130.0], "b": [20.0, 140.0], "c": []}
    # Cycles [0, 60) and [60, 120); the 30 s left over are not a cycle.
    assert cs.coverage_per_cycle(polls, 0.0, 150.0, 60.0) == pytest.approx([2 / 3, 1 / 3])
    assert cs.coverage_per_cycle({}, 0.0, 150.0, 60.0) == []


def test_coverage_tolerates_a_poll_just_after_the_cycle() -> None:
    # Polled every 61 s: no poll within [60, 120), one at 122 within the 6 s tolerance.
    polls = {"a": [0.0, 61.0 * 2]}
    assert cs.coverage_per_cycle(polls, 0.0, 125.0, 60.0) == [1.0, 0.0]
    assert cs.coverage_per_cycle(polls, 0.0, 125.0, 60.0, tolerance=6.0) == [1.0, 1.0]


@pytest.mark.parametrize(
    ("start", "end", "seconds", "expected"),
    [(1000, 2000, 60, 60_000.0), (1000, 1000, 60, 0.0), (0, 10, 0, None)],
)
def test_growth_per_hour(start: int, end: int, seconds: float, expected: float | None) -> None:
    assert cs.growth_per_hour(start, end, seconds) == expected


def test_table_aligns_wide_characters() -> None:
    text = cs.render_table([cs.Row("班班通", "1", "0", "FAIL"), cs.Row("ab", "22")])
    lines = text.splitlines()
    assert lines[0].startswith("figure")

    def column(line: str, value: str) -> int:
        # Display columns before ``value``: a CJK character takes two.
        before = line[: line.index(value)]
        return len(before) + sum(1 for ch in before if ord(ch) > 0x2E7F)

    assert column(lines[2], "1") == column(lines[3], "22") == column(lines[0], "measured")


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "n/a"), (512, "512 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB"), (-2048, "-2.0 KiB")],
)
def test_human_bytes(n: float | None, text: str) -> None:
    assert cs.human_bytes(n) == text
