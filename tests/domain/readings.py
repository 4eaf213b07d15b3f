"""Builders for poll results, as the SNMP source produces them."""

from __future__ import annotations

from edumon.domain.models import AdminStatus, DeviceReading, InterfaceReading, OperStatus


def port(
    index: int,
    name: str,
    *,
    up: bool = True,
    speed: float | None = 1000.0,
    octets: int | None = 0,
    bits: int = 64,
) -> InterfaceReading:
    return InterfaceReading(
        if_index=index,
        name=name,
        alias="",
        descr=name,
        oper_status=OperStatus.UP if up else OperStatus.DOWN,
        admin_status=AdminStatus.UP,
        speed_mbps=speed if up else None,
        in_octets=octets,
        out_octets=octets,
        counter_bits=bits,
        in_errors=0,
        out_errors=0,
    )


def reading(
    device: str,
    at: float,
    ticks: int,
    *ports: InterfaceReading,
    hr_ticks: int | None = None,
    engine_boots: int | None = None,
    engine_time: int | None = None,
) -> DeviceReading:
    return DeviceReading(
        device,
        at,
        ticks,
        device,
        "test switch",
        tuple(ports),
        hr_uptime_ticks=hr_ticks,
        engine_boots=engine_boots,
        engine_time=engine_time,
    )
