"""Malformed, oversized and mismatched messages thrown at the MQTT ingest.

Most go straight into ``MqttIngest.handle`` (the function ``run()`` calls for every message);
a few thousand go through the real Mosquitto to a running ingest. Whatever arrives, the ingest
must not crash, must not hand a malformed message to the sink, and must count every rejection
under exactly one reason: ``received == accepted + rejected`` and the rejections by reason are
exactly those expected.
"""

from __future__ import annotations

import json
import random
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edumon.sources.mqtt.ingest import MqttIngest, MqttSettings
from edumon.wire import MAX_PAYLOAD_BYTES, REASONS, Heartbeat
from tests.fixtures.mqtt import (
    Endpoint,
    IngestFactory,
    RecordingSink,
    eventually,
    heartbeat,
    ingest_settings,
    status,
    wire_message,
)

DISTRICT = "fuzz-d1"
HB_TOPIC, _ = wire_message(heartbeat(DISTRICT))
ST_TOPIC, _ = wire_message(status(DISTRICT))
# Ten messages per Hypothesis example: the example budget stays small, the message count not.
BATCH = 10
FUZZ_SETTINGS = settings(
    max_examples=350,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ANY_TOPIC_REASON = frozenset({"bad_topic", "schema_version", "kind_mismatch", "id_mismatch"})


@dataclass(frozen=True)
class Case:
    """A message and the reason it must be rejected for (None: it is valid)."""

    topic: str | bytes
    payload: bytes
    reason: str | frozenset[str] | None


class Thrower:
    """Feeds messages to an ingest's ``handle`` and checks each outcome and the totals."""

    def __init__(self, district: str = DISTRICT) -> None:
        self.sink = RecordingSink()
        self.ingest = MqttIngest(MqttSettings(district=district), self.sink)
        self.valid = 0
        self.invalid = 0
        self.expected: Counter[str] = Counter()

    def throw(self, case: Case) -> None:
        stats = self.ingest.stats
        calls = len(self.sink.calls)
        before = dict(stats.rejected_total)
        self.ingest.handle(case.topic, case.payload)
        moved = {r: n - before[r] for r, n in stats.rejected_total.items() if n != before[r]}
        if case.reason is None:
            self.valid += 1
            assert moved == {}, case
            assert len(self.sink.calls) == calls + 1, case
            return
        self.invalid += 1
        assert len(self.sink.calls) == calls, f"the sink got a malformed message: {case}"
        assert list(moved.values()) == [1], case
        (reason,) = moved
        if isinstance(case.reason, str):
            assert reason == case.reason, (reason, case)
        else:
            assert reason in case.reason, (reason, case)
        self.expected[reason] += 1

    def check_totals(self) -> None:
        stats = self.ingest.stats
        assert stats.received_total == self.valid + self.invalid
        assert stats.accepted_total == self.valid == len(self.sink.calls)
        assert stats.received_total == stats.accepted_total + sum(stats.rejected_total.values())
        assert sum(stats.rejected_total.values()) == self.invalid
        assert {r: n for r, n in stats.rejected_total.items() if n} == dict(self.expected)
        assert set(stats.rejected_total) == set(REASONS)


# -- hand-made families ------------------------------------------------------------------------


def heartbeat_fields(district: str, seq: int = 1) -> dict[str, Any]:
    return json.loads(wire_message(heartbeat(district, seq=seq))[1])  # type: ignore[no-any-return]


def status_fields(district: str) -> dict[str, Any]:
    return json.loads(wire_message(status(district))[1])  # type: ignore[no-any-return]


def dumps(fields: dict[str, Any], raw: dict[str, str] | None = None) -> bytes:
    """JSON of ``fields``; ``raw`` puts literal JSON text (NaN, 1e400, deep nesting) in a field."""
    fields = {**fields, **dict.fromkeys(raw or {}, "\0")}
    text = json.dumps(fields, separators=(",", ":"))
    for key, literal in (raw or {}).items():
        text = text.replace(f'"{key}":"\\u0000"', f'"{key}":{literal}')
    return text.encode()


def with_field(fields: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(fields)
    if value is _MISSING:
        out.pop(key, None)
    else:
        out[key] = value
    return out


_MISSING = object()
_BAD_INT = [_MISSING, None, True, False, "1", 1.0, 1.5, -1, 2**53, [], {}]
_BAD_OPT_INT = [True, "1", 1.5, -1, 2**53, [1]]
_BAD_ID = [_MISSING, None, 1, "", " x", "-x", "a" * 65, "é", ["b"]]
HEARTBEAT_BAD_FIELDS: dict[str, list[Any]] = {
    "boot": _BAD_ID,
    "seq": _BAD_INT,
    "bd_seq": _BAD_INT,
    "ts": [_MISSING, None, True, "1", -0.001, 2.0**33 + 1, []],
    "uptime_s": [_MISSING, None, False, "5", -1, 2.0**32 + 1],
    "agent": [_MISSING, None, 1, "", "0.1 beta", "a" * 33, "-1"],
    "nic": [1, "", "x" * 129, "eth\n0", "eth\x00", True, []],
    "speed_mbps": [0, -1, 1.5, True, "1000", 10_000_001, 1000.0],
    # Unhashable values once made the parser raise TypeError (a set lookup), not WireError.
    "duplex": ["FULL", "", 1, None, True, [], {}],
    "ip": [1, "", "999.1.1.1", "10.0.0", "x" * 65, "01.2.3.4", True],
    "mac": ["AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee", 1, "", "gg:bb:cc:dd:ee:ff"],
    "cpu_pct": [-0.1, 100.01, True, "5", []],
    "mem_used": _BAD_OPT_INT,
    "mem_total": _BAD_OPT_INT,
    "disk_used": _BAD_OPT_INT,
    "disk_total": _BAD_OPT_INT,
}
STATUS_BAD_FIELDS: dict[str, list[Any]] = {
    "state": [_MISSING, None, "up", 1, "ONLINE", [], {}],
    "reason": [_MISSING, None, "will", "shutdown", "crash", [], {}],  # the base is a birth
    "boot": _BAD_ID,
    "seq": _BAD_INT,
    "bd_seq": _BAD_INT,
    "ts": [_MISSING, None, "1", -1],
    "agent": [_MISSING, None, 1, ""],
}
HEADER_BAD: dict[str, tuple[str, list[Any]]] = {
    "v": ("schema_version", [_MISSING, None, 0, 2, "1", True, 1.0, []]),
    "kind": ("kind_mismatch", [_MISSING, None, "HEARTBEAT", 1]),
    "district": ("id_mismatch", [_MISSING, None, 1, "", "other-d"]),
    "school": ("id_mismatch", [_MISSING, None, 1, "sch-2"]),
    "terminal": ("id_mismatch", [_MISSING, None, 1, "cls-102"]),
}
BAD_TOPICS: list[tuple[str | bytes, str]] = [
    ("", "bad_topic"),
    ("edumon", "bad_topic"),
    ("edumon/v1/d/s/terminal/t", "bad_topic"),
    ("edumon/v1/d/s/terminal/t/heartbeat/extra", "bad_topic"),
    ("other/v1/d/s/terminal/t/heartbeat", "bad_topic"),
    ("edumon/v2/d/s/terminal/t/heartbeat", "schema_version"),
    ("edumon/v0/d/s/terminal/t/heartbeat", "schema_version"),
    ("edumon/V1/d/s/terminal/t/heartbeat", "schema_version"),
    ("edumon/v1/d/s/agent/t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal/t/samples", "bad_topic"),
    ("edumon/v1/d/s/terminal/t/Heartbeat", "bad_topic"),
    ("edumon/v1//s/terminal/t/heartbeat", "bad_topic"),
    ("edumon/v1/d//terminal/t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal//heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal/+/heartbeat", "bad_topic"),
    ("edumon/v1/d/#/terminal/t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s p/terminal/t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal/-t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal/" + "t" * 65 + "/heartbeat", "bad_topic"),
    ("edumon/v1/d/学校/terminal/t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal/t\x00/heartbeat", "bad_topic"),
    ("/edumon/v1/d/s/terminal/t/heartbeat", "bad_topic"),
    ("edumon/v1/d/s/terminal/t/heartbeat/", "bad_topic"),
    (b"edumon/v1/d/s/terminal/\xff/heartbeat", "bad_topic"),
    (b"\xc3\x28", "bad_topic"),
    ("edumon/v1/" + "x/" * 5000 + "heartbeat", "bad_topic"),
]


def families(district: str) -> Iterator[Case]:
    """Every hand-made family, with the reason each message must be rejected for."""
    hb_topic, hb_payload = wire_message(heartbeat(district))
    st_topic, st_payload = wire_message(status(district))
    hb = heartbeat_fields(district)
    st_fields = status_fields(district)

    # Valid boundary cases first: padded to exactly the size limit, unknown keys, IPv6, nulls.
    yield Case(hb_topic, hb_payload + b" " * (MAX_PAYLOAD_BYTES - len(hb_payload)), None)
    yield Case(hb_topic, dumps({**hb, "future_field": {"a": [1, None]}}), None)
    yield Case(hb_topic, dumps({**hb, "ip": "2001:db8::1"}), None)
    yield Case(hb_topic, dumps({**hb, "nic": None, "speed_mbps": None, "cpu_pct": None}), None)
    yield Case(hb_topic, dumps({k: v for k, v in hb.items() if k != "duplex"}), None)
    yield Case(st_topic, st_payload, None)

    yield Case(hb_topic, b"", "empty")
    yield Case(st_topic, b"", "empty")
    for size in (MAX_PAYLOAD_BYTES + 1, 65_536, 1_000_000):
        yield Case(hb_topic, hb_payload + b" " * (size - len(hb_payload)), "too_large")
        yield Case(st_topic, random.Random(size).randbytes(size), "too_large")
        yield Case("not/an/edumon/topic", b"{" * size, "too_large")  # size is checked first

    for base_topic, base in ((hb_topic, hb_payload), (st_topic, st_payload)):
        for cut in range(1, len(base)):  # truncated JSON
            yield Case(base_topic, base[:cut], "bad_json")
        for at in range(0, len(base), 7):  # non-UTF-8
            yield Case(base_topic, base[:at] + b"\xff" + base[at:], "bad_json")
        for bad in (b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"):
            yield Case(base_topic, base.replace(b"0.1.0", bad), "bad_json")
    for literal in ("NaN", "Infinity", "-Infinity"):  # not JSON, though json.loads allows them
        for key in ("ts", "uptime_s", "cpu_pct", "seq", "speed_mbps", "mem_used"):
            yield Case(hb_topic, dumps(hb, {key: literal}), "bad_json")
    for text in (b"null", b"[]", b"1", b'"x"', b"true", b"{}", b"[" + hb_payload + b"]"):
        yield Case(hb_topic, text, "bad_json" if text != b"{}" else "schema_version")
    yield Case(hb_topic, b"{" + b'"a":' * 5 + b"}", "bad_json")
    yield Case(hb_topic, hb_payload + hb_payload, "bad_json")  # trailing data
    yield Case(hb_topic, hb_payload[:-1] + b',"v":1,}', "bad_json")

    # Deep nesting: past the recursion limit is bad JSON, a shallow list is a bad field.
    yield Case(hb_topic, b"[" * 2000 + b"]" * 2000, "bad_json")
    yield Case(hb_topic, b"[" * 4000, "bad_json")
    yield Case(hb_topic, dumps(hb, {"nic": "[" * 1800 + "]" * 1800}), "bad_json")
    yield Case(hb_topic, dumps(hb, {"nic": "[" * 50 + "]" * 50}), "bad_field")
    yield Case(hb_topic, ('{"a":' * 500 + "1" + "}" * 500).encode(), "schema_version")
    yield Case(hb_topic, b"[" * 3000 + b"]" * 3000, "too_large")

    # Huge numbers: exact huge integers and floats that overflow to infinity.
    for key in ("seq", "bd_seq", "mem_total", "speed_mbps"):
        yield Case(hb_topic, dumps(hb, {key: "1" + "0" * 300}), "bad_field")
        yield Case(hb_topic, dumps(hb, {key: "9" * 3500}), "bad_field")
    for key in ("ts", "uptime_s", "cpu_pct"):
        yield Case(hb_topic, dumps(hb, {key: "1e400"}), "bad_field")
        yield Case(hb_topic, dumps(hb, {key: "-1e400"}), "bad_field")
    yield Case(hb_topic, dumps(hb, {"seq": "1" + "0" * 5000}), "too_large")

    # Wrong types and values, field by field.
    for key, values in HEARTBEAT_BAD_FIELDS.items():
        for value in values:
            yield Case(hb_topic, dumps(with_field(hb, key, value)), "bad_field")
    yield Case(hb_topic, dumps({**hb, "mem_used": hb["mem_total"] + 1}), "bad_field")
    yield Case(hb_topic, dumps({**hb, "disk_used": hb["disk_total"] + 1}), "bad_field")
    for key, values in STATUS_BAD_FIELDS.items():
        for value in values:
            yield Case(st_topic, dumps(with_field(st_fields, key, value)), "bad_field")
    yield Case(st_topic, dumps({**st_fields, "state": "offline", "reason": "birth"}), "bad_field")

    # Schema version, kind and ids in the payload.
    for base_topic, base_fields in ((hb_topic, hb), (st_topic, st_fields)):
        for key, (reason, values) in HEADER_BAD.items():
            for value in values:
                yield Case(base_topic, dumps(with_field(base_fields, key, value)), reason)

    # Ids in the topic that differ from the payload's; kinds that differ between them.
    for school, terminal, other_district in (
        ("sch-1", "cls-102", district),
        ("sch-2", "cls-101", district),
        ("sch-1", "cls-101", f"{district}x"),
    ):
        for kind, payload in (("heartbeat", hb_payload), ("status", st_payload)):
            topic = f"edumon/v1/{other_district}/{school}/terminal/{terminal}/{kind}"
            yield Case(topic, payload, "id_mismatch")
    yield Case(hb_topic, st_payload, "kind_mismatch")
    yield Case(st_topic, hb_payload, "kind_mismatch")

    for topic, reason in BAD_TOPICS:
        yield Case(topic, hb_payload, reason)
        if isinstance(topic, str):
            yield Case(topic.replace("/d/", f"/{district}/"), st_payload, reason)


def valid_heartbeats(district: str, start: int, count: int) -> Iterator[tuple[Case, Heartbeat]]:
    for seq in range(start, start + count):
        message = heartbeat(district, terminal=f"cls-{seq % 7}", seq=seq)
        topic, payload = wire_message(message)
        yield Case(topic, payload, None), message


def test_hand_made_families_are_rejected_by_reason() -> None:
    thrower = Thrower()
    cases = list(families(DISTRICT))
    assert len(cases) > 900
    for case in cases:
        thrower.throw(case)
    thrower.check_totals()
    assert {r for r, n in thrower.ingest.stats.rejected_total.items() if n} == set(REASONS)


# -- Hypothesis --------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=700),
            # Near the size limit, from a short random chunk (Hypothesis' buffer is small).
            st.builds(
                lambda chunk, size: (chunk * (size // len(chunk) + 1))[:size],
                st.binary(min_size=1, max_size=64),
                st.integers(3900, 4300),
            ),
        ),
        min_size=BATCH,
        max_size=BATCH,
    ),
    status_topic=st.booleans(),
)
def test_random_bytes_never_reach_the_sink(payloads: list[bytes], status_topic: bool) -> None:
    thrower = Thrower()
    for payload in payloads:
        thrower.throw(Case(ST_TOPIC if status_topic else HB_TOPIC, payload, frozenset(REASONS)))
    thrower.check_totals()


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# A character outside both the id and the version alphabets makes a string neither.
_NOT_AN_ID = st.text(min_size=1, max_size=20).filter(
    lambda s: any(c not in string.ascii_letters + string.digits + "_.:+-" for c in s)
)
_NOT_INT = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.integers(max_value=-1),
    st.integers(min_value=2**53),
)
_NOT_A_STRING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(max_size=3), max_size=3),
)
_NOT_FLOAT = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=10),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    st.floats(max_value=-1e-9, allow_infinity=False),
)
_DEFECTS = st.one_of(
    st.tuples(st.sampled_from(["seq", "bd_seq"]), _NOT_INT, st.just("bad_field")),
    st.tuples(st.sampled_from(["ts", "uptime_s"]), _NOT_FLOAT, st.just("bad_field")),
    st.tuples(
        st.sampled_from(["boot", "agent"]),
        st.one_of(_NOT_AN_ID, _NOT_A_STRING),
        st.just("bad_field"),
    ),
    st.tuples(
        st.just("speed_mbps"),
        st.one_of(st.integers(max_value=0), st.integers(min_value=10_000_001), st.text(max_size=5)),
        st.just("bad_field"),
    ),
    st.tuples(
        st.just("cpu_pct"),
        st.one_of(st.floats(min_value=100.001, allow_infinity=False), st.text(max_size=5)),
        st.just("bad_field"),
    ),
    st.tuples(
        st.just("v"),
        _JSON.filter(lambda v: type(v) is not int or v != 1),
        st.just("schema_version"),
    ),
    st.tuples(st.just("kind"), _JSON.filter(lambda v: v != "heartbeat"), st.just("kind_mismatch")),
    st.tuples(
        st.sampled_from(["district", "school", "terminal"]),
        _JSON.filter(lambda v: v not in (DISTRICT, "sch-1", "cls-101")),
        st.just("id_mismatch"),
    ),
)


@FUZZ_SETTINGS
@given(
    defects=st.lists(_DEFECTS, min_size=BATCH - 1, max_size=BATCH - 1),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=10).map(lambda k: f"x-{k}"), _JSON, max_size=4
    ),
)
def test_mutated_heartbeats_are_rejected_for_their_defect(
    defects: list[tuple[str, Any, str]], extra: dict[str, Any]
) -> None:
    thrower = Thrower()
    # Unknown keys are ignored: the same noise on a valid heartbeat is accepted.
    fields = {**heartbeat_fields(DISTRICT), **extra}
    thrower.throw(Case(HB_TOPIC, dumps(fields), None))
    assert thrower.sink.messages == [heartbeat(DISTRICT)]
    for key, value, reason in defects:
        payload = dumps({**fields, key: value})
        thrower.throw(Case(HB_TOPIC, payload, "too_large" if len(payload) > 4096 else reason))
    thrower.check_totals()


_LEVEL = st.one_of(
    st.sampled_from(
        ["edumon", "v1", "v2", DISTRICT, "sch-1", "terminal", "cls-101", "heartbeat", "status", ""]
    ),
    st.text(max_size=12),
)


@FUZZ_SETTINGS
@given(
    topics=st.lists(
        st.one_of(st.text(max_size=80), st.lists(_LEVEL, max_size=9).map("/".join)),
        min_size=BATCH,
        max_size=BATCH,
    )
)
def test_random_topics_never_reach_the_sink(topics: list[str]) -> None:
    thrower = Thrower()
    payload = wire_message(heartbeat(DISTRICT))[1]
    for topic in topics:
        if topic == HB_TOPIC:
            thrower.throw(Case(topic, payload, None))
        else:
            thrower.throw(Case(topic, payload, ANY_TOPIC_REASON))
    thrower.check_totals()


# -- through Mosquitto -------------------------------------------------------------------------


def routable(case: Case, district: str) -> bool:
    """Whether Mosquitto accepts the topic and routes it to the ingest's subscriptions."""
    if not isinstance(case.topic, str) or "\x00" in case.topic:
        return False
    levels = case.topic.split("/")
    return (
        len(levels) == 7
        and levels[:3] == ["edumon", "v1", district]
        and levels[4] == "terminal"
        and levels[6] in ("heartbeat", "status")
        and not any(c in case.topic for c in "+#")
    )


async def test_malformed_messages_through_mosquitto(
    mosquitto: Endpoint, mqtt_district: str, start_ingest: IngestFactory
) -> None:
    rng = random.Random(20240901)
    hb_topic, _ = wire_message(heartbeat(mqtt_district))
    invalid = [c for c in families(mqtt_district) if routable(c, mqtt_district) and c.reason]
    invalid += [
        Case(hb_topic, rng.randbytes(rng.randrange(1, 600)), frozenset(REASONS))
        for _ in range(1600)
    ]
    rng.shuffle(invalid)
    valid = list(valid_heartbeats(mqtt_district, 1000, 300))
    cases: list[Case] = []
    step = len(invalid) // len(valid) + 1
    for i, case in enumerate(invalid):
        if i % step == 0 and i // step < len(valid):
            cases.append(valid[i // step][0])
        cases.append(case)
    cases += [case for case, _ in valid[len(cases) - len(invalid) :]]
    assert len(cases) == len(invalid) + len(valid) > 2500

    # The same messages straight into ``handle``: the broker path must count exactly the same.
    direct = Thrower(mqtt_district)
    for case in cases:
        direct.throw(case)
    direct.check_totals()

    sink = RecordingSink()
    ingest = await start_ingest(ingest_settings(mosquitto, mqtt_district), sink)
    sent = 0
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        # In chunks, each drained before the next: Mosquitto drops messages for a subscriber
        # more than max_queued_messages (1000) behind.
        for start in range(0, len(cases), 200):
            for case in cases[start : start + 200]:
                assert isinstance(case.topic, str)
                await client.publish(case.topic, case.payload, qos=1)
                sent += 1
            await eventually(
                lambda sent=sent: ingest.stats.received_total == sent,
                f"{sent} messages received, got {ingest.stats.received_total}",
            )

    stats = ingest.stats
    assert stats.connected
    assert stats.received_total == len(cases)
    assert stats.received_total == stats.accepted_total + sum(stats.rejected_total.values())
    assert sum(stats.rejected_total.values()) == len(invalid)
    assert stats.rejected_total == direct.ingest.stats.rejected_total
    assert sorted(sink.messages, key=lambda m: m.seq) == [m for _, m in valid]
