"""Wiring: store, state, collector, SNMP poller, MQTT ingest and HTTP server in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Mapping

import uvicorn

from edumon.cluster.ingests import ShardIngests
from edumon.cluster.run import run_sharded
from edumon.collector import Collector
from edumon.config import Config, inventory_of, terminal_inventory_of
from edumon.domain.outages import OutageTracker, Transition
from edumon.domain.state import NetworkState
from edumon.domain.terminals import DEFAULT_WILL_HOLD_SECONDS, TerminalsState
from edumon.errors import ConfigError
from edumon.exporters.api import create_app
from edumon.exporters.notify import Notifier
from edumon.gcpauses import GcPauses
from edumon.outage_watch import Listener, OutageWatch, alerts_of
from edumon.ports import ClusterView
from edumon.reports.availability import Sources
from edumon.reports.rollup import keep_availability
from edumon.runtime import Runtime
from edumon.sources.agent_reports import AgentReports, agent_subscribers
from edumon.sources.mqtt.broker import EmbeddedBroker, ServerTls
from edumon.sources.mqtt.ingest import MqttIngest, MqttSettings, MqttTls
from edumon.sources.snmp.poller import SnmpPoller
from edumon.store.repository import open_store
from edumon.workcalendar import calendar_of

log = logging.getLogger(__name__)

FULL_COLLECTION_EVERY = 1_000
"""Middle-generation garbage collections before a full one (Python's default: 10)."""
LEFT_ONLINE_LOOKBACK_SECONDS = 35 * 86400.0
"""How far back the events are read for terminals the last run left online (a classroom
terminal online for longer without a break is not one)."""
SILENT_AGENT_POLLS = 3
"""Poll intervals without a report before an agent school's switches are unreachable from the
district (one lost report never raises a school alert)."""


def bind_listener(listen: str, *, fallback_to_free_port: bool = False) -> socket.socket:
    """Bind the API's TCP socket now, so the URL printed is the URL served.

    Args:
        listen: HOST:PORT from the configuration.
        fallback_to_free_port: when the port is taken, take a free one instead (the demo
            does this; a production daemon must fail loudly rather than move).

    Raises:
        ConfigError: the address cannot be bound.
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on connections accepted from a
    # socket whose proto says TCP; without it every keep-alive reply waited ~40 ms for the
    # client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        if not fallback_to_free_port:
            sock.close()
            raise ConfigError(f"api.listen: cannot listen on {listen}: {exc.strerror}") from exc
        sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def check_exposure(config: Config, sock: socket.socket) -> None:
    """Refuse to serve an API without tokens anywhere but on loopback (docs/access.md).

    Checked on the bound socket, so a host name is judged by the address it resolved to.

    Raises:
        ConfigError: no ``[[api.tokens]]`` and the socket is not on a loopback address.
    """
    host = sock.getsockname()[0]
    if config.api.tokens or ipaddress.ip_address(host.split("%")[0]).is_loopback:
        return
    raise ConfigError(
        f"api.listen: 未配置访问令牌时只能监听本机回环地址（如 127.0.0.1:9310），否则任何人都能"
        f"读取所有学校的数据；请在 [[api.tokens]] 中配置令牌（见 docs/access.md），或改为监听 "
        f"127.0.0.1 / without [[api.tokens]] edumon serves its API on loopback only "
        f"(e.g. 127.0.0.1:9310): {host} would let anyone on the network read every school; "
        f"configure tokens (docs/access.md) or listen on 127.0.0.1"
    )


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def terminals_of(config: Config) -> TerminalsState:
    """The terminal inventory and state: one terminal per classroom, ids from the config."""
    return TerminalsState(
        terminal_inventory_of(config),
        max_clock_skew_seconds=config.mqtt.max_clock_skew_seconds,
    )


def embedded_broker_of(config: Config) -> EmbeddedBroker:
    """The embedded broker of ``[mqtt]``: its address, accounts and TLS certificate."""
    mqtt = config.mqtt
    host, _, port = mqtt.listen.rpartition(":")
    tls = mqtt.tls
    return EmbeddedBroker(
        host,
        int(port),
        policy=mqtt.policy(config.district.code),
        tls=ServerTls(tls.cert_file, tls.key_file)
        if tls is not None and tls.cert_file is not None and tls.key_file is not None
        else None,
    )


def _mqtt_settings(config: Config, broker: EmbeddedBroker | None) -> MqttSettings:
    mqtt = config.mqtt
    if mqtt.broker == "embedded":
        assert broker is not None
        # The collector logs in to its own broker with the internal account (docs/mqtt-security.md).
        host, port = broker.client_endpoint()
        username, password = broker.internal_credentials() or (None, None)
        return MqttSettings(
            host=host,
            port=port,
            username=username,
            password=password,
            district=config.district.code,
            client_id=mqtt.client_id,
        )
    tls = None
    if mqtt.tls is not None:
        tls = MqttTls(
            ca_file=mqtt.tls.ca_file, cert_file=mqtt.tls.cert_file, key_file=mqtt.tls.key_file
        )
    return MqttSettings(
        host=mqtt.host,
        port=mqtt.port or (8883 if tls is not None else 1883),
        username=mqtt.username,
        password=mqtt.password,
        tls=tls,
        district=config.district.code,
        client_id=mqtt.client_id,
    )


async def _freeze_after(seconds: float) -> None:
    """Collect once, then freeze what lives on (the state after the first poll cycle)."""
    await asyncio.sleep(seconds)
    gc.collect()
    gc.freeze()
    log.debug("garbage collector: %d objects frozen", gc.get_freeze_count())


async def run(
    config: Config,
    *,
    stop: asyncio.Event,
    sock: socket.socket | None = None,
    on_ready: Callable[[Runtime, str], None] | None = None,
    clock: Callable[[], float] = time.time,
    tick_seconds: float = 1.0,
) -> None:
    """Run the daemon until ``stop`` is set; then drain the queue and close cleanly.

    With ``[cluster]``, the daemon is one collector of several (docs/city-deployment.md): it
    runs the schools of the shards it holds, one pipeline per set of shards.

    Args: as for :func:`_run`.
    """
    if config.cluster is None:
        await _run(
            config, stop=stop, sock=sock, on_ready=on_ready, clock=clock, tick_seconds=tick_seconds
        )
        return
    listener = sock if sock is not None else bind_listener(config.api.listen)
    try:
        check_exposure(config, listener)
        ready = on_ready

        async def run_shards(
            shard_config: Config,
            shards: Mapping[int, tuple[str, ...]],
            until: asyncio.Event,
            member: ClusterView,
        ) -> None:
            nonlocal ready
            # The listening socket outlives each pipeline: requests wait in its backlog.
            await _run(
                shard_config,
                stop=until,
                sock=listener.dup(),
                on_ready=ready,
                clock=clock,
                tick_seconds=tick_seconds,
                shards=shards,
                cluster=member,
            )
            ready = None

        await run_sharded(config, stop=stop, run_shards=run_shards)
    finally:
        listener.close()


async def _run(
    config: Config,
    *,
    stop: asyncio.Event,
    sock: socket.socket | None = None,
    on_ready: Callable[[Runtime, str], None] | None = None,
    clock: Callable[[], float] = time.time,
    tick_seconds: float = 1.0,
    shards: Mapping[int, tuple[str, ...]] | None = None,
    cluster: ClusterView | None = None,
) -> None:
    """Run one pipeline until ``stop`` is set; then drain the queue and close cleanly.

    Args:
        config: the validated configuration.
        stop: set it to shut down (the CLI sets it on SIGINT/SIGTERM).
        sock: an already bound listening socket; bound from config.api.listen if None.
        on_ready: called once the API is about to serve, with the runtime and the base URL.
        clock: the wall clock (Unix seconds) every part dates things by; a test drives a
            controllable one through a school week.
        tick_seconds: how often time-driven state is re-evaluated (silent terminals,
            outages opening after their grace or closing at the end of the school day).
        shards: a cluster's collector runs these shards (and ``config`` has their schools):
            one MQTT ingest per shard, and the inventory of other schools is left alone.
        cluster: the collector's membership, for its edumon_cluster_* metrics.
    """
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    # Whatever can still refuse the configuration comes before the database is touched.
    state = NetworkState(inventory_of(config), list(config.switches))
    terminals = terminals_of(config)
    schedule = config.schedule.schedule()
    external = _mqtt_settings(config, None) if config.mqtt.broker == "external" else None
    sock = sock if sock is not None else bind_listener(config.api.listen)
    try:
        check_exposure(config, sock)
    except ConfigError:
        sock.close()
        raise
    open_metrics = config.metrics.token_hash is None and config.metrics.token_env is None
    if open_metrics and any(t.role == "school" for t in config.api.tokens):
        log.warning(
            "/metrics 未设令牌，学校令牌的持有者也能读取所有学校的指标；请设置 "
            "[metrics] token_env (/metrics has no token: anyone who reaches it, a school "
            "included, reads every school's series; set [metrics] token_env or token_hash)"
        )
    log.info("storage: %s", config.storage.display_url)
    pauses = GcPauses()
    thresholds = gc.get_threshold()
    try:
        store = await open_store(config.storage.url)
    except BaseException:
        sock.close()
        raise
    try:
        async with contextlib.AsyncExitStack() as stack:
            await store.sync_inventory(config, remove_missing=shards is None)
            collector = Collector(
                state,
                store,
                terminals=terminals,
                heartbeat_timeout_seconds=config.mqtt.heartbeat_timeout_seconds,
                will_hold_seconds=DEFAULT_WILL_HOLD_SECONDS,
                batch_size=config.storage.batch_size,
                flush_seconds=config.storage.flush_seconds,
                retention_seconds=config.storage.retention_days * 86400,
                clock=clock,
                expire_every_seconds=tick_seconds,
                all_ports_switches=[s.id for s in config.switches.values() if s.export_all_ports],
            )
            broker = None
            if config.mqtt.broker == "embedded":
                broker = await stack.enter_async_context(embedded_broker_of(config))
                log.info("embedded MQTT broker listening on %s:%d", broker.host, broker.port)
            settings = external or _mqtt_settings(config, broker)
            # Before the first message: what is stored already is a duplicate if it comes again.
            restored = collector.restore_positions(await store.sender_positions())
            log.info("MQTT: %d senders' stored positions loaded", restored)
            # Online intervals the last run left open are closed if the terminal is not online
            # now (availability is rebuilt from the events: docs/availability.md).
            left = collector.restore_left_online(
                await store.terminals_left_online(clock() - LEFT_ONLINE_LOOKBACK_SECONDS)
            )
            log.info("terminals: %d were online when the last run stopped", left)
            # A QoS 1 message is acknowledged only once its rows are committed, with a
            # persistent session: a crash loses nothing the broker was given
            # (docs/wire-protocol.md, "Collector session"). Not with the embedded broker: it
            # dies with this process (and what it had acknowledged to the terminals with it),
            # and amqtt gives up waiting for a PUBACK after 5 s.
            ack_after_store = config.mqtt.broker == "external"
            ingest: MqttIngest | ShardIngests
            if shards is None:
                ingest = MqttIngest(
                    settings,
                    collector.submit_terminal,
                    clock=clock,
                    ack_after_store=ack_after_store,
                    paused=collector.paused,
                )
            else:
                ingest = ShardIngests(
                    settings,
                    shards,
                    collector.submit_terminal,
                    clock=clock,
                    acknowledge=lambda shard_ingest, n: shard_ingest.committed(n),
                    ack_after_store=ack_after_store,
                    paused=collector.paused,
                )
            collector.on_committed = ingest.committed
            collector.backlog = ingest.in_backlog
            # Schools with `switches = "agent"` are polled by their own agent, which reports
            # over MQTT (edumon/sources/agent_reports.py); the collector polls the rest.
            agent_reports: AgentReports | None = None
            if config.agent_schools:
                agent_reports = AgentReports(
                    collector,
                    store,
                    district=config.district.code,
                    agent_schools=config.agent_schools,
                    switch_school={sid: sw.school for sid, sw in config.switches.items()},
                    clock=clock,
                    silence_seconds=SILENT_AGENT_POLLS * config.polling.interval_seconds,
                    ack_after_store=ack_after_store,
                )
                # Before the first report: what is recorded already is a duplicate if it comes
                # again (a crash between the commit and the acknowledgement).
                boots = await agent_reports.restore()
                log.info("school agents: %d agent boots' recorded reports loaded", boots)
            poller = await stack.enter_async_context(
                SnmpPoller(
                    config.centrally_polled(),
                    max_in_flight=config.polling.max_in_flight,
                    clock=clock,
                )
            )
            notifier = (
                Notifier.from_config(config.notify, tz=schedule.timezone)
                if config.notify.channels
                else None
            )
            runtime = Runtime(
                config,
                state,
                store,
                collector,
                poller,
                started_at=clock(),
                terminals=terminals,
                ingest=ingest,
                schedule=schedule,
                calendar=calendar_of(config),
                mqtt_broker=f"{broker.host}:{broker.port}"
                if broker is not None
                else f"{ingest.settings.host}:{ingest.settings.port}",
                embedded_broker=broker,
                notifier=notifier,
                agent_reports=agent_reports,
                cluster=cluster,
                outages=OutageTracker(
                    classroom_grace=config.alerting.classroom_offline_minutes * 60,
                    school_grace=config.alerting.school_cut_off_seconds,
                ),
            )
            listeners: tuple[Listener, ...] = ()
            if notifier is not None and config.notify.builtin:
                sink = notifier

                def notify(transitions: list[Transition]) -> None:
                    sink.submit(alerts_of(runtime, transitions))

                listeners = (notify,)
            watch = OutageWatch(
                runtime, clock=clock, every_seconds=tick_seconds, listeners=listeners
            )
            http_app = create_app(runtime, clock=clock)
            server = uvicorn.Server(
                uvicorn.Config(
                    http_app,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=5,
                )
            )
            # The inventory, the state and the configuration live as long as the daemon: a
            # city's are millions of objects, and every full collection would walk them all,
            # holding the event loop for most of a second. Frozen, the collector skips them.
            # What every poll replaces (a port's state lives one interval) still makes a
            # full collection cost ~0.1 s per 100 schools: with Python's default thresholds
            # one came every ~20 s; now one comes after 1,000 middle-generation collections
            # (minutes apart at any size). Both show in edumon_gc_pause_seconds.
            gc.collect()
            gc.freeze()
            gc.set_threshold(thresholds[0], thresholds[1], FULL_COLLECTION_EVERY)
            runtime.gc_pauses = pauses
            pauses.install()
            async with asyncio.TaskGroup() as tg:
                workers = [
                    tg.create_task(collector.run(), name="collector"),
                    tg.create_task(
                        poller.run(config.polling.interval_seconds, collector.submit),
                        name="snmp-poller",
                    ),
                    tg.create_task(ingest.run(), name="mqtt-ingest"),
                    tg.create_task(
                        collector.expire_forever(ingest.received_until, ingest.stats),
                        name="terminal-timeouts",
                    ),
                    tg.create_task(collector.prune_forever(), name="prune-samples"),
                    tg.create_task(watch.run(), name="outage-watch"),
                    tg.create_task(
                        keep_availability(Sources.of_runtime(runtime), clock=clock),
                        name="availability-rollup",
                    ),
                    # Once every switch has been polled, its ports' state (kept in place
                    # from then on) joins what the garbage collector no longer walks.
                    tg.create_task(
                        _freeze_after(config.polling.interval_seconds * 1.5),
                        name="gc-freeze",
                    ),
                ]
                refresh = config.metrics.refresh_seconds
                if refresh > 0:
                    # /metrics serves what this renders every second: a scrape only joins.
                    exposition = http_app.state.exposition
                    exposition.max_age = 2 * refresh
                    workers.append(tg.create_task(exposition.keep_fresh(refresh), name="metrics"))
                if notifier is not None:
                    workers.append(tg.create_task(notifier.run(), name="notify"))
                if agent_reports is not None:
                    workers.append(
                        tg.create_task(
                            agent_reports.watch_silence(tick_seconds), name="agent-silence"
                        )
                    )
                    for subscriber in agent_subscribers(
                        settings, agent_reports, config.district.code, shards
                    ):
                        workers.append(
                            tg.create_task(
                                subscriber.run(), name=f"agent-subscriber-{subscriber.client_id}"
                            )
                        )
                api = tg.create_task(server.serve(sockets=[sock]), name="api")
                if on_ready is not None:
                    on_ready(runtime, url_of(sock))
                await stop.wait()
                log.info("shutting down")
                server.should_exit = True
                for task in workers:
                    task.cancel()
                await api
            await ingest.aclose()
            await collector.drain()
    finally:
        # What the daemon held may be collected again (a test runs many daemons).
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        pauses.uninstall()
        with contextlib.suppress(Exception):
            sock.close()
        await store.aclose()
