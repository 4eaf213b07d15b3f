"""docs/access.md's Prometheus scrape configuration, run by a real Prometheus against edumon."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
import yaml

from edumon.runtime import Runtime
from tests.exporters.access_server import (
    METRICS_TOKEN,
    SCHOOL_A_TOKEN,
    served_runtime,
    tokened_runtime,
)
from tests.fixtures.ports import free_tcp_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
DEADLINE_SECONDS = 60.0


def documented_scrape_config() -> dict[str, object]:
    """The YAML block of docs/access.md that configures Prometheus."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    (block,) = [b for b in blocks if "scrape_configs" in b]
    loaded: dict[str, object] = yaml.safe_load(block)
    return loaded


async def test_prometheus_scrapes_with_the_documented_authorization(tmp_path: Path) -> None:
    binary = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if binary is None:
        pytest.fail("prometheus not found (Debian package `prometheus`); run `bash tests/run.sh`")
    runtime: Runtime = await tokened_runtime(tmp_path / "edumon.db")
    try:
        async with served_runtime(runtime) as base:
            target = base.removeprefix("http://")
            (tmp_path / "metrics-token").write_text(METRICS_TOKEN + "\n", encoding="utf-8")
            (tmp_path / "school-token").write_text(SCHOOL_A_TOKEN + "\n", encoding="utf-8")
            config = documented_scrape_config()
            (job,) = config["scrape_configs"]  # type: ignore[misc]
            job["static_configs"] = [{"targets": [target]}]
            job["authorization"]["credentials_file"] = str(tmp_path / "metrics-token")
            school_job = {
                **job,
                "job_name": "edumon-school-token",
                "authorization": {
                    "type": "Bearer",
                    "credentials_file": str(tmp_path / "school-token"),
                },
            }
            config = {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [job, school_job],
            }
            config_file = tmp_path / "prometheus.yml"
            config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
            listen = f"127.0.0.1:{free_tcp_port()}"
            log = (tmp_path / "prometheus.log").open("wb")
            process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={listen}",
                stdout=log,
                stderr=log,
            )
            try:
                up = await _wait_for_both_jobs(f"http://{listen}", process, tmp_path)
            finally:
                process.terminate()
                await process.wait()
                log.close()
    finally:
        await runtime.store.aclose()
    assert up == {"edumon": "1", "edumon-school-token": "0"}


async def _wait_for_both_jobs(
    url: str, process: asyncio.subprocess.Process, tmp_path: Path
) -> dict[str, str]:
    """``up`` of each job once Prometheus has scraped both."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while True:
            assert process.returncode is None, (tmp_path / "prometheus.log").read_text()
            try:
                answer = (await client.get("/api/v1/query", params={"query": "up"})).json()
                up = {r["metric"]["job"]: r["value"][1] for r in answer["data"]["result"]}
            except (httpx.HTTPError, KeyError, ValueError):
                up = {}
            if len(up) == 2:
                return up
            assert time.monotonic() < deadline, f"Prometheus scraped only {up}"
            await asyncio.sleep(0.2)
