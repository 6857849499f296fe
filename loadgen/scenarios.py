"""The named scenarios: one per alert, each named after the alert it trips.

A scenario sets its fault knobs through the agent's admin API (or takes a component away),
drives load with Locust, and puts everything back when it ends: after its duration, when
the caller sets its ``stop`` event, on an error, or on Ctrl-C / SIGTERM. The undo steps
are registered before each change is made, so an interruption at any point restores
exactly what was changed so far.

Load sizes follow the alert thresholds of config/prometheus/rules/ (the guide's values).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import IO, Any

import structlog

from loadgen.agent_admin import AgentAdmin, AgentUnreachable, FaultValues
from loadgen.components import AGENT_SERVICE, REDIS_SERVICE, ComponentError, Components
from loadgen.load import Load, LoadError, LocustProcess, run_load

log = structlog.get_logger("loadgen.scenarios")

DEFAULT_DURATION_S = 180.0
MEBIBYTE = 1024 * 1024
# The agent's memory_ballast_mb knob stops here (docs/architecture.md, fault knobs).
MAX_BALLAST_MB = 4096
COMPONENT_READY_TIMEOUT_S = 60.0
RESTORE_RETRY_S = 15.0
# How a restarted component is known to be back, seen through the agent.
READY_PATHS = {AGENT_SERVICE: "/healthz", REDIS_SERVICE: "/readyz"}


class ScenarioError(RuntimeError):
    """A scenario cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Scenario:
    """How to trip one alert. ``name`` is the alert's name."""

    name: str
    description: str
    faults: Mapping[str, Any] = field(default_factory=dict)
    load: Load | None = None
    stops: tuple[str, ...] = ()
    # HighMemoryUsage: the share of the agent's memory limit its resident memory is raised
    # to; the ballast needed is worked out from the agent's own metrics at the start.
    memory_target_share: float | None = None
    # Load run after the faults are restored, for an alert on a gauge that only new data
    # moves: accuracy stays low after the drift is gone until good ratings replace the bad.
    recovery: Load | None = None
    recovery_s: float = 0.0

    @property
    def alert(self) -> str:
        return self.name


def _agent_users(users: int) -> Load:
    return Load(user_classes=("AgentUser",), users=users, spawn_rate=users)


# Uncached turns cost about $0.001 each, so more than ~1.1 uncached turns a second projects
# past HighLLMCosts' $100 a day. Scenarios whose every turn misses the cache (cache bypass,
# Redis down) therefore run two baseline users, enough to trip their own alert only.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "HighErrorRate",
        "Half of the LLM calls fail: about one chat in ten answers 502 (threshold 1% 5xx).",
        faults={"error_rate": 0.5},
        load=_agent_users(10),
    ),
    Scenario(
        "HighLatency",
        "LLM calls take ten times longer: uncached chats take 5 to 20 s (threshold p95 5 s).",
        faults={"llm_latency_multiplier": 10.0},
        load=_agent_users(10),
    ),
    Scenario(
        "LowAccuracy",
        "Answers drift to about 45% correct and every answer is rated (threshold 0.90); "
        "then 45 s of good ratings bring accuracy back.",
        faults={"accuracy_drift": 0.5},
        load=Load(user_classes=("HonestRaterUser",), users=8, spawn_rate=8),
        recovery=Load(user_classes=("HonestRaterUser",), users=8, spawn_rate=8),
        recovery_s=45.0,
    ),
    Scenario(
        "PodDown",
        "Stops the agent, so Prometheus cannot scrape it; starts it again at the end.",
        stops=(AGENT_SERVICE,),
    ),
    Scenario(
        "RedisDown",
        "Stops Redis under light load; chats keep answering while cache and checkpoints fail.",
        stops=(REDIS_SERVICE,),
        load=_agent_users(2),
    ),
    Scenario(
        "HighMemoryUsage",
        "The agent holds ballast until it uses 94% of its memory limit (threshold 90%).",
        memory_target_share=0.94,
        load=_agent_users(2),
    ),
    # Limitation: ten tool failures a second need five uncached two-tool turns a second,
    # which at the simulator's prices (about $0.0006 a turn) projects past $100 a day, so
    # HighLLMCosts follows about a minute in, whatever the duration.
    Scenario(
        "ToolFailureSpike",
        "Every tool call fails while 20 users run tool-heavy turns (threshold 10 failures/s).",
        faults={"tool_failure_rate": 1.0},
        load=Load(user_classes=("ToolHeavyUser",), users=20, spawn_rate=10),
    ),
    Scenario(
        "HighLLMCosts",
        "Token prices are multiplied by 100 under normal load (threshold $100 a day).",
        faults={"cost_multiplier": 100.0},
        load=_agent_users(10),
    ),
    Scenario(
        "LowCacheHitRate",
        "Every cache lookup misses under light load (threshold 50% hits).",
        faults={"cache_bypass": True},
        load=_agent_users(2),
    ),
)
SCENARIOS_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def scenario_by_name(name: str) -> Scenario:
    try:
        return SCENARIOS_BY_NAME[name]
    except KeyError:
        raise ScenarioError(
            f"unknown scenario {name!r}; valid scenarios: {', '.join(SCENARIOS_BY_NAME)}"
        ) from None


@dataclass
class ScenarioRun:
    """What a run did, with monotonic times for the caller's measurements."""

    scenario: str
    started_at: float
    restored_at: float = 0.0
    ended_at: float = 0.0
    faults: FaultValues = field(default_factory=dict)


def ballast_for_memory_target(admin: AgentAdmin, share: float) -> int:
    """MiB of ballast that lifts the agent's resident memory to ``share`` of its limit."""
    limit = admin.metric("luminamind_memory_limit_bytes")
    resident = admin.metric("process_resident_memory_bytes")
    needed_mb = max(0, math.ceil((share * limit - resident) / MEBIBYTE))
    if needed_mb > MAX_BALLAST_MB:
        largest_limit_mb = (MAX_BALLAST_MB * MEBIBYTE + resident) / share / MEBIBYTE
        raise ScenarioError(
            f"HighMemoryUsage needs {needed_mb} MiB of ballast but memory_ballast_mb stops at "
            f"{MAX_BALLAST_MB}: the agent's memory limit is {limit / MEBIBYTE:.0f} MiB. Give "
            f"it a limit of at most {largest_limit_mb:.0f} MiB (container mem_limit or "
            "AGENT_MEMORY_LIMIT_BYTES)"
        )
    return needed_mb


def planned_faults(scenario: Scenario, admin: AgentAdmin) -> FaultValues:
    faults = dict(scenario.faults)
    if scenario.memory_target_share is not None:
        faults["memory_ballast_mb"] = ballast_for_memory_target(admin, scenario.memory_target_share)
    return faults


def _restore_faults(admin: AgentAdmin, previous: FaultValues) -> None:
    # The agent may be restarting (PodDown ends just before this): retry for a while.
    deadline = time.monotonic() + RESTORE_RETRY_S
    while True:
        try:
            admin.set_faults(previous)
        except AgentUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        log.info("faults_restored", **previous)
        return


def _stop_or_explain(components: Components, service: str, admin: AgentAdmin) -> None:
    """Stop a service; when that fails, report why it failed, not why restoring it did.

    A failed stop may still have stopped it, so it is started again all the same, quietly:
    without Docker, both fail, and only the first failure says what to fix.
    """
    try:
        components.stop(service)
    except ComponentError:
        with contextlib.suppress(ComponentError):
            _bring_back(components, service, admin)
        raise


def _bring_back(components: Components, service: str, admin: AgentAdmin) -> None:
    components.start(service)
    path = READY_PATHS.get(service, "/healthz")
    if not admin.wait_until(path, COMPONENT_READY_TIMEOUT_S):
        raise ComponentError(
            f"{service} was started again but {admin.host}{path} did not answer 200 within "
            f"{COMPONENT_READY_TIMEOUT_S:.0f} s; check the {service} logs"
        )


def _hold(duration_s: float, stop: threading.Event, locust: LocustProcess | None) -> None:
    """Wait until the duration ends or ``stop`` is set; fail if Locust died early."""
    deadline = time.monotonic() + duration_s
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(min(remaining, 1.0))
        if locust is not None and not locust.running and time.monotonic() < deadline - 5:
            raise LoadError(
                f"locust exited early with code {locust.process.returncode}; "
                f"run `{' '.join(locust.argv)}` to see why"
            )


def run_scenario(
    scenario: Scenario,
    host: str,
    *,
    duration_s: float = DEFAULT_DURATION_S,
    components: Components | None = None,
    stop: threading.Event | None = None,
    locust_output: IO[bytes] | None = None,
) -> ScenarioRun:
    """Trip ``scenario`` against the agent at ``host`` and undo everything at the end.

    The fault is held for ``duration_s`` or until ``stop`` is set; the recovery load, if
    the scenario has one, runs after the restore.
    """
    if scenario.stops and components is None:
        raise ScenarioError(
            f"{scenario.name} stops {', '.join(scenario.stops)}: pass a way to stop and start "
            "components (docker compose in the lab, local processes on loopback)"
        )
    stop = stop or threading.Event()
    admin = AgentAdmin(host)
    run = ScenarioRun(scenario=scenario.name, started_at=time.monotonic())
    log.info("scenario_started", scenario=scenario.name, host=host, duration_s=duration_s)
    try:
        with ExitStack() as undo:
            run.faults = planned_faults(scenario, admin)
            if run.faults:
                current = admin.faults()
                previous = {knob: current[knob] for knob in run.faults}
                undo.callback(_restore_faults, admin, previous)
                admin.set_faults(run.faults)
                log.info("faults_set", scenario=scenario.name, **run.faults)
            for service in scenario.stops:
                assert components is not None
                _stop_or_explain(components, service, admin)
                undo.callback(_bring_back, components, service, admin)
            locust = None
            if scenario.load is not None:
                locust = LocustProcess(scenario.load, host, duration_s + 5, locust_output)
                undo.callback(locust.stop)
            _hold(duration_s, stop, locust)
            log.info("scenario_restoring", scenario=scenario.name)
        run.restored_at = time.monotonic()
        if scenario.recovery is not None:
            log.info("recovery_started", scenario=scenario.name, seconds=scenario.recovery_s)
            run_load(scenario.recovery, host, scenario.recovery_s, locust_output)
    finally:
        admin.close()
        run.ended_at = time.monotonic()
    log.info(
        "scenario_finished", scenario=scenario.name, seconds=round(run.ended_at - run.started_at)
    )
    return run
