"""The status page in a real headless browser (Debian's chromium) against a running demo.

Starts ``edumon demo`` as a user would (its own process, free ports), opens the first URL it
prints in chromium through Playwright, and checks the rendered page: the demo's schools by
their Chinese names with their states, a classroom offline during a lesson shown red, the
school whose uplink runs at 100M shown below target, a phone-width page without sideways
scrolling, and no error in the browser's console. Screenshots at desktop and phone width are
written to test-artifacts/screenshots/ (README, "Status page").
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from edumon.exporters.web.pages import REFRESH_SECONDS
from tests.fixtures.ports import PORT_ATTEMPTS, PortTaken, free_tcp_port

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
START_SECONDS = 60.0
STOP_SECONDS = 30.0
STORY_SECONDS = 90.0
"""How long the demo may take to show what is checked (its first polls and heartbeats)."""
BROWSER_TIMEOUT_MS = 30_000
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}

DEMO_SCHOOLS = {
    "cgzx": "城关镇中心小学",
    "syxx": "实验小学",
    "dyzx": "第一中学",
    "sqzx": "石桥镇九年一贯制学校",
}
STATE_LABELS = {
    "cut-off": "断网",
    "offline-in-lesson": "上课离线",
    "below-target": "未达标",
    "unknown": "未知",
    "ok": "正常",
}
RED = "rgb(220, 38, 38)"
"""--offline in style.css: a classroom offline during a lesson."""


@dataclass
class Demo:
    status_page: str
    """The first URL the demo printed."""
    proc: subprocess.Popen[str]
    log: Path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    for attempt in range(1, PORT_ATTEMPTS + 1):
        log = tmp_path / f"demo-{attempt}.log"
        proc = _start(tmp_path, log)
        try:
            url = _first_url(proc, log)
        except PortTaken:
            _stop(proc)
            if attempt == PORT_ATTEMPTS:
                raise
            continue
        except BaseException:
            _stop(proc)
            raise
        try:
            yield Demo(url, proc, log)
        finally:
            _stop(proc)
        return


def _start(tmp_path: Path, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edumon",
                "--log-level",
                "warning",
                "demo",
                "--listen",
                f"127.0.0.1:{free_tcp_port()}",
                "--mqtt-listen",
                f"127.0.0.1:{free_tcp_port()}",
                "--db",
                str(tmp_path / "demo.db"),
            ],
            stdout=subprocess.PIPE,
            stderr=err,  # a file: a full pipe would stall the demo
            text=True,
            cwd=tmp_path,
        )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=STOP_SECONDS)
    if proc.stdout is not None:
        proc.stdout.close()


def _first_url(proc: subprocess.Popen[str], log: Path) -> str:
    """The first URL the demo prints, once it has printed them all (it serves by then)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_SECONDS
    urls: list[str] = []
    printed: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            text = log.read_text()
            if "address already in use" in text:
                raise PortTaken(f"edumon demo lost a port to another process: {text[-300:]}")
            raise AssertionError(f"edumon demo exited: {text[-2000:]}")
        printed.append(line)
        urls += re.findall(r"https?://\S+", line)
        if "/metrics" in line:
            break
    else:
        raise AssertionError(f"edumon demo printed no URLs in time: {printed}")
    # The README's promise: the first URL the demo prints is the status page.
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", urls[0]), printed
    return urls[0]


@pytest.fixture
def browser() -> Iterator[Browser]:
    # Not a skip: without chromium the status page is untested, and that is a failure.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (bash tests/run.sh does) "
            "to test the status page in a real browser"
        )
    with sync_playwright() as p:
        yield _launch(p)


def _launch(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, timeout=60_000)


@dataclass
class Watched:
    """What a page said in its console and which hosts it asked for."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def open_page(browser: Browser, viewport: dict[str, int], watched: Watched) -> Page:
    page = browser.new_page(viewport={"width": viewport["width"], "height": viewport["height"]})
    page.set_default_timeout(BROWSER_TIMEOUT_MS)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            watched.errors.append(f"{page.url}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"{page.url}: {exc}"))
    page.on("request", lambda req: watched.requests.append(req.url))
    return page


def until(what: str, demo: Demo, probe: Callable[[], bool], seconds: float) -> None:
    """Wait for ``probe`` to hold, failing at the deadline or if the demo dies."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert demo.proc.poll() is None, f"the demo exited: {demo.log.read_text()[-2000:]}"
        if probe():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(300)
def test_status_page_in_chromium_against_the_demo(demo: Demo, browser: Browser) -> None:
    base = demo.status_page.rstrip("/")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    watched = Watched()
    page = open_page(browser, DESKTOP, watched)

    # The district: every school by its Chinese name, coloured by its state, with a label.
    page.goto(demo.status_page)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    tiles = page.locator("a.tile[data-school]")
    assert tiles.count() == len(DEMO_SCHOOLS)
    for code, name in DEMO_SCHOOLS.items():
        tile = page.locator(f'a.tile[data-school="{code}"]')
        assert tile.locator(".name").inner_text() == name
        assert tile.locator(".code").inner_text() == code
        state = tile.get_attribute("data-state")
        assert state in STATE_LABELS, state
        assert STATE_LABELS[state] in tile.locator(".badge").inner_text()

    # 城关镇中心小学: two panels left switched off during a lesson (the demo's story).
    # Events reach the page once the collector's batch is written: wait for both.
    def red_classroom() -> bool:
        page.goto(f"{base}/schools/cgzx")
        red = page.locator('.room[data-state="offline-in-lesson"]').count() >= 1
        return red and page.locator("#events .event").count() >= 1

    until(
        "a classroom offline in a lesson at cgzx, and its events stored",
        demo,
        red_classroom,
        STORY_SECONDS,
    )
    room = page.locator('.room[data-state="offline-in-lesson"]').first
    badge = room.locator(".badge")
    assert "上课离线" in badge.inner_text()  # the state in words, not colour alone
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == RED
    assert page.locator(".head .name").inner_text() == "城关镇中心小学"
    assert page.locator("#events .event").count() >= 1  # recent events from the store
    page.screenshot(path=str(SCREENSHOTS / "school-cgzx-desktop.png"), full_page=True)

    # 石桥镇九年一贯制学校: its uplink runs at 100M against the 1000M target.
    def slow_uplink() -> bool:
        page.goto(demo.status_page)
        uplink = page.locator('a.tile[data-school="sqzx"] .uplink')
        return uplink.get_attribute("data-verdict") == "below-target"

    until("sqzx's uplink below target", demo, slow_uplink, STORY_SECONDS)
    assert "100M" in page.locator('a.tile[data-school="sqzx"] .uplink').inner_text()
    assert page.locator('a.tile[data-school="cgzx"]').get_attribute("data-state") in (
        "offline-in-lesson",
        "cut-off",
    )
    page.screenshot(path=str(SCREENSHOTS / "district-desktop.png"), full_page=True)
    page.goto(f"{base}/schools/sqzx")
    verdict = page.locator('#uplink [data-verdict="below-target"]')
    assert "100M" in verdict.inner_text()
    assert "未达标" in verdict.inner_text()

    # A switch's ports.
    page.goto(f"{base}/switches/cgzx-jxl-1")
    assert page.locator("tr.port").count() > 18
    assert page.locator('tr.port[data-port="GigabitEthernet0/0/1"]').count() == 1

    # A phone: the same pages, one column, nothing wider than the screen.
    phone = open_page(browser, PHONE, watched)
    for path, shot in (("/", "district-phone.png"), ("/schools/cgzx", "school-cgzx-phone.png")):
        phone.goto(base + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways on a phone ({width}px)"
        phone.screenshot(path=str(SCREENSHOTS / shot), full_page=True)

    # The page refreshes itself in place (a wall screen is never reloaded by hand).
    before = phone.locator(".generated time").inner_text()
    phone.evaluate("document.getElementById('content').setAttribute('data-old', '1')")
    phone.wait_for_function(
        "t => !document.getElementById('content').hasAttribute('data-old')"
        " && document.querySelector('.generated time').textContent !== t",
        arg=before,
        timeout=(REFRESH_SECONDS + 20) * 1000,
    )
    assert phone.locator("a.tile, .room").count() > 0
    assert phone.locator("#live").inner_text() == f"每 {REFRESH_SECONDS} 秒刷新"

    assert watched.errors == []
    assert all(url.startswith(base + "/") for url in watched.requests), [
        u for u in watched.requests if not u.startswith(base + "/")
    ]

    # An unknown school: a 404 page in Chinese (its console error is the 404 itself).
    response = page.goto(f"{base}/schools/nope")
    assert response is not None
    assert response.status == 404
    assert "未找到" in page.locator("h1").inner_text()

    for name in ("district-desktop.png", "district-phone.png", "school-cgzx-desktop.png"):
        assert (SCREENSHOTS / name).stat().st_size > 0
