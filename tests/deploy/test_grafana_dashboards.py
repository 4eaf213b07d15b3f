"""The Grafana dashboards in deploy/grafana: their structure, and every query against real data.

Structure: each dashboard is decoded with Grafana's own typed models (grafana-foundation-sdk,
``Dashboard.from_json`` with the core panel and datasource plugins registered): every panel
must be of a core panel type whose options decode into that plugin's typed options, and every
target must decode as a Prometheus query. The SDK's decoders read the keys they know and do not
check types or cross-references (it is a builder library, not a validator, and Grafana publishes
no JSON schema for dashboard JSON), so the invariants Grafana relies on are checked here: unique
panel ids, a gridPos inside the 24 columns without overlaps, every datasource the uid that the
provisioning file gives, every variable used defined (or one of Grafana's built-ins), and every
variable backed by a ``label_values`` query.

Data: a real Prometheus (Debian's ``prometheus``) scrapes a running ``edumon demo`` once a
second; every panel target, its template variables substituted (first with the first value of
each variable as Prometheus' label values give it, then with "All"), goes through Prometheus'
HTTP API and must parse and return data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime as cog_runtime
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus as prometheus_models
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.fixtures.ports import free_tcp_port
from tests.test_demo import Demo, start_demo

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "edumon.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "edumon.yml"

# Grafana's built-in variables, with values that fit a Prometheus scraping every second.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")
DEADLINE_SECONDS = 90.0
"""From the demo serving (start_demo has its own deadline) to every query answered."""


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARD_FILES}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row's panels


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = board.get("templating", {}).get("list", [])
    return found


def variable_query(var: dict[str, Any]) -> str:
    query = var["query"]
    text: str = query["query"] if isinstance(query, dict) else query
    return text


def used_variables(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}


def provisioned_uid() -> str:
    sources = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    (source,) = sources
    assert source["type"] == "prometheus"
    uid: str = source["uid"]
    return uid


# -- structure --------------------------------------------------------------------------------


def test_the_five_dashboards_are_there() -> None:
    uids = {board["uid"] for board in load_dashboards().values()}
    assert uids == {
        "edumon-district",
        "edumon-school",
        "edumon-switch-ports",
        "edumon-classrooms",
        "edumon-health",
    }


@pytest.mark.parametrize("name", [p.name for p in DASHBOARD_FILES])
def test_dashboard_decodes_with_grafanas_models(name: str) -> None:
    register_default_plugins()
    raw = load_dashboards()[name]
    board = Dashboard.from_json(raw)
    assert board.uid == raw["uid"]
    assert board.title
    assert board.panels is not None
    assert len(board.panels) == len(raw["panels"])
    for panel, raw_panel in zip(board.panels, raw["panels"], strict=True):
        plugin = cog_runtime.panelcfg_config(panel.type_val)
        assert plugin is not None, f"{name}: panel {raw_panel['title']!r} is no core panel type"
        if plugin.options_from_json_hook is not None:
            assert not isinstance(panel.options, dict), f"{name}: {raw_panel['title']!r}"
        assert panel.targets, f"{name}: panel {raw_panel['title']!r} has no query"
        for target in panel.targets:
            assert isinstance(target, prometheus_models.Dataquery), raw_panel["title"]
            assert target.expr.strip()
            assert target.ref_id


@pytest.mark.parametrize("name", [p.name for p in DASHBOARD_FILES])
def test_dashboard_invariants(name: str) -> None:
    board = load_dashboards()[name]
    uid = provisioned_uid()
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(board):
        title = panel["title"]
        assert re.search(r"[\u4e00-\u9fff]", title), f"{name}: {title!r} has no Chinese title"
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), title
        assert pos["w"] >= 1, title
        assert pos["h"] >= 1, title
        assert pos["x"] >= 0, title
        assert pos["x"] + pos["w"] <= 24, title
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), title)
                assert other == title, f"{name}: {title!r} overlaps {other!r}"
        assert panel["datasource"]["uid"] == uid, title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{name}: {title!r} repeats a refId"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, title
    defined = {v["name"] for v in variables(board)}
    for var in variables(board):
        assert var["datasource"]["uid"] == uid
        assert LABEL_VALUES.match(variable_query(var)), var["name"]
    used: set[str] = set()
    for panel in panels(board):
        for target in panel["targets"]:
            used |= used_variables(target["expr"])
    for var in variables(board):
        used |= used_variables(variable_query(var))
    assert used - defined - set(BUILTINS) == set(), f"{name}: undefined variables"


def test_provisioning_points_at_the_dashboards() -> None:
    providers = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
    sources = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert sources["apiVersion"] == 1
    assert provisioned_uid() == "edumon-prometheus"


# -- every query against a Prometheus scraping the demo ---------------------------------------


@dataclass
class Prometheus:
    base: str
    proc: subprocess.Popen[str]

    def get(self, path: str, **params: str | list[str]) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{self.base}{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def query(self, expr: str) -> Any:
        return self.get("/api/v1/query", query=expr)


def start_prometheus(tmp_path: Path, target: str, deadline: float) -> Prometheus:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus not found (Debian package `prometheus`); run `bash tests/run.sh`")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "edumon", "static_configs": [{"targets": [target]}]}
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_tcp_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"prometheus exited: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return prom
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("prometheus did not become ready")


def escape(value: str) -> str:
    """A label value as a regex in a PromQL string (Grafana escapes multi-value variables so)."""
    return re.sub(r"([.+*?^$()\[\]{}|\\])", r"\\\\\1", value)


def substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return VARIABLE.sub(one, text)


def resolve(prom: Prometheus, board: dict[str, Any], *, all_values: bool) -> dict[str, str] | None:
    """Each variable's value: the first of its label values, or All (``.*``) where allowed.
    None while a variable has no values yet."""
    values = dict(BUILTINS)
    for var in variables(board):
        if all_values and var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
            continue
        match = LABEL_VALUES.match(substitute(variable_query(var), values))
        assert match is not None
        params: dict[str, str | list[str]] = {}
        if match["selector"]:
            params["match[]"] = [match["selector"]]
        answer = prom.get(f"/api/v1/label/{match['label']}/values", **params)
        assert answer["status"] == "success", answer
        if not answer["data"]:
            return None
        values[var["name"]] = escape(sorted(answer["data"])[0])
    return values


@pytest.mark.timeout(180)
def test_every_panel_query_returns_data(tmp_path: Path) -> None:
    demo: Demo = start_demo(tmp_path, "--db", str(tmp_path / "demo.db"))
    deadline = time.monotonic() + DEADLINE_SECONDS
    prom: Prometheus | None = None
    try:
        target = demo.base.removeprefix("http://")
        prom = start_prometheus(tmp_path, target, deadline)
        boards = load_dashboards()
        pending: dict[tuple[str, str, str, bool], str] = {}
        for name, board in boards.items():
            for panel in panels(board):
                for t in panel["targets"]:
                    for all_values in (False, True):
                        pending[(name, panel["title"], t["refId"], all_values)] = t["expr"]
        last: dict[tuple[str, str, str, bool], str] = {}
        while pending and time.monotonic() < deadline:
            resolved = {
                (name, all_values): resolve(prom, board, all_values=all_values)
                for name, board in boards.items()
                for all_values in (False, True)
            }
            for key, expr in list(pending.items()):
                values = resolved[(key[0], key[3])]
                if values is None:
                    last[key] = "a template variable has no values yet"
                    continue
                query = substitute(expr, values)
                answer = prom.query(query)
                # A query that does not parse fails at once: waiting cannot mend it.
                assert answer["status"] == "success", f"{key}: {query}: {answer}"
                if answer["data"]["result"]:
                    del pending[key]
                else:
                    last[key] = f"no data for {query}"
            if pending:
                time.sleep(1.0)
        assert not pending, "\n".join(f"{k}: {last.get(k)}" for k in pending)
        assert demo.proc.poll() is None, "the demo stopped while it was scraped"
    finally:
        procs = [demo.proc] if prom is None else [prom.proc, demo.proc]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=60)  # reaps it and closes its pipes
