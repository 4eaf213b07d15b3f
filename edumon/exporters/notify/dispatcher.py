"""The notifier: a bounded queue in, per school digests, dedup, a rate limit and retries out.

``Notifier.submit`` only puts alerts on a bounded queue (overflow is counted, never waited
for), so neither the outage tracker nor the Alertmanager receiver ever waits for a bot. The
``run`` task routes each alert to the channels that take its school and severity; each channel
has its own task, so a slow or failing bot delays only its own messages.

Per channel, the first alert of a school opens that school's digest; ``digest_seconds`` later
the digest goes out as one message listing all its classrooms. A digest that finds the token
bucket empty waits; when several wait, they go out together as one message when a token comes
(a sustained excess is merged, not dropped; both are counted).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

import httpx

from edumon.domain.alerts import Alert, alert_key, severity_rank
from edumon.exporters.notify.channel import HttpChannel
from edumon.exporters.notify.compose import compose
from edumon.exporters.notify.dedup import SeenSet
from edumon.exporters.notify.dingtalk import DingTalk
from edumon.exporters.notify.feishu import Feishu
from edumon.exporters.notify.model import DeliveryError
from edumon.exporters.notify.ratelimit import TokenBucket
from edumon.exporters.notify.retry import backoff_seconds
from edumon.exporters.notify.stats import NotifyStats
from edumon.exporters.notify.vendor import Vendor
from edumon.exporters.notify.webhook import Webhook
from edumon.exporters.notify.wecom import WeCom
from edumon.notify_config import NotifyChannelConfig, NotifyConfig

log = logging.getLogger(__name__)

VENDORS: dict[str, Vendor] = {
    "dingtalk": DingTalk(),
    "wecom": WeCom(),
    "feishu": Feishu(),
    "webhook": Webhook(),
}


@dataclass(frozen=True, slots=True)
class Route:
    """Which alerts a channel takes: its schools (empty: all) and the least severity."""

    schools: frozenset[str] = frozenset()
    min_severity: str = "warning"

    def accepts(self, alert: Alert) -> bool:
        if self.schools and alert.school not in self.schools:
            return False
        return severity_rank(alert.severity) >= severity_rank(self.min_severity)


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """Timing of digests and retries (seconds) and the size of the queue and the dedup memory."""

    digest_seconds: float = 30.0
    queue_size: int = 10_000
    max_attempts: int = 8
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    dedup_seconds: float = 7 * 86400.0

    @classmethod
    def of(cls, config: NotifyConfig) -> DispatchSettings:
        return cls(
            config.digest_seconds,
            config.queue_size,
            config.max_attempts,
            config.retry_initial_seconds,
            config.retry_max_seconds,
            config.dedup_hours * 3600,
        )


@dataclass(slots=True)
class _Digest:
    school: str
    opened_at: float
    alerts: list[Alert] = field(default_factory=list)
    waited: bool = False


class ChannelWorker:
    """One channel's digests, token bucket, dedup memory and delivery task."""

    def __init__(
        self,
        channel: HttpChannel,
        route: Route,
        bucket: TokenBucket,
        settings: DispatchSettings,
        stats: NotifyStats,
        *,
        tz: tzinfo,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self.channel = channel
        self.route = route
        self._bucket = bucket
        self._settings = settings
        self._stats = stats
        self._tz = tz
        self._clock = clock
        self._random = random
        self._seen = SeenSet(settings.dedup_seconds)
        self._pending: dict[str, _Digest] = {}
        self._wake = asyncio.Event()

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def pending_alerts(self) -> int:
        return sum(len(d.alerts) for d in self._pending.values())

    def offer(self, alert: Alert) -> bool:
        """Add an alert to its school's digest, unless this channel already took it.

        Returns:
            False for a duplicate (same outage and status already taken).
        """
        now = self._clock()
        key = f"{alert_key(alert)}|{alert.status}"
        if self._seen.seen(key, now):
            return False
        self._seen.add(key, now)
        digest = self._pending.get(alert.school)
        if digest is None:
            digest = self._pending[alert.school] = _Digest(alert.school, now)
            self._wake.set()
        digest.alerts.append(alert)
        return True

    def _due(self, now: float) -> list[_Digest]:
        window = self._settings.digest_seconds
        return [d for d in self._pending.values() if d.opened_at + window <= now]

    async def run(self) -> None:
        """Send digests as they fall due, within the rate limit; forever (cancel to stop)."""
        while True:
            now = self._clock()
            due = self._due(now)
            if not due:
                self._wake.clear()
                timeout = None
                if self._pending:
                    first = min(d.opened_at for d in self._pending.values())
                    timeout = max(0.0, first + self._settings.digest_seconds - now)
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            wait = self._bucket.wait_time(now)
            if wait > 0:
                for digest in due:
                    if not digest.waited:
                        digest.waited = True
                        self._stats.rate_limited_total[self.name] += 1
                await asyncio.sleep(wait)
                continue
            self._bucket.take(now)
            # Digests that had to wait go out together: under a sustained excess, one message
            # a token rather than a queue that grows without end.
            batch = due if len(due) > 1 and any(d.waited for d in due) else due[:1]
            if len(batch) > 1:
                self._stats.merged_total[self.name] += len(batch) - 1
            for digest in batch:
                del self._pending[digest.school]
            await self._deliver([d.alerts for d in batch])

    async def _deliver(self, batches: Sequence[Sequence[Alert]]) -> None:
        message = compose(batches, self._tz)
        alerts = message.alerts
        settings = self._settings
        channel = self.channel
        for attempt in range(1, settings.max_attempts + 1):
            try:
                await channel.send(message)
            except DeliveryError as exc:
                self._stats.failures_total[(self.name, exc.reason)] += 1
                if not exc.retryable or attempt == settings.max_attempts:
                    reason = "retries_exhausted" if exc.retryable else "undeliverable"
                    log.error(
                        "%s；放弃 (giving up) channel=%s host=%s reason=%s attempts=%d alerts=%d",
                        exc,
                        self.name,
                        channel.host,
                        exc.reason,
                        attempt,
                        len(alerts),
                    )
                    self._stats.dropped_total[reason] += len(all_of(batches))
                    # Never delivered: let a repeat (Alertmanager's, or a resubmission) through.
                    for alert in all_of(batches):
                        self._seen.forget(f"{alert_key(alert)}|{alert.status}")
                    return
                delay = backoff_seconds(
                    attempt,
                    initial=settings.retry_initial_seconds,
                    maximum=settings.retry_max_seconds,
                    random=self._random,
                )
                if exc.reason in ("rate_limited", "http_429"):
                    # The bot counted more than we did (another sender on the same bot?).
                    self._bucket.empty(self._clock())
                    delay = max(delay, exc.retry_after or 0.0)
                log.warning(
                    "%s；%.1f 秒后重试 (retrying) channel=%s host=%s reason=%s attempt=%d/%d",
                    exc,
                    delay,
                    self.name,
                    channel.host,
                    exc.reason,
                    attempt,
                    settings.max_attempts,
                )
                await asyncio.sleep(delay)
                # A retry is a message like any other: it waits for a token.
                wait = self._bucket.wait_time(self._clock())
                if wait > 0:
                    await asyncio.sleep(wait)
                self._bucket.take(self._clock())
            else:
                self._stats.sent_total[self.name] += 1
                log.info(
                    "通知已发送 (sent) channel=%s kind=%s host=%s schools=%d alerts=%d",
                    self.name,
                    channel.kind,
                    channel.host,
                    len(message.sections),
                    len(alerts),
                )
                return


def all_of(batches: Sequence[Sequence[Alert]]) -> list[Alert]:
    return [a for b in batches for a in b]


class Notifier:
    """Takes alerts without ever blocking and delivers them to the configured channels.

    Args:
        channels: each channel with the alerts it takes and its rate limit.
        settings: digest window, retries, queue size, dedup memory.
        tz: the district's time zone, for times in messages.
        transport: closed when ``run`` ends, if given (the one the channels use).
        clock: monotonic seconds (the event loop's clock when None).
        random: uniform in [0, 1), for retry jitter.
    """

    def __init__(
        self,
        channels: Sequence[tuple[HttpChannel, Route, TokenBucket]],
        settings: DispatchSettings,
        *,
        tz: tzinfo,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.stats = NotifyStats()
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=settings.queue_size)
        self._transport = transport
        self._clock = clock or _loop_time
        self.workers = [
            ChannelWorker(
                channel,
                route,
                bucket,
                settings,
                self.stats,
                tz=tz,
                clock=self._clock,
                random=random,
            )
            for channel, route, bucket in channels
        ]

    @classmethod
    def from_config(
        cls,
        config: NotifyConfig,
        *,
        tz: tzinfo,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] = random.random,
    ) -> Notifier:
        """A notifier for the [notify] section (its own HTTP transport unless one is given)."""
        owned = transport or httpx.AsyncHTTPTransport(retries=0)
        now = (clock or _loop_time)()
        channels = [
            (_channel(c, owned), _route(c), TokenBucket(c.rate_per_minute / 60, c.burst, now))
            for c in config.channels
        ]
        return cls(
            channels,
            DispatchSettings.of(config),
            tz=tz,
            transport=owned if transport is None else None,
            clock=clock,
            random=random,
        )

    @property
    def channel_names(self) -> list[str]:
        return [w.name for w in self.workers]

    @property
    def queue_depth(self) -> int:
        """Alerts waiting in the queue plus those held in digests."""
        return self._queue.qsize() + sum(w.pending_alerts for w in self.workers)

    def submit(self, alerts: Iterable[Alert]) -> int:
        """Queue alerts for delivery; never waits. Call it from the event loop's thread.

        Returns:
            How many were queued; the others were dropped (counted as queue_full).
        """
        queued = 0
        for alert in alerts:
            self.stats.submitted_total += 1
            try:
                self._queue.put_nowait(alert)
            except asyncio.QueueFull:
                self.stats.dropped_total["queue_full"] += 1
            else:
                queued += 1
        return queued

    def reject(self, reason: str, count: int = 1) -> None:
        """Count alerts a source could not turn into an Alert (e.g. ``invalid``)."""
        self.stats.dropped_total[reason] += count

    def _route(self, alert: Alert) -> None:
        takers = [w for w in self.workers if w.route.accepts(alert)]
        if not takers:
            self.stats.dropped_total["not_routed"] += 1
            return
        # Every channel must see the alert (no short-circuit), each keeps its own memory.
        took = [w.offer(alert) for w in takers]
        if not any(took):
            self.stats.dropped_total["duplicate"] += 1

    async def run(self) -> None:
        """Route queued alerts and run each channel's delivery task; until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                for worker in self.workers:
                    tg.create_task(worker.run(), name=f"notify-{worker.name}")
                while True:
                    self._route(await self._queue.get())
        finally:
            if self._transport is not None:
                await self._transport.aclose()


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _channel(config: NotifyChannelConfig, transport: httpx.AsyncBaseTransport) -> HttpChannel:
    assert config.url is not None  # the config model guarantees it
    return HttpChannel(
        config.name,
        VENDORS[config.kind],
        config.url,
        config.secret,
        transport=transport,
        timeout_seconds=config.timeout_seconds,
    )


def _route(config: NotifyChannelConfig) -> Route:
    return Route(frozenset(config.schools), config.min_severity)
