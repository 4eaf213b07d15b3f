"""Test helpers for the agents: a recording MQTT subscriber, agent processes, private brokers.

Every test uses its own district id, so tests can share the broker on 127.0.0.1:1883 (and run
in parallel) without seeing each other's messages; retained status messages are cleared after.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edumon.wire import Heartbeat, Status, WireError, parse_message

REPO = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO / "agents" / "terminal"
BROKER_HOST = "127.0.0.1"
BROKER_PORT = 1883
DEADLINE = 20.0  # seconds: the longest any single wait in these tests may take
# A clean shutdown waits up to 5 s for the broker's ack of "offline" and 5 s for the disconnect,
# then joins the network thread: on a loaded 2-core machine that can pass DEADLINE.
EXIT_DEADLINE = 60.0


@dataclass(frozen=True)
class Received:
    """One message as the subscriber saw it, parsed with the collector-side parser."""

    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival
    parsed: Heartbeat | Status | None
    error: WireError | None


class Recorder:
    """A real MQTT subscriber on ``edumon/v1/{district}/#`` that keeps everything it receives."""

    def __init__(
        self,
        district: str,
        host: str = BROKER_HOST,
        port: int = BROKER_PORT,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.district = district
        self._condition = threading.Condition()
        self._messages: list[Received] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-recorder-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(DEADLINE):
            self._client.loop_stop()
            raise AssertionError(f"subscriber not subscribed at {host}:{port} in time")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"edumon/v1/{self.district}/#", qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        parsed: Heartbeat | Status | None = None
        error: WireError | None = None
        try:
            parsed = parse_message(message.topic, message.payload)
        except WireError as exc:
            error = exc
        received = Received(
            message.topic, message.payload, bool(message.retain), time.monotonic(), parsed, error
        )
        with self._condition:
            self._messages.append(received)
            self._condition.notify_all()

    @property
    def messages(self) -> list[Received]:
        """Everything received so far, in arrival order."""
        with self._condition:
            return list(self._messages)

    def count(self) -> int:
        """How many messages have arrived (a bookmark for ``wait_for(after=...)``)."""
        with self._condition:
            return len(self._messages)

    def wait_for(
        self,
        predicate: Callable[[Received], bool],
        timeout: float = DEADLINE,
        after: int = 0,
        what: str = "message",
    ) -> Received:
        """The first message (from index ``after`` on) matching ``predicate``; fails at deadline."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for received in self._messages[after:]:
                    if predicate(received):
                        return received
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:120]) for m in self._messages[after:]]
                    raise AssertionError(f"no {what} within {timeout} s; got {seen}")
                self._condition.wait(remaining)

    def wait_status(
        self,
        terminal: str,
        state: str,
        reason: str | None = None,
        after: int = 0,
        timeout: float = DEADLINE,
    ) -> tuple[Status, Received]:
        """The first status of ``terminal`` in ``state`` (and ``reason``, if given)."""

        def match(received: Received) -> bool:
            status = received.parsed
            return (
                isinstance(status, Status)
                and status.terminal == terminal
                and status.state == state
                and (reason is None or status.reason == reason)
            )

        received = self.wait_for(match, timeout, after, f"{state} status of {terminal}")
        assert isinstance(received.parsed, Status)
        return received.parsed, received

    def heartbeats(self, terminal: str) -> list[Heartbeat]:
        """The parsed heartbeats of ``terminal`` so far."""
        return [
            m.parsed
            for m in self.messages
            if isinstance(m.parsed, Heartbeat) and m.parsed.terminal == terminal
        ]

    def close(self, clear_retained: bool = True) -> None:
        """Clear the retained status topics this test produced, then disconnect."""
        if clear_retained:
            for topic in {m.topic for m in self.messages if m.topic.endswith("/status")}:
                info = self._client.publish(topic, b"", qos=1, retain=True)
                # A broker a test stopped raises here; nothing is retained there any more.
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()


class AgentProcess:
    """``python -m edumon_terminal_agent`` as a real child process, logging to a file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(AGENT_DIR), environment.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        environment.pop("EDUMON_MQTT_PASSWORD", None)
        environment.update(env or {})
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edumon_terminal_agent", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=environment,
            cwd=REPO,
        )

    def send(self, signum: int) -> None:
        """Send a signal (SIGTERM: clean shutdown; SIGKILL: a crash or power loss)."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = EXIT_DEADLINE) -> int:
        """The exit status; fails if the process is still running at the deadline."""
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        """What the agent has logged so far."""
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = DEADLINE) -> None:
        """Wait until ``text`` appears in the log (or fail if the agent exits first)."""

        def logged() -> bool:
            if self.process.poll() is not None and text not in self.log():
                raise AssertionError(f"agent exited ({self.process.returncode}):\n{self.log()}")
            return text in self.log()

        poll_until(logged, timeout, lambda: f"{text!r} in the agent log:\n{self.log()}")

    def stop(self) -> None:
        """Terminate (then kill) if still running; close the log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def poll_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Check ``condition`` every 50 ms until it holds; fail at the deadline.

    For conditions nothing notifies us of (a log file grows, a port starts listening).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what()}")
        time.sleep(0.05)  # the poll interval of a condition check, not a wait for an event


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateBroker:
    """A Mosquitto of our own on a free loopback port (for TLS, passwords and restarts)."""

    def __init__(self, directory: Path, listener_options: str = "", port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.conf = directory / "mosquitto.conf"
        # "user": as root, Mosquitto would switch to the mosquitto user, which cannot read
        # pytest's private tmp directories; staying the current user is what a test wants.
        self.conf.write_text(
            f"user {getpass.getuser()}\n"
            "persistence false\n"
            "log_dest stderr\n"
            f"listener {self.port} 127.0.0.1\n"
            f"{listener_options}\n",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> None:
        """Start Mosquitto and wait until it accepts TCP connections."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._log = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=self._log, stderr=self._log
        )
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"mosquitto exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        poll_until(listening, DEADLINE, lambda: f"mosquitto listening:\n{self.log()}")

    def log(self) -> str:
        """Mosquitto's log so far."""
        return (self.directory / "mosquitto.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop Mosquitto (SIGTERM, then SIGKILL) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(frozen=True)
class Pki:
    """PEM files of a throwaway CA, a server certificate for 127.0.0.1 and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        """A TLS context trusting the CA and presenting the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_pki(directory: Path) -> Pki:
    """Create the CA and certificates in ``directory`` (EC P-256: fast to generate)."""
    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("edumon test CA"))
        .issuer_name(name("edumon test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("127.0.0.1", server=True)
    client_cert, client_key = leaf("edumon-terminal", server=False)
    return Pki(
        ca=write_cert(ca_cert, directory / "ca.pem"),
        server_cert=write_cert(server_cert, directory / "server.pem"),
        server_key=write_key(server_key, directory / "server.key"),
        client_cert=write_cert(client_cert, directory / "client.pem"),
        client_key=write_key(client_key, directory / "client.key"),
    )
