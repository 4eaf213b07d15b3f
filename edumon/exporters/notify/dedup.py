"""Which (outage, status) a channel already took, so that a repeat is not sent twice."""

from __future__ import annotations

from collections import OrderedDict


class SeenSet:
    """Keys remembered for ``ttl`` seconds, at most ``capacity`` of them (oldest forgotten first).

    Alertmanager repeats a firing group every repeat_interval (4 h by default) and an outage
    tracker may submit the same alert again after a restart of one of its parts; both are
    within the TTL and are dropped.
    """

    def __init__(self, ttl: float, capacity: int = 50_000) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def _expire(self, now: float) -> None:
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                break
            del self._until[key]

    def seen(self, key: str, now: float) -> bool:
        """Whether ``key`` is remembered."""
        self._expire(now)
        return key in self._until

    def add(self, key: str, now: float) -> None:
        """Remember ``key`` from ``now``."""
        self._expire(now)
        self._until.pop(key, None)
        self._until[key] = now + self._ttl
        while len(self._until) > self._capacity:
            self._until.popitem(last=False)

    def forget(self, key: str) -> None:
        """Forget ``key`` (its message was never delivered: let a repeat through)."""
        self._until.pop(key, None)
