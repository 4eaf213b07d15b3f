"""The exposition text formats, written by hand for the cached families.

Sample lines are the same in the Prometheus text format (0.0.4) and in OpenMetrics 1.0, so the
per-entity cache keeps one text for both; only a family's ``# HELP``/``# TYPE`` header differs
(a counter is typed under its name with ``_total`` in one and without it in the other, an info
family is a gauge in one and ``info`` in the other). The headers are produced once per family
by prometheus_client itself, so they are exactly what its encoders would write.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

Kind = Literal["gauge", "counter", "info"]


class _One:
    """A collector of one family: what prometheus_client's encoders iterate over."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Metric]:
        return (self._metric,)


@dataclass(frozen=True, slots=True, eq=False)
class Family:
    """One metric family whose sample lines are cached per entity.

    Attributes:
        name: the family name as prometheus_client takes it: without ``_total`` for a counter,
            without ``_info`` for an info family.
        kind: gauge, counter or info.
        doc: the HELP text.
        labels: the label names, in the order every sample line carries them.
    """

    name: str
    kind: Kind
    doc: str
    labels: tuple[str, ...]
    sample: str = field(init=False)
    """The sample name: the name with ``_total`` or ``_info`` appended as the kind wants."""
    text_header: str = field(init=False)
    openmetrics_header: str = field(init=False)

    def __post_init__(self) -> None:
        suffix = {"gauge": "", "counter": "_total", "info": "_info"}[self.kind]
        object.__setattr__(self, "sample", self.name + suffix)
        metric: Metric
        if self.kind == "counter":
            metric = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        elif self.kind == "info":
            metric = InfoMetricFamily(self.name, self.doc, labels=self.labels)
        else:
            metric = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        object.__setattr__(self, "text_header", text_latest(_One(metric)).decode())
        om = openmetrics_latest(_One(metric)).decode()  # type: ignore[no-untyped-call]
        object.__setattr__(self, "openmetrics_header", om.removesuffix("# EOF\n"))

    def header(self, openmetrics: bool) -> bytes:
        """``# HELP`` and ``# TYPE`` lines for the format asked for."""
        return (self.openmetrics_header if openmetrics else self.text_header).encode()

    def line(self, value: float, *values: str) -> str:
        """One sample line; ``values`` are the label values in the order of ``labels``."""
        if not values:
            return f"{self.sample} {number(value)}\n"
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for {self.labels}")
        return f"{self.sample}{{{pairs(self.labels, values)}}} {number(value)}\n"

    def line_at(self, base: str, value: float, *extra: str) -> str:
        """One sample line whose leading labels are already rendered (``pairs``) in ``base``.

        An entity's families share their leading labels (a port's device, interface, school and
        classroom): rendering them once per entity saves most of the formatting.
        """
        if extra:
            base = f"{base},{pairs(self.labels[len(self.labels) - len(extra) :], extra)}"
        return f"{self.sample}{{{base}}} {number(value)}\n"


def pairs(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``name="value"`` pairs, comma-separated, values escaped."""
    return ",".join([f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True)])


def escape(value: str) -> str:
    """A label value as both formats quote it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def number(value: float) -> str:
    """A sample value as prometheus_client writes it (Prometheus keeps float64 values)."""
    if type(value) is int and -(10**15) < value < 10**15:
        return f"{value}.0"  # the float64 go_float would write, without its exponent
    return go_float(float(value))


def go_float(d: float) -> str:
    """A float as Prometheus' Go code writes it (prometheus_client's ``floatToGoString``)."""
    if math.isinf(d):
        return "+Inf" if d > 0 else "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    # Go switches to exponents sooner than Python.
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def gauge(name: str, doc: str, *labels: str) -> Family:
    return Family(name, "gauge", doc, labels)


def counter(name: str, doc: str, *labels: str) -> Family:
    """A counter family; ``name`` without ``_total`` (the sample lines carry it)."""
    return Family(name, "counter", doc, labels)


def info(name: str, doc: str, *labels: str) -> Family:
    """An info family; ``name`` without ``_info``; every sample is 1."""
    return Family(name, "info", doc, labels)
