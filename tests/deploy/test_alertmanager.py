"""The shipped Alertmanager configuration: amtool's checks, its routes, and a real Alertmanager."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agents.support import DEADLINE, free_port
from tests.deploy.test_prometheus_rules import all_alert_rules

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
EDUMON_WEBHOOK = "http://127.0.0.1:9310/api/v1/alertmanager/webhook"
TOKEN_FILE = "/etc/edumon/alertmanager-webhook.token"
EDUMON = {"job": "edumon", "instance": "127.0.0.1:9310"}


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        pytest.fail(
            f"{name} not found (Debian package `prometheus-alertmanager`); run "
            "`bash tests/run.sh`, which installs it"
        )
    return path


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # --alertmanager.url is never used: every command here reads the configuration file.
    return subprocess.run(
        [binary("amtool"), *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return loaded


def test_config_passes_amtool_check() -> None:
    result = amtool("check-config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "4 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # A school's outage: the NOC and the school's own receiver.
        (
            {"alertname": "EdumonSchoolDown", "scope": "school", "school": "CG01"},
            "district-noc,school-CG01",
        ),
        (
            {"alertname": "EdumonClassroomTerminalOffline", "scope": "school", "school": "CG02"},
            "district-noc,school-CG02",
        ),
        (
            {"alertname": "EdumonSwitchRebooted", "scope": "school", "school": "CG02"},
            "district-noc,school-CG02",
        ),
        # A school without a receiver of its own: the NOC alone.
        (
            {"alertname": "EdumonSchoolDown", "scope": "school", "school": "YZ01"},
            "district-noc",
        ),
        # District alerts: the NOC alone, even when they carry a school label.
        ({"alertname": "EdumonCollectorDown", "scope": "district"}, "district-noc"),
        (
            {"alertname": "EdumonDistrictSwitchUnreachable", "scope": "district", "school": ""},
            "district-noc",
        ),
        ({"alertname": "Other", "scope": "district", "school": "CG01"}, "district-noc"),
    ],
)
def test_routes_send_school_alerts_to_the_school_and_everything_to_the_noc(
    labels: dict[str, str], receivers: str
) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receivers}",
        *pairs,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_school_routes_follow_one_pattern() -> None:
    routes = config()["route"]["routes"]
    assert routes[0] == {"receiver": "district-noc", "continue": True}
    schools = routes[1:]
    assert len(schools) >= 2
    for route in schools:
        (school,) = [m for m in route["matchers"] if m.startswith("school=")]
        code = school.removeprefix('school="').removesuffix('"')
        assert route["matchers"] == [f'school="{code}"', 'scope="school"']
        assert route["receiver"] == f"school-{code}"
        assert route["group_by"] == ["school"]
        # Classroom alerts fire only during lessons and go out at once; the rest of the
        # school's alerts wait for school hours.
        assert route["routes"] == [
            {"matchers": ['alertname="EdumonClassroomTerminalOffline"']},
            {"active_time_intervals": ["school-hours"]},
        ]


def test_every_receiver_is_edumons_webhook_with_a_token_file() -> None:
    receivers = config()["receivers"]
    assert {r["name"] for r in receivers} == {"district-noc", "school-CG01", "school-CG02"}
    for receiver in receivers:
        (hook,) = receiver["webhook_configs"]
        assert hook["url"] == EDUMON_WEBHOOK
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"] == {
            "type": "Bearer",
            "credentials_file": TOKEN_FILE,
        }


def test_inhibit_rules_name_alerts_that_exist() -> None:
    names = {str(rule["alert"]) for rule in all_alert_rules()}
    named: set[str] = set()
    for rule in config()["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            key, _, value = matcher.partition("=")
            if key == "alertname" and not value.startswith("~"):
                named.add(value.strip('"'))
            elif key == "alertname" and ".+" not in value:
                named.update(value.removeprefix('~"').removesuffix('"').split("|"))
    assert named - names == set()


# -- a real Alertmanager -------------------------------------------------------------------


class Webhook:
    """An HTTP server on loopback that records what Alertmanager posts to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []  # (Authorization header, payload)
        self._condition = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer._condition:
                    outer.posts.append((self.headers.get("Authorization", ""), json.loads(body)))
                    outer._condition.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/v1/alertmanager/webhook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, match: Callable[[str, dict[str, Any]], bool]) -> tuple[str, dict[str, Any]]:
        with self._condition:
            found: list[tuple[str, dict[str, Any]]] = []

            def matched() -> bool:
                found[:] = [post for post in self.posts if match(*post)]
                return bool(found)

            assert self._condition.wait_for(matched, DEADLINE), f"no such post in {self.posts}"
            return found[0]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Alertmanager:
    """prometheus-alertmanager on a free loopback port, clustering off, state in tmp_path."""

    def __init__(self, tmp_path: Path, config_file: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self._log = (tmp_path / "alertmanager.log").open("w")
        self._process = subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={config_file}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                "--cluster.listen-address=",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._log_path = tmp_path / "alertmanager.log"
        wait_until(self._ready, "Alertmanager ready")

    def _ready(self) -> bool:
        assert self._process.poll() is None, self._log_path.read_text(encoding="utf-8")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def post(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            loaded: list[dict[str, Any]] = json.load(response)
            return loaded

    def state_of(self, **labels: str) -> str | None:
        for alert in self.alerts():
            if labels.items() <= alert["labels"].items():
                return str(alert["status"]["state"])
        return None

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=DEADLINE)
        self._log.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def alert(labels: dict[str, str], ends_in: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {**EDUMON, **labels},
        "annotations": {"summary": labels["alertname"]},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        "endsAt": (now + ends_in).isoformat(),
    }


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[Alertmanager]:
    """The shipped configuration with edumon's URL and token file pointed at this test's, and
    the group timers shortened so that the first notifications come within a second."""
    text = CONFIG.read_text(encoding="utf-8")
    assert text.count(EDUMON_WEBHOOK) == 1
    assert text.count(TOKEN_FILE) == 1
    token = tmp_path / "webhook.token"
    token.write_text("test-token-0123\n", encoding="utf-8")
    text = text.replace(EDUMON_WEBHOOK, webhook.url).replace(TOKEN_FILE, str(token))
    text = text.replace("group_wait: 30s", "group_wait: 1s", 1)
    (tmp_path / "alertmanager.yml").write_text(text, encoding="utf-8")
    server = Alertmanager(tmp_path, tmp_path / "alertmanager.yml")
    try:
        yield server
    finally:
        server.stop()


def test_school_outage_inhibits_its_classrooms_and_the_noc_is_notified(
    alertmanager: Alertmanager, webhook: Webhook
) -> None:
    school_down = {"alertname": "EdumonSchoolDown", "school": "CG01", "scope": "school"}
    cg01_room = {
        "alertname": "EdumonClassroomTerminalOffline",
        "school": "CG01",
        "classroom": "CG01-101",
        "device": "CG01-acc1",
        "scope": "school",
    }
    cg02_room = {**cg01_room, "school": "CG02", "classroom": "CG02-101", "device": "CG02-acc1"}
    # The school's alert is known first (edumon drops the classroom outages of a school that is
    # cut off, and the rules guard it too): Alertmanager's inhibitor learns alerts
    # asynchronously, so a child posted in the same request may be flushed before it.
    alertmanager.post([alert(school_down)])
    wait_until(lambda: alertmanager.state_of(alertname="EdumonSchoolDown") == "active", "school")
    alertmanager.post([alert(cg01_room), alert(cg02_room)])

    wait_until(lambda: alertmanager.state_of(classroom="CG01-101") == "suppressed", "inhibition")
    assert alertmanager.state_of(alertname="EdumonSchoolDown") == "active"
    assert alertmanager.state_of(classroom="CG02-101") == "active"

    def has(receiver: str, **labels: str) -> Callable[[str, dict[str, Any]], bool]:
        def match(_: str, payload: dict[str, Any]) -> bool:
            return payload["receiver"] == receiver and any(
                labels.items() <= a["labels"].items() for a in payload["alerts"]
            )

        return match

    authorization, payload = webhook.wait_for(has("district-noc", alertname="EdumonSchoolDown"))
    assert authorization == "Bearer test-token-0123"
    assert payload["groupLabels"] == {"alertname": "EdumonSchoolDown", "school": "CG01"}
    webhook.wait_for(has("district-noc", classroom="CG02-101"))
    # CG02's classroom alert reaches CG02's own receiver at any hour (it fires only in lessons).
    _, payload = webhook.wait_for(has("school-CG02", classroom="CG02-101"))
    assert payload["groupLabels"] == {"school": "CG02"}
    posted = [a["labels"] for _, p in webhook.posts for a in p["alerts"]]
    assert not [labels for labels in posted if labels.get("classroom") == "CG01-101"]

    # The school is back: its classroom's alert is no longer held back.
    alertmanager.post([alert(school_down, ends_in=timedelta(seconds=-1))])
    wait_until(lambda: alertmanager.state_of(classroom="CG01-101") == "active", "inhibition lifted")


def test_collector_down_inhibits_everything_it_reported(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        [
            alert({"alertname": "EdumonCollectorDown", "scope": "district"}),
            alert({"alertname": "EdumonSchoolDown", "school": "CG01", "scope": "school"}),
            # Another edumon instance's alert is not held back.
            alert(
                {
                    "alertname": "EdumonSchoolDown",
                    "school": "YZ01",
                    "scope": "school",
                    "instance": "b:9310",
                }
            ),
        ]
    )
    wait_until(lambda: alertmanager.state_of(school="CG01") == "suppressed", "inhibition")
    assert alertmanager.state_of(alertname="EdumonCollectorDown") == "active"
    assert alertmanager.state_of(school="YZ01") == "active"
