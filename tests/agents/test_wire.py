"""The wire protocol: topics, payload round trips, and every rejection reason."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edumon import wire
from edumon.wire import (
    MAX_PAYLOAD_BYTES,
    REASONS,
    Heartbeat,
    Status,
    TopicParts,
    WireError,
    encode_heartbeat,
    encode_status,
    offline_ends_session,
    parse_heartbeat,
    parse_message,
    parse_status,
    parse_topic,
    terminal_filter,
    terminal_topic,
)

REPO = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO / "agents" / "terminal"

HB_TOPIC = "edumon/v1/county-1/CG01/terminal/CG01-101/heartbeat"
STATUS_TOPIC = "edumon/v1/county-1/CG01/terminal/CG01-101/status"
HB_PARTS = TopicParts("county-1", "CG01", "terminal", "CG01-101", "heartbeat")
STATUS_PARTS = TopicParts("county-1", "CG01", "terminal", "CG01-101", "status")

HEARTBEAT = Heartbeat(
    district="county-1",
    school="CG01",
    terminal="CG01-101",
    boot_id="5f0c9a6e2b7d4c1e8a3f9b2d6e4c1a07",
    seq=17,
    birth_seq=3,
    observed_at=1_725_148_800.25,
    uptime_seconds=3600.5,
    agent_version="0.1.0",
    nic="以太网 2",
    link_speed_mbps=1000,
    duplex="full",
    ip="10.20.1.101",
    mac="3c:7c:3f:1a:2b:3c",
    cpu_percent=12.5,
    memory_used_bytes=3_000_000_000,
    memory_total_bytes=8_000_000_000,
    disk_used_bytes=60_000_000_000,
    disk_total_bytes=256_000_000_000,
)

BIRTH = Status(
    district="county-1",
    school="CG01",
    terminal="CG01-101",
    state="online",
    reason="birth",
    boot_id="5f0c9a6e2b7d4c1e8a3f9b2d6e4c1a07",
    seq=2,
    birth_seq=3,
    observed_at=1_725_148_790.0,
    agent_version="0.1.0",
)


def heartbeat_json(**changes: Any) -> dict[str, Any]:
    """The valid heartbeat as a JSON object, with keys replaced (or removed when ``...``)."""
    data: dict[str, Any] = json.loads(encode_heartbeat(HEARTBEAT))
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


def status_json(**changes: Any) -> dict[str, Any]:
    """The valid birth as a JSON object, with keys replaced (or removed when ``...``)."""
    data: dict[str, Any] = json.loads(encode_status(BIRTH))
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def heartbeat_with_literal(key: str, literal: bytes) -> bytes:
    """The valid heartbeat with ``key`` set to raw JSON text (NaN, 1e400: what dumps won't)."""
    return dumps(heartbeat_json(**{key: "@@"})).replace(b'"@@"', literal)


# ---------------------------------------------------------------------------------------------
# Topics


def test_terminal_topic_round_trips_through_parse_topic() -> None:
    topic = terminal_topic("county-1", "CG01", "CG01-101", "heartbeat")
    assert topic == HB_TOPIC
    assert parse_topic(topic) == HB_PARTS
    assert parse_topic(STATUS_TOPIC).terminal == "CG01-101"


def test_filters_match_the_topics_they_are_for() -> None:
    assert terminal_filter("status") == "edumon/v1/+/+/terminal/+/status"
    assert terminal_filter("heartbeat", "county-1", "CG01") == (
        "edumon/v1/county-1/CG01/terminal/+/heartbeat"
    )


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("edumon/v2/county-1/CG01/terminal/CG01-101/heartbeat", "schema_version"),
        ("edumon/v1/county-1/CG01/terminal/CG01-101", "bad_topic"),
        ("edumon/v1/county-1/CG01/terminal/CG01-101/heartbeat/x", "bad_topic"),
        ("other/v1/county-1/CG01/terminal/CG01-101/heartbeat", "bad_topic"),
        ("edumon/v1/county-1/CG01/printer/CG01-101/heartbeat", "bad_topic"),
        ("edumon/v1/county-1/CG01/terminal/CG01-101/samples", "bad_topic"),
        ("edumon/v1/county-1/CG01/terminal//heartbeat", "bad_topic"),
        ("edumon/v1/county 1/CG01/terminal/CG01-101/heartbeat", "bad_topic"),
        ("edumon/v1/county-1/-CG01/terminal/CG01-101/heartbeat", "bad_topic"),
        ("edumon/v1/county-1/CG01/terminal/" + "x" * 65 + "/heartbeat", "bad_topic"),
        ("", "bad_topic"),
    ],
)
def test_parse_topic_rejects(topic: str, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_topic(topic)
    assert caught.value.reason == reason


@pytest.mark.parametrize("bad_id", ["", "a/b", "a+b", "#", "-lead", "x" * 65, "班级"])
def test_terminal_topic_refuses_ids_that_are_not_topic_safe(bad_id: str) -> None:
    with pytest.raises(WireError) as caught:
        terminal_topic("county-1", "CG01", bad_id, "status")
    assert caught.value.reason == "bad_topic"
    assert not wire.is_valid_id(bad_id)


# ---------------------------------------------------------------------------------------------
# Round trips


def test_heartbeat_round_trip() -> None:
    payload = encode_heartbeat(HEARTBEAT)
    assert len(payload) < MAX_PAYLOAD_BYTES
    assert parse_heartbeat(HB_PARTS, payload) == HEARTBEAT
    assert parse_message(HB_TOPIC, payload) == HEARTBEAT


def test_status_round_trip_for_birth_will_and_shutdown() -> None:
    will = dataclasses.replace(BIRTH, state="offline", reason="will", seq=1)
    shutdown = dataclasses.replace(BIRTH, state="offline", reason="shutdown", seq=40)
    for status in (BIRTH, will, shutdown):
        assert parse_status(STATUS_PARTS, encode_status(status)) == status
        assert parse_message(STATUS_TOPIC, encode_status(status)) == status
    assert BIRTH.online
    assert not will.online


def test_optional_measurements_may_be_null_or_absent() -> None:
    bare = dataclasses.replace(
        HEARTBEAT,
        nic=None,
        link_speed_mbps=None,
        duplex="unknown",
        ip=None,
        mac=None,
        cpu_percent=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        disk_used_bytes=None,
        disk_total_bytes=None,
    )
    assert parse_heartbeat(HB_PARTS, encode_heartbeat(bare)) == bare
    absent = heartbeat_json(
        nic=...,
        speed_mbps=...,
        duplex=...,
        ip=...,
        mac=...,
        cpu_pct=...,
        mem_used=...,
        mem_total=...,
        disk_used=...,
        disk_total=...,
    )
    assert parse_heartbeat(HB_PARTS, dumps(absent)) == bare


def test_unknown_keys_are_ignored_within_v1() -> None:
    parsed = parse_heartbeat(HB_PARTS, dumps(heartbeat_json(new_field_in_v1_1={"x": 1})))
    assert parsed == HEARTBEAT


def test_ipv6_is_accepted_and_normalised() -> None:
    parsed = parse_heartbeat(HB_PARTS, dumps(heartbeat_json(ip="2001:DB8:0:0::1")))
    assert parsed.ip == "2001:db8::1"


def test_integral_floats_and_int_times_are_accepted() -> None:
    parsed = parse_heartbeat(HB_PARTS, dumps(heartbeat_json(ts=1_725_148_800, uptime_s=0)))
    assert parsed.observed_at == 1_725_148_800.0
    assert isinstance(parsed.observed_at, float)
    assert parsed.uptime_seconds == 0.0


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
optional_bytes = st.none() | st.integers(0, 2**40)


@given(
    district=ids,
    school=ids,
    terminal=ids,
    boot=ids,
    seq=st.integers(0, 2**53 - 1),
    birth_seq=st.integers(0, 2**53 - 1),
    ts=st.floats(0, 2**33, allow_nan=False),
    uptime=st.floats(0, 2**32, allow_nan=False),
    nic=st.none() | st.text(min_size=1, max_size=128).filter(str.isprintable),
    speed=st.none() | st.integers(1, 10_000_000),
    duplex=st.sampled_from(["full", "half", "unknown"]),
    ip=st.none() | st.ip_addresses().map(str),
    cpu=st.none() | st.floats(0, 100),
    memory=optional_bytes,
)
def test_any_valid_heartbeat_round_trips(
    district: str,
    school: str,
    terminal: str,
    boot: str,
    seq: int,
    birth_seq: int,
    ts: float,
    uptime: float,
    nic: str | None,
    speed: int | None,
    duplex: wire.Duplex,
    ip: str | None,
    cpu: float | None,
    memory: int | None,
) -> None:
    heartbeat = dataclasses.replace(
        HEARTBEAT,
        district=district,
        school=school,
        terminal=terminal,
        boot_id=boot,
        seq=seq,
        birth_seq=birth_seq,
        observed_at=ts,
        uptime_seconds=uptime,
        nic=nic,
        link_speed_mbps=speed,
        duplex=duplex,
        ip=ip,
        cpu_percent=cpu,
        memory_used_bytes=memory,
        memory_total_bytes=memory,
    )
    topic = terminal_topic(district, school, terminal, "heartbeat")
    assert parse_message(topic, encode_heartbeat(heartbeat)) == heartbeat


# ---------------------------------------------------------------------------------------------
# Rejections: one row per way a payload can be wrong, covering every reason.

HEARTBEAT_REJECTIONS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty"),
    ("too large", dumps(heartbeat_json(pad="x" * MAX_PAYLOAD_BYTES)), "too_large"),
    ("not json", b"{not json", "bad_json"),
    ("not utf-8", b'{"v":1,"nic":"\xff\xfe"}', "bad_json"),
    ("NaN", heartbeat_with_literal("cpu_pct", b"NaN"), "bad_json"),
    ("Infinity", heartbeat_with_literal("ts", b"Infinity"), "bad_json"),
    ("deep nesting", b"[" * 2000 + b"]" * 2000, "bad_json"),
    ("an array", dumps([heartbeat_json()]), "bad_json"),
    ("a string", b'"heartbeat"', "bad_json"),
    ("no version", dumps(heartbeat_json(v=...)), "schema_version"),
    ("version 2", dumps(heartbeat_json(v=2)), "schema_version"),
    ("version as string", dumps(heartbeat_json(v="1")), "schema_version"),
    ("version true", dumps(heartbeat_json(v=True)), "schema_version"),
    ("status payload", encode_status(BIRTH), "kind_mismatch"),
    ("no kind", dumps(heartbeat_json(kind=...)), "kind_mismatch"),
    ("other terminal", dumps(heartbeat_json(terminal="CG01-102")), "id_mismatch"),
    ("other school", dumps(heartbeat_json(school="CG02")), "id_mismatch"),
    ("other district", dumps(heartbeat_json(district="county-2")), "id_mismatch"),
    ("no terminal", dumps(heartbeat_json(terminal=...)), "id_mismatch"),
    ("no boot", dumps(heartbeat_json(boot=...)), "bad_field"),
    ("boot with slash", dumps(heartbeat_json(boot="a/b")), "bad_field"),
    ("boot too long", dumps(heartbeat_json(boot="a" * 65)), "bad_field"),
    ("seq negative", dumps(heartbeat_json(seq=-1)), "bad_field"),
    ("seq float", dumps(heartbeat_json(seq=1.5)), "bad_field"),
    ("seq true", dumps(heartbeat_json(seq=True)), "bad_field"),
    ("seq beyond 2^53", dumps(heartbeat_json(seq=2**53)), "bad_field"),
    ("bd_seq string", dumps(heartbeat_json(bd_seq="3")), "bad_field"),
    ("no ts", dumps(heartbeat_json(ts=...)), "bad_field"),
    ("ts negative", dumps(heartbeat_json(ts=-1)), "bad_field"),
    ("ts huge", dumps(heartbeat_json(ts=1e300)), "bad_field"),
    (
        "ts overflowing to inf",
        heartbeat_with_literal("ts", b"1e400"),
        "bad_field",
    ),
    ("uptime string", dumps(heartbeat_json(uptime_s="1h")), "bad_field"),
    ("agent version missing", dumps(heartbeat_json(agent=...)), "bad_field"),
    ("agent version spaces", dumps(heartbeat_json(agent="1 0")), "bad_field"),
    ("nic empty", dumps(heartbeat_json(nic="")), "bad_field"),
    ("nic control char", dumps(heartbeat_json(nic="eth\n0")), "bad_field"),
    ("nic too long", dumps(heartbeat_json(nic="n" * 129)), "bad_field"),
    ("speed zero", dumps(heartbeat_json(speed_mbps=0)), "bad_field"),
    ("speed negative", dumps(heartbeat_json(speed_mbps=-1)), "bad_field"),
    ("speed float", dumps(heartbeat_json(speed_mbps=1000.0)), "bad_field"),
    ("speed absurd", dumps(heartbeat_json(speed_mbps=10**8)), "bad_field"),
    ("duplex other", dumps(heartbeat_json(duplex="auto")), "bad_field"),
    ("ip garbage", dumps(heartbeat_json(ip="10.0.0.256")), "bad_field"),
    ("ip leading zero", dumps(heartbeat_json(ip="010.0.0.1")), "bad_field"),
    ("ip number", dumps(heartbeat_json(ip=167772161)), "bad_field"),
    ("mac dashes", dumps(heartbeat_json(mac="3C-7C-3F-1A-2B-3C")), "bad_field"),
    ("mac short", dumps(heartbeat_json(mac="3c:7c:3f:1a:2b")), "bad_field"),
    ("cpu above 100", dumps(heartbeat_json(cpu_pct=100.5)), "bad_field"),
    ("cpu negative", dumps(heartbeat_json(cpu_pct=-0.1)), "bad_field"),
    ("memory negative", dumps(heartbeat_json(mem_used=-5)), "bad_field"),
    ("memory used above total", dumps(heartbeat_json(mem_used=9_000_000_000)), "bad_field"),
    ("disk used above total", dumps(heartbeat_json(disk_used=300_000_000_000)), "bad_field"),
    ("disk float", dumps(heartbeat_json(disk_total=1.5)), "bad_field"),
]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(payload, reason) for _, payload, reason in HEARTBEAT_REJECTIONS],
    ids=[name for name, _, _ in HEARTBEAT_REJECTIONS],
)
def test_parse_heartbeat_rejects(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_heartbeat(HB_PARTS, payload)
    assert caught.value.reason == reason
    assert reason in REASONS


STATUS_REJECTIONS: list[tuple[str, bytes, str]] = [
    ("empty (a cleared retained status)", b"", "empty"),
    ("too large", dumps(status_json(pad="x" * MAX_PAYLOAD_BYTES)), "too_large"),
    ("not json", b"online", "bad_json"),
    ("version 0", dumps(status_json(v=0)), "schema_version"),
    ("heartbeat payload", encode_heartbeat(HEARTBEAT), "kind_mismatch"),
    ("other terminal", dumps(status_json(terminal="CG01-999")), "id_mismatch"),
    ("no state", dumps(status_json(state=...)), "bad_field"),
    ("state unknown", dumps(status_json(state="sleeping")), "bad_field"),
    ("online from a will", dumps(status_json(reason="will")), "bad_field"),
    ("offline birth", dumps(status_json(state="offline", reason="birth")), "bad_field"),
    ("reason missing", dumps(status_json(reason=...)), "bad_field"),
    ("bd_seq missing", dumps(status_json(bd_seq=...)), "bad_field"),
    ("bd_seq negative", dumps(status_json(bd_seq=-1)), "bad_field"),
    ("ts string", dumps(status_json(ts="now")), "bad_field"),
]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(payload, reason) for _, payload, reason in STATUS_REJECTIONS],
    ids=[name for name, _, _ in STATUS_REJECTIONS],
)
def test_parse_status_rejects(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_status(STATUS_PARTS, payload)
    assert caught.value.reason == reason


def test_every_reason_is_exercised() -> None:
    """The tables above (and the topic table) cover every reason a collector may count."""
    seen = {reason for _, _, reason in HEARTBEAT_REJECTIONS + STATUS_REJECTIONS} | {"bad_topic"}
    assert seen == set(REASONS)


def test_payload_parsed_on_the_wrong_kind_of_topic_is_a_kind_mismatch() -> None:
    with pytest.raises(WireError) as caught:
        parse_status(HB_PARTS, encode_status(BIRTH))
    assert caught.value.reason == "kind_mismatch"


def test_error_detail_names_the_field_and_never_echoes_long_values() -> None:
    with pytest.raises(WireError) as caught:
        parse_heartbeat(HB_PARTS, dumps(heartbeat_json(seq="secret-looking-value")))
    assert caught.value.detail == "seq=str"
    assert "secret-looking-value" not in str(caught.value)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_wire_errors(payload: bytes) -> None:
    reasons = []
    for topic in (HB_TOPIC, STATUS_TOPIC):
        try:
            parse_message(topic, payload)
        except WireError as exc:
            reasons.append(exc.reason)
    assert set(reasons) <= set(REASONS)
    assert len(reasons) == 2  # no random bytes make a valid payload with our ids


# ---------------------------------------------------------------------------------------------
# Sessions (bdSeq)


def test_offline_ends_only_the_session_it_belongs_to() -> None:
    old_will = dataclasses.replace(BIRTH, state="offline", reason="will", birth_seq=2)
    this_will = dataclasses.replace(BIRTH, state="offline", reason="will")
    other_boot = dataclasses.replace(this_will, boot_id="0" * 32)
    assert offline_ends_session(this_will, BIRTH.session)
    assert offline_ends_session(this_will, HEARTBEAT.session)
    assert not offline_ends_session(old_will, BIRTH.session)
    # A restarted agent whose state file was lost may reuse a bd_seq; the boot id tells them apart.
    assert not offline_ends_session(other_boot, BIRTH.session)
    assert offline_ends_session(old_will, None)


# ---------------------------------------------------------------------------------------------
# The agent's copy


def test_agent_copy_of_the_wire_module_is_identical() -> None:
    original = (REPO / "edumon" / "wire.py").read_bytes()
    copy = (AGENT_DIR / "edumon_terminal_agent" / "wire.py").read_bytes()
    assert copy == original, "run: python agents/terminal/sync_wire.py"


def test_agent_copy_of_the_spool_module_is_identical() -> None:
    # One spool for both agents: the school agent imports edumon/spool.py, the terminal agent
    # carries this copy.
    original = (REPO / "edumon" / "spool.py").read_bytes()
    copy = (AGENT_DIR / "edumon_terminal_agent" / "spool.py").read_bytes()
    assert copy == original, "run: python agents/terminal/sync_wire.py"


def test_sync_script_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, str(AGENT_DIR / "sync_wire.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_wire_module_runs_with_the_standard_library_alone() -> None:
    # -S -I: no site-packages, no user paths; any third-party import would fail here.
    path = str(REPO / "edumon" / "wire.py")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('wire', {path!r})\n"
        "wire = importlib.util.module_from_spec(spec)\n"
        "sys.modules['wire'] = wire\n"
        "spec.loader.exec_module(wire)\n"
        f"print(wire.parse_message({HB_TOPIC!r}, {encode_heartbeat(HEARTBEAT)!r}).seq)\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(HEARTBEAT.seq)


@pytest.mark.parametrize(
    ("kind", "field"),
    [("heartbeat", "duplex"), ("status", "state"), ("status", "reason")],
)
def test_unhashable_enum_fields_are_bad_fields_not_crashes(kind: str, field: str) -> None:
    data = heartbeat_json(**{field: []}) if kind == "heartbeat" else status_json(**{field: []})
    topic = f"edumon/v1/county-1/CG01/terminal/CG01-101/{kind}"
    with pytest.raises(WireError) as info:
        parse_message(topic, dumps(data))
    assert info.value.reason == "bad_field"


# -- the collector's fast paths judge exactly as the checks one by one ---------------------------

_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["", "full", "half", "eth0", "10.0.0.1", "fd00::1", "aa:bb:cc:dd:ee:ff"]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)
_HEARTBEAT_KEYS = sorted(heartbeat_json())
_LITERALS = st.sampled_from([b"NaN", b"Infinity", b"1e400", b"-0", b'"\\ud800"', b"1" * 30])


def _verdict(payload: bytes) -> Heartbeat | str:
    try:
        return parse_heartbeat(HB_PARTS, payload)
    except WireError as exc:
        return exc.reason


@given(
    changes=st.dictionaries(st.sampled_from(_HEARTBEAT_KEYS), _ODD_VALUES, max_size=3),
    literal=st.one_of(st.none(), st.tuples(st.sampled_from(_HEARTBEAT_KEYS), _LITERALS)),
)
def test_fast_paths_agree_with_the_checks_one_by_one(
    changes: dict[str, Any], literal: tuple[str, bytes] | None
) -> None:
    payload = dumps(heartbeat_json(**changes))
    if literal is not None:
        key, text = literal
        payload = dumps(heartbeat_json(**{**changes, key: "@@"})).replace(b'"@@"', text)
    fast = _verdict(payload)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire, "_common_heartbeat", lambda parts, data: None)
        patch.setattr(wire, "_fast_loads", None)
        slow = _verdict(payload)
    assert fast == slow
