"""The `edumon` command: run, demo, check-config."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from edumon import __version__
from edumon.config import Config, load_config
from edumon.errors import EdumonError
from edumon.logs import LOG_FORMAT_ENV, LOG_FORMATS, LogFormat, configure_logging
from edumon.runtime import Runtime

log = logging.getLogger("edumon")

_log_format_option = click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar=LOG_FORMAT_ENV,
    show_envvar=True,
    help="Log lines on stderr: text, or one JSON object per line (for Loki, ELK).",
)


def _use_log_format(log_format: LogFormat) -> None:
    """Switch the log output to ``log_format``, at the level the group's --log-level chose."""
    configure_logging(click.get_current_context().find_root().params["log_level"], log_format)


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(wrapper())
    except EdumonError as exc:
        raise click.ClickException(str(exc)) from exc


def _print_urls(runtime: Runtime, url: str) -> None:
    config = runtime.config
    click.echo(
        f"edumon {__version__}: {config.district.name} — {len(config.schools)} schools, "
        f"{len(config.switches)} switches, target profile {config.targets.profile}"
    )
    click.echo(f"  API       {url}/api/v1/summary")
    click.echo(f"  schools   {url}/api/v1/schools")
    click.echo(f"  events    {url}/api/v1/events")
    click.echo(f"  metrics   {url}/metrics")
    click.echo(f"  OpenAPI   {url}/docs")
    if runtime.mqtt_broker is not None:
        kind = "embedded" if config.mqtt.broker == "embedded" else "external"
        click.echo(
            f"  MQTT      {runtime.mqtt_broker} ({kind} broker; terminal agents publish here)"
        )
    click.echo("Press Ctrl+C to stop.", err=False)


def _load_or_exit(file: Path) -> Config:
    """The validated configuration, or every problem on stderr and exit status 2."""
    try:
        return load_config(file)
    except EdumonError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edumon")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def main(log_level: str) -> None:
    """edumon: school network monitoring — links, targets, metrics and status API."""
    configure_logging(log_level)


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(file: Path) -> None:
    """Validate a configuration FILE without starting anything."""
    config = _load_or_exit(file)
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    rooms = sum(len(s.classrooms) for s in config.schools.values())
    t = config.targets
    click.echo(
        f"{file}: OK — district {config.district.code} ({config.district.name}), "
        f"{len(config.schools)} schools, {rooms} classrooms, {len(config.switches)} switches; "
        f"targets {t.profile}: uplink {t.uplink_mbps or '-'} Mbit/s, "
        f"classroom {t.classroom_mbps or '-'} Mbit/s; storage {config.storage.display_url}"
    )


@main.command("run")
@click.option(
    "-c",
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The TOML configuration.",
)
@_log_format_option
def run_cmd(config_file: Path, log_format: LogFormat) -> None:
    """Poll the configured switches and serve the API and /metrics."""
    from edumon import app

    _use_log_format(log_format)
    # The same validation as check-config, all of it before anything opens or binds.
    config = _load_or_exit(config_file)

    async def main_(stop: asyncio.Event) -> None:
        await app.run(config, stop=stop, on_ready=_print_urls)

    _run_until_signal(main_)


@main.command("demo")
@click.option(
    "--listen",
    default="127.0.0.1:9310",
    show_default=True,
    help="API address; a free port is taken if this one is busy.",
)
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds between polls of each simulated switch.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file for the demo (default: a new temporary directory).",
)
@_log_format_option
def demo_cmd(listen: str, interval: float, db: Path | None, log_format: LogFormat) -> None:
    """Simulate a district (real SNMP agents on loopback) and monitor it."""
    from edumon import app
    from edumon.demo.district import SimulatedDistrict

    _use_log_format(log_format)
    if db is None:
        db = Path(tempfile.mkdtemp(prefix="edumon-demo-")) / "edumon.db"
    sock = app.bind_listener(listen, fallback_to_free_port=True)
    # The embedded broker's port, free-or-fallback like the API's (a real broker may hold 1884).
    with app.bind_listener("127.0.0.1:1884", fallback_to_free_port=True) as probe:
        mqtt_listen = f"127.0.0.1:{probe.getsockname()[1]}"

    async def main_(stop: asyncio.Event) -> None:
        async with SimulatedDistrict(
            storage_url=f"sqlite:///{db}",
            listen=listen,
            interval_seconds=interval,
            mqtt_listen=mqtt_listen,
        ) as district:
            click.echo(
                f"Simulated district: {len(district.config.switches)} SNMP agents on "
                f"127.0.0.1, database {db}"
            )
            await app.run(district.config, stop=stop, sock=sock, on_ready=_print_urls)

    _run_until_signal(main_)
