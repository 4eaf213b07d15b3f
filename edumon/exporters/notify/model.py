"""What a channel sends: a message of one school's alerts (or several schools' when merged)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edumon.domain.alerts import Alert

MessageStatus = Literal["firing", "resolved", "mixed"]

FAILURE_REASONS: tuple[str, ...] = (
    "timeout",
    "connect",
    "http_4xx",
    "http_5xx",
    "http_429",
    "errcode",
    "rate_limited",
    "bad_reply",
)
"""Why a delivery attempt failed: the label values of edumon_notify_failures_total{reason}."""


@dataclass(frozen=True, slots=True)
class Line:
    """One alert as one line of text (Chinese first, codes beside), without markup."""

    alert: Alert
    text: str


@dataclass(frozen=True, slots=True)
class Section:
    """One school's part of a message: what fires and what is over."""

    school: str
    school_name: str
    firing: tuple[Line, ...]
    resolved: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A notification, vendor-neutral; each channel renders it in its bot's format.

    Attributes:
        title: one line, e.g. "【告警】城关第一小学（cgxx）3 条告警".
        sections: one per school, in the order the schools' alerts arrived.
        status: ``firing`` or ``resolved`` when all alerts agree, else ``mixed``.
    """

    title: str
    sections: tuple[Section, ...]
    status: MessageStatus

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return tuple(line.alert for s in self.sections for line in (*s.firing, *s.resolved))


class DeliveryError(Exception):
    """A channel did not take a message. The text names the channel and host, never the URL.

    Attributes:
        reason: one of FAILURE_REASONS.
        retryable: whether trying again later may succeed (timeouts, 5xx, rate limits).
        retry_after: seconds the bot asked us to wait, if it said.
    """

    def __init__(
        self, message: str, *, reason: str, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
