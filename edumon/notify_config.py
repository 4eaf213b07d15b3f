"""The [notify] section of the configuration: 企业微信/钉钉/飞书 group bots and generic webhooks.

Example::

    [notify]
    digest_seconds = 30                  # one message per school for alerts within 30 s
    receiver_token_env = "EDUMON_AM_TOKEN"   # bearer token Alertmanager must send (optional)

    [[notify.channels]]
    name = "noc"                         # free text id, shown in logs and metrics
    kind = "dingtalk"                    # dingtalk | wecom | feishu | webhook
    url_env = "EDUMON_DINGTALK_URL"      # or url = "https://oapi.dingtalk.com/robot/send?..."
    secret_env = "EDUMON_DINGTALK_SECRET"    # 加签 secret (dingtalk, feishu; webhook: HMAC)
    schools = []                         # empty: every school (the district NOC)
    min_severity = "warning"
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# Same rules as edumon.config's ids; repeated here because edumon.config imports this module.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]

ChannelKind = Literal["dingtalk", "wecom", "feishu", "webhook"]
Severity = Literal["info", "warning", "critical"]

DEFAULT_RATE_PER_MINUTE = 18.0
"""DingTalk, WeCom and Feishu bots take about 20 messages a minute; stay under it."""
DEFAULT_BURST = 2
"""With 18 a minute, at most 2 + 18 = 20 messages fall in any 60 seconds."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_from(value: SecretStr | None, env: str | None, what: str) -> SecretStr | None:
    # The same rule as edumon.config._secret_from (which this module cannot import).
    if env is None:
        return value
    if value is not None:
        raise ValueError(f"give either {what} or {what}_env, not both")
    if env not in os.environ:
        raise ValueError(f"environment variable {env} (named by {what}_env) is not set")
    return SecretStr(os.environ[env])


class NotifyChannelConfig(_Strict):
    """One place notifications go: a group bot or a generic JSON webhook."""

    name: Id
    kind: ChannelKind
    url: SecretStr | None = None
    """The bot's webhook URL; its key or access token makes it a secret."""
    url_env: str | None = None
    secret: SecretStr | None = None
    """DingTalk 加签 / Feishu 签名校验 secret; for a webhook, the HMAC-SHA256 key of the body."""
    secret_env: str | None = None
    schools: list[Id] = Field(default_factory=list)
    """School codes this channel hears about; empty: all schools."""
    min_severity: Severity = "warning"
    rate_per_minute: float = Field(DEFAULT_RATE_PER_MINUTE, gt=0, le=6000)
    burst: int = Field(DEFAULT_BURST, ge=1, le=100)
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _complete(self) -> NotifyChannelConfig:
        url = _secret_from(self.url, self.url_env, "url")
        secret = _secret_from(self.secret, self.secret_env, "secret")
        if url is None:
            raise ValueError("a channel needs url (or url_env)")
        # The message never repeats the URL: it holds the bot's key.
        parts = urlsplit(url.get_secret_value().strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        if self.kind == "wecom" and secret is not None:
            raise ValueError("a 企业微信 (wecom) group bot has no signing secret; remove secret")
        object.__setattr__(self, "url", SecretStr(url.get_secret_value().strip()))
        object.__setattr__(self, "secret", secret)
        return self

    @property
    def host(self) -> str:
        """The URL's host, the only part of it that logs and errors show."""
        assert self.url is not None
        return urlsplit(self.url.get_secret_value()).hostname or "?"


class NotifyConfig(_Strict):
    """The [notify] section; without channels nothing is sent (and the Alertmanager receiver
    answers 503)."""

    channels: list[NotifyChannelConfig] = Field(default_factory=list)
    builtin: bool = True
    """Send edumon's own outages (a school cut off, a classroom offline in lessons). Set it to
    false when Alertmanager sends them through the receiver instead, or each is sent twice."""
    digest_seconds: float = Field(30.0, ge=0, le=3600)
    """Alerts of one school arriving within this window go out as one message."""
    queue_size: int = Field(10_000, ge=1, le=1_000_000)
    max_attempts: int = Field(8, ge=1, le=100)
    retry_initial_seconds: float = Field(1.0, gt=0, le=600)
    retry_max_seconds: float = Field(60.0, gt=0, le=3600)
    dedup_hours: float = Field(168.0, gt=0, le=24 * 365)
    """How long a sent (outage, status) is remembered, so that a repeat is not sent again."""
    receiver_token: SecretStr | None = None
    """Bearer token the Alertmanager webhook receiver requires; none: no token needed."""
    receiver_token_env: str | None = None

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, v: list[NotifyChannelConfig]) -> list[NotifyChannelConfig]:
        names = [c.name for c in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel name(s) used twice: {', '.join(twice)}")
        return v

    @model_validator(mode="after")
    def _token(self) -> NotifyConfig:
        token = _secret_from(self.receiver_token, self.receiver_token_env, "receiver_token")
        if token is not None and not token.get_secret_value():
            raise ValueError("receiver_token is empty")
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("retry_max_seconds must not be below retry_initial_seconds")
        object.__setattr__(self, "receiver_token", token)
        return self

    def unknown_references(self, school_codes: Collection[str]) -> list[str]:
        """Problems with the school codes the channels name, one line each (empty if none)."""
        return [
            f"notify.channels[{i}].schools: no school with code {code}"
            for i, channel in enumerate(self.channels)
            for code in channel.schools
            if code not in school_codes
        ]
