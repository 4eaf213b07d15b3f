"""A poll as a school agent publishes it: the wire envelope and the observation inside."""

from __future__ import annotations

import json

import pytest

from edumon.domain import observation_codec as codec
from edumon.domain.models import (
    AdminStatus,
    Counter64,
    DeviceReading,
    DeviceUnreachable,
    InterfaceReading,
    OperStatus,
)
from edumon.wire import (
    KIND_POLL,
    KIND_STATUS,
    AgentStatus,
    PollReport,
    WireError,
    agent_filter,
    agent_topic,
    encode_agent_status,
    encode_poll,
    parse_agent_message,
    parse_message,
)

READING = DeviceReading(
    device_id="sw-a",
    at=1_725_148_800.25,
    sys_uptime_ticks=123456,
    sys_name="教学楼三层",
    sys_descr="H3C S5130",
    interfaces=(
        InterfaceReading(
            1,
            "Gi0/1",
            "一年级(1)班",
            "GigabitEthernet0/1",
            OperStatus.UP,
            AdminStatus.UP,
            1000.0,
            Counter64(2**63 + 5),
            Counter64(7),
            64,
            0,
            1,
        ),
        InterfaceReading(
            2, "Gi0/2", "", "Gi0/2", OperStatus.DOWN, AdminStatus.UP, None, 10, 20, 32, None, None
        ),
    ),
    poll_seconds=0.5,
    varbinds=42,
    hr_uptime_ticks=None,
    engine_boots=3,
    engine_time=999,
)


@pytest.mark.parametrize(
    "obs",
    [READING, DeviceUnreachable("sw-a", 1_725_148_860.0, "timeout: check community", 2.0)],
    ids=["reading", "unreachable"],
)
def test_observation_round_trip(obs: codec.Observation) -> None:
    data = json.loads(json.dumps(codec.encode(obs)))
    back = codec.decode(data)
    assert back == obs
    if isinstance(back, DeviceReading):
        assert type(back.interfaces[0].in_octets) is Counter64
        assert type(back.interfaces[1].in_octets) is int


@pytest.mark.parametrize(
    "change",
    [
        {"type": "other"},
        {"at": "now"},
        {"device": ""},
        {"ifs": [[1, "x"]]},
        {"uptime": -1},
        {"ifs": [[1, "a", "", "", 9, 1, None, None, None, 64, None, None]]},
    ],
)
def test_bad_observations_are_refused(change: dict[str, object]) -> None:
    data = {**codec.encode(READING), **change}
    with pytest.raises(codec.ObservationFormatError):
        codec.decode(data)


def test_poll_and_status_parse_back() -> None:
    report = PollReport(
        "d1", "A", "A-agent", "b00t", 7, READING.at, "0.1.0", True, codec.encode(READING)
    )
    topic = agent_topic("d1", "A", "A-agent", KIND_POLL)
    assert parse_agent_message(topic, encode_poll(report)) == report
    status = AgentStatus("d1", "A", "A-agent", "online", "birth", "b00t", 1, 2, 1.0, "0.1.0", 5, 3)
    status_topic = agent_topic("d1", "A", "A-agent", KIND_STATUS)
    assert parse_agent_message(status_topic, encode_agent_status(status)) == status
    assert agent_filter(KIND_POLL, "d1") == "edumon/v1/d1/+/agent/+/poll"
    # The terminals' parser does not take agent topics, nor the agents' a terminal's.
    with pytest.raises(WireError):
        parse_message(status_topic, encode_agent_status(status))
    with pytest.raises(WireError):
        parse_agent_message("edumon/v1/d1/A/terminal/t1/status", b"{}")
    # A poll claiming another agent's id than its topic's is refused.
    other = agent_topic("d1", "A", "B-agent", KIND_POLL)
    with pytest.raises(WireError, match="id_mismatch"):
        parse_agent_message(other, encode_poll(report))
