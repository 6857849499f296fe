"""How long each alert takes to reach the sink, and to reach it resolved, with the lab clock.

Starts the real Redis, redis_exporter, agent, alert sink, Alertmanager and Prometheus on
loopback (rules rendered by lab.clock, Alertmanager reading config/alertmanager/), then
runs every scenario on its own: from its start until its first firing notification is in
the sink, then stops it and waits for the resolved notification. Prints one row per
scenario, in seconds from the scenario's start. Target: every alert fires within 180 s.

    .venv/bin/python bench/time_to_alert.py [--factor 60] [--only HighErrorRate,PodDown]

--batched runs the scenarios in the integration test's batches instead (quicker; alerts
that share the agent's CPU may take a few seconds longer).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.clock import factor_from_env  # noqa: E402
from lab.loopback import LoopbackLab  # noqa: E402
from loadgen.scenarios import SCENARIOS, scenario_by_name  # noqa: E402
from loadgen.trials import NON_INTERFERING_BATCHES, Trial, run_batches, start_alerting_lab  # noqa: E402

TARGET_FIRE_S = 180.0


# LowAccuracy first, while the agent has no accuracy score yet: ordinary traffic rates some
# answers, and the score of a short rating window can already sit under 0.90 by chance.
SEQUENTIAL_ORDER = (
    "LowAccuracy",
    *(scenario.name for scenario in SCENARIOS if scenario.name != "LowAccuracy"),
)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(trials: list[Trial], factor: float, wall_s: float) -> str:
    header = ("scenario", "receivers", "fired", "fault off", "resolved", "re-fired", "problem")
    rows = [
        (
            trial.alert,
            ", ".join(sorted(trial.firing_receivers)) or "-",
            seconds(trial.fired_after_s),
            seconds(trial.restored_after_s),
            seconds(trial.resolved_after_s),
            str(trial.refired),
            trial.error or "",
        )
        for trial in trials
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [
        f"Time to alert, seconds from each scenario's start (lab clock factor {factor:g}).",
        "  ".join(text.ljust(width) for text, width in zip(header, widths, strict=True)),
    ]
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    fired = [trial.fired_after_s for trial in trials if trial.fired_after_s is not None]
    slowest = max(fired, default=float("nan"))
    verdict = "met" if len(fired) == len(trials) and slowest < TARGET_FIRE_S else "missed"
    lines.append(
        f"Slowest to fire: {slowest:.0f} s; target under {TARGET_FIRE_S:.0f} s {verdict}. "
        f"Wall time {wall_s:.0f} s."
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--factor",
        type=float,
        default=None,
        help="lab clock factor (default: LAB_CLOCK_FACTOR, else lab.clock's)",
    )
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument(
        "--batched",
        action="store_true",
        help="run the integration test's batches instead of one at a time",
    )
    parser.add_argument("--verbose", action="store_true", help="log every scenario step")
    args = parser.parse_args()

    level = logging.INFO if args.verbose else logging.WARNING
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    factor = args.factor if args.factor is not None else factor_from_env(dict(os.environ))
    names = [name for name in args.only.split(",") if name] or list(SEQUENTIAL_ORDER)
    trials = {name: Trial(scenario_by_name(name)) for name in names}
    batches = (
        [[trials[name] for name in batch if name in trials] for batch in NON_INTERFERING_BATCHES]
        if args.batched
        else [[trial] for trial in trials.values()]
    )

    started = time.monotonic()
    with LoopbackLab(Path(tempfile.mkdtemp(prefix="time-to-alert-"))) as loopback:
        lab = start_alerting_lab(loopback, clock_factor=factor)
        run_batches(lab, [batch for batch in batches if batch])
    sys.stdout.write(table(list(trials.values()), factor, time.monotonic() - started))
    return 0 if all(trial.error is None for trial in trials.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
