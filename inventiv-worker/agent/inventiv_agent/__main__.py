"""``python -m inventiv_agent --config PATH``: run the agent until SIGTERM or
SIGINT, then drain (status draining, engines stopped) and exit 0.

``--check-config`` validates the configuration and prints it (token hidden)
as JSON; bootstrap.sh uses it before starting the service."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from . import AGENT_VERSION
from .config import ENV_CONFIG_PATH, ConfigError, load

EXIT_CONFIG = 2
EXIT_START_FAILED = 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inventiv_agent", description=__doc__)
    parser.add_argument("--config", help=f"JSON config file (default: ${ENV_CONFIG_PATH})")
    parser.add_argument("--check-config", action="store_true", help="validate, print, exit")
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as e:
        sys.stderr.write(f"inventiv-agent: {e}\n")
        return EXIT_CONFIG
    if args.check_config:
        sys.stdout.write(json.dumps(cfg.redacted(), sort_keys=True) + "\n")
        return 0

    from .app import Agent  # noqa: PLC0415 - --check-config needs none of it

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent = Agent(cfg)
    try:
        agent.start()
    except OSError as e:
        agent.events.emit("agent_start_failed", error=str(e))
        agent.engines.stop()
        return EXIT_START_FAILED
    while not stop.wait(1.0):
        pass
    agent.drain()
    return 0


if __name__ == "__main__":
    sys.exit(main())
