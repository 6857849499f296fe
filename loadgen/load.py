"""Locust as a headless child process with a bounded run time.

A child process keeps gevent's monkey-patching out of the caller (the scenario runner,
pytest), and ``--run-time`` bounds it even if the caller dies without stopping it.
"""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger("loadgen.load")

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIO_LOCUSTFILE = Path(__file__).with_name("scenario_users.py")
BASELINE_LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Load:
    """Which Locust users, how many, and from which locustfile."""

    user_classes: tuple[str, ...]
    users: int
    spawn_rate: float
    locustfile: Path = SCENARIO_LOCUSTFILE


class LoadError(RuntimeError):
    """Locust could not run; the message names its exit code and its last output line."""


class LocustProcess:
    """One headless Locust run; ``stop()`` ends it early and is safe to call twice."""

    def __init__(self, load: Load, host: str, run_time_s: float, output: IO[bytes] | None):
        self.load = load
        self._stats_dir = tempfile.TemporaryDirectory(prefix="locust-stats-")
        # Locust writes its final request counts to <this path>_stats.csv. (Its --json-file
        # would do too, but then Locust prints no summary for the person watching.)
        self._stats_base = Path(self._stats_dir.name) / "locust"
        self._totals: LoadTotals | None = None
        self.argv = [
            sys.executable, "-m", "locust",
            "-f", str(load.locustfile),
            "--headless",
            "--host", host,
            "--users", str(load.users),
            "--spawn-rate", str(load.spawn_rate),
            "--run-time", f"{math.ceil(run_time_s)}s",
            "--stop-timeout", "2",
            "--only-summary",
            "--csv", str(self._stats_base),
            *load.user_classes,
        ]  # fmt: skip
        # A new session: a Ctrl-C in the terminal reaches only the scenario runner, which
        # then stops Locust itself, in order, before restoring the faults.
        self.process = subprocess.Popen(
            self.argv, cwd=REPO_ROOT, stdout=output, stderr=output, start_new_session=True
        )
        log.info(
            "load_started",
            users=load.users,
            user_classes=list(load.user_classes),
            run_time_s=math.ceil(run_time_s),
            pid=self.process.pid,
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.running:
            # Locust treats SIGTERM as "stop the run": users stop, the summary is printed.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._totals is None:
            self._totals = self._read_totals()
        log.info("load_stopped", exit_code=self.process.returncode,
                 requests=self._totals.requests, failures=self._totals.failures)

    def totals(self) -> LoadTotals:
        """Requests sent and failed over the whole run (after stop())."""
        return self._totals or LoadTotals(requests=0, failures=0)

    def _read_totals(self) -> LoadTotals:
        """The "Aggregated" row of Locust's stats CSV: every request of the run."""
        try:
            with open(f"{self._stats_base}_stats.csv", newline="") as stats:
                rows = [row for row in csv.DictReader(stats) if row.get("Name") == "Aggregated"]
        except OSError:
            rows = []
        finally:
            self._stats_dir.cleanup()
        if not rows:
            return LoadTotals(requests=0, failures=0)
        return LoadTotals(requests=int(rows[0]["Request Count"]),
                          failures=int(rows[0]["Failure Count"]))


@dataclass(frozen=True)
class LoadTotals:
    requests: int
    failures: int


def run_load(load: Load, host: str, run_time_s: float,
             output: IO[bytes] | None = None) -> LoadTotals:
    """Run ``load`` for ``run_time_s`` and return how many requests were sent and failed.

    Some failures are expected under injected faults, so Locust's exit code 1 (any request
    failed) is not an error. A run with no request answered is: the agent is down or the
    host is wrong, and a load run that only counts connection errors teaches nothing.
    """
    locust = LocustProcess(load, host, run_time_s, output)
    try:
        exit_code = locust.wait(run_time_s + STOP_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired:
        exit_code = -1
    finally:
        locust.stop()
    totals = locust.totals()
    if exit_code not in (0, 1):
        raise LoadError(f"locust exited {exit_code}; run `{' '.join(locust.argv)}` to see why")
    if totals.requests and totals.failures == totals.requests:
        raise LoadError(f"all {totals.requests} requests to {host} failed: is the agent up "
                        "and answering there? (Locust's summary above lists the errors)")
    return totals
