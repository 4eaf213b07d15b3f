"""The [notify] section: channels, *_env secrets, and errors that name the key, not the secret."""

from __future__ import annotations

import pytest

from edumon.config import parse_config
from edumon.errors import ConfigError
from tests.fixtures.runtime import DISTRICT_TOML

URL = "https://oapi.dingtalk.com/robot/send?access_token=Acc3ssT0ken-NEVER-RENDER"
SECRET = "SECsign-NEVER-RENDER-0123456789"


def with_notify(section: str) -> str:
    return DISTRICT_TOML + "\n" + section


def test_defaults_without_a_notify_section() -> None:
    notify = parse_config(DISTRICT_TOML).notify
    assert notify.channels == []
    assert notify.digest_seconds == 30
    assert notify.receiver_token is None


def test_channels_inline_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "EDUMON_TEST_WECOM_URL",
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K3y-NEVER-RENDER",
    )
    monkeypatch.setenv("EDUMON_TEST_AM_TOKEN", "AmT0ken-NEVER-RENDER")
    config = parse_config(
        with_notify(
            f"""
[notify]
digest_seconds = 10
receiver_token_env = "EDUMON_TEST_AM_TOKEN"

[[notify.channels]]
name = "noc"
kind = "dingtalk"
url = "{URL}"
secret = "{SECRET}"
min_severity = "critical"

[[notify.channels]]
name = "school-a"
kind = "wecom"
url_env = "EDUMON_TEST_WECOM_URL"
schools = ["A"]
rate_per_minute = 10
"""
        )
    )
    noc, school = config.notify.channels
    assert noc.url is not None
    assert noc.url.get_secret_value() == URL
    assert noc.secret is not None
    assert noc.secret.get_secret_value() == SECRET
    assert noc.host == "oapi.dingtalk.com"
    assert (noc.rate_per_minute, noc.burst, noc.min_severity) == (18, 2, "critical")
    assert school.host == "qyapi.weixin.qq.com"
    assert school.schools == ["A"]
    assert config.notify.receiver_token is not None
    assert config.notify.receiver_token.get_secret_value() == "AmT0ken-NEVER-RENDER"
    shown = repr(config) + str(config) + str(config.notify.model_dump())
    for secret in ("Acc3ssT0ken", "SECsign", "K3y-NEVER", "AmT0ken"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        (
            f'kind = "dingtalk"\nurl = "{URL}"\nurl_env = "X"',
            "give either url or url_env, not both",
        ),
        ('kind = "dingtalk"', "a channel needs url (or url_env)"),
        ('kind = "feishu"\nurl_env = "EDUMON_TEST_UNSET_VAR"', "EDUMON_TEST_UNSET_VAR"),
        (f'kind = "wecom"\nurl = "{URL}"\nsecret = "{SECRET}"', "has no signing secret"),
        ('kind = "webhook"\nurl = "ftp://Acc3ssT0ken-NEVER-RENDER"', "http:// or https://"),
        (f'kind = "slack"\nurl = "{URL}"', "notify.channels[0].kind"),
        (f'kind = "dingtalk"\nurl = "{URL}"\nschools = ["Z"]', "no school with code Z"),
        (f'kind = "dingtalk"\nurl = "{URL}"\nmin_severity = "page"', "min_severity"),
        (f'kind = "dingtalk"\nurl = "{URL}"\ntoken = "x"', "unknown key"),
    ],
)
def test_errors_name_the_key_never_the_secret(channel: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_notify(f'[[notify.channels]]\nname = "noc"\n{channel}\n'))
    text = str(info.value)
    assert message in text
    assert "notify" in text
    assert "Acc3ssT0ken" not in text
    assert "SECsign" not in text


def test_channel_names_are_unique() -> None:
    section = "".join(
        f'[[notify.channels]]\nname = "noc"\nkind = "webhook"\nurl = "{URL}"\n' for _ in range(2)
    )
    with pytest.raises(ConfigError, match="channel name\\(s\\) used twice: noc"):
        parse_config(with_notify(section))
