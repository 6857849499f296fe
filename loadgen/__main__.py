"""``python -m loadgen``: list the scenarios, run one by name, or run baseline load.

python -m loadgen list
python -m loadgen check HighErrorRate
python -m loadgen run HighErrorRate --host http://127.0.0.1:8000 [--duration 180]
python -m loadgen baseline --host http://127.0.0.1:8000 --run-time 300 --users 5
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import httpx
import structlog

from loadgen.agent_admin import AgentAdmin, AgentUnreachable
from loadgen.components import ComponentError, ComposeComponents
from loadgen.load import BASELINE_LOCUSTFILE, REPO_ROOT, Load, LoadError, run_load
from loadgen.scenarios import (
    DEFAULT_DURATION_S,
    SCENARIOS,
    ScenarioError,
    run_scenario,
    scenario_by_name,
)

log = structlog.get_logger("loadgen")

EXIT_USAGE = 2


class Interrupted(BaseException):
    """A stop asked for by a signal; a BaseException, like KeyboardInterrupt, so that no
    `except Exception` on the way swallows it. Carries the exit code a shell expects."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into Interrupted, so every undo step runs.

    Later signals are logged and ignored: a second Ctrl-C must not cut the restore short.
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if received:
            log.warning(
                "restore_in_progress",
                signal=signal.Signals(signum).name,
                hint="faults and components are being put back; this ends shortly",
            )
            return
        received.append(signum)
        log.warning("scenario_interrupted", signal=signal.Signals(signum).name)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    # httpx logs every request at INFO; the scenario events already say what was changed.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def list_scenarios() -> int:
    width = max(len(scenario.name) for scenario in SCENARIOS) + 2
    lines = [f"{'SCENARIO':<{width}}{'TRIPS':<{width}}WHAT IT DOES"]
    lines += [
        f"{scenario.name:<{width}}{scenario.alert:<{width}}{scenario.description}"
        for scenario in SCENARIOS
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def check_scenario_name(args: argparse.Namespace) -> int:
    try:
        scenario_by_name(args.scenario)
    except ScenarioError as error:
        sys.stderr.write(f"loadgen: {error}\n")
        return EXIT_USAGE
    return 0


def run_named_scenario(args: argparse.Namespace) -> int:
    try:
        scenario = scenario_by_name(args.scenario)
    except ScenarioError as error:
        sys.stderr.write(f"loadgen: {error}\n")
        return EXIT_USAGE
    components = ComposeComponents(compose_file=args.compose_file)
    with interrupt_on_signals():
        run_scenario(scenario, args.host, duration_s=args.duration, components=components)
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    # Checked first, so a wrong host fails now rather than after the whole run time.
    admin = AgentAdmin(args.host)
    try:
        admin.check_alive()
    finally:
        admin.close()
    load = Load(
        ("AgentUser",), users=args.users, spawn_rate=args.users, locustfile=BASELINE_LOCUSTFILE
    )
    with interrupt_on_signals():
        run_load(load, args.host, args.run_time)
    return 0


def positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive number of seconds")
    return value


def agent_url(raw: str) -> str:
    """An http(s) URL with a host, e.g. http://127.0.0.1:8000."""
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as error:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a URL: {error}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8000")
    return raw


def positive_users(raw: str) -> int:
    if not (raw.strip().isascii() and raw.strip().isdigit()) or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of users, 1 or more")
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadgen", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every scenario with the alert it trips")

    check = commands.add_parser("check", help="exit 0 when a scenario of that name exists")
    check.add_argument("scenario", help="an alert name, e.g. HighErrorRate")

    run = commands.add_parser("run", help="run one scenario by its alert name")
    run.add_argument("scenario", help="an alert name, e.g. HighErrorRate")
    run.add_argument("--host", required=True, type=agent_url,
                     help="the agent's URL, e.g. http://127.0.0.1:8000")
    run.add_argument(
        "--duration",
        type=positive_seconds,
        default=DEFAULT_DURATION_S,
        help=f"seconds to hold the fault (default {DEFAULT_DURATION_S:.0f})",
    )
    run.add_argument(
        "--compose-file",
        type=Path,
        default=REPO_ROOT / "compose.yaml",
        help="compose file of the lab, for PodDown and RedisDown",
    )

    baseline = commands.add_parser("baseline", help="ordinary traffic, no fault")
    baseline.add_argument("--host", required=True, type=agent_url, help="the agent's URL")
    baseline.add_argument(
        "--run-time", type=positive_seconds, default=300.0, help="seconds of load (default 300)"
    )
    baseline.add_argument("--users", type=positive_users, default=5,
                          help="Locust users (default 5)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "list": lambda _: list_scenarios(),
        "check": check_scenario_name,
        "run": run_named_scenario,
        "baseline": run_baseline,
    }
    try:
        return handlers[args.command](args)
    except Interrupted as interruption:
        return interruption.exit_code
    except (AgentUnreachable, ComponentError, LoadError, ScenarioError) as error:
        log.error("loadgen_failed", error=str(error))
        return 1


if __name__ == "__main__":
    configure_logging()
    sys.exit(main())
