"""Exponential backoff with jitter between delivery attempts."""

from __future__ import annotations

from collections.abc import Callable


def backoff_seconds(
    attempt: int, *, initial: float, maximum: float, random: Callable[[], float]
) -> float:
    """The wait after failed attempt number ``attempt`` (1-based).

    The cap grows ``initial * 2**(attempt-1)`` up to ``maximum``; the wait is uniform in
    [cap/2, cap] ("equal jitter"), so that edumon instances muted together do not retry
    together, yet never retry sooner than half the cap.

    Args:
        attempt: how many attempts failed so far (1 after the first).
        initial: the first cap, seconds.
        maximum: the largest cap, seconds.
        random: a uniform number in [0, 1) (``random.random``; tests pass their own).
    """
    cap = min(maximum, initial * 2.0 ** min(attempt - 1, 30))
    return cap / 2 + random() * cap / 2
