"""Scenarios run against the loopback lab and timed by what reaches the alert sink.

A trial runs one scenario until its alert's firing notification is in the sink (under the
receivers expected, when given), stops it, and waits for the resolved notification. Trials
in one batch run at the same time; batches run one after the other, each once Prometheus
has no alert left. The alerting integration tests and bench/time_to_alert.py share this.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from lab.loopback import ALERTMANAGER_CONFIG, REPO_ROOT, Component, LoopbackLab
from loadgen.components import AGENT_SERVICE, REDIS_SERVICE, ComponentControl, LocalComponents
from loadgen.scenarios import Scenario, run_scenario

log = structlog.get_logger("loadgen.trials")

MEBIBYTE = 1024 * 1024
# The compose lab gives the agent 256 MiB (mem_limit and AGENT_MEMORY_LIMIT_BYTES); the
# loopback agent gets the same limit, so HighMemoryUsage needs the same ballast.
AGENT_MEMORY_LIMIT_BYTES = 256 * MEBIBYTE
POLL_INTERVAL_S = 1.0
FIRE_TIMEOUT_S = 240.0
RESOLVE_TIMEOUT_S = 240.0
QUIET_TIMEOUT_S = 180.0
# Scenarios that can run side by side on one agent without disturbing each other's alerts:
# faults on separate knobs together; HighLatency with HighMemoryUsage (memory does not slow
# turns down); RedisDown alone (its chats must answer while it fires, and it mutes
# LowCacheHitRate); ToolFailureSpike alone (it needs the agent's full turn rate); PodDown
# last, as it takes the agent away.
NON_INTERFERING_BATCHES = (
    ("HighErrorRate", "LowAccuracy", "HighLLMCosts", "LowCacheHitRate"),
    ("HighLatency", "HighMemoryUsage"),
    ("RedisDown",),
    ("ToolFailureSpike",),
    ("PodDown",),
)


def render_lab_rules(out: Path, clock_factor: float) -> Path:
    """The lab-clock copy of config/prometheus/rules, rendered by lab.clock itself."""
    subprocess.run(
        [sys.executable, "-m", "lab.clock", "render", "--out", str(out),
         "--factor", str(clock_factor)],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


@dataclass
class AlertingLab:
    """Every component an alert passes through, from the agent to the sink."""

    workdir: Path
    redis: Component
    redis_exporter: Component
    agent: Component
    sink: Component
    alertmanager: Component
    prometheus: Component

    def components(self) -> LocalComponents:
        return LocalComponents({
            AGENT_SERVICE: ComponentControl(stop=self.agent.stop, start=self.agent.start),
            REDIS_SERVICE: ComponentControl(stop=self.redis.stop, start=self.redis.start),
        })  # fmt: skip

    def notifications(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.sink.url}/api/notifications", timeout=5)
        response.raise_for_status()
        return response.json()["notifications"]

    def alerts_in_prometheus(self) -> list[dict[str, Any]]:
        """Pending and firing alerts, as the ALERTS series of Prometheus shows them."""
        response = httpx.get(
            f"{self.prometheus.url}/api/v1/query", params={"query": "ALERTS"}, timeout=5
        )
        response.raise_for_status()
        return [item["metric"] for item in response.json()["data"]["result"]]


def start_alerting_lab(
    loopback: LoopbackLab,
    clock_factor: float,
    agent_env: dict[str, str] | None = None,
    alertmanager_config: Path = ALERTMANAGER_CONFIG,
) -> AlertingLab:
    """Redis, redis_exporter, the agent, the sink, Alertmanager and Prometheus on loopback."""
    rules = render_lab_rules(loopback.workdir / "rules", clock_factor)
    redis = loopback.start_redis()
    exporter = loopback.start_redis_exporter(redis)
    agent = loopback.start_agent(
        redis, {"AGENT_MEMORY_LIMIT_BYTES": str(AGENT_MEMORY_LIMIT_BYTES), **(agent_env or {})}
    )
    sink = loopback.start_sink()
    alertmanager = loopback.start_alertmanager(sink, alertmanager_config)
    prometheus = loopback.start_prometheus(
        {
            "demo-agent:8000": agent,
            "redis-exporter:9121": exporter,
            "alert-sink:8090": sink,
            "alertmanager:9093": alertmanager,
        },
        rules_dir=rules,
        alertmanager=alertmanager,
    )
    return AlertingLab(loopback.workdir, redis, exporter, agent, sink, alertmanager, prometheus)


@dataclass
class Trial:
    """One scenario's run and what the sink showed of its alert; times are seconds from
    the scenario's start."""

    scenario: Scenario
    # Receivers whose firing notification counts as "fired"; None: the first one to arrive.
    expected_receivers: frozenset[str] | None = None
    # Called once when the alert has fired, before the scenario is stopped.
    while_firing: Callable[[AlertingLab], Any] | None = None
    started_wall: datetime | None = None
    fired_after_s: float | None = None
    restored_after_s: float | None = None
    resolved_after_s: float | None = None
    firing_receivers: set[str] = field(default_factory=set)
    resolved_receivers: set[str] = field(default_factory=set)
    # Times the alert fired again after a resolved notification (a flap).
    refired: int = 0
    while_firing_result: Any = None
    error: str | None = None

    @property
    def alert(self) -> str:
        return self.scenario.alert


def _received_seconds(notification: dict[str, Any], since: datetime) -> float:
    return (datetime.fromisoformat(notification["received_at"]) - since).total_seconds()


def _notifications_of(lab: AlertingLab, alert: str, since: datetime) -> list[dict[str, Any]]:
    """Notifications carrying ``alert`` received after ``since``, oldest first."""
    found = [
        notification
        for notification in lab.notifications()
        if any(item["labels"].get("alertname") == alert for item in notification["alerts"])
        and datetime.fromisoformat(notification["received_at"]) >= since
    ]
    return list(reversed(found))


def _first_by_receiver(notifications: list[dict[str, Any]], status: str) -> dict[str, Any]:
    first: dict[str, dict[str, Any]] = {}
    for notification in notifications:
        if notification["status"] == status:
            first.setdefault(notification["receiver"], notification)
    return first


def _update_firing(lab: AlertingLab, trial: Trial) -> bool:
    assert trial.started_wall is not None
    firing = _first_by_receiver(_notifications_of(lab, trial.alert, trial.started_wall), "firing")
    trial.firing_receivers = set(firing)
    wanted = trial.expected_receivers or set(firing)
    if not firing or not wanted <= set(firing):
        return False
    trial.fired_after_s = max(
        _received_seconds(firing[receiver], trial.started_wall) for receiver in wanted
    )
    return True


def _update_resolved(lab: AlertingLab, trial: Trial) -> bool:
    """True once every receiver's latest notification is "resolved" and Prometheus has no
    firing instance left: an alert whose resolution is already followed by a new firing is
    not done. (A pending instance may remain: it has not fired.)"""
    assert trial.started_wall is not None
    notifications = _notifications_of(lab, trial.alert, trial.started_wall)
    trial.firing_receivers = set(_first_by_receiver(notifications, "firing"))
    trial.resolved_receivers = set(_first_by_receiver(notifications, "resolved"))
    latest = {notification["receiver"]: notification for notification in notifications}
    trial.refired = _refired(notifications)
    if not trial.firing_receivers or any(
        latest[receiver]["status"] != "resolved" for receiver in trial.firing_receivers
    ):
        return False
    if any(
        alert.get("alertname") == trial.alert and alert.get("alertstate") == "firing"
        for alert in lab.alerts_in_prometheus()
    ):
        return False
    trial.resolved_after_s = max(
        _received_seconds(latest[receiver], trial.started_wall)
        for receiver in trial.firing_receivers
    )
    return True


def _refired(notifications: list[dict[str, Any]]) -> int:
    """How often the alert fired again after a resolved notification, on one receiver.

    Resolved notifications before the first firing one belong to an earlier episode (the
    alert tripped as a side effect of the previous scenario) and are skipped.
    """
    if not notifications:
        return 0
    receiver = min(notification["receiver"] for notification in notifications)
    statuses = [n["status"] for n in notifications if n["receiver"] == receiver]
    if "firing" not in statuses:
        return 0
    statuses = statuses[statuses.index("firing") :]
    return sum(
        1
        for before, after in zip(statuses, statuses[1:], strict=False)
        if (before, after) == ("resolved", "firing")
    )


def _poll(check: Callable[[], bool], timeout_s: float, *, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        if check():
            return True
        time.sleep(POLL_INTERVAL_S)
    return check()


def run_trial(
    lab: AlertingLab,
    trial: Trial,
    *,
    fire_timeout_s: float = FIRE_TIMEOUT_S,
    resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
    abort: threading.Event | None = None,
) -> Trial:
    """Run ``trial`` to the end; failures are kept in ``trial.error``, never raised.

    Setting ``abort`` cuts the waits short; the scenario is still stopped and restored.
    """
    abort = abort or threading.Event()
    stop = threading.Event()
    failures: list[str] = []
    runs: list[Any] = []

    def scenario_thread() -> None:
        try:
            with (lab.workdir / f"locust-{trial.alert}.log").open("ab") as output:
                runs.append(run_scenario(
                    trial.scenario, lab.agent.url, duration_s=fire_timeout_s,
                    components=lab.components(), stop=stop, locust_output=output,
                ))  # fmt: skip
        except Exception as error:  # kept for the report; the thread must not die silently
            failures.append(f"{type(error).__name__}: {error}")

    started = time.monotonic()
    trial.started_wall = datetime.now(UTC)
    runner = threading.Thread(target=scenario_thread, name=f"scenario-{trial.alert}")
    runner.start()
    fired = False
    try:
        fired = _poll(
            lambda: _update_firing(lab, trial),
            fire_timeout_s,
            alive=lambda: runner.is_alive() and not abort.is_set(),
        )
        if fired and trial.while_firing is not None:
            trial.while_firing_result = trial.while_firing(lab)
    except Exception as error:  # a failed check must still stop and restore the scenario
        failures.append(f"while the alert fired: {type(error).__name__}: {error}")
    finally:
        stop.set()
        runner.join()
    if runs:
        trial.restored_after_s = runs[0].restored_at - started
    if fired:
        resolved = _poll(
            lambda: _update_resolved(lab, trial),
            resolve_timeout_s,
            alive=lambda: not abort.is_set(),
        )
        if not resolved:
            failures.append(
                f"not resolved for good within {resolve_timeout_s:.0f} s of the fault's end; "
                f"receivers that got a resolved notification: {sorted(trial.resolved_receivers)}"
            )
    elif not failures:
        failures.append(
            f"not fired under {sorted(trial.expected_receivers or ['any receiver'])} within "
            f"{fire_timeout_s:.0f} s; receivers that got it: {sorted(trial.firing_receivers)}"
        )
    trial.error = "; ".join(failures) or None
    log.info(
        "trial_finished",
        alert=trial.alert,
        fired_after_s=trial.fired_after_s,
        resolved_after_s=trial.resolved_after_s,
        error=trial.error,
    )
    return trial


def wait_until_quiet(
    lab: AlertingLab, alerts: Sequence[str], timeout_s: float = QUIET_TIMEOUT_S
) -> list[str]:
    """Wait until none of ``alerts`` is pending or firing; returns those left at timeout.

    Only the alerts about to be tripped matter: a leftover of another name cannot be
    mistaken for their notifications.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        active = {alert.get("alertname", "") for alert in lab.alerts_in_prometheus()}
        left = sorted(active & set(alerts))
        if not left or time.monotonic() > deadline:
            if left:
                log.warning("alerts_still_active", alerts=left)
            return left
        time.sleep(POLL_INTERVAL_S)


def run_batches(lab: AlertingLab, batches: Sequence[Sequence[Trial]], **timeouts: float) -> None:
    """Each batch's trials at the same time; the next batch once its alerts are quiet."""
    for number, batch in enumerate(batches, start=1):
        wait_until_quiet(lab, [trial.alert for trial in batch])
        log.info("batch_started", batch=number, alerts=[trial.alert for trial in batch])
        abort = threading.Event()
        threads = [
            threading.Thread(
                target=run_trial,
                args=(lab, trial),
                kwargs={**timeouts, "abort": abort},
                name=f"trial-{trial.alert}",
            )
            for trial in batch
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            # Ctrl-C while waiting: let every trial stop and restore its scenario first.
            abort.set()
            for thread in threads:
                thread.join()
            raise
