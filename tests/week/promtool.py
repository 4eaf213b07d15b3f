"""The shipped alert rules, evaluated by promtool on the daemon's real /metrics scrapes.

Each scrape holds until the next one (the daemon's state only changes when the test moves its
clock), so a window's scrapes become promtool input series at one sample a minute, and every
minute of the window is checked: the alerts firing then must be exactly the expected ones. A
false alert, a missed one or one that resolves and fires again (at a bell) fails that minute.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
QUERY = 'count by (alertname, school, classroom, device) (ALERTS{alertstate="firing"})'
LABELS = ("alertname", "school", "classroom", "device")

Series = tuple[str, tuple[tuple[str, str], ...]]
AlertKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    for_minutes: int


def rules() -> list[Rule]:
    """Every alerting rule shipped in deploy/prometheus/rules/."""
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.append(Rule(rule["alert"], rule["expr"], _minutes(rule.get("for", "0m"))))
    return out


def _minutes(duration: str) -> int:
    units = {"s": 1 / 60, "m": 1, "h": 60}
    total = sum(float(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", str(duration)))
    return math.ceil(total)


def rule_named(name: str) -> Rule:
    """The shipped alert rule of that name."""
    found = [r for r in rules() if r.name == name]
    assert len(found) == 1, f"expected one rule {name}, found {len(found)}"
    return found[0]


def metric_names() -> set[str]:
    names = set()
    for rule in rules():
        names |= set(re.findall(r"\b(edumon_[a-z0-9_]+|up)\b", rule.expr))
    return names


def parse_scrape(text: str, wanted: set[str]) -> dict[Series, float]:
    """The samples of a /metrics text whose names a rule uses (histogram parts included)."""
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not any(sample.name == w or sample.name.startswith(w + "_") for w in wanted):
                continue
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def _series_text(series: Series) -> str:
    name, labels = series
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return f"{name}{{{body}}}"


def _values(per_minute: Sequence[float | None]) -> str:
    """promtool's notation; a series that leaves the scrape gets a staleness marker first, as
    Prometheus writes one (without it promtool would keep the last value for 5 minutes)."""
    parts: list[str] = []
    i = 0
    while i < len(per_minute):
        j = i
        while j + 1 < len(per_minute) and per_minute[j + 1] == per_minute[i]:
            j += 1
        run = j - i + 1
        v = per_minute[i]
        if v is None:
            if i > 0:
                parts.append("stale")
                run -= 1
            if run:
                parts.append(f"_x{run}")
        else:
            text = repr(v) if not float(v).is_integer() else str(int(v))
            parts.append(text if run == 1 else f"{text}+0x{run - 1}")
        i = j + 1
    return " ".join(parts)


def input_series(
    scrapes: Sequence[tuple[float, Mapping[Series, float]]], start: float, minutes: int
) -> list[dict[str, str]]:
    """promtool input_series: each scrape's value held until the next scrape, a sample a minute."""
    names = sorted({s for _, samples in scrapes for s in samples})
    out = []
    for series in names:
        values: list[float | None] = []
        k = 0
        current: float | None = None
        for minute in range(minutes):
            t = start + minute * 60
            while k < len(scrapes) and scrapes[k][0] <= t:
                current = scrapes[k][1].get(series)
                k += 1
            values.append(current)
        out.append({"series": _series_text(series), "values": _values(values)})
    return out


def alert_key(**labels: str) -> AlertKey:
    return tuple((k, labels[k]) for k in LABELS if labels.get(k))


def expected_samples(keys: Iterable[AlertKey]) -> list[dict[str, object]]:
    return [
        {"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}", "value": 1}
        for key in sorted(keys)
    ]


@dataclass
class Window:
    """One scenario window: scrapes, and the alerts expected at each minute."""

    name: str
    start: float
    minutes: int
    scrapes: list[tuple[float, dict[Series, float]]]
    expected: list[set[AlertKey]]
    """Per minute from ``start``: the alerts that must be firing."""

    def test_group(self) -> dict[str, object]:
        return {
            "name": self.name,
            "interval": "1m",
            "input_series": input_series(self.scrapes, self.start, self.minutes),
            "promql_expr_test": [
                {
                    "expr": QUERY,
                    "eval_time": f"{minute}m",
                    "exp_samples": expected_samples(self.expected[minute]),
                }
                for minute in range(self.minutes)
            ],
        }


_GOT = re.compile(r"\{([^}]*)\}\s+[0-9.eE+-]+")
_FAIL = re.compile(r"time: ([0-9hms]+),\s*exp:(.*?)\s*got:(.*?)(?=\n\s*expr:|\Z)", re.S)


def run_promtool(window: Window, directory: Path) -> list[set[AlertKey]]:
    """Evaluate the shipped rules on one window; the alerts found firing at each minute.

    Where promtool agrees with the expectation at a minute, what fired is what was expected
    (promtool checked it); where it does not, its report says what fired instead.
    """
    test_file = directory / f"week-{len(list(directory.glob('week-*.yml'))):02d}.yml"
    doc = {
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.yml"))],
        "evaluation_interval": "1m",
        "tests": [window.test_group()],
    }
    test_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    produced = [set(e) for e in window.expected]
    if result.returncode == 0:
        return produced
    report = result.stdout + result.stderr
    failures = _FAIL.findall(report)
    if not failures:
        raise AssertionError(f"promtool failed on {test_file}:\n{report[-4000:]}")
    for minute, _exp, got in failures:
        keys = set()
        for labels in _GOT.findall(got):
            keys.add(alert_key(**dict(re.findall(r'(\w+)="([^"]*)"', labels))))
        produced[_minutes(minute)] = keys
    return produced
