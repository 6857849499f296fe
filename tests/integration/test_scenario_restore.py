"""Scenarios put the lab back: faults restored and components restarted, however they end.

The real agent and Redis run on loopback; scenarios run as `python -m loadgen run` child
processes (interrupted with real signals) or in-process with a stop event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lab.loopback import REPO_ROOT, Component, LoopbackLab, free_port
from loadgen.components import ComponentControl, LocalComponents
from loadgen.load import BASELINE_LOCUSTFILE, Load, LoadError, run_load
from loadgen.scenarios import Scenario, run_scenario, scenario_by_name

pytestmark = pytest.mark.integration

START_VALUES = {
    "error_rate": 0.0,
    "llm_latency_multiplier": 1.0,
    "tool_failure_rate": 0.03,
    "cost_multiplier": 1.0,
    "accuracy_drift": 0.0,
    "cache_bypass": False,
    "memory_ballast_mb": 0,
}


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackLab]:
    with LoopbackLab(tmp_path_factory.mktemp("scenario-restore")) as lab:
        yield lab


@pytest.fixture(scope="module")
def redis(loopback: LoopbackLab) -> Component:
    return loopback.start_redis()


@pytest.fixture(scope="module")
def agent(loopback: LoopbackLab, redis: Component) -> Component:
    return loopback.start_agent(redis, {"AGENT_MEMORY_LIMIT_BYTES": str(256 * 1024 * 1024)})


@pytest.fixture(autouse=True)
def start_values(agent: Component) -> None:
    if not agent.running:
        agent.start()
    httpx.delete(f"{agent.url}/admin/faults", timeout=5).raise_for_status()


def faults(agent: Component) -> dict[str, object]:
    return httpx.get(f"{agent.url}/admin/faults", timeout=5).json()


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.update(int(child) for child in children)
    return found


def wait_for(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout_s} s")


def start_cli_scenario(name: str, agent: Component, workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / f"cli-{name}.log").open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "loadgen", "run", name, "--host", agent.url,
             "--duration", "120"],
            cwd=REPO_ROOT, stdout=output, stderr=output,
        )  # fmt: skip


@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_scenario_restores_faults_and_stops_locust(
    agent: Component, loopback: LoopbackLab, sig: signal.Signals, exit_code: int
) -> None:
    process = start_cli_scenario("HighErrorRate", agent, loopback.workdir)
    wait_for(lambda: faults(agent)["error_rate"] == 0.5 and children_of(process.pid))
    locust_pids = children_of(process.pid)

    os.kill(process.pid, sig)
    returned = process.wait(timeout=30)

    assert returned == exit_code
    assert faults(agent) == START_VALUES
    assert all(not Path(f"/proc/{pid}").exists() for pid in locust_pids)


def test_scenario_restores_the_values_it_found_not_the_start_values(agent: Component) -> None:
    httpx.put(f"{agent.url}/admin/faults", json={"error_rate": 0.02}, timeout=5)
    stop = threading.Event()
    stop.set()

    run_scenario(scenario_by_name("HighErrorRate"), agent.url, duration_s=30, stop=stop)

    assert faults(agent)["error_rate"] == 0.02


def test_faults_are_restored_when_locust_cannot_run(agent: Component) -> None:
    broken = Scenario(
        "HighErrorRate",
        "a user class that does not exist",
        faults={"error_rate": 0.5},
        load=Load(user_classes=("NoSuchUser",), users=1, spawn_rate=1),
    )

    with pytest.raises(LoadError, match="locust exited early"):
        run_scenario(broken, agent.url, duration_s=30)

    assert faults(agent)["error_rate"] == 0.0


def resident_share(agent: Component) -> float:
    text = httpx.get(f"{agent.url}/metrics", timeout=5).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("process_resident_memory_bytes ", "luminamind_memory_limit_bytes "))
    }
    return values["process_resident_memory_bytes"] / values["luminamind_memory_limit_bytes"]


def test_high_memory_usage_holds_over_90_percent_of_the_limit_then_lets_go(
    agent: Component,
) -> None:
    stop = threading.Event()
    seen: list[float] = []

    def measure_then_stop() -> None:
        wait_for(lambda: faults(agent)["memory_ballast_mb"] > 0)
        seen.append(resident_share(agent))
        stop.set()

    watcher = threading.Thread(target=measure_then_stop)
    watcher.start()
    run_scenario(scenario_by_name("HighMemoryUsage"), agent.url, duration_s=60, stop=stop)
    watcher.join()

    assert seen[0] > 0.90
    assert resident_share(agent) < 0.60


def run_stopping_scenario(name: str, agent: Component, stopped: Component,
                          while_down: Callable[[], object]) -> list[object]:
    """Run a scenario that stops `stopped`; once it is down, record `while_down()` and end
    the scenario early. Returns what was recorded (one item when the component went down)."""
    components = LocalComponents({stopped.name: ComponentControl(stopped.stop, stopped.start)})
    stop = threading.Event()
    recorded: list[object] = []

    def record_then_stop() -> None:
        wait_for(lambda: not stopped.running)
        recorded.append(while_down())
        stop.set()

    watcher = threading.Thread(target=record_then_stop)
    watcher.start()
    run_scenario(scenario_by_name(name), agent.url, duration_s=60, components=components,
                 stop=stop)
    watcher.join()
    return recorded


def test_pod_down_starts_the_agent_again_when_stopped_early(agent: Component) -> None:
    down = run_stopping_scenario("PodDown", agent, agent, while_down=lambda: True)

    assert down == [True]
    assert httpx.get(f"{agent.url}/healthz", timeout=5).status_code == 200


def test_redis_down_starts_redis_again_and_the_agent_is_ready(
    agent: Component, redis: Component
) -> None:
    readiness_while_down = run_stopping_scenario(
        "RedisDown", agent, redis,
        while_down=lambda: httpx.get(f"{agent.url}/readyz", timeout=5).status_code)

    assert readiness_while_down == [503]
    assert httpx.get(f"{agent.url}/readyz", timeout=5).status_code == 200


def test_a_load_run_where_every_request_fails_is_an_error_not_a_success() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    baseline = Load(("AgentUser",), users=2, spawn_rate=2, locustfile=BASELINE_LOCUSTFILE)

    with pytest.raises(LoadError, match=rf"all \d+ requests to {nobody} failed"):
        run_load(baseline, nobody, run_time_s=3)
