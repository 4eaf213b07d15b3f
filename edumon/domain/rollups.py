"""What the database keeps of the sample streams: 5-minute roll-ups and thinned samples.

Raw series (every poll of every port, every heartbeat) belong to a time-series database that
scrapes ``/metrics`` (docs/storage.md). SQL keeps state changes (events), daily availability and,
for history pages and reports, one row per 5-minute bucket:

* **interfaces**: a roll-up per port that matters (uplinks, classroom ports, inter-switch links,
  and every port of a switch with ``export_all_ports``) and bucket: mean and peak rates in and
  out, peak utilisation, polls (and polls up), speed and status at the end of the bucket.
  The collector accumulates it in memory and writes it once, when the bucket is over.
* **switches**: at most one sample per switch and bucket, plus one on every change that matters
  (unreachable, reachable again, rebooted).
* **terminals**: at most one heartbeat per terminal and bucket, plus one whenever the terminal's
  boot or link speed changes.

Everything here is pure: times are passed in, memory is bounded by the ports and terminals that
exist (one entry each), never by time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from edumon.domain.models import (
    DeviceSample,
    Event,
    EventKind,
    InterfaceSample,
    OperStatus,
    TerminalSample,
)

BUCKET_SECONDS: Final = 300
"""Width of a roll-up bucket and the thinning period of device and terminal samples."""

_DEVICE_CHANGES: Final = frozenset(
    {EventKind.DEVICE_REBOOT, EventKind.DEVICE_UNREACHABLE, EventKind.DEVICE_REACHABLE}
)


def bucket_of(at: float, seconds: int = BUCKET_SECONDS) -> float:
    """The start of the bucket ``at`` falls in (buckets are aligned to the Unix epoch)."""
    return float(math.floor(at / seconds) * seconds)


@dataclass(frozen=True, slots=True)
class InterfaceRollup:
    """One port over one bucket ``[bucket_start, bucket_start + bucket_seconds)``.

    Rates are in bit/s over the polls that gave one (a poll after a counter discontinuity or a
    discarded spike gives none); ``None`` when no poll did. ``max_utilisation`` is the peak of
    max(in, out) / speed over the polls with both a rate and a speed (0..1).
    """

    device_id: str
    interface: str
    bucket_start: float
    bucket_seconds: int
    polls: int
    up_polls: int
    in_bps: float | None
    out_bps: float | None
    in_bps_max: float | None
    out_bps_max: float | None
    max_utilisation: float | None
    speed_mbps: float | None
    """The speed at the last poll of the bucket (None when the port was not up)."""
    oper_status: OperStatus
    """The status at the last poll of the bucket."""
    last_at: float
    """When the bucket's last poll was taken."""


class _Accumulator:
    """An open bucket of one port: sums and peaks, folded one poll at a time."""

    __slots__ = (
        "bucket",
        "in_max",
        "in_n",
        "in_sum",
        "last",
        "out_max",
        "out_n",
        "out_sum",
        "polls",
        "up_polls",
        "util_max",
    )

    def __init__(self, bucket: float, first: InterfaceSample) -> None:
        self.bucket = bucket
        self.polls = 0
        self.up_polls = 0
        self.in_sum = self.out_sum = 0.0
        self.in_n = self.out_n = 0
        self.in_max: float | None = None
        self.out_max: float | None = None
        self.util_max: float | None = None
        self.last = first

    def add(self, s: InterfaceSample) -> None:
        self.polls += 1
        if s.oper_status is OperStatus.UP:
            self.up_polls += 1
        if s.in_bps is not None:
            self.in_sum += s.in_bps
            self.in_n += 1
            self.in_max = s.in_bps if self.in_max is None else max(self.in_max, s.in_bps)
        if s.out_bps is not None:
            self.out_sum += s.out_bps
            self.out_n += 1
            self.out_max = s.out_bps if self.out_max is None else max(self.out_max, s.out_bps)
        rates = [r for r in (s.in_bps, s.out_bps) if r is not None]
        if rates and s.speed_mbps:
            util = max(rates) / (s.speed_mbps * 1e6)
            self.util_max = util if self.util_max is None else max(self.util_max, util)
        self.last = s

    def rollup(self, seconds: int) -> InterfaceRollup:
        last = self.last
        return InterfaceRollup(
            device_id=last.device_id,
            interface=last.interface,
            bucket_start=self.bucket,
            bucket_seconds=seconds,
            polls=self.polls,
            up_polls=self.up_polls,
            in_bps=self.in_sum / self.in_n if self.in_n else None,
            out_bps=self.out_sum / self.out_n if self.out_n else None,
            in_bps_max=self.in_max,
            out_bps_max=self.out_max,
            max_utilisation=self.util_max,
            speed_mbps=last.speed_mbps,
            oper_status=last.oper_status,
            last_at=last.at,
        )


class InterfaceRollups:
    """Per-port roll-ups accumulated in memory, handed out once their bucket is over.

    A bucket is over when a poll of a later bucket arrives for the port, or (for a port that
    stopped being polled: an unreachable or removed switch) ``grace_seconds`` after its end.
    A poll of a bucket already handed out starts a new partial roll-up of that bucket; the store
    merges the two (``Store.write``), so nothing is lost, only averaged by polls.

    Args:
        keep: whether a port's samples are rolled up (the ports that matter); others are
            counted in ``skipped`` and forgotten.
        seconds: the bucket width.
        grace_seconds: how long after its end an open bucket waits for a late poll.
    """

    def __init__(
        self,
        keep: Callable[[str, str], bool],
        *,
        seconds: int = BUCKET_SECONDS,
        grace_seconds: float = BUCKET_SECONDS,
    ) -> None:
        self._keep = keep
        self.seconds = seconds
        self.grace_seconds = grace_seconds
        self._open: dict[tuple[str, str], _Accumulator] = {}
        self._done: list[InterfaceRollup] = []
        self.skipped = 0
        """Samples of ports that do not matter (not stored)."""

    def __len__(self) -> int:
        """Open buckets: one per port that matters at most."""
        return len(self._open)

    @property
    def finished(self) -> int:
        """Roll-ups over and not yet taken."""
        return len(self._done)

    def add(self, samples: Iterable[InterfaceSample]) -> None:
        """Fold one poll's samples in."""
        for s in samples:
            if not self._keep(s.device_id, s.interface):
                self.skipped += 1
                continue
            key = (s.device_id, s.interface)
            bucket = bucket_of(s.at, self.seconds)
            acc = self._open.get(key)
            if acc is None or acc.bucket != bucket:
                if acc is not None:
                    self._done.append(acc.rollup(self.seconds))
                acc = self._open[key] = _Accumulator(bucket, s)
            acc.add(s)

    def take(self, now: float, *, everything: bool = False) -> list[InterfaceRollup]:
        """The roll-ups that are over at ``now`` (all of them, open ones too, with everything)."""
        out, self._done = self._done, []
        horizon = now - self.seconds - self.grace_seconds
        stale = [key for key, acc in self._open.items() if everything or acc.bucket <= horizon]
        for key in stale:
            out.append(self._open.pop(key).rollup(self.seconds))
        return out


class DeviceSampleThinner:
    """At most one sample per switch and bucket, plus every one that shows a change.

    A change is an unreachable, reachable-again or reboot event of the switch in the same poll,
    or a reachability different from the last sample kept.
    """

    def __init__(self, seconds: int = BUCKET_SECONDS) -> None:
        self.seconds = seconds
        self._last: dict[str, tuple[float, bool]] = {}
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._last)

    def keep(self, sample: DeviceSample, events: Iterable[Event] = ()) -> bool:
        bucket = bucket_of(sample.at, self.seconds)
        last = self._last.get(sample.device_id)
        changed = any(e.kind in _DEVICE_CHANGES and e.device_id == sample.device_id for e in events)
        if last is None or last[0] != bucket or last[1] != sample.reachable or changed:
            self._last[sample.device_id] = (bucket, sample.reachable)
            return True
        self.skipped += 1
        return False


class TerminalSampleThinner:
    """At most one heartbeat per terminal and bucket, plus every one with a new boot or speed."""

    def __init__(self, seconds: int = BUCKET_SECONDS) -> None:
        self.seconds = seconds
        self._last: dict[tuple[str, str], tuple[float, str, float | None]] = {}
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._last)

    def keep(self, sample: TerminalSample) -> bool:
        return self.keep_values(
            sample.school, sample.terminal, sample.at, sample.boot_id, sample.link_speed_mbps
        )

    def keep_values(
        self, school: str, terminal: str, at: float, boot_id: str, link_speed_mbps: float | None
    ) -> bool:
        """``keep`` of the sample with these values (the collector builds only kept ones)."""
        key = (school, terminal)
        now = (bucket_of(at, self.seconds), boot_id, link_speed_mbps)
        if self._last.get(key) != now:
            self._last[key] = now
            return True
        self.skipped += 1
        return False
