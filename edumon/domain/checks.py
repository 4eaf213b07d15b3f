"""Target compliance checks: is each school's uplink and each classroom's link at target speed."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.models import OperStatus
from edumon.domain.state import NetworkState
from edumon.domain.targets import Targets


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


class CheckName(enum.StrEnum):
    UPLINK_UP = "uplink_up"
    UPLINK_SPEED = "uplink_speed"
    CLASSROOM_SPEED = "classroom_speed"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome, with a reason a school network administrator can act on."""

    check: CheckName
    school: str
    verdict: Verdict
    reason: str
    """In Chinese, for the school network administrator."""
    classroom: str | None = None
    device_id: str | None = None
    interface: str | None = None
    speed_mbps: float | None = None
    target_mbps: float | None = None
    reason_en: str = ""
    """The same reason in English."""


@dataclass(frozen=True, slots=True)
class SchoolCompliance:
    """All checks for one school and their overall verdict (fail beats unknown beats pass)."""

    school: str
    verdict: Verdict
    uplink: tuple[CheckResult, ...]
    classrooms: tuple[CheckResult, ...]

    @property
    def results(self) -> tuple[CheckResult, ...]:
        return self.uplink + self.classrooms


Reason = tuple[str, str]
"""A reason in Chinese, and the same in English."""

_STATUS_ZH = {
    OperStatus.UP: "已连接 (up)",
    OperStatus.DOWN: "断开 (down)",
    OperStatus.TESTING: "测试中 (testing)",
    OperStatus.UNKNOWN: "状态未知 (unknown)",
    OperStatus.DORMANT: "休眠 (dormant)",
    OperStatus.NOT_PRESENT: "不存在 (not present)",
    OperStatus.LOWER_LAYER_DOWN: "下层断开 (lower layer down)",
}


@dataclass(frozen=True, slots=True)
class _Subject:
    """What a check is about; every result for it carries these fields."""

    school: str
    device_id: str | None
    interface: str | None
    target_mbps: float | None
    classroom: str | None = None

    def result(
        self, check: CheckName, verdict: Verdict, reason: Reason, speed: float | None = None
    ) -> CheckResult:
        return CheckResult(
            check,
            self.school,
            verdict,
            reason[0],
            self.classroom,
            self.device_id,
            self.interface,
            speed,
            self.target_mbps,
            reason[1],
        )


def _overall(results: tuple[CheckResult, ...]) -> Verdict:
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.UNKNOWN in verdicts or not verdicts:
        return Verdict.UNKNOWN
    return Verdict.PASS


def _port_unknown(state: NetworkState, device_id: str, port: str) -> Reason | None:
    """Why a port's status cannot be judged now, or None when it can."""
    dev = state.devices.get(device_id)
    if dev is None or dev.reachable is None:
        return (
            f"交换机 {device_id} 尚未轮询",
            f"switch {device_id} has not been polled yet",
        )
    if dev.reachable is False:
        error = dev.last_error or "no reply"
        return (
            f"交换机 {device_id} 无法访问（{error}）",
            f"switch {device_id} is unreachable ({error})",
        )
    iface = dev.interfaces.get(port)
    if iface is None:
        return (
            f"交换机 {device_id} 上找不到端口 {port}；请核对配置中的端口名 (ifName)",
            f"port {port} was not found on switch {device_id}; "
            "check the port name (ifName) in the configuration",
        )
    return None


def check_uplink(
    state: NetworkState, school: SchoolRef, targets: Targets
) -> tuple[CheckResult, ...]:
    """Uplink up, and at or above the target speed."""
    sw, port = school.uplink_switch, school.uplink_port
    base = _Subject(school.code, sw, port, targets.uplink_mbps)
    why = _port_unknown(state, sw, port)
    if why is not None:
        return (
            base.result(CheckName.UPLINK_UP, Verdict.UNKNOWN, why),
            base.result(CheckName.UPLINK_SPEED, Verdict.UNKNOWN, why),
        )
    iface = state.devices[sw].interfaces[port]
    if iface.oper_status is not OperStatus.UP:
        status = iface.oper_status.name.lower()
        zh = _STATUS_ZH[iface.oper_status]
        down = (
            f"上联端口 {sw} {port} {zh}：学校与教育城域网断开",
            f"uplink {port} on {sw} is {status}: the school is cut off from the district network",
        )
        return (
            base.result(CheckName.UPLINK_UP, Verdict.FAIL, down),
            base.result(
                CheckName.UPLINK_SPEED,
                Verdict.UNKNOWN,
                (
                    f"上联{zh}，无法测得速率",
                    f"uplink is {status}, so its speed cannot be measured",
                ),
            ),
        )
    up = base.result(
        CheckName.UPLINK_UP,
        Verdict.PASS,
        (f"上联端口 {sw} {port} 已连接", f"uplink {port} on {sw} is up"),
    )
    return (
        up,
        _speed_check(
            CheckName.UPLINK_SPEED, _UPLINK, iface.speed_mbps, targets.uplink_mbps, None, base
        ),
    )


_UPLINK: Reason = ("上联", "uplink")
_CLASSROOM: Reason = ("教室链路", "classroom link")
_BY_TERMINAL: Reason = (
    "由班班通终端上报；该教室未对应交换机端口",
    "as reported by the classroom terminal; no switch port is mapped",
)
_LAST_SEEN: Reason = (
    "端口当前断开；速率为最后一次连接时的值",
    "port is down now; speed as last seen up",
)


def _speed_check(
    name: CheckName,
    what: Reason,
    speed: float | None,
    target: float | None,
    note: Reason | None,
    base: _Subject,
) -> CheckResult:
    if speed is None:
        return base.result(
            name,
            Verdict.UNKNOWN,
            (f"交换机未报告该{what[0]}的速率", f"the switch reports no speed for this {what[1]}"),
        )
    zh_note = f"（{note[0]}）" if note else ""
    en_note = f" ({note[1]})" if note else ""
    if target is None:
        return base.result(
            name,
            Verdict.PASS,
            (
                f"{what[0]}速率 {speed:g} Mbit/s；当前目标档未设目标{zh_note}",
                f"{what[1]} at {speed:g} Mbit/s; the profile sets no target{en_note}",
            ),
            speed,
        )
    if speed < target:
        return base.result(
            name,
            Verdict.FAIL,
            (
                f"{what[0]}速率 {speed:g} Mbit/s，低于 {target:g} Mbit/s 目标{zh_note}；"
                "请检查网线、端口速率/双工设置和设备网卡",
                f"{what[1]} runs at {speed:g} Mbit/s, below the {target:g} Mbit/s target"
                f"{en_note}; check the cable, the port's speed/duplex setting and the device's NIC",
            ),
            speed,
        )
    return base.result(
        name,
        Verdict.PASS,
        (
            f"{what[0]}速率 {speed:g} Mbit/s，达到 {target:g} Mbit/s 目标{zh_note}",
            f"{what[1]} at {speed:g} Mbit/s meets the {target:g} Mbit/s target{en_note}",
        ),
        speed,
    )


def check_classroom(
    state: NetworkState,
    school: SchoolRef,
    room: ClassroomRef,
    targets: Targets,
    uplink_ok: bool,
    terminal_speed: float | None = None,
) -> CheckResult:
    """A classroom's access port at or above the classroom target.

    A port that is down now (terminal switched off) is judged by the speed it had when it
    was last up; a classroom behind a school uplink that is down is unknown, not failing.
    Without a mapped switch port, the speed the classroom's terminal reports for its own NIC
    (``terminal_speed``) is judged instead.
    """
    base = _Subject(school.code, room.switch, room.port, targets.classroom_mbps, room.id)
    name = CheckName.CLASSROOM_SPEED
    if room.switch is None or room.port is None:
        if terminal_speed is not None:
            return _speed_check(
                name, _CLASSROOM, terminal_speed, targets.classroom_mbps, _BY_TERMINAL, base
            )
        return base.result(
            name,
            Verdict.UNKNOWN,
            (
                "该教室未对应交换机端口，其终端也未报告链路速率",
                "no switch port is mapped to this classroom "
                "and its terminal reported no link speed",
            ),
        )
    why = _port_unknown(state, room.switch, room.port)
    if why is None and not uplink_ok and room.switch != school.uplink_switch:
        why = (
            "学校上联断开，无法判断教室链路",
            "the school's uplink is down, so the classroom's link cannot be judged",
        )
    if why is not None:
        return base.result(name, Verdict.UNKNOWN, why)
    iface = state.devices[room.switch].interfaces[room.port]
    if iface.oper_status is OperStatus.UP:
        return _speed_check(name, _CLASSROOM, iface.speed_mbps, targets.classroom_mbps, None, base)
    if iface.last_speed_mbps is None:
        return base.result(
            name,
            Verdict.UNKNOWN,
            (
                f"端口 {room.port} {_STATUS_ZH[iface.oper_status]}，且尚未见过连接（终端未开机？）",
                f"port {room.port} is {iface.oper_status.name.lower()} and has "
                "not been seen up yet (terminal switched off?)",
            ),
        )
    return _speed_check(
        name, _CLASSROOM, iface.last_speed_mbps, targets.classroom_mbps, _LAST_SEEN, base
    )


def check_school(
    state: NetworkState,
    school: SchoolRef,
    targets: Targets,
    terminal_speeds: Mapping[str, float | None] | None = None,
) -> SchoolCompliance:
    """Every check for one school (``terminal_speeds``: terminal NIC speed by classroom id)."""
    uplink = check_uplink(state, school, targets)
    uplink_ok = uplink[0].verdict is Verdict.PASS
    speeds = terminal_speeds or {}
    rooms = tuple(
        check_classroom(state, school, room, targets, uplink_ok, speeds.get(room.id))
        for room in school.classrooms
    )
    if targets.classroom_mbps is None:
        rooms = ()
    return SchoolCompliance(school.code, _overall(uplink + rooms), uplink, rooms)


def check_district(
    state: NetworkState,
    targets: Targets,
    terminal_speeds: Mapping[str, float | None] | None = None,
) -> dict[str, SchoolCompliance]:
    """Every school's compliance, by school code."""
    return {
        code: check_school(state, s, targets, terminal_speeds)
        for code, s in state.inventory.schools.items()
    }
