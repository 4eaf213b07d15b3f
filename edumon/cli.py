"""The `edumon` command: run, demo, check-config, token, mqtt-account."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from edumon import __version__
from edumon.config import Config, load_config
from edumon.domain.schedule import CalendarSource
from edumon.errors import EdumonError
from edumon.logs import LOG_FORMAT_ENV, LOG_FORMATS, LogFormat, configure_logging
from edumon.runtime import Runtime
from edumon.workcalendar import calendar_of, check_directory

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
    # A fatal signal (SIGBUS, SIGSEGV) in C code leaves the Python stacks on stderr, not only
    # an exit status (docs/storage.md: SQLite and SIGBUS). Not where stderr is no file.
    if not faulthandler.is_enabled():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            faulthandler.enable()

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
    except KeyboardInterrupt:
        # Ctrl+C before the handlers above were installed (still starting): stop quietly.
        sys.exit(130)


def _print_urls(runtime: Runtime, url: str) -> None:
    config = runtime.config
    click.echo(
        f"edumon {__version__}: {config.district.name} — {len(config.schools)} schools, "
        f"{len(config.switches)} switches, target profile {config.targets.profile}"
    )
    click.echo(f"  状态页    {url}/  (status page)")
    click.echo(f"  API       {url}/api/v1/summary")
    click.echo(f"  schools   {url}/api/v1/schools")
    click.echo(f"  events    {url}/api/v1/events")
    click.echo(f"  outages   {url}/api/v1/outages")
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
    calendar_dir = config.schedule.calendar_path(file)
    if calendar_dir is not None:
        problems = check_directory(calendar_dir).problems
        if problems:
            for problem in problems:
                click.echo(problem, err=True)
            sys.exit(2)
    rooms = sum(len(s.classrooms) for s in config.schools.values())
    t = config.targets
    click.echo(
        f"{file}: OK — district {config.district.code} ({config.district.name}), "
        f"{len(config.schools)} schools, {rooms} classrooms, {len(config.switches)} switches; "
        f"targets {t.profile}: uplink {t.uplink_mbps or '-'} Mbit/s, "
        f"classroom {t.classroom_mbps or '-'} Mbit/s; storage {config.storage.display_url}"
    )
    click.echo(_calendar_line(config))


def _calendar_line(config: Config) -> str:
    """Which years have a holiday arrangement, and from where (a missing one is logged)."""
    calendar = calendar_of(config)
    today = calendar.today()
    coverage = calendar.coverage(today)
    parts = []
    for year in sorted(y for y in coverage.years if y >= today.year - 1):
        source = coverage.years[year]
        shown = coverage.files[year] if source is CalendarSource.CONFIGURED else source.value
        parts.append(f"{year} {shown}")
    until = coverage.covered_until
    return (
        f"calendar: {', '.join(parts) or 'no arrangement'}; "
        f"调休 known until {until.isoformat() if until is not None else '-'}"
        + (f"; {coverage.missing_year} missing: see the warning logged" if coverage.warning else "")
    )


@main.group("token")
def token_group() -> None:
    """API tokens for [[api.tokens]] and [metrics] (docs/access.md)."""


@token_group.command("new")
def token_new() -> None:
    """Print a new random token and the token_hash to configure for it.

    Give the token to its holder (a school administrator, Prometheus); write only the hash
    in the configuration.
    """
    from edumon.tokens import hash_token, new_token

    token = new_token()
    click.echo(f"token      = {token}")
    click.echo(f'token_hash = "{hash_token(token)}"')


@token_group.command("hash")
def token_hash() -> None:
    """Read a token from standard input and print its token_hash.

    Example: edumon token hash < school-token.txt
    """
    from edumon.tokens import hash_token, token_problem

    token = sys.stdin.readline().strip()
    problem = token_problem(token)
    if problem is not None:
        click.echo(problem, err=True)
        sys.exit(2)
    click.echo(f'token_hash = "{hash_token(token)}"')


@main.group("mqtt-account")
def mqtt_account_group() -> None:
    """Accounts of the embedded MQTT broker, [[mqtt.accounts]] (docs/mqtt-security.md)."""


@mqtt_account_group.command("new")
@click.argument("name")
@click.option(
    "--collector",
    is_flag=True,
    help="an account that reads the whole district (another collector, a tool), not a school",
)
def mqtt_account_new(name: str, collector: bool) -> None:
    """Print the [[mqtt.accounts]] entry for a new account, and its password (shown once).

    NAME is the school code (the account publishes only that school's topics), or with
    --collector the account's name. Write the entry in edumon.toml; give the password to the
    school's terminal agents (their mqtt.password_file) and keep no other copy.
    """
    import re

    from edumon.tokens import hash_token, new_token

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", name):
        click.echo(f"{name!r}: 不是有效的代码 / not a valid code (letters, digits, _.:-)", err=True)
        sys.exit(2)
    password = new_token()
    click.echo("# 写入 edumon.toml / add to edumon.toml:")
    click.echo("[[mqtt.accounts]]")
    click.echo(f'name = "{name}"')
    click.echo(f'role = "{"collector" if collector else "school"}"')
    click.echo(f'password_hash = "{hash_token(password)}"')
    click.echo("")
    click.echo("# 密码只显示这一次 / the password, shown only this once:")
    click.echo(f"password = {password}")


@mqtt_account_group.command("hash")
def mqtt_account_hash() -> None:
    """Read a password from standard input and print its password_hash.

    Example: edumon mqtt-account hash < cg01-password.txt
    """
    from edumon.tokens import hash_token, token_problem

    password = sys.stdin.readline().strip()
    problem = token_problem(password)
    if problem is not None:
        click.echo(problem, err=True)
        sys.exit(2)
    click.echo(f'password_hash = "{hash_token(password)}"')


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


@main.command("school-agent")
@click.option(
    "-c",
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The agent's TOML configuration (see `edumon agent-config`).",
)
@_log_format_option
def school_agent_cmd(config_file: Path, log_format: LogFormat) -> None:
    """Poll one school's switches and report them to the district over MQTT (with a disk spool)."""
    from edumon.school_agent.agent import SchoolAgent
    from edumon.school_agent.config import load_agent_config

    _use_log_format(log_format)
    try:
        config = load_agent_config(config_file)
    except EdumonError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)

    async def main_(stop: asyncio.Event) -> None:
        await SchoolAgent(config).run(stop)

    _run_until_signal(main_)


@main.command("agent-config")
@click.option(
    "-c",
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The district's TOML configuration.",
)
@click.option("--school", required=True, help="The school's code.")
@click.option("--broker", default=None, help="HOST:PORT the school reaches the broker at.")
@click.option("--agent-id", default=None, help="The agent's id (default: CODE-agent).")
@click.option(
    "--with-secrets",
    is_flag=True,
    help="Write the SNMP secrets themselves instead of environment variable names.",
)
def agent_config_cmd(
    config_file: Path, school: str, broker: str | None, agent_id: str | None, with_secrets: bool
) -> None:
    """Print one school's agent configuration, made from the district's."""
    from edumon.school_agent.generate import agent_config_text

    config = _load_or_exit(config_file)
    try:
        text = agent_config_text(
            config, school, broker=broker, agent_id=agent_id, with_secrets=with_secrets
        )
    except EdumonError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(text, nl=False)


@main.command("demo")
@click.option(
    "--listen",
    default="127.0.0.1:9310",
    show_default=True,
    help="API address; a free port is taken if this one is busy.",
)
@click.option(
    "--mqtt-listen",
    default="127.0.0.1:1884",
    show_default=True,
    help="The embedded MQTT broker's address (terminal agents connect there); a free port is "
    "taken if this one is busy.",
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
    help="SQLite file for the demo (default: a new temporary one, removed on exit).",
)
@_log_format_option
@click.option(
    "--notify-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A TOML file with a [notify] section (group bots, webhooks) to add to the demo's "
    "configuration, e.g. to see the fibre cut's notification and its resolution.",
)
@click.option(
    "--cut-after",
    default=40.0,
    show_default=True,
    type=float,
    help="Seconds until the simulated fibre cut of 实验小学 (syxx); a negative value: no cut.",
)
@click.option(
    "--cut-for",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds the simulated fibre cut lasts.",
)
def demo_cmd(
    listen: str,
    mqtt_listen: str,
    interval: float,
    db: Path | None,
    notify_config: Path | None,
    cut_after: float,
    cut_for: float,
    log_format: LogFormat,
) -> None:
    """Simulate a district (real SNMP agents on loopback) and monitor it."""
    from edumon import app
    from edumon.demo.district import SimulatedDistrict

    _use_log_format(log_format)
    with contextlib.ExitStack() as cleanup:
        where = str(db)
        if db is None:
            # A fresh district each run; the directory goes on exit, Ctrl+C included.
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="edumon-demo-"))
            db = Path(tmp) / "edumon.db"
            where = f"{db} (temporary, removed on exit)"
        sock = cleanup.enter_context(app.bind_listener(listen, fallback_to_free_port=True))
        # The embedded broker's port, free-or-fallback like the API's (a real broker, or
        # another demo, may hold 1884).
        with app.bind_listener(mqtt_listen, fallback_to_free_port=True) as probe:
            host, port = probe.getsockname()[:2]
            broker_listen = f"{host}:{port}"

        extra = ""
        if notify_config is not None:
            try:
                extra = "\n" + notify_config.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise click.ClickException(f"{notify_config}: cannot read it: {exc}") from exc

        async def main_(stop: asyncio.Event) -> None:
            async with SimulatedDistrict(
                storage_url=f"sqlite:///{db}",
                listen=listen,
                interval_seconds=interval,
                mqtt_listen=broker_listen,
                cut_after_seconds=cut_after if cut_after >= 0 else None,
                cut_seconds=cut_for,
                extra_config=extra,
            ) as district:
                click.echo(
                    f"Simulated district: {len(district.config.switches)} SNMP agents on "
                    f"127.0.0.1, database {where}"
                )
                demo_config_path(db).write_text(district.report_config_text, encoding="utf-8")
                click.echo("MQTT 账号 / accounts (user = school code; demo only):")
                for school, password in district.mqtt_logins().items():
                    click.echo(f"  {school:<8} EDUMON_MQTT_PASSWORD={password}")
                await app.run(district.config, stop=stop, sock=sock, on_ready=_print_urls)

        _run_until_signal(main_)


def demo_config_path(db: Path) -> Path:
    """Where ``edumon demo --db FILE`` leaves its configuration for ``edumon report``."""
    return db.with_name(db.name + ".toml")


def _report_config(config_file: Path | None, db: str | None) -> Config:
    if config_file is not None:
        return _load_or_exit(config_file)
    if db is not None and "://" not in db and demo_config_path(Path(db)).is_file():
        return _load_or_exit(demo_config_path(Path(db)))
    raise click.UsageError(
        "需要 --config FILE（或 edumon demo 的 --db FILE）/ "
        "give --config FILE (or the --db FILE of an `edumon demo`)"
    )


@main.command("report")
@click.option("--month", required=True, help="The local month, YYYY-MM.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The TOML configuration (default: the one `edumon demo --db FILE` left beside FILE).",
)
@click.option(
    "--db",
    default=None,
    help="The database: a SQLite file or a URL (default: the configuration's storage.url).",
)
@click.option("--school", multiple=True, help="Only this school (code); repeat for several.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv", "html"]),
    default="text",
    show_default=True,
    help="text for the terminal, csv (UTF-8 with a BOM, for Excel), or a printable html page.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
)
def report_cmd(
    month: str,
    config_file: Path | None,
    db: str | None,
    school: tuple[str, ...],
    fmt: str,
    output: Path | None,
) -> None:
    """The monthly report (the same numbers as GET /api/v1/reports/monthly)."""
    import re
    import time
    from datetime import datetime

    from edumon.reports import render
    from edumon.reports.availability import ReportError, Sources
    from edumon.reports.monthly import monthly_report
    from edumon.store.repository import open_store

    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise click.BadParameter(
            f"月份格式应为 YYYY-MM（2000 年起）/ month must be YYYY-MM from 2000 on; got {month!r}",
            param_hint="--month",
        )
    config = _report_config(config_file, db)
    unknown = sorted(set(school) - set(config.schools))
    if unknown:
        raise click.BadParameter(
            f"没有这些学校 / no such school: {', '.join(unknown)}", param_hint="--school"
        )
    url: Any = config.storage.url
    if db is not None:
        url = db if "://" in db else f"sqlite:///{Path(db).resolve()}"

    async def make() -> bytes:
        store = await open_store(url)
        try:
            src = Sources.of_config(config, store)
            found = await monthly_report(
                src, int(match[1]), int(match[2]), time.time(), schools=set(school) or None
            )
            body = render.monthly_report(found, lambda t: datetime.fromtimestamp(t, src.zone))
        finally:
            await store.aclose()
        if fmt == "csv":
            return render.report_csv(body)
        if fmt == "html":
            return render.report_html(body).encode("utf-8")
        return render.report_text(body).encode("utf-8")

    try:
        data = asyncio.run(make())
    except (ReportError, EdumonError) as exc:
        raise click.ClickException(str(exc)) from exc
    if output is not None:
        output.write_bytes(data)
        click.echo(f"{output}: {len(data)} bytes", err=True)
    else:
        click.echo(data.decode("utf-8-sig"), nl=False)
