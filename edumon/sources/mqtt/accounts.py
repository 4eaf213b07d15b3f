"""Accounts and topic rights of the embedded MQTT broker (docs/mqtt-security.md).

The same semantics as the shipped Mosquitto ACL (``deploy/mosquitto/edumon.acl``):

- a **school** account publishes only its own school's sender topics,
  ``edumon/v1/{district}/{school}/terminal/{id}/{status,heartbeat}`` and
  ``edumon/v1/{district}/{school}/agent/{id}/{status,poll}``, subscribes to nothing and
  receives nothing; a Last Will is a publication, so its topic must be one of these too;
- a **collector** account reads the district's subtree, ``edumon/v1/{district}/#``, and
  publishes nothing.

Passwords are stored as ``sha256:`` and 64 hex digits, as API tokens are (edumon/tokens.py says
why a slow password hash adds nothing for random secrets; here it would also cost every
terminal's reconnect after a broker restart tens of milliseconds of the collector's CPU).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from edumon.tokens import MAX_TOKEN_LENGTH, digest

Role = Literal["school", "collector"]

INTERNAL_ACCOUNT: Final = "edumon-internal"
"""The collector's own account on its embedded broker: a random password per process start,
never configured (a configured account of this name is refused)."""

TOPIC_ROOT: Final = "edumon"
TOPIC_VERSION: Final = "v1"
SENDER_KINDS: Final[Mapping[str, frozenset[str]]] = {
    "terminal": frozenset({"status", "heartbeat"}),
    "agent": frozenset({"status", "poll"}),
}
"""Per sender role, the topic kinds a school account may publish (the wire protocol's)."""

_SHARE_PREFIX: Final = "$share/"


@dataclass(frozen=True, slots=True)
class Account:
    """One MQTT account: its name (the MQTT user name), role and password digest.

    Attributes:
        name: The MQTT user name.
        role: ``school`` (publishes its school's topics) or ``collector`` (reads the district).
        school: The school code of a school account; None for a collector.
        password_digest: SHA-256 of the password (``edumon.tokens.digest``).
    """

    name: str
    role: Role
    school: str | None
    password_digest: bytes = b""

    def __post_init__(self) -> None:
        if (self.role == "school") != (self.school is not None):
            raise ValueError("a school account has a school, a collector account none")

    def __repr__(self) -> str:  # never the digest
        return f"Account(name={self.name!r}, role={self.role!r}, school={self.school!r})"


class AccessPolicy:
    """Who may log in, and what each account may publish, subscribe to and receive.

    Args:
        district: The district code: every right is within ``edumon/v1/{district}/``.
        accounts: The accounts; names must be unique.
    """

    def __init__(self, district: str, accounts: Iterable[Account]) -> None:
        self.district = district
        self._accounts: dict[str, Account] = {}
        for account in accounts:
            if account.name in self._accounts:
                raise ValueError(f"MQTT account {account.name!r} given twice")
            self._accounts[account.name] = account

    def __len__(self) -> int:
        return len(self._accounts)

    def accounts(self) -> list[Account]:
        """Every account."""
        return list(self._accounts.values())

    def account(self, name: str) -> Account | None:
        """The account of this name, or None."""
        return self._accounts.get(name)

    def authenticate(self, username: str | None, password: bytes | None) -> Account | None:
        """The account these credentials log in as, or None (unknown name, wrong password).

        Costs one SHA-256 of the password, whether or not the name exists.
        """
        if username is None or password is None or len(password) > MAX_TOKEN_LENGTH:
            return None
        try:
            text = password.decode("utf-8")
        except UnicodeDecodeError:
            return None
        given = digest(text)
        account = self._accounts.get(username)
        if account is None or not account.password_digest:
            return None
        return account if hmac.compare_digest(given, account.password_digest) else None

    def may_publish(self, account: Account, topic: str) -> bool:
        """Whether ``account`` may publish to ``topic`` (a Last Will included)."""
        if account.role != "school":
            return False
        levels = topic.split("/")
        if len(levels) != 7:
            return False
        root, version, district, school, role, sender, kind = levels
        kinds = SENDER_KINDS.get(role)
        return (
            root == TOPIC_ROOT
            and version == TOPIC_VERSION
            and district == self.district
            and school == account.school
            and kinds is not None
            and kind in kinds
            and _plain_level(sender)
        )

    def may_subscribe(self, account: Account, topic_filter: str) -> bool:
        """Whether ``account`` may subscribe to ``topic_filter``: only if every topic it can
        match is one the account may read (``#`` is never allowed)."""
        if account.role != "collector":
            return False
        if topic_filter.startswith(_SHARE_PREFIX):  # $share/{group}/{filter}
            _, _, rest = topic_filter[len(_SHARE_PREFIX) :].partition("/")
            topic_filter = rest
        levels = topic_filter.split("/")
        return (
            len(levels) >= 4
            and levels[0] == TOPIC_ROOT
            and levels[1] == TOPIC_VERSION
            and levels[2] == self.district
        )

    def may_receive(self, account: Account, topic: str) -> bool:
        """Whether a message on ``topic`` may be delivered to ``account``."""
        if account.role != "collector":
            return False
        levels = topic.split("/")
        return (
            len(levels) >= 4
            and levels[0] == TOPIC_ROOT
            and levels[1] == TOPIC_VERSION
            and levels[2] == self.district
        )

    def may_take_over(self, account: Account, holder: str | None) -> bool:
        """Whether ``account`` may connect with a client id whose session ``holder`` owns.

        A collector may take over any session (its fixed client id must never be held hostage
        by a school that connected with it first); a school account only its own or a free one.
        """
        return holder is None or holder == account.name or account.role == "collector"


def _plain_level(level: str) -> bool:
    return bool(level) and "+" not in level and "#" not in level


def exposure_problem(host: str, *, anonymous: bool) -> str | None:
    """Why the embedded broker must not listen on ``host`` (an address) without accounts.

    None when it has accounts or ``host`` is a loopback address; a host name is not judged
    here (the broker judges the address its socket bound).
    """
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if not anonymous or address.is_loopback:
        return None
    return (
        "未配置 MQTT 账号时内置 MQTT 代理只能监听本机回环地址（如 127.0.0.1:1884），否则校园网内"
        "任何人都能订阅 # 读取所有学校的数据、伪造任何教室的在线状态；请用 edumon mqtt-account "
        "new 学校代码 为每所学校生成账号写入 [[mqtt.accounts]]（见 docs/mqtt-security.md），或"
        "改为监听 127.0.0.1 / without [[mqtt.accounts]] the embedded MQTT broker listens on "
        f"loopback only (e.g. 127.0.0.1:1884): on {host} anyone on the network could subscribe "
        "to # and forge any classroom's status; make an account per school with edumon "
        "mqtt-account new SCHOOL (docs/mqtt-security.md), or listen on 127.0.0.1"
    )
