"""The demo district: four schools of simulated switches on loopback and the config to poll them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Literal, Self
from zoneinfo import ZoneInfo

from edumon.config import Config, parse_config
from edumon.demo.agent import SimulatedSwitch
from edumon.demo.recording import load_recording
from edumon.demo.terminals import SimulatedTerminals, TerminalPlan
from edumon.tokens import hash_token, new_token

logger = logging.getLogger(__name__)

Encoding = Literal["utf-8", "gbk"] | None


@dataclass(frozen=True, slots=True)
class _SwitchPlan:
    id: str
    school: str | None
    """None for a district switch (it serves several schools)."""
    recording: str
    sys_name: str
    alias_encoding: Encoding
    """How this vendor stores ifAlias; None where the switch has no ifAlias (no ifXTable)."""
    upstream: tuple[str, str] | None = None
    """(switch, port) this switch is cabled to, when that is not inferred (docs/topology.md)."""


@dataclass(frozen=True, slots=True)
class _RoomPlan:
    id: str
    school: str
    name: str
    switch: str
    port: str
    speed_mbps: float | None = None
    """Force the link to this speed (a classroom that negotiated 100M); None keeps the recording."""


@dataclass(frozen=True, slots=True)
class _SchoolPlan:
    code: str
    name: str
    kind: str
    uplink_switch: str
    uplink_port: str
    uplink_mbps: float | None = None


def _grades(grades: str, classes: int) -> list[str]:
    return [f"{g}年级{c}班" for g in grades for c in range(1, classes + 1)]


@dataclass(frozen=True, slots=True)
class _Plan:
    switches: tuple[_SwitchPlan, ...]
    schools: tuple[_SchoolPlan, ...]
    rooms: tuple[_RoomPlan, ...]
    flapping: tuple[str, str]
    rebooting: str
    cut_school: str
    """The school whose fibre is cut for a while (its switches stop answering)."""


def _plan() -> _Plan:
    """The district's layout: which switch of which vendor sits where, and what is wrong with it."""
    switches = (
        _SwitchPlan("cgzx-core", "cgzx", "h3c-s5130", "CGZX-CORE-5130", "gbk"),
        _SwitchPlan("cgzx-jxl-1", "cgzx", "huawei-s5735", "CGZX-JXL-S5735-01", "utf-8"),
        _SwitchPlan("syxx-core", "syxx", "h3c-s5130", "SYXX-CORE-5130", "gbk"),
        _SwitchPlan("syxx-jxl-1", "syxx", "ruijie-s2910", "SYXX-JXL-S2910-01", None),
        _SwitchPlan("syxx-jxl-2", "syxx", "huawei-s5735", "SYXX-JXL-S5735-02", "utf-8"),
        _SwitchPlan("dyzx-core", "dyzx", "huawei-s5735", "DYZX-CORE-S5735", "utf-8"),
        _SwitchPlan("dyzx-jxl-1", "dyzx", "h3c-s5130", "DYZX-JXL-5130-01", "gbk"),
        _SwitchPlan("dyzx-syl-1", "dyzx", "ruijie-s2910", "DYZX-SYL-S2910-01", None),
        # 石桥镇's schools reach the district through the town's aggregation switch: the uplink
        # of 石桥镇九年一贯制学校 is a port of that switch, its core hangs off the port.
        _SwitchPlan("sq-agg", None, "h3c-s5130", "SHIQIAO-AGG-5130", "gbk"),
        _SwitchPlan(
            "sqzx-core",
            "sqzx",
            "ruijie-s2910",
            "SQZX-CORE-S2910",
            None,
            ("sq-agg", "GigabitEthernet1/0/1"),
        ),
        _SwitchPlan("sqzx-jxl-1", "sqzx", "huawei-s5735", "SQZX-JXL-S5735-01", "utf-8"),
    )
    schools = (
        _SchoolPlan("cgzx", "城关镇中心小学", "primary", "cgzx-core", "Ten-GigabitEthernet1/0/25"),
        _SchoolPlan("syxx", "实验小学", "primary", "syxx-core", "Ten-GigabitEthernet1/0/25"),
        _SchoolPlan("dyzx", "第一中学", "middle", "dyzx-core", "XGigabitEthernet0/0/1"),
        # The one school still on a 100M line to the district centre.
        _SchoolPlan(
            "sqzx", "石桥镇九年一贯制学校", "nine_year", "sq-agg", "GigabitEthernet1/0/1", 100
        ),
    )
    middle = [f"{g}({c})班" for g in ("初一", "初二", "初三") for c in (1, 2, 3, 4)]
    labs = ["物理实验室", "化学实验室", "生物实验室", "计算机教室"]
    # (school, access switch, classrooms, port name format, first port number). The recordings
    # already show some of these ports at 100M and some terminals switched off.
    layout = (
        ("cgzx", "cgzx-jxl-1", _grades("一二三四五六", 3), "GigabitEthernet0/0/{}", 1),
        ("syxx", "syxx-jxl-1", _grades("一二三四", 2), "GigabitEthernet 0/{}", 1),
        ("syxx", "syxx-jxl-2", _grades("五六", 2), "GigabitEthernet0/0/{}", 1),
        ("dyzx", "dyzx-jxl-1", middle, "GigabitEthernet1/0/{}", 1),
        ("dyzx", "dyzx-syl-1", labs, "GigabitEthernet 0/{}", 1),
        ("sqzx", "sqzx-jxl-1", _grades("一二三四五六七八九", 1), "GigabitEthernet0/0/{}", 1),
    )
    # More classrooms whose cabling only negotiates 100M.
    slow = {"sqzx-03": 100.0, "sqzx-07": 100.0, "dyzx-02": 100.0}
    rooms: list[_RoomPlan] = []
    counts: dict[str, int] = {}
    for school, switch, names, port, first in layout:
        for offset, name in enumerate(names):
            counts[school] = counts.get(school, 0) + 1
            room_id = f"{school}-{counts[school]:02d}"
            rooms.append(
                _RoomPlan(
                    room_id, school, name, switch, port.format(first + offset), slow.get(room_id)
                )
            )
    return _Plan(
        switches=switches,
        schools=schools,
        rooms=tuple(rooms),
        flapping=("syxx-jxl-2", "GigabitEthernet0/0/3"),
        rebooting="dyzx-jxl-1",
        cut_school="syxx",
    )


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes), Chinese kept readable.
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ClassroomLink:
    """What a classroom's access port is doing right now in the simulation."""

    switch: str
    port: str
    up: bool
    speed_mbps: float


class SimulatedDistrict:
    """Four schools (小学 and 中学) of simulated switches, and the Config that polls them.

    Each school has an uplink switch and one or two access switches replaying different vendor
    recordings; classrooms hang off access ports. Built in: classrooms negotiated at 100M, one
    flapping classroom port, one access switch that reboots (first after
    ``first_reboot_seconds``, then every ``reboot_every_seconds``), one school uplink at 100M.

    Use as ``async with SimulatedDistrict(storage_url=..., listen=..., mqtt_listen=...) as d:
    d.config``.

    Args:
        storage_url: ``storage.url`` of the generated config.
        listen: ``api.listen`` of the generated config (HOST:PORT).
        interval_seconds: ``polling.interval_seconds``.
        flap_period_seconds: the flapping port goes down every this many seconds and comes
            back half a period later.
        first_reboot_seconds: when the rebooting switch first restarts.
        reboot_every_seconds: how often it restarts after that.
        reboot_silent_seconds: how long it answers nothing while restarting.
        community: the switches' read community (default: a random one).
        host: loopback address the switches listen on.
        mqtt_listen: where the daemon's embedded MQTT broker listens (HOST:PORT); the terminals
            connect there. No default: a district's terminals must never reach a broker they
            were not meant for (another demo's, on the product's default port).
        heartbeat_seconds: the simulated terminals' heartbeat interval.
        terminals_drop_after_seconds: when the terminals of the school in trouble lose power.
        cut_after_seconds: when the fibre of 实验小学 is cut (its switches stop answering: one
            school alert, its classrooms and switches unknown); None: never.
        cut_seconds: how long the cut lasts.
        extra_config: TOML appended to the generated configuration (e.g. a ``[notify]`` table).
        now: the demo's start time (the timetable puts a lesson on at this moment).

    Terminals: one per classroom, each a real MQTT client of the daemon's embedded broker.
    Today is a lesson day with a lesson on now for three schools: at 城关镇中心小学 a few
    panels are left switched off (offline during a lesson), at 第一中学 the terminals lose
    power during the lesson; 石桥镇九年一贯制学校 has no lessons today (期中考试), its
    terminals are off and nothing alerts.
    """

    def __init__(
        self,
        *,
        storage_url: str,
        listen: str,
        interval_seconds: float = 5.0,
        flap_period_seconds: float = 20.0,
        first_reboot_seconds: float = 15.0,
        reboot_every_seconds: float = 240.0,
        reboot_silent_seconds: float = 8.0,
        community: str | None = None,
        host: str = "127.0.0.1",
        mqtt_listen: str,
        heartbeat_seconds: float = 5.0,
        terminals_drop_after_seconds: float = 20.0,
        cut_after_seconds: float | None = 40.0,
        cut_seconds: float = 60.0,
        extra_config: str = "",
        now: datetime | None = None,
    ) -> None:
        self._storage_url = storage_url
        self._listen = listen
        self._interval = interval_seconds
        self._flap_period = flap_period_seconds
        self._first_reboot = first_reboot_seconds
        self._reboot_every = reboot_every_seconds
        self._reboot_silent = reboot_silent_seconds
        self._community = community if community is not None else secrets.token_urlsafe(12)
        self._host = host
        self._mqtt_listen = mqtt_listen
        self._heartbeat = heartbeat_seconds
        self._drop_after = terminals_drop_after_seconds
        self._cut_after = cut_after_seconds
        self._cut_seconds = cut_seconds
        self._extra_config = extra_config
        self._now = now
        self._terminals: SimulatedTerminals | None = None
        self.report_config_text = ""
        """The configuration for ``edumon report --db`` (set once started)."""
        self._plan = _plan()
        # The terminals log in per school, as a district's do (docs/mqtt-security.md).
        self._mqtt_passwords = {s.code: new_token() for s in self._plan.schools}
        self._switches: dict[str, SimulatedSwitch] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._config: Config | None = None
        self.reboots = 0
        """How many times the rebooting switch has restarted so far."""
        self.flaps = 0
        """How many times the flapping port has gone down so far."""

    def __repr__(self) -> str:
        return f"SimulatedDistrict({len(self._switches)} switches running)"

    @property
    def config(self) -> Config:
        """The validated Config pointing at the running switches.

        Raises:
            RuntimeError: the district has not been started.
        """
        if self._config is None:
            raise RuntimeError("the simulated district is not started")
        return self._config

    @property
    def switches(self) -> Mapping[str, SimulatedSwitch]:
        """The running simulated switches by switch id."""
        return dict(self._switches)

    @property
    def flapping_port(self) -> tuple[str, str]:
        """(switch id, port name) of the classroom port that goes down and up."""
        return self._plan.flapping

    @property
    def rebooting_switch(self) -> str:
        """The id of the access switch that reboots now and then."""
        return self._plan.rebooting

    @property
    def cut_school(self) -> str:
        """The code of the school whose fibre is cut for a while."""
        return self._plan.cut_school

    @property
    def slow_uplink_school(self) -> str:
        """The code of the school whose uplink runs at 100M."""
        return next(s.code for s in self._plan.schools if s.uplink_mbps is not None)

    def classroom_links(self) -> dict[str, ClassroomLink]:
        """Each classroom's port state as simulated now (what a poll should find)."""
        out: dict[str, ClassroomLink] = {}
        for room in self._plan.rooms:
            model = self._switches[room.switch].model
            if_index = model.if_index_of(room.port)
            out[room.id] = ClassroomLink(
                room.switch, room.port, model.is_up(if_index), model.speed_mbps(if_index)
            )
        return out

    async def start(self) -> None:
        """Start every switch, apply the scenario, build the config and start the timers."""
        if self._config is not None:
            return
        # Recordings are immutable: several switches of one model share one parsed file.
        recordings = {
            name: load_recording(name) for name in {s.recording for s in self._plan.switches}
        }
        try:
            for sw in self._plan.switches:
                switch = SimulatedSwitch(
                    recordings[sw.recording],
                    community=self._community,
                    host=self._host,
                    sys_name=sw.sys_name,
                    name=sw.id,
                )
                await switch.start()
                self._switches[sw.id] = switch
            self._apply_scenario()
            text = self._config_text()
            self._config = parse_config(text, where="<simulated district>")
            # What `edumon report` needs to read the demo's database (its timetable is made
            # around the start time): without the extra TOML, which may hold webhook secrets,
            # and without the agents' community.
            base = text[: len(text) - len(self._extra_config)]
            self.report_config_text = base.replace(self._community, "demo")
        except BaseException:
            await self.stop()
            raise
        host, _, port = self._mqtt_listen.rpartition(":")
        self._terminals = SimulatedTerminals(
            self._terminal_plans(), host, int(port), heartbeat_seconds=self._heartbeat
        )
        await self._terminals.start()
        flap_switch, flap_port = self._plan.flapping
        self._tasks = [
            asyncio.create_task(self._flap(), name=f"demo-flap:{flap_switch}:{flap_port}"),
            asyncio.create_task(self._reboots(), name=f"demo-reboot:{self._plan.rebooting}"),
        ]
        if self._cut_after is not None:
            self._tasks.append(
                asyncio.create_task(self._cut(self._cut_after), name="demo-fibre-cut")
            )
        logger.info(
            "simulated district: %d schools, %d switches, %d classrooms",
            len(self._plan.schools),
            len(self._switches),
            len(self._plan.rooms),
        )

    async def stop(self) -> None:
        """Cancel the timers, stop the terminals and every switch."""
        if self._terminals is not None:
            await self._terminals.stop()
            self._terminals = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        switches, self._switches = self._switches, {}
        for switch in switches.values():
            await switch.stop()
        self._config = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _apply_scenario(self) -> None:
        encodings = {sw.id: sw.alias_encoding for sw in self._plan.switches}
        for room in self._plan.rooms:
            model = self._switches[room.switch].model
            if_index = model.if_index_of(room.port)
            encoding = encodings[room.switch]
            if encoding is not None:
                # Port descriptions as the school's admin typed them, in the vendor's encoding.
                model.set_alias(if_index, room.name.encode(encoding))
            if room.speed_mbps is not None:
                model.set_link(if_index, True, room.speed_mbps)
        for school in self._plan.schools:
            model = self._switches[school.uplink_switch].model
            if_index = model.if_index_of(school.uplink_port)
            if school.uplink_mbps is not None:
                model.set_link(if_index, True, school.uplink_mbps)
            elif not model.is_up(if_index):
                model.set_link(if_index, True)
        flap_switch, flap_port = self._plan.flapping
        model = self._switches[flap_switch].model
        model.set_link(model.if_index_of(flap_port), True, 1000)

    async def _flap(self) -> None:
        switch_id, port = self._plan.flapping
        model = self._switches[switch_id].model
        if_index = model.if_index_of(port)
        while True:
            await asyncio.sleep(self._flap_period / 2)
            model.set_link(if_index, False)
            self.flaps += 1
            logger.info("simulated district: %s %s went down", switch_id, port)
            await asyncio.sleep(self._flap_period / 2)
            model.set_link(if_index, True, 1000)
            logger.info("simulated district: %s %s came back up", switch_id, port)

    async def _reboots(self) -> None:
        switch_id = self._plan.rebooting
        switch = self._switches[switch_id]
        delay = self._first_reboot
        while True:
            await asyncio.sleep(delay)
            switch.reboot(silent_seconds=self._reboot_silent)
            self.reboots += 1
            logger.info("simulated district: %s is rebooting", switch_id)
            delay = self._reboot_every

    async def _cut(self, after: float) -> None:
        await asyncio.sleep(after)
        school = self._plan.cut_school
        cut = [sw.id for sw in self._plan.switches if sw.school == school]
        for switch_id in cut:
            self._switches[switch_id].set_reachable(False)
        logger.info("simulated district: the fibre of %s is cut (%s)", school, ", ".join(cut))
        await asyncio.sleep(self._cut_seconds)
        for switch_id in cut:
            self._switches[switch_id].set_reachable(True)
        logger.info("simulated district: the fibre of %s is repaired", school)

    # The school whose terminals lose power during the lesson, and the one with no lessons today.
    TERMINALS_DROP_SCHOOL = "dyzx"
    NO_LESSONS_SCHOOL = "sqzx"
    SWITCHED_OFF = frozenset({"cgzx-04", "cgzx-11"})

    def _terminal_plans(self) -> list[TerminalPlan]:
        plans = []
        for room in self._plan.rooms:
            speed = room.speed_mbps or 1000.0
            plans.append(
                TerminalPlan(
                    username=room.school,
                    password=self._mqtt_passwords[room.school],
                    district="demo",
                    school=room.school,
                    terminal=room.id,
                    link_speed_mbps=int(speed),
                    switched_on=room.school != self.NO_LESSONS_SCHOOL
                    and room.id not in self.SWITCHED_OFF,
                    drops_after_seconds=self._drop_after
                    if room.school == self.TERMINALS_DROP_SCHOOL
                    else None,
                )
            )
        return plans

    def _schedule_lines(self) -> list[str]:
        """A timetable with a lesson on now, today a lesson day (whatever the real calendar)."""
        zone = ZoneInfo("Asia/Shanghai")
        now = (self._now or datetime.now(zone)).astimezone(zone)
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        periods = []
        for _ in range(6):
            end = start + timedelta(minutes=40)
            if end.date() != midnight.date():
                break
            periods.append(f'{{ start = "{start:%H:%M}", end = "{end:%H:%M}" }}')
            start = end + timedelta(minutes=10)
        if start.date() != midnight.date() and not periods:
            periods.append('{ start = "23:00", end = "23:59" }')
        today = now.date().isoformat()
        lesson_schools = ", ".join(
            _toml(s.code) for s in self._plan.schools if s.code != self.NO_LESSONS_SCHOOL
        )
        return [
            "",
            "[schedule]",
            'timezone = "Asia/Shanghai"',
            "",
            "[schedule.timetables.demo]",
            f"periods = [{', '.join(periods)}]",
            "",
            "[schedule.defaults]",
            'primary = "demo"',
            'middle = "demo"',
            'nine_year = "demo"',
            "",
            "[[schedule.lesson_days]]",
            f"start = {today}",
            f"reason = {_toml('演示：今天有课')}",
            f"schools = [{lesson_schools}]",
            "",
            "[[schedule.no_lesson_days]]",
            f"start = {today}",
            f"reason = {_toml('期中考试（演示）')}",
            f"schools = [{_toml(self.NO_LESSONS_SCHOOL)}]",
        ]

    def mqtt_logins(self) -> dict[str, str]:
        """Each school's MQTT password (its user name is the school code), for trying a
        terminal agent against the demo."""
        return dict(self._mqtt_passwords)

    def _account_lines(self) -> list[str]:
        """One embedded-broker account per school, as a district would configure them."""
        lines = []
        for code, password in self._mqtt_passwords.items():
            lines += [
                "",
                "[[mqtt.accounts]]",
                f"name = {_toml(code)}",
                f"password_hash = {_toml(hash_token(password))}",
            ]
        return lines

    def _config_text(self) -> str:
        lines = [
            "# Generated by edumon's simulated district: every switch is on loopback.",
            "[district]",
            'code = "demo"',
            f"name = {_toml('城关区教育城域网（演示）')}",
            "",
            "[targets]",
            'profile = "district-1000m"',
            "",
            "[storage]",
            f"url = {_toml(self._storage_url)}",
            "",
            "[api]",
            f"listen = {_toml(self._listen)}",
            "",
            "[polling]",
            f"interval_seconds = {float(self._interval)!r}",
            "",
            "[mqtt]",
            'broker = "embedded"',
            f"listen = {_toml(self._mqtt_listen)}",
            f"heartbeat_interval_seconds = {float(self._heartbeat)!r}",
            *self._account_lines(),
            "",
            "# Short graces so that the demo's outages show within a minute or two.",
            "[alerting]",
            "classroom_offline_minutes = 1",
            "school_cut_off_seconds = 10",
            *self._schedule_lines(),
            "",
            "[credentials.demo]",
            'version = "2c"',
            f"community = {_toml(self._community)}",
        ]
        # A poll must fit in an interval even when a switch is silent while it reboots.
        timeout = max(0.2, min(2.0, self._interval / 4))
        for sw in self._plan.switches:
            switch = self._switches[sw.id]
            lines += [
                "",
                "[[switches]]",
                f"id = {_toml(sw.id)}",
                *([f"school = {_toml(sw.school)}"] if sw.school is not None else []),
                f"host = {_toml(switch.host)}",
                f"port = {switch.port}",
                'credentials = "demo"',
                f"timeout_seconds = {timeout!r}",
                "retries = 1",
            ]
            if sw.upstream is not None:
                lines.append(
                    f"upstream = {{ switch = {_toml(sw.upstream[0])}, "
                    f"port = {_toml(sw.upstream[1])} }}"
                )
        for school in self._plan.schools:
            lines += [
                "",
                "[[schools]]",
                f"code = {_toml(school.code)}",
                f"name = {_toml(school.name)}",
                f"kind = {_toml(school.kind)}",
                f"uplink = {{ switch = {_toml(school.uplink_switch)}, "
                f"port = {_toml(school.uplink_port)} }}",
            ]
            for room in self._plan.rooms:
                if room.school != school.code:
                    continue
                lines += [
                    "",
                    "[[schools.classrooms]]",
                    f"id = {_toml(room.id)}",
                    f"name = {_toml(room.name)}",
                    f"switch = {_toml(room.switch)}",
                    f"port = {_toml(room.port)}",
                ]
        return "\n".join(lines) + "\n" + self._extra_config
