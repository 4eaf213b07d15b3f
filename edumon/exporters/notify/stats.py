"""Counters of the notifier, read by /metrics (edumon_notify_*)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

DROP_REASONS: tuple[str, ...] = (
    "queue_full",
    "duplicate",
    "not_routed",
    "invalid",
    "retries_exhausted",
    "undeliverable",
)
"""Why alerts were not delivered: the label values of edumon_notify_dropped_total{reason}.

queue_full: submitted while the queue was full; duplicate: that outage and status was already
taken by every channel it routes to; not_routed: no channel takes its school or severity;
invalid: an Alertmanager alert without the labels edumon needs; retries_exhausted: still failing
after max_attempts; undeliverable: the bot refused it for good (bad key, signature, message).
"""


@dataclass(slots=True)
class NotifyStats:
    """Totals since start; only the notifier's own tasks and ``submit`` change them."""

    submitted_total: int = 0
    sent_total: Counter[str] = field(default_factory=Counter)
    """Messages delivered, by channel."""
    failures_total: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Failed delivery attempts, by (channel, reason)."""
    dropped_total: Counter[str] = field(default_factory=Counter)
    """Alerts not delivered, by reason (DROP_REASONS); per channel for the delivery reasons."""
    rate_limited_total: Counter[str] = field(default_factory=Counter)
    """Digests that found the channel's token bucket empty and had to wait, by channel."""
    merged_total: Counter[str] = field(default_factory=Counter)
    """Digests merged into another school's message because the rate limit held them, by channel."""
