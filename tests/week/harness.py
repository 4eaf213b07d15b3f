"""The real daemon (edumon.app.run) under a controllable clock, driven one step at a time.

The test moves the clock; the daemon's own tasks do the rest in real time: the poller polls the
simulated switches every second (dating each reply by the clock), the ingest takes the
terminals' messages from the real broker, the collector's timeouts and the outage watch tick
every few milliseconds. A step waits (with a deadline) until all of that has caught up with the
new time, then scrapes /metrics over HTTP like Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from edumon import app
from edumon.config import parse_config
from edumon.demo.agent import SimulatedSwitch
from edumon.runtime import Runtime
from tests.week.district import CLASSROOMS, SWITCHES, config_text
from tests.week.terminals import WireTerminal

DEADLINE = 30.0
MOSQUITTO = ("127.0.0.1", 1883)


class Clock:
    """The time the daemon sees (Unix seconds); only the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Week:
    clock: Clock
    runtime: Runtime
    url: str
    switches: dict[str, SimulatedSwitch]
    terminals: dict[str, WireTerminal]
    http: httpx.AsyncClient
    scrapes: list[tuple[float, str]] = field(default_factory=list)
    cut_off: set[str] = field(default_factory=set)
    """Switches the scenario has made silent."""

    # -- what the scenario does --------------------------------------------------------------

    def cut(self, *switches: str) -> None:
        for sw in switches:
            self.switches[sw].set_reachable(False)
            self.cut_off.add(sw)

    def restore(self, *switches: str) -> None:
        for sw in switches:
            self.switches[sw].set_reachable(True)
            self.cut_off.discard(sw)

    def port(self, switch: str, port: str, up: bool) -> None:
        model = self.switches[switch].model
        model.set_link(model.if_index_of(port), up, 1000 if up else None)

    async def polled(self, *switches: str) -> None:
        """Wait for two more complete polls of each switch (the first may have been in flight)."""
        state = self.runtime.state
        before = {
            sw: state.devices[sw].polls_ok + state.devices[sw].polls_failed for sw in switches
        }
        await until(
            lambda: all(
                state.devices[sw].polls_ok + state.devices[sw].polls_failed >= before[sw] + 2
                for sw in switches
            ),
            f"polls of {', '.join(switches)}",
        )

    async def set_terminal(self, terminal: str, how: str) -> None:
        """``on`` (boot, birth), ``kill`` (Will), ``power`` (silence: heartbeats stop)."""
        term = self.terminals[terminal]
        st = (
            self.runtime.terminals.terminal(term.school, terminal)
            if self.runtime.terminals
            else None
        )
        assert st is not None
        if how == "on":
            await asyncio.to_thread(term.switch_on)
            await until(lambda: st.online is True, f"{terminal} online")
        elif how == "kill":
            was_online = st.online
            await asyncio.to_thread(term.kill)
            if was_online:
                await until(lambda: st.online is False, f"{terminal} offline by its Will")
        elif how == "power":
            term.lose_power()
        else:  # pragma: no cover - a typo in the scenario table
            raise ValueError(how)

    # -- one step ----------------------------------------------------------------------------

    async def step(self, at: float) -> None:
        """Move the clock to ``at``, let the daemon catch up, scrape /metrics."""
        runtime = self.runtime
        assert runtime.terminals is not None
        assert runtime.outages is not None
        self.clock.now = at
        beating = [t for t in self.terminals.values() if t.heartbeating]
        for term in beating:
            await asyncio.to_thread(term.heartbeat)

        def heard() -> bool:
            for term in beating:
                st = runtime.terminals.terminal(term.school, term.terminal)  # type: ignore[union-attr]
                if st is None or st.last_seq is None or st.last_seq < term.seq:
                    return False
            return True

        await until(heard, "heartbeats of this step")

        # A step is five minutes: in production each switch is polled several times in that
        # span, so a single lost reply (a loaded test machine) is healed by the next poll well
        # before a step ends. So a switch the scenario keeps answering must show as answering
        # (wait for its next poll if one reply was lost), and a cut-off one as silent.
        def polled_now() -> bool:
            for sw in self.switches:
                reachable = runtime.state.devices[sw].reachable
                if reachable is not (sw not in self.cut_off):
                    return False
            return True

        await until(polled_now, "every switch answering as the scenario sets it up")
        await until(
            lambda: (runtime.collector.expired_at or 0) >= at, "the look for silent terminals"
        )
        evaluations = runtime.outages.evaluations
        await until(
            lambda: runtime.outages.evaluations >= evaluations + 2,  # type: ignore[union-attr]
            "the outage watch",
        )
        response = await self.http.get(f"{self.url}/metrics")
        response.raise_for_status()
        self.scrapes.append((at, response.text))


@contextlib.asynccontextmanager
async def running_week(tmp_path: Path, start: float) -> AsyncIterator[Week]:
    """Switches, terminals and the daemon, its clock at ``start``."""
    community = secrets.token_urlsafe(8)
    district = f"week{uuid.uuid4().hex[:8]}"
    switches: dict[str, SimulatedSwitch] = {}
    terminals: dict[str, WireTerminal] = {}
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        for plan in SWITCHES:
            sw = SimulatedSwitch("huawei-s5735", community=community, name=plan.id)
            await sw.start()
            for port in plan.ports:
                sw.set_link(sw.model.if_index_of(port), True, 1000)
            switches[plan.id] = sw
        config = parse_config(
            config_text(
                district=district,
                storage_url=f"sqlite:///{tmp_path / 'week.db'}",
                community=community,
                ports={k: v.port for k, v in switches.items()},
                mqtt_port=MOSQUITTO[1],
            )
        )
        clock = Clock(start)
        ready: asyncio.Future[tuple[Runtime, str]] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            app.run(
                config,
                stop=stop,
                sock=app.bind_listener("127.0.0.1:0"),
                on_ready=lambda rt, url: ready.set_result((rt, url)),
                clock=clock,
                tick_seconds=0.01,
            ),
            name="edumon-week",
        )
        async with asyncio.timeout(DEADLINE):
            runtime, url = await asyncio.shield(ready)
        for room, (school, _, _, _) in CLASSROOMS.items():
            terminals[room] = WireTerminal(district, school, room, *MOSQUITTO, clock=clock)
        await until(lambda: bool(runtime.ingest and runtime.ingest.stats.connected), "MQTT ingest")  # type: ignore[attr-defined]
        # A fresh connection per scrape: a kept-alive one can be closed by the server's idle
        # timeout just as it is reused while a step waits for polls (a ReadError, not a bug).
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=DEADLINE, limits=no_keepalive) as http:
            yield Week(clock, runtime, url, switches, terminals, http)
    finally:
        stop.set()
        if task is not None:
            async with asyncio.timeout(DEADLINE):
                await task
        for term in terminals.values():
            await asyncio.to_thread(term.clear)
        for sw in switches.values():
            await sw.stop()
