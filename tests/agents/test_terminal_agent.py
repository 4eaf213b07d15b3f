"""The terminal agent: pure parts table-driven; the rest as a real process on real Mosquitto."""

from __future__ import annotations

import logging
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from edumon_terminal_agent import __version__
from edumon_terminal_agent.agent import BirthSequence, backoff_delay
from edumon_terminal_agent.config import ConfigError, Secret, load_config
from edumon_terminal_agent.sysinfo import (
    SystemProbe,
    default_route_nic,
    nic_with_address,
    normalize_mac,
    read_sysfs_link,
)

from edumon.wire import Heartbeat, Status, offline_ends_session, parse_heartbeat, parse_topic
from tests.agents.support import (
    AGENT_DIR,
    BROKER_HOST,
    BROKER_PORT,
    AgentProcess,
    PrivateBroker,
    Recorder,
    free_port,
    make_pki,
    poll_until,
)

SCHOOL = "CG01"
PASSWORD = "Mqtt-Pw-7c41e9-NEVER-LOG"


# ---------------------------------------------------------------------------------------------
# Reconnect backoff


def test_backoff_grows_then_caps_and_is_jittered() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(60.0, 1.0 * 2**attempt)
        draws = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Jitter: the draws spread over the window instead of all reconnecting at one instant.
        assert max(draws) - min(draws) > ceiling / 2
    assert backoff_delay(10_000, 1.0, 60.0, rng) <= 60.0  # no overflow for long outages


def test_backoff_is_reproducible_with_a_seed() -> None:
    first = [backoff_delay(n, 0.5, 30.0, random.Random(3)) for n in range(6)]
    second = [backoff_delay(n, 0.5, 30.0, random.Random(3)) for n in range(6)]
    assert first == second


# ---------------------------------------------------------------------------------------------
# Birth sequence


def test_birth_sequence_continues_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state" / "birth-seq.t1"
    sequence = BirthSequence(path)
    assert [sequence.next(), sequence.next(), sequence.next()] == [0, 1, 2]
    assert BirthSequence(path).next() == 3
    assert path.read_text() == "3\n"
    assert not (tmp_path / "state" / "birth-seq.t1.tmp").exists()


@pytest.mark.parametrize("content", ["garbage", "-4", "", str(2**60)])
def test_unusable_birth_sequence_file_restarts_at_zero(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "birth-seq.t1"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert BirthSequence(path).next() == 0
    assert str(path) in caplog.text


def test_unwritable_birth_sequence_counts_on_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    sequence = BirthSequence(blocker / "birth-seq.t1")
    with caplog.at_level(logging.ERROR):
        assert [sequence.next(), sequence.next()] == [0, 1]
    assert "cannot save birth sequence" in caplog.text


# ---------------------------------------------------------------------------------------------
# System information

ROUTES_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0"], "eth0"),
        (
            [
                "wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0",
                "enp3s0\t00000000\t0101140A\t0003\t0\t0\t100\t00000000\t0\t0\t0",
                "enp3s0\t0001140A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
            ],
            "enp3s0",
        ),
        (["eth0\t0001140A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"], None),
        (["eth0\t00000000\t0102A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0"], None),  # not up
        (["short line", "eth0\tzz\t0\t0003\t0\t0\t0\t00000000"], None),
        ([], None),
    ],
)
def test_default_route_nic(rows: list[str], expected: str | None) -> None:
    assert default_route_nic("\n".join([ROUTES_HEADER, *rows]) + "\n") == expected


@pytest.mark.parametrize(
    ("speed", "duplex", "expected"),
    [
        ("1000\n", "full\n", (1000, "full")),
        ("100\n", "half\n", (100, "half")),
        ("10000\n", "full\n", (10000, "full")),
        ("-1\n", "unknown\n", (None, "unknown")),  # link down / unknown speed
        ("0\n", "full\n", (None, "full")),
        (None, None, (None, "unknown")),  # loopback, Wi-Fi: the kernel answers EINVAL
        ("garbage", "sideways", (None, "unknown")),
    ],
)
def test_read_sysfs_link(
    tmp_path: Path, speed: str | None, duplex: str | None, expected: tuple[int | None, str]
) -> None:
    nic = tmp_path / "enp3s0"
    nic.mkdir()
    if speed is not None:
        (nic / "speed").write_text(speed)
    if duplex is not None:
        (nic / "duplex").write_text(duplex)
    assert read_sysfs_link(tmp_path, "enp3s0") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3C:7C:3F:1A:2B:3C", "3c:7c:3f:1a:2b:3c"),
        ("3C-7C-3F-1A-2B-3C", "3c:7c:3f:1a:2b:3c"),  # Windows
        ("3c:7c:3f:1a:2b", None),
        ("3c:7c:3f:1a:2b:zz", None),
        ("", None),
    ],
)
def test_normalize_mac(raw: str, expected: str | None) -> None:
    assert normalize_mac(raw) == expected


def test_nic_with_address() -> None:
    def entry(family: int, address: str) -> SimpleNamespace:
        return SimpleNamespace(family=family, address=address)

    table = {
        "lo": [entry(socket.AF_INET, "127.0.0.1")],
        "以太网": [entry(socket.AF_INET, "10.20.1.101"), entry(socket.AF_INET6, "fe80::1%12")],
    }
    assert nic_with_address(table, "10.20.1.101") == "以太网"
    assert nic_with_address(table, "fe80::1") == "以太网"
    assert nic_with_address(table, "10.9.9.9") is None


def test_probe_reports_the_default_route_nic_with_its_real_addresses(tmp_path: Path) -> None:
    # A fixture sysfs and route table naming the loopback NIC, whose addresses psutil reads for
    # real: the probe's choice, the sysfs link and psutil's addresses must come together.
    (tmp_path / "lo").mkdir()
    (tmp_path / "lo" / "speed").write_text("1000\n")
    (tmp_path / "lo" / "duplex").write_text("full\n")
    routes = tmp_path / "route"
    routes.write_text(
        f"{ROUTES_HEADER}\nlo\t00000000\t00000000\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    now = [100.0]
    probe = SystemProbe(sysfs_net=tmp_path, route_table=routes, clock=lambda: now[0])
    now[0] += 0.1
    assert probe.snapshot(local_ip=None).cpu_percent is None  # too short a window to mean much
    now[0] += 1.0
    snapshot = probe.snapshot(local_ip=None)
    assert snapshot.link.name == "lo"
    assert (snapshot.link.speed_mbps, snapshot.link.duplex) == (1000, "full")
    assert snapshot.link.ip == "127.0.0.1"
    assert snapshot.uptime_seconds > 0
    assert snapshot.memory_total_bytes == psutil.virtual_memory().total
    assert snapshot.memory_used_bytes is not None
    assert 0 < snapshot.memory_used_bytes <= snapshot.memory_total_bytes
    assert snapshot.disk_total_bytes is not None
    assert snapshot.disk_used_bytes is not None
    assert snapshot.cpu_percent is not None
    assert 0.0 <= snapshot.cpu_percent <= 100.0


def test_probe_falls_back_to_the_nic_of_the_connection(tmp_path: Path) -> None:
    routes = tmp_path / "route"
    routes.write_text(ROUTES_HEADER + "\n")  # no default route
    probe = SystemProbe(sysfs_net=tmp_path, route_table=routes)
    assert probe.choose_nic("127.0.0.1") == "lo"
    assert probe.choose_nic(None) is None
    assert SystemProbe(nic="eth7", route_table=routes).choose_nic("127.0.0.1") == "eth7"


def test_probe_reports_a_configured_nic_that_does_not_exist_without_link_data(
    tmp_path: Path,
) -> None:
    probe = SystemProbe(nic="no-such-nic0", sysfs_net=tmp_path)
    link = probe.link(local_ip=None)
    assert (link.name, link.speed_mbps, link.ip, link.mac) == ("no-such-nic0", None, None, None)


# ---------------------------------------------------------------------------------------------
# Configuration

CONFIG_TOML = """
[terminal]
district = "county-1"
school = "CG01"
id = "CG01-101"

[mqtt]
host = "mqtt.example.edu.cn"
username = "CG01"
password = "{password}"
tls = true
will_delay_seconds = 10

[agent]
heartbeat_seconds = 15
reconnect_max_seconds = 30
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_file_then_flags_override(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG_TOML.format(password=PASSWORD))
    config, _ = load_config(["-c", str(path)], environ={})
    assert (config.district, config.school, config.terminal) == ("county-1", "CG01", "CG01-101")
    assert config.mqtt.effective_port == 8883  # TLS default
    assert config.mqtt.password == Secret(PASSWORD)
    assert config.heartbeat_seconds == 15.0
    assert config.client_id == "edumon.county-1.CG01.CG01-101"

    config, _ = load_config(
        ["-c", str(path), "--terminal", "CG01-102", "--port", "18883", "--heartbeat-interval", "5"],
        environ={},
    )
    assert config.terminal == "CG01-102"
    assert config.mqtt.effective_port == 18883
    assert config.heartbeat_seconds == 5.0
    assert config.mqtt.host == "mqtt.example.edu.cn"  # not overridden: from the file


def test_config_saved_by_notepad_with_a_bom_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    text = "[terminal]\ndistrict = 'd'\nschool = 's'\nid = 't'\nnic = '以太网 2'\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    config, _ = load_config(["-c", str(path)], environ={})
    assert config.nic == "以太网 2"


def test_password_sources_and_precedence(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG_TOML.format(password="from-file"))
    password_file = tmp_path / "password"
    password_file.write_text("from-password-file\n")
    config, _ = load_config(["-c", str(path)], environ={"EDUMON_MQTT_PASSWORD": "from-env"})
    assert config.mqtt.password == Secret("from-env")
    config, _ = load_config(
        ["-c", str(path), "--password-file", str(password_file)],
        environ={"EDUMON_MQTT_PASSWORD": "from-env"},
    )
    assert config.mqtt.password == Secret("from-password-file")  # the newline is not part of it


def test_password_never_shows_in_reprs(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG_TOML.format(password=PASSWORD))
    config, _ = load_config(["-c", str(path)], environ={})
    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config.mqtt.password)
    assert config.mqtt.password is not None
    assert config.mqtt.password.reveal() == PASSWORD


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\nprot='5'\n", [], "mqtt.prot"),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[broker]\n", [], "[broker]"),
        ("[terminal]\ndistrict='d'\nschool='s'\n", [], "terminal.id"),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='班级/1'\n", [], "terminal.id"),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\nport=true\n", [], "mqtt.port"),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\nport=70000\n", [], "mqtt.port"),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n", ["--keepalive", "1"], "--keepalive"),
        (
            "[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\nca_file='/nonexistent.pem'\n"
            "tls=true\n",
            [],
            "mqtt.ca_file",
        ),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\npassword='x'\n", [], "username"),
        (
            "[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\nprotocol='3.1.1'\n"
            "will_delay_seconds=5\n",
            [],
            "will_delay_seconds",
        ),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[agent]\nlog_level='loud'\n", [], "log"),
        ("[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[agent]\nheartbeat_seconds=0\n", [], "hea"),
        ("not toml at all = = =", [], "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, text: str, flags: list[str], message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(["-c", str(path), *flags], environ={})


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, agents: list[AgentProcess]) -> None:
    path = write_config(tmp_path, "[terminal]\ndistrict='d'\nschool='s'\nid='t'\n[mqtt]\nhots=1\n")
    agent = AgentProcess(["-c", str(path)], tmp_path / "agent.log")
    agents.append(agent)
    assert agent.wait() == 2
    assert "mqtt.hots: unknown key" in agent.log()


def test_print_heartbeat_is_a_valid_heartbeat(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edumon_terminal_agent",
            "--district",
            "county-1",
            "--school",
            SCHOOL,
            "--terminal",
            "CG01-101",
            "--state-dir",
            str(tmp_path),
            "--print-heartbeat",
        ],
        capture_output=True,
        timeout=30,
        check=True,
        env={"PYTHONPATH": str(AGENT_DIR), "PATH": "/usr/bin:/bin"},
    )
    topic = parse_topic("edumon/v1/county-1/CG01/terminal/CG01-101/heartbeat")
    heartbeat = parse_heartbeat(topic, result.stdout.strip())
    assert heartbeat.agent_version == __version__
    assert heartbeat.memory_total_bytes == psutil.virtual_memory().total


# ---------------------------------------------------------------------------------------------
# Against the real broker on 127.0.0.1:1883


def agent_args(district: str, terminal: str, state_dir: Path, *extra: str) -> list[str]:
    return [
        "--district",
        district,
        "--school",
        SCHOOL,
        "--terminal",
        terminal,
        "--host",
        BROKER_HOST,
        "--port",
        str(BROKER_PORT),
        "--heartbeat-interval",
        "0.5",
        "--state-dir",
        str(state_dir),
        *extra,
    ]


def start_agent(
    agents: list[AgentProcess],
    tmp_path: Path,
    args: list[str],
    env: dict[str, str] | None = None,
    name: str = "agent",
) -> AgentProcess:
    agent = AgentProcess(args, tmp_path / f"{name}-{len(agents)}.log", env)
    agents.append(agent)
    return agent


def expected_nic() -> str | None:
    """The NIC the agent should pick here: the default route's, else the loopback (broker's)."""
    try:
        name = default_route_nic(Path("/proc/net/route").read_text())
    except OSError:
        name = None
    return name or "lo"


def test_birth_is_retained_and_heartbeats_parse(
    district: str,
    recorder: Recorder,
    recorders: list[Recorder],
    agents: list[AgentProcess],
    tmp_path: Path,
) -> None:
    agent = start_agent(agents, tmp_path, agent_args(district, "CG01-101", tmp_path / "state"))
    birth, _ = recorder.wait_status("CG01-101", "online", "birth")
    assert birth.agent_version == __version__
    recorder.wait_for(lambda _: len(recorder.heartbeats("CG01-101")) >= 3, what="3 heartbeats")

    heartbeats = recorder.heartbeats("CG01-101")
    assert all(h.session == birth.session for h in heartbeats)
    seqs = [birth.seq] + [h.seq for h in heartbeats]
    assert seqs == sorted(set(seqs)), "seq strictly increases within a boot"
    first: Heartbeat = heartbeats[0]
    assert abs(first.observed_at - time.time()) < 60
    assert first.uptime_seconds > 0
    assert first.nic == expected_nic()
    addresses = psutil.net_if_addrs()[first.nic]
    assert first.ip in {a.address for a in addresses}
    assert first.memory_total_bytes == psutil.virtual_memory().total
    assert not any(m.error for m in recorder.messages), "every message parses"

    # A subscriber arriving later gets the birth from the broker's retained copy.
    late = Recorder(district)
    recorders.append(late)
    retained, received = late.wait_status("CG01-101", "online")
    assert received.retain
    assert retained == birth
    agent.send(signal.SIGTERM)
    assert agent.wait() == 0


def test_sigkill_publishes_the_will_and_a_restart_has_a_higher_birth_sequence(
    district: str, recorder: Recorder, agents: list[AgentProcess], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = start_agent(agents, tmp_path, agent_args(district, "CG01-102", state))
    birth, _ = recorder.wait_status("CG01-102", "online", "birth")
    mark = recorder.count()
    first.send(signal.SIGKILL)
    first.wait()
    will, _ = recorder.wait_status("CG01-102", "offline", "will", after=mark)
    assert will.session == birth.session
    assert will.seq < birth.seq  # the Will was made at connect, before the birth
    assert offline_ends_session(will, birth.session)

    mark = recorder.count()
    second = start_agent(agents, tmp_path, agent_args(district, "CG01-102", state))
    rebirth, _ = recorder.wait_status("CG01-102", "online", "birth", after=mark)
    assert rebirth.birth_seq > birth.birth_seq
    assert rebirth.boot_id != birth.boot_id
    # The old session's Will, were it delivered now, must not end the new session.
    assert not offline_ends_session(will, rebirth.session)
    second.send(signal.SIGTERM)
    assert second.wait() == 0


def test_sigterm_publishes_offline_cleanly(
    district: str,
    recorder: Recorder,
    recorders: list[Recorder],
    agents: list[AgentProcess],
    tmp_path: Path,
) -> None:
    agent = start_agent(agents, tmp_path, agent_args(district, "CG01-103", tmp_path / "state"))
    birth, _ = recorder.wait_status("CG01-103", "online", "birth")
    recorder.wait_for(lambda _: len(recorder.heartbeats("CG01-103")) >= 1, what="a heartbeat")
    agent.send(signal.SIGTERM)
    assert agent.wait() == 0
    offline, _ = recorder.wait_status("CG01-103", "offline")
    assert offline.reason == "shutdown"
    assert offline.session == birth.session
    assert offline.seq > max(h.seq for h in recorder.heartbeats("CG01-103"))
    assert "published offline; disconnected" in agent.log()
    # What the broker now retains is the clean offline.
    late = Recorder(district)
    recorders.append(late)
    retained, received = late.wait_status("CG01-103", "offline")
    assert received.retain
    assert retained == offline


def test_mqtt_311_birth_and_will(
    district: str, recorder: Recorder, agents: list[AgentProcess], tmp_path: Path
) -> None:
    args = agent_args(district, "CG01-104", tmp_path / "state", "--protocol", "3.1.1")
    agent = start_agent(agents, tmp_path, args)
    birth, _ = recorder.wait_status("CG01-104", "online", "birth")
    agent.wait_log("connected (MQTT 3.1.1)")
    agent.send(signal.SIGKILL)
    agent.wait()
    will, _ = recorder.wait_status("CG01-104", "offline", "will")
    assert will.session == birth.session


def test_will_delay_debounces_a_quick_restart_and_delays_the_will(
    district: str, recorder: Recorder, agents: list[AgentProcess], tmp_path: Path
) -> None:
    """MQTT 5: a restart within the Will Delay resumes the session, so no offline is published;
    a terminal that stays away gets its Will, but only after the delay."""
    # Long enough for a new agent process to start and connect on a loaded machine.
    delay = 8.0
    args = agent_args(district, "CG01-105", tmp_path / "state", "--will-delay", str(int(delay)))
    first = start_agent(agents, tmp_path, args)
    birth, _ = recorder.wait_status("CG01-105", "online", "birth")
    first.send(signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait()
    mark = recorder.count()
    second = start_agent(agents, tmp_path, args)
    rebirth, received = recorder.wait_status("CG01-105", "online", "birth", after=mark)
    assert received.at - killed_at < delay, "the restart must beat the delay for this test"
    # Past the delay (plus margin), the first session's Will has still not been published.
    poll_until(
        lambda: time.monotonic() > killed_at + delay + 2.0,
        timeout=delay + 3.0,
        what=lambda: "the will delay window to pass",
    )
    offline = [m for m in recorder.messages if isinstance(m.parsed, Status) and not m.parsed.online]
    assert not offline, "the debounced Will must not be published"
    assert rebirth.birth_seq > birth.birth_seq

    # Now stay away: the Will comes, with the second session's ids, and not before the delay.
    second.send(signal.SIGKILL)
    killed_at = time.monotonic()
    second.wait()
    will, received = recorder.wait_status("CG01-105", "offline", "will", timeout=delay + 10)
    assert will.session == rebirth.session
    assert received.at - killed_at >= delay - 0.5


def test_password_is_never_logged(
    district: str, recorder: Recorder, agents: list[AgentProcess], tmp_path: Path
) -> None:
    args = agent_args(
        district, "CG01-106", tmp_path / "state", "--username", "CG01", "--log-level", "debug"
    )
    agent = start_agent(agents, tmp_path, args, env={"EDUMON_MQTT_PASSWORD": PASSWORD})
    recorder.wait_status("CG01-106", "online", "birth")
    recorder.wait_for(lambda _: len(recorder.heartbeats("CG01-106")) >= 2, what="heartbeats")
    agent.send(signal.SIGTERM)
    assert agent.wait() == 0
    log = agent.log()
    assert "Sending CONNECT" in log  # debug logging of the MQTT exchange really was on
    assert PASSWORD not in log


# ---------------------------------------------------------------------------------------------
# Against private brokers: TLS with client certificates and passwords, restarts


def write_agent_config(path: Path, district: str, terminal: str, port: int, extra: str) -> Path:
    path.write_text(
        f"""
[terminal]
district = "{district}"
school = "{SCHOOL}"
id = "{terminal}"

[mqtt]
host = "127.0.0.1"
port = {port}
{extra}

[agent]
heartbeat_seconds = 0.5
state_dir = "{path.parent / ("state-" + terminal)}"
reconnect_min_seconds = 0.2
reconnect_max_seconds = 1.0
log_level = "debug"
""",
        encoding="utf-8",
    )
    return path


def test_tls_with_client_certificate_and_password(
    district: str,
    recorders: list[Recorder],
    agents: list[AgentProcess],
    brokers: list[PrivateBroker],
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    passwd = tmp_path / "passwd"
    for user, password in (("CG01", PASSWORD), ("recorder", "recorder-pw")):
        subprocess.run(
            [
                "mosquitto_passwd",
                "-b",
                *(["-c"] if user == "CG01" else []),
                str(passwd),
                user,
                password,
            ],
            check=True,
            timeout=30,
            capture_output=True,
        )
    broker = PrivateBroker(
        tmp_path,
        f"allow_anonymous false\npassword_file {passwd}\ncafile {pki.ca}\n"
        f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\nrequire_certificate true\n",
    )
    brokers.append(broker)
    broker.start()
    recorder = Recorder(
        district,
        port=broker.port,
        tls=pki.client_context(),
        username="recorder",
        password="recorder-pw",
    )
    recorders.append(recorder)
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(PASSWORD + "\n")
    tls = (
        f'username = "CG01"\npassword_file = "{password_file}"\ntls = true\n'
        f'ca_file = "{pki.ca}"\ncert_file = "{pki.client_cert}"\nkey_file = "{pki.client_key}"\n'
    )
    config = write_agent_config(tmp_path / "good.toml", district, "CG01-201", broker.port, tls)
    good = start_agent(agents, tmp_path, ["-c", str(config)], name="good")
    birth, _ = recorder.wait_status("CG01-201", "online", "birth")
    recorder.wait_for(lambda _: len(recorder.heartbeats("CG01-201")) >= 1, what="a heartbeat")

    wrong_file = tmp_path / "wrong-password"
    wrong_file.write_text("Wrong-Pw-31d8aa-NEVER-LOG\n")
    wrong = write_agent_config(
        tmp_path / "wrong.toml",
        district,
        "CG01-202",
        broker.port,
        tls.replace(str(password_file), str(wrong_file)),
    )
    refused = start_agent(agents, tmp_path, ["-c", str(wrong)], name="wrong")
    refused.wait_log("refused user 'CG01'")
    refused.wait_log("reconnecting in")
    assert not [m for m in recorder.messages if "CG01-202" in m.topic]

    good.send(signal.SIGTERM)
    assert good.wait() == 0
    offline, _ = recorder.wait_status("CG01-201", "offline", "shutdown")
    assert offline.session == birth.session
    for agent in (good, refused):
        assert PASSWORD not in agent.log()
        assert "Wrong-Pw-31d8aa-NEVER-LOG" not in agent.log()


def test_reconnects_with_backoff_until_the_broker_comes_and_after_it_restarts(
    district: str,
    recorders: list[Recorder],
    agents: list[AgentProcess],
    brokers: list[PrivateBroker],
    tmp_path: Path,
) -> None:
    broker = PrivateBroker(tmp_path, "allow_anonymous true\n")
    brokers.append(broker)
    config = write_agent_config(tmp_path / "agent.toml", district, "CG01-301", broker.port, "")
    agent = start_agent(agents, tmp_path, ["-c", str(config)])
    agent.wait_log("cannot connect to 127.0.0.1")
    agent.wait_log("reconnecting in")

    broker.start()
    recorder = Recorder(district, port=broker.port)
    recorders.append(recorder)
    first, _ = recorder.wait_status("CG01-301", "online", "birth")

    broker.stop()
    recorder.close(clear_retained=False)
    recorders.remove(recorder)
    agent.wait_log("connection lost")
    broker.start()
    recorder = Recorder(district, port=broker.port)
    recorders.append(recorder)
    second, _ = recorder.wait_status("CG01-301", "online", "birth")
    assert second.birth_seq > first.birth_seq
    assert second.boot_id == first.boot_id  # same process, new session
    recorder.wait_for(lambda _: len(recorder.heartbeats("CG01-301")) >= 1, what="a heartbeat")
    # Live ones: those made during the outage come after them, historical.
    live = [h for h in recorder.heartbeats("CG01-301") if not h.historical]
    assert all(h.session == second.session for h in live)


def test_sigterm_while_the_broker_is_unreachable_exits_promptly(
    district: str, agents: list[AgentProcess], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    config = write_agent_config(tmp_path / "agent.toml", district, "CG01-302", port, "")
    agent = start_agent(agents, tmp_path, ["-c", str(config)])
    agent.wait_log("reconnecting in")
    agent.send(signal.SIGTERM)
    assert agent.wait() == 0
    assert "stopped" in agent.log()
    assert "published offline" not in agent.log()  # it never had a session to end
