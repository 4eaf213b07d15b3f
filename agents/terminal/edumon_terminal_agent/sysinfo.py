"""What the terminal reports about itself: uptime, its NIC's link, CPU, memory and disk.

Link speed and duplex come from ``/sys/class/net/<nic>/{speed,duplex}`` on Linux (what ethtool
shows) and from ``psutil.net_if_stats`` elsewhere (Windows: the adapter's negotiated speed).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil  # type: ignore[import-untyped]  # psutil ships no type information

from edumon_terminal_agent.wire import Duplex

logger = logging.getLogger(__name__)

SYSFS_NET: Final = Path("/sys/class/net")
PROC_NET_ROUTE: Final = Path("/proc/net/route")
_RTF_UP: Final = 0x1
_MIN_CPU_WINDOW: Final = 0.25  # seconds


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """The reported NIC. Fields are None where the OS does not tell (Wi-Fi has no duplex)."""

    name: str | None
    speed_mbps: int | None
    duplex: Duplex
    ip: str | None
    mac: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One reading of the machine, taken just before a heartbeat."""

    uptime_seconds: float
    link: LinkInfo
    cpu_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    disk_used_bytes: int | None
    disk_total_bytes: int | None


def default_route_nic(route_table: str) -> str | None:
    """The interface of the IPv4 default route in ``/proc/net/route`` text (lowest metric).

    Args:
        route_table: The file's contents: a header line, then whitespace-separated columns
            ``Iface Destination Gateway Flags RefCnt Use Metric Mask ...`` with hex addresses.
    """
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        columns = line.split()
        if len(columns) < 8:
            continue
        name, destination, flags, metric, mask = (
            columns[0],
            columns[1],
            columns[3],
            columns[6],
            columns[7],
        )
        try:
            is_default = int(destination, 16) == 0 and int(mask, 16) == 0
            up = int(flags, 16) & _RTF_UP
            rank = int(metric)
        except ValueError:
            continue
        if is_default and up and (best is None or rank < best[0]):
            best = (rank, name)
    return None if best is None else best[1]


def read_sysfs_link(sysfs_net: Path, nic: str) -> tuple[int | None, Duplex]:
    """Speed (Mbit/s) and duplex of ``nic`` from sysfs; (None, "unknown") where it has none.

    The kernel answers EINVAL for a link that is down or has no speed (loopback, Wi-Fi,
    bridges) and -1 or 0 for an unknown speed: none of these is a measurement.
    """
    speed: int | None = None
    duplex: Duplex = "unknown"
    try:
        value = int((sysfs_net / nic / "speed").read_text().strip())
    except (OSError, ValueError):
        value = 0
    if value > 0:
        speed = value
    try:
        text = (sysfs_net / nic / "duplex").read_text().strip()
    except OSError:
        text = "unknown"
    if text == "full":
        duplex = "full"
    elif text == "half":
        duplex = "half"
    return speed, duplex


def normalize_mac(address: str) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from the colon or dash forms Linux and Windows print."""
    parts = address.replace("-", ":").lower().split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        return None
    try:
        for part in parts:
            int(part, 16)
    except ValueError:
        return None
    return ":".join(parts)


def _strip_scope(address: str) -> str:
    return address.split("%", 1)[0]


def nic_with_address(addresses: Mapping[str, Iterable[Any]], ip: str) -> str | None:
    """The interface holding ``ip``, from ``psutil.net_if_addrs()``-shaped data."""
    wanted = _strip_scope(ip)
    for name, entries in addresses.items():
        for entry in entries:
            family_ok = entry.family in (socket.AF_INET, socket.AF_INET6)
            if family_ok and _strip_scope(entry.address) == wanted:
                return str(name)
    return None


def addresses_of(entries: Iterable[Any]) -> tuple[str | None, str | None]:
    """(IP, MAC) of one interface: its first IPv4 address, else a global IPv6 one."""
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    for entry in entries:
        if entry.family == socket.AF_INET and ipv4 is None:
            ipv4 = entry.address
        elif entry.family == socket.AF_INET6 and ipv6 is None:
            address = _strip_scope(entry.address)
            if not address.lower().startswith("fe80:"):
                ipv6 = address
        elif entry.family == psutil.AF_LINK and mac is None:
            mac = normalize_mac(entry.address)
    return ipv4 or ipv6, mac


def local_address_towards(host: str, port: int) -> str | None:
    """The local IP the OS would use to reach ``host``; no packet is sent (UDP connect)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.connect(address)
                return str(probe.getsockname()[0])
        except OSError:
            continue
    return None


def _uptime_seconds() -> float:
    if sys.platform.startswith("linux"):
        # CLOCK_BOOTTIME counts suspend too and ignores wall-clock changes (NTP steps).
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return max(0.0, time.time() - float(psutil.boot_time()))


def _default_disk_path() -> str:
    if sys.platform == "win32":
        return os.environ.get("SYSTEMDRIVE", "C:") + "\\"
    return "/"


class SystemProbe:
    """Reads the machine. Construct once: CPU % is measured between consecutive snapshots."""

    def __init__(
        self,
        nic: str | None = None,
        disk_path: str | None = None,
        sysfs_net: Path = SYSFS_NET,
        route_table: Path = PROC_NET_ROUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a probe.

        Args:
            nic: Report this interface; None picks the one with the default route, else the
                one holding the local address of the broker connection.
            disk_path: The file system whose use is reported (default ``/`` or ``C:\\``).
            sysfs_net: Where Linux exposes NICs (a fixture directory in tests).
            route_table: Linux's IPv4 routing table file.
            clock: Monotonic seconds, for the CPU measurement window.
        """
        self._nic = nic
        self._disk_path = disk_path or _default_disk_path()
        self._sysfs_net = sysfs_net
        self._route_table = route_table
        self._linux = sys.platform.startswith("linux")
        self._missing_nic_logged = False
        # The first cpu_percent() call only starts the measurement; it returns a meaningless 0.
        psutil.cpu_percent(interval=None)
        self._clock = clock
        self._cpu_since = clock()

    def choose_nic(self, local_ip: str | None) -> str | None:
        """The interface to report: configured, else the default route's, else ``local_ip``'s."""
        if self._nic is not None:
            return self._nic
        if self._linux:
            try:
                name = default_route_nic(self._route_table.read_text())
            except OSError:
                name = None
            if name is not None:
                return name
        if local_ip is not None:
            return nic_with_address(psutil.net_if_addrs(), local_ip)
        return None

    def link(self, local_ip: str | None) -> LinkInfo:
        """The chosen NIC's name, speed, duplex, IP and MAC.

        Args:
            local_ip: The local address of the broker connection, the fallback for choosing.
        """
        name = self.choose_nic(local_ip)
        if name is None:
            return LinkInfo(None, None, "unknown", local_ip, None)
        entries = psutil.net_if_addrs().get(name)
        if entries is None:
            if not self._missing_nic_logged:
                logger.warning("network interface %r not found; reporting no link data", name)
                self._missing_nic_logged = True
            return LinkInfo(name, None, "unknown", None, None)
        ip, mac = addresses_of(entries)
        if self._linux:
            speed, duplex = read_sysfs_link(self._sysfs_net, name)
        else:
            speed, duplex = _psutil_link(name)
        return LinkInfo(name, speed, duplex, ip, mac)

    def snapshot(self, local_ip: str | None) -> Snapshot:
        """Read everything a heartbeat carries.

        A measurement the OS refuses is reported as missing (and logged at debug): the
        heartbeat itself, the proof of life, must go out regardless.
        """
        try:
            link = self.link(local_ip)
        except (OSError, psutil.Error) as exc:
            logger.debug("cannot read the network interfaces: %s", exc)
            link = LinkInfo(self._nic, None, "unknown", local_ip, None)
        memory_used = memory_total = None
        try:
            memory = psutil.virtual_memory()
            # total - available is what is really in use (page cache does not count).
            memory_total = int(memory.total)
            memory_used = max(0, min(memory_total, memory_total - int(memory.available)))
        except (OSError, psutil.Error) as exc:
            logger.debug("cannot read memory use: %s", exc)
        disk_used = disk_total = None
        try:
            disk = shutil.disk_usage(self._disk_path)
            disk_total, disk_used = disk.total, min(disk.used, disk.total)
        except OSError as exc:
            logger.debug("cannot read disk use of %s: %s", self._disk_path, exc)
        return Snapshot(
            uptime_seconds=_uptime_seconds(),
            link=link,
            cpu_percent=self._cpu_percent(),
            memory_used_bytes=memory_used,
            memory_total_bytes=memory_total,
            disk_used_bytes=disk_used,
            disk_total_bytes=disk_total,
        )

    def _cpu_percent(self) -> float | None:
        now = self._clock()
        # Over a window this short the figure is noise (0 or 100): report none, and leave the
        # window open so that the next snapshot measures from the same start.
        if now - self._cpu_since < _MIN_CPU_WINDOW:
            return None
        self._cpu_since = now
        try:
            cpu = float(psutil.cpu_percent(interval=None))
        except (OSError, psutil.Error) as exc:
            logger.debug("cannot read CPU use: %s", exc)
            return None
        return cpu if 0.0 <= cpu <= 100.0 else None


def _psutil_link(name: str) -> tuple[int | None, Duplex]:
    stats = psutil.net_if_stats().get(name)
    if stats is None:
        return None, "unknown"
    speed = int(stats.speed) if stats.speed and stats.speed > 0 else None
    if stats.duplex == psutil.NIC_DUPLEX_FULL:
        return speed, "full"
    if stats.duplex == psutil.NIC_DUPLEX_HALF:
        return speed, "half"
    return speed, "unknown"
