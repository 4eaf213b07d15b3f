"""Command line: ``edumon-terminal-agent -c agent.toml`` or ``python -m edumon_terminal_agent``."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from edumon_terminal_agent.agent import TerminalAgent
from edumon_terminal_agent.config import ConfigError, load_config
from edumon_terminal_agent.sysinfo import SystemProbe, local_address_towards

logger = logging.getLogger("edumon_terminal_agent")


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s; going offline", signal.Signals(signum).name)
        stop.set()

    # SIGTERM: systemd. SIGINT: Ctrl+C, and how NSSM and WinSW stop a console program.
    # SIGBREAK: Ctrl+Break on Windows.
    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent until SIGTERM/Ctrl+C; returns the process exit status."""
    try:
        config, args = load_config(argv)
    except ConfigError as exc:
        sys.stderr.write(f"edumon-terminal-agent: {exc}\n")
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()
    probe = SystemProbe(nic=config.nic, disk_path=config.disk_path)
    agent = TerminalAgent(config, probe, stop)
    if args.print_heartbeat:
        local_ip = local_address_towards(config.mqtt.host, config.mqtt.effective_port)
        sys.stdout.write(agent.heartbeat_payload(0, local_ip).decode() + "\n")
        return 0
    _install_stop_handlers(stop)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
