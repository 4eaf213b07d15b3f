"""Wiring: store, state, collector, SNMP poller and the HTTP server in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

import uvicorn

from edumon.collector import Collector
from edumon.config import Config, inventory_of
from edumon.domain.state import NetworkState
from edumon.errors import ConfigError
from edumon.exporters.api import create_app
from edumon.runtime import Runtime
from edumon.sources.snmp.poller import SnmpPoller
from edumon.store.repository import open_store

log = logging.getLogger(__name__)


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
    sock = socket.socket(family, socket.SOCK_STREAM)
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


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def run(
    config: Config,
    *,
    stop: asyncio.Event,
    sock: socket.socket | None = None,
    on_ready: Callable[[Runtime, str], None] | None = None,
) -> None:
    """Run the daemon until ``stop`` is set; then drain the queue and close cleanly.

    Args:
        config: the validated configuration.
        stop: set it to shut down (the CLI sets it on SIGINT/SIGTERM).
        sock: an already bound listening socket; bound from config.api.listen if None.
        on_ready: called once the API is about to serve, with the runtime and the base URL.
    """
    sock = sock if sock is not None else bind_listener(config.api.listen)
    store = await open_store(config.storage.url)
    try:
        await store.sync_inventory(config)
        state = NetworkState(inventory_of(config), list(config.switches))
        collector = Collector(
            state,
            store,
            batch_size=config.storage.batch_size,
            flush_seconds=config.storage.flush_seconds,
            retention_seconds=config.storage.retention_days * 86400,
        )
        async with SnmpPoller(
            config.switches.values(), max_in_flight=config.polling.max_in_flight
        ) as poller:
            runtime = Runtime(config, state, store, collector, poller, started_at=time.time())
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(runtime),
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=5,
                )
            )
            async with asyncio.TaskGroup() as tg:
                workers = [
                    tg.create_task(collector.run(), name="collector"),
                    tg.create_task(
                        poller.run(config.polling.interval_seconds, collector.submit),
                        name="snmp-poller",
                    ),
                    tg.create_task(collector.prune_forever(), name="prune-samples"),
                ]
                api = tg.create_task(server.serve(sockets=[sock]), name="api")
                if on_ready is not None:
                    on_ready(runtime, url_of(sock))
                await stop.wait()
                log.info("shutting down")
                server.should_exit = True
                for task in workers:
                    task.cancel()
                await api
            await collector.drain()
    finally:
        with contextlib.suppress(Exception):
            sock.close()
        await store.aclose()
