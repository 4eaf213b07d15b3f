"""Benchmark: edumon's SNMP poller against Debian's prometheus-snmp-exporter on one net-snmp agent.

Both pollers walk the same objects (sysUpTime, sysName, sysDescr and eleven IF-MIB columns) of
the same private ``snmpd`` with the same max-repetitions and the same number of polls in flight,
one after the other, for SNMP v2c and for v3 authPriv (SHA-256 / AES-128). The figure of merit is
varbinds per CPU-second of the polling process:

* ours: ``time.process_time()`` of a subprocess running ``SnmpPoller`` exactly as the daemon
  does, over the measured window only (imports, start-up and warm-up excluded);
* theirs: utime+stime of the ``prometheus-snmp-exporter`` process from ``/proc/<pid>/stat`` over
  the same kind of window, while a load generator in another process drives ``/snmp`` scrapes.
  Varbinds are the exporter's own ``snmp_scrape_pdus_returned`` of each scrape.

The agent's CPU is measured too, so a reader can see it was not the bottleneck. To give the agent
a 48-port switch's worth of rows, the script (as root) creates a network namespace with veth
pairs and runs everything inside it on 127.0.0.1; elsewhere it falls back to the machine's own
interfaces and says so.

Usage: ``python bench/snmp_poll.py [--seconds N] [--concurrency C] [--interfaces N] [--profile]``
(``--show-exporter-config`` prints the exporter module it generates).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SNMPD = "/usr/sbin/snmpd"
EXPORTER = "/usr/bin/prometheus-snmp-exporter"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# What one poll reads. The exporter's module is generated from these, and the poller's own
# column list is checked against them, so both sides walk the same objects.
SCALARS: dict[str, tuple[str, str]] = {
    "sysUpTime": ("1.3.6.1.2.1.1.3", "gauge"),
    "sysName": ("1.3.6.1.2.1.1.5", "DisplayString"),
    "sysDescr": ("1.3.6.1.2.1.1.1", "DisplayString"),
}
COLUMNS: dict[str, tuple[str, str]] = {
    "ifName": ("1.3.6.1.2.1.31.1.1.1.1", "DisplayString"),
    "ifAlias": ("1.3.6.1.2.1.31.1.1.1.18", "DisplayString"),
    "ifDescr": ("1.3.6.1.2.1.2.2.1.2", "DisplayString"),
    "ifOperStatus": ("1.3.6.1.2.1.2.2.1.8", "gauge"),
    "ifAdminStatus": ("1.3.6.1.2.1.2.2.1.7", "gauge"),
    "ifHighSpeed": ("1.3.6.1.2.1.31.1.1.1.15", "gauge"),
    "ifSpeed": ("1.3.6.1.2.1.2.2.1.5", "gauge"),
    "ifHCInOctets": ("1.3.6.1.2.1.31.1.1.1.6", "counter"),
    "ifHCOutOctets": ("1.3.6.1.2.1.31.1.1.1.10", "counter"),
    "ifInErrors": ("1.3.6.1.2.1.2.2.1.14", "counter"),
    "ifOutErrors": ("1.3.6.1.2.1.2.2.1.20", "counter"),
}
MAX_REPETITIONS = 10  # the product's default (SwitchConfig.max_repetitions)
TIMEOUT_SECONDS = 2.0  # the product's defaults (SwitchConfig.timeout_seconds, .retries)
RETRIES = 2

V3_USER = "edumon-bench"
ENV_COMMUNITY = "EDUMON_BENCH_COMMUNITY"
ENV_AUTH = "EDUMON_BENCH_AUTH_PASSWORD"
ENV_PRIV = "EDUMON_BENCH_PRIV_PASSWORD"

VERSIONS = ("2c", "3")
VERSION_LABEL = {"2c": "v2c", "3": "v3 authPriv"}


class BenchError(Exception):
    """Something the benchmark needs did not work; the message says what."""


# --------------------------------------------------------------------------------------------
# Small helpers shared by every role.


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process, from /proc (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def host_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in each child before exec: if this script dies, even by SIGKILL, the child goes too."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def spawn(
    cmd: Sequence[str], procs: list[subprocess.Popen[Any]], **kw: Any
) -> subprocess.Popen[Any]:
    # A session of its own: Ctrl+C reaches only this script, which then stops the children itself
    # in a known order instead of racing them.
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent, **kw)
    procs.append(proc)
    return proc


def hold_signals() -> None:
    """Ignore Ctrl+C and SIGTERM from here on, so that cleaning up is not itself interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop_all(procs: list[subprocess.Popen[Any]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.05)


def _ber_len(n: int) -> bytes:
    return (
        bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2)
    )


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(body)) + body


def snmp_get_counter(port: int, community: str, oid: tuple[int, ...]) -> int | None:
    """One v2c GET of an integer-valued scalar, hand-encoded so the community stays off argv.

    Returns None when the agent does not answer within 0.3 s.
    """
    encoded = bytes([40 * oid[0] + oid[1], *oid[2:]])  # every arc here is below 128
    varbinds = _tlv(0x30, _tlv(0x30, _tlv(0x06, encoded) + b"\x05\x00"))
    pdu = _tlv(0xA0, _tlv(0x02, b"\x01") + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00") + varbinds)
    msg = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, community.encode()) + pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(msg, ("127.0.0.1", port))
        try:
            reply = s.recv(4096)
        except OSError:
            return None
    # The value is the last TLV of the reply, right after the OID we asked for.
    at = reply.rfind(_tlv(0x06, encoded))
    if at < 0:
        raise BenchError("the agent's reply does not echo the OID asked for")
    at += 2 + len(encoded)
    length = reply[at + 1]
    return int.from_bytes(reply[at + 2 : at + 2 + length], "big")


SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_IN_PKTS = (1, 3, 6, 1, 2, 1, 11, 1, 0)


def agent_in_packets(port: int) -> int:
    """snmpInPkts of the agent: how many SNMP messages it has received."""
    for _ in range(3):
        value = snmp_get_counter(port, os.environ[ENV_COMMUNITY], SNMP_IN_PKTS)
        if value is not None:
            return value
    raise BenchError("the agent did not answer a GET of snmpInPkts")


@dataclass
class Window:
    """The measured window of one run, shared by the two load roles."""

    warmup: float
    seconds: float

    def phases(self) -> tuple[float, float]:
        start = time.monotonic() + self.warmup
        return start, start + self.seconds


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# Role "poller": edumon's SnmpPoller, in a process of its own so its CPU time is its own.


def role_poller(args: argparse.Namespace) -> int:
    import asyncio

    sys.path.insert(0, str(REPO))
    from pydantic import SecretStr

    from edumon.config import SnmpCredentials, Switch
    from edumon.domain.models import DeviceReading
    from edumon.sources.snmp.poller import SnmpPoller

    if args.snmp_version == "2c":
        creds = SnmpCredentials(version="2c", community=SecretStr(os.environ[ENV_COMMUNITY]))
    else:
        creds = SnmpCredentials(
            version="3",
            user=V3_USER,
            auth_protocol="SHA-256",
            auth_password=SecretStr(os.environ[ENV_AUTH]),
            priv_protocol="AES-128",
            priv_password=SecretStr(os.environ[ENV_PRIV]),
        )
    # One Switch per concurrent poll: production polls many switches at once, each with the
    # per-switch defaults; here they all happen to be the same agent.
    switches = [
        Switch(
            id=f"bench-{i:03d}",
            school=None,
            host="127.0.0.1",
            port=args.agent_port,
            snmp=creds,
            timeout_seconds=TIMEOUT_SECONDS,
            retries=RETRIES,
            max_repetitions=MAX_REPETITIONS,
            max_in_flight=1,
        )
        for i in range(args.concurrency)
    ]
    window = Window(args.warmup, args.seconds)
    out: dict[str, Any] = {"polls": 0, "varbinds": 0, "failures": 0, "reasons": {}}
    interfaces: set[int] = set()
    state = {"measuring": False}

    async def run() -> None:
        async with SnmpPoller(switches, max_in_flight=args.concurrency) as poller:
            start, end = window.phases()

            async def worker(switch: Switch) -> None:
                while time.monotonic() < end:
                    reading = await poller.poll(switch)
                    if not state["measuring"]:
                        continue
                    if isinstance(reading, DeviceReading):
                        out["polls"] += 1
                        out["varbinds"] += reading.varbinds
                        interfaces.add(len(reading.interfaces))
                    else:
                        out["failures"] += 1
                        out["reasons"][reading.reason] = out["reasons"].get(reading.reason, 0) + 1

            profiler = None
            if args.profile_out:
                import cProfile

                # CPU time, not wall time: the question is where the CPU-seconds go.
                profiler = cProfile.Profile(time.process_time)
            async with asyncio.TaskGroup() as tg:
                for sw in switches:
                    tg.create_task(worker(sw), name=f"poll-{sw.id}")
                await asyncio.sleep(max(0.0, start - time.monotonic()))
                state["measuring"] = True
                if profiler is not None:
                    profiler.enable()
                pkts0 = agent_in_packets(args.agent_port)
                host0 = host_cpu_ticks()
                cpu0, agent0, wall0 = (
                    time.process_time(),
                    proc_cpu_seconds(args.agent_pid),
                    time.monotonic(),
                )
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                cpu1, agent1, wall1 = (
                    time.process_time(),
                    proc_cpu_seconds(args.agent_pid),
                    time.monotonic(),
                )
                state["measuring"] = False
                if profiler is not None:
                    profiler.disable()
                host1 = host_cpu_ticks()
                pkts1 = agent_in_packets(args.agent_port)
            out.update(cpu_s=cpu1 - cpu0, agent_cpu_s=agent1 - agent0, wall_s=wall1 - wall0)
            out["agent_packets"] = pkts1 - pkts0 - 1  # less our own GET of the counter
            out["host_busy"] = (host1[0] - host0[0]) / max(1, host1[1] - host0[1])
            if profiler is not None:
                profiler.dump_stats(args.profile_out)

    asyncio.run(run())
    out["interfaces"] = sorted(interfaces)
    emit(out)
    return 0


# --------------------------------------------------------------------------------------------
# Role "scraper": drives the exporter's /snmp endpoint with the same number of scrapes in flight.

_PDUS = re.compile(rb"^snmp_scrape_pdus_returned (\S+)$", re.MULTILINE)


def role_scraper(args: argparse.Namespace) -> int:
    path = f"/snmp?target=127.0.0.1:{args.agent_port}&module={args.module}"
    window = Window(args.warmup, args.seconds)
    start, end = window.phases()
    lock = threading.Lock()
    measuring = threading.Event()
    out: dict[str, Any] = {"polls": 0, "varbinds": 0, "failures": 0, "reasons": {}}
    interfaces: set[int] = set()
    crashed: list[BaseException] = []

    def fail(reason: str) -> None:
        with lock:
            out["failures"] += 1
            out["reasons"][reason] = out["reasons"].get(reason, 0) + 1

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.exporter_port, timeout=30)
        try:
            while time.monotonic() < end:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                if not measuring.is_set():
                    continue
                pdus = _PDUS.search(body)
                if resp.status != 200 or pdus is None:
                    fail(f"HTTP {resp.status}: {body[:200]!r}")
                    continue
                with lock:
                    out["polls"] += 1
                    out["varbinds"] += int(float(pdus.group(1)))
                    interfaces.add(body.count(b"\nifName{"))
        except BaseException as exc:
            crashed.append(exc)
        finally:
            conn.close()

    threads = [
        threading.Thread(target=loop, name=f"scrape-{i}", daemon=True)
        for i in range(args.concurrency)
    ]
    for t in threads:
        t.start()
    time.sleep(max(0.0, start - time.monotonic()))
    measuring.set()
    pkts0 = agent_in_packets(args.agent_port)
    host0 = host_cpu_ticks()
    cpu0 = proc_cpu_seconds(args.exporter_pid)
    agent0, wall0 = proc_cpu_seconds(args.agent_pid), time.monotonic()
    time.sleep(max(0.0, end - time.monotonic()))
    cpu1 = proc_cpu_seconds(args.exporter_pid)
    agent1, wall1 = proc_cpu_seconds(args.agent_pid), time.monotonic()
    measuring.clear()
    host1 = host_cpu_ticks()
    pkts1 = agent_in_packets(args.agent_port)
    for t in threads:
        t.join(timeout=60)
    if crashed:
        raise BenchError(f"load generator failed: {crashed[0]!r}") from crashed[0]
    out.update(cpu_s=cpu1 - cpu0, agent_cpu_s=agent1 - agent0, wall_s=wall1 - wall0)
    out["agent_packets"] = pkts1 - pkts0 - 1  # less our own GET of the counter
    out["host_busy"] = (host1[0] - host0[0]) / max(1, host1[1] - host0[1])
    out["interfaces"] = sorted(interfaces)
    emit(out)
    return 0


# --------------------------------------------------------------------------------------------
# Role "inner": the whole run, on 127.0.0.1 of whatever network namespace it was started in.


def snmpd_config(port: int, community: str, auth: str, priv: str) -> str:
    return "\n".join(
        [
            f"agentaddress udp:127.0.0.1:{port}",
            f"rocommunity {community} 127.0.0.1",
            f"createUser {V3_USER} SHA-256 {auth} AES {priv}",
            f"rouser {V3_USER} priv",
            "sysName bench-switch",
            "sysLocation edumon benchmark",
            # By default snmpd logs a line per request; that would make the agent the bottleneck.
            "dontLogTCPWrappersConnects yes",
            "",
        ]
    )


def exporter_config(community: str, auth: str, priv: str) -> str:
    """snmp.yml for prometheus-snmp-exporter 0.21 (one module per auth, no separate `auths`)."""
    lines: list[str] = []

    def metric(name: str, oid: str, kind: str, indexed: bool) -> None:
        lines.extend(
            [f"  - name: {name}", f"    oid: {oid}", f"    type: {kind}", f"    help: {name}"]
        )
        if indexed:
            lines.extend(["    indexes:", "    - labelname: ifIndex", "      type: gauge"])

    for version in VERSIONS:
        lines.append(f"bench_v{version}:")
        lines.append(f"  version: {2 if version == '2c' else 3}")
        lines.append(f"  max_repetitions: {MAX_REPETITIONS}")
        lines.append(f"  retries: {RETRIES}")
        lines.append(f"  timeout: {TIMEOUT_SECONDS:g}s")
        lines.append("  auth:")
        if version == "2c":
            lines.append(f"    community: {json.dumps(community)}")
        else:
            lines.extend(
                [
                    f"    username: {V3_USER}",
                    "    security_level: authPriv",
                    "    auth_protocol: SHA256",
                    f"    password: {json.dumps(auth)}",
                    "    priv_protocol: AES",
                    f"    priv_password: {json.dumps(priv)}",
                ]
            )
        # Scalars by GET (as the exporter's generator emits them), columns by bulk walk.
        lines.append("  get:")
        lines.extend(f"  - {oid}.0" for oid, _ in SCALARS.values())
        lines.append("  walk:")
        lines.extend(f"  - {oid}" for oid, _ in COLUMNS.values())
        lines.append("  metrics:")
        for name, (oid, kind) in SCALARS.items():
            metric(name, oid, kind, indexed=False)
        for name, (oid, kind) in COLUMNS.items():
            metric(name, oid, kind, indexed=True)
    return "\n".join(lines) + "\n"


def check_same_objects() -> None:
    """Fail unless the benchmark's objects are exactly those the poller reads from a switch."""
    sys.path.insert(0, str(REPO))
    try:
        from edumon.domain import oids
        from edumon.sources.snmp import poller
    except ImportError as exc:
        raise BenchError(f"the edumon poller cannot be imported: {exc}") from exc
    # A switch with ifXTable and 64-bit counters, as net-snmp is: the poller's usual columns.
    theirs = {oids.format_oid(o) for o in oids.IF_TABLE_COLUMNS + oids.IF_X_COLUMNS}
    theirs |= {oids.format_oid(o) for o in oids.HC_COUNTER_COLUMNS}
    system = getattr(poller, "_SYSTEM_OIDS", (oids.SYS_UPTIME_0, oids.SYS_NAME_0, oids.SYS_DESCR_0))
    theirs |= {oids.format_oid(o) for o in system}
    mine = {oid for oid, _ in COLUMNS.values()} | {f"{oid}.0" for oid, _ in SCALARS.values()}
    if mine != theirs:
        raise BenchError(
            f"the benchmark walks {sorted(mine - theirs)} that the poller does not, and misses "
            f"{sorted(theirs - mine)}: update SCALARS/COLUMNS in bench/snmp_poll.py"
        )


@dataclass
class Agent:
    proc: subprocess.Popen[Any]
    port: int
    version: str


def start_agent(tmp: Path, env: dict[str, str], procs: list[subprocess.Popen[Any]]) -> Agent:
    port = free_port(socket.SOCK_DGRAM)
    conf = tmp / "snmpd.conf"
    conf.write_text(snmpd_config(port, env[ENV_COMMUNITY], env[ENV_AUTH], env[ENV_PRIV]))
    persist = tmp / "snmpd-persist"
    persist.mkdir()
    agent_env = {
        "PATH": os.environ.get("PATH", ""),
        "SNMP_PERSISTENT_DIR": str(persist),
        "MIBS": "",
    }
    log = tmp / "snmpd.log"
    proc = spawn(
        [SNMPD, "-f", "-C", "-c", str(conf), "-Lf", str(log)],
        procs,
        env=agent_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"snmpd exited with {proc.returncode}: {log.read_text()[-500:]}")
        return snmp_get_counter(port, env[ENV_COMMUNITY], SYS_UPTIME) is not None

    wait_for("snmpd", ready, 15)
    version = subprocess.run([SNMPD, "-v"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"version:\s*(\S+)", version)
    return Agent(proc, port, match.group(1) if match else "?")


def start_exporter(
    tmp: Path, env: dict[str, str], procs: list[subprocess.Popen[Any]]
) -> tuple[subprocess.Popen[Any], int, str]:
    conf = tmp / "snmp.yml"
    conf.write_text(exporter_config(env[ENV_COMMUNITY], env[ENV_AUTH], env[ENV_PRIV]))
    conf.chmod(0o600)
    check = subprocess.run(
        [EXPORTER, f"--config.file={conf}", "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise BenchError(f"snmp_exporter rejects the generated config: {check.stderr[-500:]}")
    out = subprocess.run([EXPORTER, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\S+)", out.stdout + out.stderr)
    port = free_port(socket.SOCK_STREAM)
    with (tmp / "exporter.log").open("wb") as log:
        proc = spawn(
            [
                EXPORTER,
                f"--config.file={conf}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            procs,
            stdout=log,
            stderr=log,
        )

    def ready() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"snmp_exporter exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            return conn.getresponse().status == 200
        except OSError:
            return False

    wait_for("snmp_exporter", ready, 15)
    return proc, port, match.group(1) if match else "?"


def run_role(
    role: str,
    extra: list[str],
    env: dict[str, str],
    procs: list[subprocess.Popen[Any]],
    budget: float,
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]
    proc = spawn(cmd, procs, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=budget)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{role} run did not finish within {budget:.0f} s") from exc
    if proc.returncode != 0:
        raise BenchError(f"{role} run failed ({proc.returncode}):\n{stderr[-3000:]}")
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def role_inner(args: argparse.Namespace) -> int:
    for binary in (SNMPD, EXPORTER):
        if not os.access(binary, os.X_OK):
            raise BenchError(f"{binary} is missing: apt-get install snmpd prometheus-snmp-exporter")
    check_same_objects()
    procs: list[subprocess.Popen[Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="edumon-bench-"))
    env = dict(os.environ)
    env[ENV_COMMUNITY] = secrets.token_hex(8)
    env[ENV_AUTH] = secrets.token_hex(12)
    env[ENV_PRIV] = secrets.token_hex(12)
    try:
        agent = start_agent(tmp, env, procs)
        exporter, exporter_port, exporter_version = start_exporter(tmp, env, procs)
        common = [
            f"--agent-port={agent.port}",
            f"--agent-pid={agent.proc.pid}",
            f"--seconds={args.seconds}",
            f"--warmup={args.warmup}",
            f"--concurrency={args.concurrency}",
        ]
        budget = args.seconds + args.warmup + 60
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for version in VERSIONS:
            print(f"  measuring {VERSION_LABEL[version]}: edumon ...", file=sys.stderr, flush=True)
            results[version, "edumon"] = run_role(
                "poller", [*common, f"--snmp-version={version}"], env, procs, budget
            )
            print(
                f"  measuring {VERSION_LABEL[version]}: snmp_exporter ...",
                file=sys.stderr,
                flush=True,
            )
            results[version, "snmp_exporter"] = run_role(
                "scraper",
                [
                    *common,
                    f"--module=bench_v{version}",
                    f"--exporter-port={exporter_port}",
                    f"--exporter-pid={exporter.pid}",
                ],
                env,
                procs,
                budget,
            )
        failed = report(args, agent, exporter_version, results)
        if args.profile:
            for version in VERSIONS:
                stats = tmp / f"poller-v{version}.prof"
                run_role(
                    "poller",
                    [*common, f"--snmp-version={version}", f"--profile-out={stats}"],
                    env,
                    procs,
                    budget,
                )
                print_profile(stats, VERSION_LABEL[version])
        return 1 if failed else 0
    finally:
        hold_signals()
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    args: argparse.Namespace,
    agent: Agent,
    exporter_version: str,
    results: dict[tuple[str, str], dict[str, Any]],
) -> bool:
    """Print the comparison; True when a run had failed polls."""
    n_if = sorted({n for r in results.values() for n in r["interfaces"]})
    print()
    print(f"SNMP polling: edumon SnmpPoller vs prometheus-snmp-exporter {exporter_version}")
    print(f"agent: net-snmp snmpd {agent.version} on 127.0.0.1, {args.where}")
    print(
        f"per poll: {len(SCALARS)} scalars + {len(COLUMNS)} IF-MIB columns over "
        f"{'/'.join(map(str, n_if)) or '?'} interfaces; max-repetitions {MAX_REPETITIONS}; "
        f"v3 is authPriv SHA-256/AES-128"
    )
    print(
        f"{args.concurrency} polls in flight; {args.seconds:g} s measured after {args.warmup:g} s "
        f"warm-up; one poller at a time; {os.cpu_count()} CPUs"
    )
    print()
    cols = [
        ("SNMP", "", 11, "<"),
        ("poller", "", 13, "<"),
        ("polls", "", 6, ">"),
        ("varbinds", "/poll", 8, ">"),
        ("varbinds", "/CPU-s", 9, ">"),
        ("varbinds", "/wall-s", 8, ">"),
        ("poller", "CPU %", 6, ">"),
        ("agent", "CPU %", 6, ">"),
        ("agent CPU", "ms/poll", 9, ">"),
        ("requests", "/poll", 8, ">"),
        ("host", "busy %", 6, ">"),
        ("failed", "", 6, ">"),
    ]
    for row in (0, 1):
        print(" ".join(f"{c[row]:{c[3]}{c[2]}}" for c in cols).rstrip())
    rule = "-" * (sum(c[2] for c in cols) + len(cols) - 1)
    print(rule)
    failed = False
    ratios: list[str] = []
    for version in VERSIONS:
        rates: dict[str, float] = {}
        for who in ("edumon", "snmp_exporter"):
            r = results[version, who]
            polls = r["polls"] or 1
            per_cpu = r["varbinds"] / r["cpu_s"] if r["cpu_s"] > 0 else float("inf")
            rates[who] = per_cpu
            cells = [
                VERSION_LABEL[version],
                who,
                f"{r['polls']}",
                f"{r['varbinds'] / polls:.1f}",
                f"{per_cpu:,.0f}",
                f"{r['varbinds'] / r['wall_s']:,.0f}",
                f"{100 * r['cpu_s'] / r['wall_s']:.1f}",
                f"{100 * r['agent_cpu_s'] / r['wall_s']:.1f}",
                f"{1000 * r['agent_cpu_s'] / polls:.2f}",
                f"{r['agent_packets'] / polls:.1f}",
                f"{100 * r['host_busy']:.0f}",
                f"{r['failures']}",
            ]
            print(" ".join(f"{v:{c[3]}{c[2]}}" for v, c in zip(cells, cols, strict=True)).rstrip())
            if r["failures"] or not r["polls"]:
                failed = True
                print(f"    failures: {r['reasons'] or 'no successful poll'}")
        ratio = rates["edumon"] / rates["snmp_exporter"] if rates["snmp_exporter"] else float("inf")
        ratios.append(
            f"{VERSION_LABEL[version]} {ratio:.2f}x ({'met' if ratio >= 1.0 else 'MISSED'})"
        )
    print(rule)
    print("edumon / snmp_exporter in varbinds per CPU-second, target >= 1.0x: " + "; ".join(ratios))
    print(
        "CPU % is of one core; host busy % is of all cores, everything included (the load\n"
        "generator, and anything else running: wall-second rates need a quiet host, CPU-second\n"
        "rates much less so). snmp_exporter's CPU includes rendering the Prometheus text of each\n"
        "scrape: that is its real cost per scrape. Varbinds: edumon's DeviceReading.varbinds and\n"
        "the exporter's own snmp_scrape_pdus_returned. Requests: the agent's snmpInPkts (SNMP\n"
        "messages received) per poll."
    )
    return failed


def print_profile(path: Path, label: str, top: int = 25) -> None:
    """Where the poller's CPU goes: own time per function, largest first, with its share."""
    import pstats

    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    print(f"\ncProfile of the edumon poller, {label}: {total:.2f} CPU-s, own time by function")
    print(f"{'own %':>6} {'own s':>7} {'cum s':>7} {'calls':>9}  function")
    for (file, line, func), (_, calls, own, cum, _) in rows:
        where = file
        for prefix in (str(REPO) + "/", "site-packages/", "lib/python3"):
            if prefix in where:
                where = where.split(prefix, 1)[1]
        name = f"{where}:{line}({func})" if line else func
        print(f"{100 * own / total:>6.1f} {own:>7.3f} {cum:>7.3f} {calls:>9}  {name}")


# --------------------------------------------------------------------------------------------
# Outer: set up the namespace with a switch's worth of interfaces, run "inner" inside it.


def setup_namespace(name: str, interfaces: int) -> None:
    """A network namespace with lo up and `interfaces` veth ends (plus one ifb if odd), all up."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    batch = ["link set lo up"]
    for i in range(1, interfaces, 2):
        batch.append(f"link add port{i:02d} type veth peer name port{i + 1:02d}")
    if interfaces % 2:
        batch.append(f"link add port{interfaces:02d} type ifb")
    batch.extend(f"link set port{i:02d} up" for i in range(1, interfaces + 1))
    subprocess.run(
        ["ip", "-n", name, "-batch", "-"],
        input="\n".join(batch) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


def outer(args: argparse.Namespace, passthrough: list[str]) -> int:
    name = f"edumon-bench-{os.getpid()}"
    created = False
    where = ""
    if os.geteuid() == 0 and shutil.which("ip"):
        try:
            setup_namespace(name, args.interfaces)
            created = True
            where = f"private network namespace, {args.interfaces} veth/ifb interfaces + lo"
        except subprocess.CalledProcessError as exc:
            where = f"machine's own interfaces: namespace setup failed ({exc.stderr.strip()[:120]})"
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    else:
        where = "machine's own interfaces: not root, no namespace with extra interfaces"
    if not created:
        print(f"note: walking the {where}", file=sys.stderr)
        args.where = where
        return role_inner(args)
    cmd = ["ip", "netns", "exec", name, sys.executable, str(Path(__file__).resolve())]
    cmd += ["--role", "inner", f"--where={where}", *passthrough]
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except (KeyboardInterrupt, SystemExit):
        # Ctrl+C reaches the child too; a SIGTERM to this script has to be passed on.
        return 130
    finally:
        hold_signals()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
                proc.wait()
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per run (15)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (3)")
    p.add_argument("--concurrency", type=int, default=8, help="polls in flight (8)")
    p.add_argument("--interfaces", type=int, default=48, help="agent interfaces besides lo (48)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile the edumon poller and print where its time goes",
    )
    p.add_argument(
        "--show-exporter-config",
        action="store_true",
        help="print the snmp.yml given to prometheus-snmp-exporter (placeholder secrets), exit",
    )
    # Internal: how the script runs its own pieces in subprocesses.
    p.add_argument("--role", choices=("inner", "poller", "scraper"), help=argparse.SUPPRESS)
    p.add_argument("--where", default="", help=argparse.SUPPRESS)
    p.add_argument("--agent-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--agent-pid", type=int, help=argparse.SUPPRESS)
    p.add_argument("--exporter-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--exporter-pid", type=int, help=argparse.SUPPRESS)
    p.add_argument("--snmp-version", choices=VERSIONS, help=argparse.SUPPRESS)
    p.add_argument("--module", help=argparse.SUPPRESS)
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or not 1 <= args.concurrency <= 512:
        p.error("need --seconds > 0, --warmup >= 0 and 1 <= --concurrency <= 512")
    if not 0 <= args.interfaces <= 1000:
        p.error("--interfaces must be between 0 and 1000")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl+C, so every `finally` stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.role == "poller":
            return role_poller(args)
        if args.role == "scraper":
            return role_scraper(args)
        if args.role == "inner":
            return role_inner(args)
        if args.show_exporter_config:
            print(exporter_config("COMMUNITY", "AUTH-PASSWORD", "PRIV-PASSWORD"), end="")
            return 0
        passthrough = [a for a in argv if not a.startswith("--role")]
        return outer(args, passthrough)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
