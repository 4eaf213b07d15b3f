"""A token bucket per channel: the group bots take about 20 messages a minute and then mute."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; one token per message. Time is passed in.

    In any window of T seconds at most ``burst + rate * T`` messages go out, so the defaults
    (18 a minute, burst 2) never put more than 20 in a minute.
    """

    def __init__(self, rate_per_second: float, burst: int, now: float) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate_per_second
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token is there (0: one is there now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float) -> bool:
        """Take a token if one is there."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def empty(self, now: float) -> None:
        """Spend every token: the bot said it is rate limiting us (its own count was higher)."""
        self._refill(now)
        self._tokens = 0.0
