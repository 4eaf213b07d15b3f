"""The city benchmark's readers: API clients and a /metrics scraper, timed from outside edumon.

Run by bench/city.py as its own process (its CPU is counted apart from edumon's):
``python bench/city_load.py SPEC.json``. SPEC holds ``api`` (base URL), ``clients``, ``think``
(seconds each client waits between requests), ``scrape_every``, ``seconds`` (how long to load),
``paths`` ([label, path] pairs the clients cycle through) and ``out``.

Each client is a thread with its own keep-alive HTTP connection, cycling through the endpoints
from its own starting point, so every endpoint gets the same share. A request's time is from
sending it to having read the complete body. The scraper fetches /metrics every
``scrape_every`` seconds (the next scrape waits for the previous one: a scrape slower than the
period shows as fewer scrapes) and counts bytes and series while streaming the body. Requests
still running when the load ends are reported with the time they had taken so far.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import signal
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT = 120.0
# /metrics lines the benchmark reads: state changes by kind, and poll lag where exported.
_KEPT = re.compile(
    rb"^(?:edumon_collector_events|edumon_snmp_poll_lag|edumon_gc_pause)[^\n]*", re.MULTILINE
)


def _connection(base: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(base.hostname, base.port, timeout=REQUEST_TIMEOUT)


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = urllib.parse.urlsplit(spec["api"])
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.scrapes: list[dict[str, Any]] = []
        self.in_flight: dict[int, tuple[str, float]] = {}

    def _get(
        self, conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()

    def client(self, index: int) -> None:
        paths: list[list[str]] = self.spec["paths"]
        think = float(self.spec["think"])
        rng = random.Random(index)
        schools: list[str] = self.spec["schools"]
        switches: list[str] = self.spec["switches"]
        conn = _connection(self.base)
        k = index
        while not self.stop.is_set():
            label, template = paths[k % len(paths)]
            k += 1
            # Per-school and per-switch pages: a different one each time, as readers ask.
            path = template.format(school=rng.choice(schools), switch=rng.choice(switches))
            started = time.perf_counter()
            at = time.time()
            with self.lock:
                self.in_flight[index] = (label, started)
            status, size, error = 0, 0, ""
            try:
                status, body = self._get(conn, path)
                size = len(body)
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = _connection(self.base)
            elapsed = time.perf_counter() - started
            with self.lock:
                self.in_flight.pop(index, None)
                if not self.stop.is_set():
                    self.requests.append(
                        {
                            "endpoint": label,
                            "at": at,
                            "seconds": elapsed,
                            "status": status,
                            "bytes": size,
                            "error": error,
                        }
                    )
            self.stop.wait(think)
        conn.close()

    def scraper(self) -> None:
        every = float(self.spec["scrape_every"])
        next_at = time.monotonic()
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            next_at += every
            if next_at < time.monotonic():
                next_at = time.monotonic()
            self.scrapes.append(scrape(self.base, timeout=REQUEST_TIMEOUT))

    def run(self) -> None:
        cpu_start = time.process_time()
        threads = [
            threading.Thread(target=self.client, args=(i,), name=f"client-{i}", daemon=True)
            for i in range(int(self.spec["clients"]))
        ]
        if float(self.spec["scrape_every"]) > 0:
            threads.append(threading.Thread(target=self.scraper, name="scraper", daemon=True))
        for t in threads:
            t.start()
        self.stop.wait(float(self.spec["seconds"]))
        self.stop.set()
        now = time.perf_counter()
        with self.lock:
            unfinished = [
                {"endpoint": label, "seconds": now - started}
                for label, started in self.in_flight.values()
            ]
            requests = list(self.requests)
        for t in threads:
            t.join(timeout=0.5)
        cpu = time.process_time() - cpu_start
        out = {
            "cpu_seconds": cpu,
            "window_seconds": float(self.spec["seconds"]),
            "requests": requests,
            "unfinished": unfinished,
            "scrapes": list(self.scrapes),
        }
        Path(self.spec["out"]).write_text(json.dumps(out))


def scrape(base: urllib.parse.SplitResult, *, timeout: float) -> dict[str, Any]:
    """GET /metrics once: time to first byte and to the complete body, bytes, series.

    Lines of interest to the benchmark (event counters, poll lag) are kept verbatim.
    """
    at = time.time()
    started = time.perf_counter()
    result: dict[str, Any] = {"at": at, "status": 0, "bytes": 0, "series": 0, "error": ""}
    kept: list[str] = []
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=timeout)
    try:
        conn.request("GET", "/metrics", headers={"Accept": "text/plain"})
        resp = conn.getresponse()
        result["status"] = resp.status
        result["first_byte_seconds"] = time.perf_counter() - started
        # The clock stops at the last byte: counting and searching the body come after, so
        # the figure is edumon's, not this client's parsing.
        parts = []
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            parts.append(chunk)
        result["seconds"] = time.perf_counter() - started
        body = b"".join(parts)
        lines = body.count(b"\n") + (not body.endswith(b"\n") and bool(body))
        comments = body.count(b"\n#") + (body[:1] == b"#")
        kept.extend(m.group().decode("utf-8", "replace") for m in _KEPT.finditer(body))
        result["bytes"] = len(body)
        result["series"] = lines - comments
    except (OSError, http.client.HTTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    result.setdefault("seconds", time.perf_counter() - started)
    result["lines"] = kept
    return result


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    load = Load(spec)
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    signal.signal(signal.SIGINT, lambda *_: load.stop.set())
    load.run()


if __name__ == "__main__":
    main()
