"""Notifications: 企业微信, 钉钉 and 飞书 group bots and generic webhooks, with per school digests,
deduplication, a per channel rate limit and retries."""

from edumon.exporters.notify.dispatcher import DispatchSettings, Notifier, Route
from edumon.exporters.notify.metrics import notify_families

__all__ = ["DispatchSettings", "Notifier", "Route", "notify_families"]
