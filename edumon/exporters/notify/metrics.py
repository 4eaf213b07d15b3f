"""The notifier's self-metrics, rendered at scrape time from its counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from edumon.exporters.notify.model import FAILURE_REASONS
from edumon.exporters.notify.stats import DROP_REASONS
from edumon.ports import NotifierView


def notify_families(notifier: NotifierView) -> Iterator[Metric]:
    """edumon_notify_* families. Every channel and reason is present from the start, at 0, so
    that ``increase()`` sees the first failure."""
    stats = notifier.stats
    channels = notifier.channel_names
    sent = CounterMetricFamily(
        "edumon_notify_sent", "Notification messages delivered, by channel.", labels=["channel"]
    )
    for name in channels:
        sent.add_metric([name], stats.sent_total[name])
    yield sent
    failures = CounterMetricFamily(
        "edumon_notify_failures",
        "Failed delivery attempts, by channel and reason (timeout, connect, http_4xx, "
        "http_5xx, http_429, errcode, rate_limited, bad_reply); retried ones included.",
        labels=["channel", "reason"],
    )
    for name in channels:
        for reason in FAILURE_REASONS:
            failures.add_metric([name, reason], stats.failures_total[(name, reason)])
    yield failures
    dropped = CounterMetricFamily(
        "edumon_notify_dropped",
        "Alerts not delivered, by reason (queue_full, duplicate, not_routed, invalid, "
        "retries_exhausted, undeliverable).",
        labels=["reason"],
    )
    for reason in sorted(set(DROP_REASONS) | set(stats.dropped_total)):
        dropped.add_metric([reason], stats.dropped_total[reason])
    yield dropped
    limited = CounterMetricFamily(
        "edumon_notify_rate_limited",
        "Digests that found the channel's rate limit reached and waited, by channel.",
        labels=["channel"],
    )
    for name in channels:
        limited.add_metric([name], stats.rate_limited_total[name])
    yield limited
    merged = CounterMetricFamily(
        "edumon_notify_merged",
        "Digests merged into one message with others because the rate limit held them.",
        labels=["channel"],
    )
    for name in channels:
        merged.add_metric([name], stats.merged_total[name])
    yield merged
    depth = GaugeMetricFamily(
        "edumon_notify_queue_depth",
        "Alerts waiting to be sent: queued, or held in a school's digest.",
    )
    depth.add_metric([], notifier.queue_depth)
    yield depth
