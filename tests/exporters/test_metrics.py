"""/metrics rendering: values from a populated runtime, naming checked by the real promtool."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import shutil
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from edumon.collector import Collector
from edumon.domain.models import DeviceReading, DeviceUnreachable
from edumon.exporters.metrics import Exposition, create_registry
from edumon.gcpauses import GcPauses
from edumon.runtime import Runtime
from edumon.sources.snmp.poller import SnmpPoller
from tests.fixtures.runtime import DISTRICT_TOML, SECRETS, T0, build_runtime, port
from tests.fixtures.snmpd import Snmpd

Labels = frozenset[tuple[str, str]]


def render(runtime: Runtime) -> str:
    return generate_latest(create_registry(runtime)).decode()


def samples(text: str) -> dict[tuple[str, Labels], float]:
    out: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def find(text: str, name: str, **labels: str) -> list[float]:
    """Values of every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return [v for (n, ls), v in samples(text).items() if n == name and want <= ls]


def one(text: str, name: str, **labels: str) -> float:
    found = find(text, name, **labels)
    assert len(found) == 1, f"{name}{labels}: expected one series, found {found}"
    return found[0]


def promtool() -> str:
    path = shutil.which("promtool")
    assert path is not None, (
        "promtool is not installed: run `bash tests/run.sh` once (it installs Debian's "
        "prometheus package, which ships promtool)"
    )
    return path


async def promtool_check(text: str) -> tuple[int, str]:
    """Run ``promtool check metrics`` on an exposition; its exit code and everything it said."""
    proc = await asyncio.create_subprocess_exec(
        promtool(),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        out, _ = await proc.communicate(text.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_promtool_check_metrics_reports_nothing(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    assert "edumon_check_status" in text  # the populated families are there to be linted
    code, report = await promtool_check(text)
    assert code == 0, report
    assert report.strip() == ""


async def test_promtool_flags_a_bad_name() -> None:
    # The lint test above is only worth something if promtool does complain about bad names.
    bad = "# HELP edumon_bad_counter x\n# TYPE edumon_bad_counter counter\nedumon_bad_counter 1\n"
    _, report = await promtool_check(bad)
    assert "_total" in report


def test_openmetrics_output_parses(populated_runtime: Runtime) -> None:
    # Prometheus asks for OpenMetrics first; its parser is stricter about types and suffixes.
    text = Exposition(populated_runtime).render(openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    types = {f.name: f.type for f in openmetrics_parser.text_string_to_metric_families(text)}
    assert types["edumon_device"] == "info"
    assert types["edumon_device_reboots"] == "counter"
    assert types["edumon_store_write_duration_seconds"] == "summary"
    assert types["edumon_check_status"] == "gauge"


def test_devices(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    assert one(text, "edumon_device_up", device="core") == 1
    assert one(text, "edumon_device_up", device="sw-a", school="A") == 1
    assert one(text, "edumon_device_up", device="sw-b", school="B") == 0
    assert find(text, "edumon_device_up", device="sw-c") == []  # never polled
    assert one(text, "edumon_device_uptime_seconds", device="sw-a") == 10
    assert find(text, "edumon_device_uptime_seconds", device="sw-b") == []
    assert one(text, "edumon_device_reboots_total", device="sw-a") == 1
    assert one(text, "edumon_device_reboots_total", device="core") == 0
    assert (
        one(
            text,
            "edumon_device_info",
            device="sw-a",
            sys_name="A-ACCESS-1",
            host="127.0.0.11",
        )
        == 1
    )
    assert "sys_descr" not in text  # multi-line label values: the API has sysDescr
    assert one(text, "edumon_device_last_success_timestamp_seconds", device="sw-b") == T0
    assert one(text, "edumon_device_last_poll_timestamp_seconds", device="sw-b") == T0 + 60


def test_interfaces(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    a102 = {"device": "sw-a", "interface": "Gi0/2", "school": "A", "classroom": "A-102"}
    assert one(text, "edumon_interface_up", **a102) == 1
    assert one(text, "edumon_interface_speed_bytes", **a102) == 100e6 / 8
    assert one(text, "edumon_interface_in_bytes_total", **a102) == 600
    assert one(text, "edumon_interface_out_bytes_total", **a102) == 1200
    assert one(text, "edumon_interface_in_errors_total", **a102) == 4
    assert one(text, "edumon_interface_info", **a102, role="classroom", if_index="2") == 1

    # A down port: status 0 / ifOperStatus down(2), and no speed (not a measurement).
    a103 = {"device": "sw-a", "interface": "Gi0/3"}
    assert one(text, "edumon_interface_up", **a103) == 0
    assert "edumon_interface_oper_status" not in text  # edumon_interface_up says it
    assert find(text, "edumon_interface_speed_bytes", **a103) == []

    # A school's uplink on the district core carries the school it serves.
    uplink = {"device": "core", "interface": "ge-0/0/2"}
    assert one(text, "edumon_interface_info", **uplink, school="B", role="uplink") == 1
    assert one(text, "edumon_interface_in_bytes_total", **uplink, school="B") == 20_000
    # A port the inventory does not name (a printer) is in the API, not on /metrics.
    assert [n for (n, ls), _ in samples(text).items() if ("interface", "Gi0/24") in ls] == []
    assert one(text, "edumon_interface_speed_downgrades_total", **a102) == 0


def test_ports_of_an_unreachable_switch_are_unknown_not_down(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    port_b = {"device": "sw-b", "interface": "Gi0/1"}
    for name in (
        "edumon_interface_up",
        "edumon_interface_admin_status",
        "edumon_interface_speed_bytes",
        "edumon_interface_in_bytes_total",
    ):
        assert find(text, name, **port_b) == [], name
    assert one(text, "edumon_interface_info", **port_b, classroom="B-201") == 1
    assert (
        one(
            text,
            "edumon_check_status",
            check="classroom_speed",
            classroom="B-201",
            verdict="unknown",
        )
        == 1
    )


def test_compliance_is_one_series_per_check_with_its_verdict(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    checks: dict[Labels, list[tuple[str, float]]] = {}
    for (name, labels), value in samples(text).items():
        if name == "edumon_check_status":
            ids = frozenset((k, v) for k, v in labels if k != "verdict")
            checks.setdefault(ids, []).append((dict(labels)["verdict"], value))
    # 3 schools x 2 uplink checks + 4 classrooms, each one series: its current verdict at 1.
    assert len(checks) == 10
    for ids, verdicts in checks.items():
        assert len(verdicts) == 1, ids
        assert verdicts[0][0] in ("pass", "fail", "unknown"), ids
        assert verdicts[0][1] == 1, ids

    def verdict(**labels: str) -> str:
        return checks[frozenset(labels.items())][0][0]

    assert verdict(school="A", check="classroom_speed", classroom="A-102") == "fail"
    assert verdict(school="A", check="classroom_speed", classroom="A-101") == "pass"
    assert verdict(school="A", check="classroom_speed", classroom="A-103") == "unknown"
    assert verdict(school="B", check="uplink_speed", classroom="") == "fail"
    assert verdict(school="B", check="uplink_up", classroom="") == "pass"
    assert verdict(school="C", check="uplink_up", classroom="") == "unknown"

    assert one(text, "edumon_check_speed_bytes", school="B", check="uplink_speed") == 100e6 / 8
    assert one(text, "edumon_school_connectivity", school="A", state="ok") == 1
    assert one(text, "edumon_school_connectivity", school="B", state="ok") == 1
    # Never polled: unknown, and still present (a school never vanishes from /metrics).
    assert one(text, "edumon_school_connectivity", school="C", state="unknown") == 1
    # One series per school, with its current state: nothing for the states it is not in.
    assert find(text, "edumon_school_connectivity", school="C", state="ok") == []
    assert one(text, "edumon_school_classrooms", school="A", verdict="fail") == 1
    assert one(text, "edumon_school_classrooms", school="A", verdict="pass") == 1
    assert one(text, "edumon_school_classrooms", school="B", verdict="unknown") == 1
    assert one(text, "edumon_school_compliance", school="A", verdict="fail") == 1
    assert one(text, "edumon_school_compliance", school="C", verdict="unknown") == 1
    assert one(text, "edumon_target_speed_bytes", link="uplink", profile="district-1000m") == (
        1000e6 / 8
    )
    assert one(text, "edumon_target_speed_bytes", link="classroom") == 1000e6 / 8
    assert one(text, "edumon_school_info", school="B", school_name="第二中学", kind="middle") == 1
    assert one(text, "edumon_classroom_info", classroom="A-102", classroom_name="一年级(2)班") == 1


def test_collector_and_snmp_health(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    assert one(text, "edumon_collector_queue_depth") == 0
    assert (
        one(text, "edumon_collector_queue_capacity") == populated_runtime.collector.queue_capacity
    )
    assert one(text, "edumon_collector_observations_total") == 6
    assert one(text, "edumon_collector_dropped_total", reason="queue_full") == 0
    assert one(text, "edumon_collector_events_total", kind="device_reboot") == 1
    assert one(text, "edumon_collector_events_total", kind="device_unreachable") == 1
    assert one(text, "edumon_collector_events_total", kind="link_down") == 0
    stats = populated_runtime.collector.stats
    assert stats.write_seconds_count >= 1
    assert one(text, "edumon_store_write_duration_seconds_count") == stats.write_seconds_count
    assert one(text, "edumon_store_write_duration_seconds_sum") == stats.write_seconds_sum
    assert one(text, "edumon_store_write_failures_total") == 0
    assert one(text, "edumon_store_pending_rows") == 0
    assert one(text, "edumon_store_written_rows_total") == stats.rows_written_total > 0
    # Poll durations of the fixture: 0.25, 0.5, 0.4 (sw-b), 0.3, 0.6 and 6.0 (sw-b failing).
    assert one(text, "edumon_snmp_last_poll_duration_seconds", device="sw-b") == 6.0
    assert one(text, "edumon_snmp_poll_duration_seconds_count") == 6
    assert one(text, "edumon_snmp_poll_duration_seconds_sum") == pytest.approx(8.05)
    assert one(text, "edumon_snmp_poll_duration_seconds_bucket", le="0.25") == 1
    assert one(text, "edumon_snmp_poll_duration_seconds_bucket", le="0.5") == 4
    assert one(text, "edumon_snmp_poll_duration_seconds_bucket", le="5.0") == 5
    assert one(text, "edumon_snmp_poll_duration_seconds_bucket", le="+Inf") == 6
    assert one(text, "edumon_snmp_polls_total", device="sw-b", result="failed") == 1
    assert one(text, "edumon_snmp_polls_total", device="sw-b", result="ok") == 1
    assert one(text, "edumon_snmp_polls_total", device="sw-a", result="ok") == 2
    assert find(text, "edumon_snmp_last_poll_duration_seconds", device="sw-c") == []


async def test_drops_and_queue_depth_are_rendered_at_scrape_time(
    populated_runtime: Runtime,
) -> None:
    rt = populated_runtime
    rt.collector = Collector(rt.state, rt.store, queue_size=2)
    registry = create_registry(rt)
    for _ in range(3):
        await rt.collector.submit(DeviceUnreachable("sw-c", T0 + 120, "timeout"))
    text = generate_latest(registry).decode()
    assert one(text, "edumon_collector_queue_depth") == 2
    assert one(text, "edumon_collector_queue_capacity") == 2
    assert one(text, "edumon_collector_dropped_total", reason="queue_full") == 1
    await rt.collector.drain()
    text = generate_latest(registry).decode()
    assert one(text, "edumon_collector_queue_depth") == 0
    assert one(text, "edumon_device_up", device="sw-c") == 0


async def test_the_same_registry_follows_the_state(populated_runtime: Runtime) -> None:
    registry = create_registry(populated_runtime)
    before = generate_latest(registry).decode()
    assert one(before, "edumon_device_up", device="sw-b") == 0
    back = DeviceReading(
        "sw-b", T0 + 120, 212_000, "B-ACCESS-1", "Ruijie", (port(1, "Gi0/1", octets=9_000),)
    )
    await populated_runtime.collector.submit(back)
    await populated_runtime.collector.drain()
    after = generate_latest(registry).decode()
    assert one(after, "edumon_device_up", device="sw-b") == 1
    assert one(after, "edumon_interface_up", device="sw-b", interface="Gi0/1") == 1
    assert one(after, "edumon_collector_events_total", kind="device_reachable") == 1


async def test_a_school_uplink_that_goes_down(populated_runtime: Runtime) -> None:
    registry = create_registry(populated_runtime)
    down = DeviceReading(
        "core",
        T0 + 120,
        50_012_000,
        "CORE-S7706",
        "Huawei S7706",
        (port(1, "ge-0/0/1", up=False), port(2, "ge-0/0/2", speed=100.0)),
    )
    await populated_runtime.collector.submit(down)
    await populated_runtime.collector.drain()
    text = generate_latest(registry).decode()
    assert one(text, "edumon_school_connectivity", school="A", state="uplink_down") == 1
    assert find(text, "edumon_school_connectivity", school="A", state="ok") == []
    assert one(text, "edumon_check_status", school="A", check="uplink_up", verdict="fail") == 1
    # Behind a dead uplink the classrooms are unknown, not failing.
    assert one(text, "edumon_school_classrooms", school="A", verdict="unknown") == 3
    assert one(text, "edumon_collector_events_total", kind="link_down") == 1


async def test_registries_are_separate_and_hold_only_edumon_series(tmp_path: Path) -> None:
    first = await build_runtime(tmp_path / "one.db")
    second = await build_runtime(tmp_path / "two.db")
    try:
        second.state.devices["sw-a"].reboots = 7
        one_text, two_text = render(first), render(second)
    finally:
        await first.store.aclose()
        await second.store.aclose()
    assert one(one_text, "edumon_device_reboots_total", device="sw-a") == 1
    assert one(two_text, "edumon_device_reboots_total", device="sw-a") == 7
    names = {name for name, _ in samples(one_text)}
    assert all(name.startswith("edumon_") for name in names), sorted(names)
    default = generate_latest(prometheus_client.REGISTRY).decode()
    assert "edumon_" not in default


def test_no_secret_in_metrics(populated_runtime: Runtime) -> None:
    text = render(populated_runtime)
    for secret in SECRETS:
        assert secret not in text


def snmpd_district(snmpd: Snmpd) -> str:
    """Two switches on the real snmpd: one with its community, one with a wrong one."""
    return f"""
[district]
code = "lab"
name = "Lab"

[[switches]]
id = "good"
host = "{snmpd.host}"
port = {snmpd.port}
snmp = {{ version = "2c", community = "{snmpd.community}" }}

[[switches]]
id = "silent"
host = "{snmpd.host}"
port = {snmpd.port}
timeout_seconds = 0.2
retries = 1
snmp = {{ version = "2c", community = "{SECRETS[0]}" }}

[[switches]]
id = "later"
host = "{snmpd.host}"
port = {snmpd.port}
snmp = {{ version = "2c", community = "{snmpd.community}" }}

[[schools]]
code = "L"
name = "Lab school"
kind = "other"
uplink = {{ switch = "good", port = "lo" }}
"""


async def test_snmp_self_metrics_from_a_real_poller(snmpd: Snmpd, tmp_path: Path) -> None:
    runtime = await build_runtime(tmp_path / "lab.db", snmpd_district(snmpd))
    try:
        async with SnmpPoller(runtime.config.switches.values()) as poller:
            runtime.poller = poller
            switches = runtime.config.switches
            # snmpd ignores a wrong community: two attempts (retries = 1), both time out.
            for device in ("good", "silent"):
                await runtime.collector.submit(await poller.poll(switches[device]))
            await runtime.collector.drain()
            text = render(runtime)
            transport = poller.transport_stats
            stats = poller.device_stats
    finally:
        await runtime.store.aclose()

    assert one(text, "edumon_device_up", device="good") == 1
    assert one(text, "edumon_device_up", device="silent") == 0
    assert one(text, "edumon_snmp_polls_total", device="good", result="ok") == 1
    assert one(text, "edumon_snmp_polls_total", device="silent", result="failed") == 1
    assert one(text, "edumon_snmp_timeouts_total", device="silent") == 2
    assert one(text, "edumon_snmp_retries_total", device="silent") == 1
    assert one(text, "edumon_snmp_timeouts_total", device="good") == 0
    assert one(text, "edumon_snmp_requests_total", device="good") == stats["good"].requests > 0
    assert one(text, "edumon_snmp_varbinds_total", device="good") == stats["good"].varbinds > 0
    assert one(text, "edumon_snmp_last_poll_varbinds", device="good") > 0
    assert one(text, "edumon_snmp_max_repetitions", device="good") >= 1
    assert one(text, "edumon_snmp_last_poll_duration_seconds", device="silent") >= 0.4
    assert one(text, "edumon_snmp_poll_duration_seconds_count") == 2
    assert one(text, "edumon_snmp_poll_duration_seconds_sum") >= 0.4
    assert one(text, "edumon_snmp_walks_aborted_total", device="good") == 0
    # Configured but not polled yet: counters at zero, no last poll.
    assert one(text, "edumon_snmp_polls_total", device="later", result="ok") == 0
    assert find(text, "edumon_snmp_last_poll_duration_seconds", device="later") == []
    assert one(text, "edumon_snmp_datagrams_sent_total") == transport.sent >= 3
    assert one(text, "edumon_snmp_datagrams_received_total") == transport.received > 0
    assert one(text, "edumon_snmp_datagrams_dropped_total", reason="unmatched") == 0
    assert one(text, "edumon_snmp_polls_in_flight") == 0
    assert SECRETS[0] not in text
    code, report = await promtool_check(text)
    assert (code, report.strip()) == (0, "")


def with_switch_option(toml: str, switch: str, option: str) -> str:
    """The district with one more key on one switch."""
    head = f'[[switches]]\nid = "{switch}"\n'
    assert head in toml
    return toml.replace(head, f"{head}{option}\n")


def exported_ports(text: str) -> dict[tuple[str, str], str]:
    """(device, interface) → role of every port with an edumon_interface_info series."""
    out = {}
    for (name, labels), _ in samples(text).items():
        if name == "edumon_interface_info":
            ls = dict(labels)
            out[(ls["device"], ls["interface"])] = ls["role"]
    return out


async def test_only_the_inventory_ports_by_default_others_opt_in(tmp_path: Path) -> None:
    default = await build_runtime(tmp_path / "default.db")
    per_switch = await build_runtime(
        tmp_path / "switch.db", with_switch_option(DISTRICT_TOML, "sw-a", "export_all_ports = true")
    )
    everywhere = await build_runtime(
        tmp_path / "global.db",
        DISTRICT_TOML.replace("[targets]", "[polling]\nexport_all_ports = true\n\n[targets]"),
    )
    try:
        texts = [render(rt) for rt in (default, per_switch, everywhere)]
        api_ports = set(default.state.devices["sw-a"].interfaces)
    finally:
        for rt in (default, per_switch, everywhere):
            await rt.store.aclose()
    assert ("sw-a", "Gi0/24") not in exported_ports(texts[0])
    assert "Gi0/24" in api_ports  # the state (and the API) still has it
    assert exported_ports(texts[1])[("sw-a", "Gi0/24")] == "none"
    assert exported_ports(texts[2])[("sw-a", "Gi0/24")] == "none"
    assert one(texts[1], "edumon_interface_up", device="sw-a", interface="Gi0/24") == 1
    for text in texts:
        assert exported_ports(text)[("sw-a", "Gi0/2")] == "classroom"
        assert exported_ports(text)[("core", "ge-0/0/1")] == "uplink"


async def test_an_inter_switch_link_is_a_port_that_matters(tmp_path: Path) -> None:
    toml = with_switch_option(
        DISTRICT_TOML, "sw-c", 'upstream = { switch = "sw-a", port = "Gi0/24" }'
    )
    runtime = await build_runtime(tmp_path / "link.db", toml)
    try:
        text = render(runtime)
    finally:
        await runtime.store.aclose()
    assert exported_ports(text)[("sw-a", "Gi0/24")] == "link"
    assert one(text, "edumon_interface_in_bytes_total", device="sw-a", interface="Gi0/24") >= 0


async def test_a_wrapping_32_bit_counter_is_exported_as_a_monotonic_total(
    populated_runtime: Runtime,
) -> None:
    rt = populated_runtime
    wrap = 2**32
    registry = create_registry(rt)
    values = []
    raw = wrap - 3_000_000_000
    for n in range(6):  # 1 Gbit/s of traffic: one wrap every ~34 s, one poll per 20 s
        reading = dataclasses.replace(
            port(1, "Gi0/1"), counter_bits=32, in_octets=raw % wrap, out_octets=0
        )
        at = T0 + 120 + 20 * n
        await rt.collector.submit(
            DeviceReading("sw-a", at, 13_000 + 2000 * n, "A-ACCESS-1", "H3C", (reading,))
        )
        await rt.collector.drain()
        text = generate_latest(registry).decode()
        values.append(
            one(text, "edumon_interface_in_bytes_total", device="sw-a", interface="Gi0/1")
        )
        raw += 2_500_000_000
    assert values == sorted(values)
    assert values[-1] - values[0] == 5 * 2_500_000_000
    assert values[-1] > wrap
    help_line = next(line for line in text.splitlines() if "HELP edumon_interface_in_bytes" in line)
    assert "64-bit monotonic total" in help_line


async def test_speed_downgrades_are_counted_per_port(populated_runtime: Runtime) -> None:
    rt = populated_runtime
    a101 = {"device": "sw-a", "interface": "Gi0/1", "classroom": "A-101"}
    before = render(rt)
    assert one(before, "edumon_interface_speed_downgrades_total", **a101) == 0
    slow = DeviceReading(
        "sw-a", T0 + 120, 13_000, "A-ACCESS-1", "H3C", (port(1, "Gi0/1", speed=100.0),)
    )
    await rt.collector.submit(slow)
    await rt.collector.drain()
    after = render(rt)
    assert one(after, "edumon_interface_speed_downgrades_total", **a101) == 1
    assert one(after, "edumon_collector_events_total", kind="speed_downgrade") == 1


def test_garbage_collection_pauses_by_generation(populated_runtime: Runtime) -> None:
    assert "edumon_gc_pause_seconds" not in render(populated_runtime)  # not timed: no series
    pauses = GcPauses()
    populated_runtime.gc_pauses = pauses
    pauses.install()
    try:
        gc.collect(2)
    finally:
        pauses.uninstall()
    text = render(populated_runtime)
    assert one(text, "edumon_gc_pause_seconds_count", generation="2") >= 1
    assert one(text, "edumon_gc_pause_seconds_bucket", generation="0", le="+Inf") >= 0
