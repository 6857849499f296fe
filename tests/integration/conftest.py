"""Fixtures of the integration tier: the real binaries on loopback, filled by real load.

`loaded_lab` starts Redis, redis_exporter, the agent (exporting spans and logs to an OTLP
receiver of the test) and Prometheus (reading config/prometheus/prometheus.yml and the
lab-clock rules), drives the agent with headless Locust, and waits until Prometheus has
scraped the final counts. It is built once per test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.loopback import REPO_ROOT, Component, LoopbackLab
from lab.otlp_receiver import OtlpReceiver

LOCUST_USERS = 10
LOCUST_RUN_TIME_S = 30
# Tool failures and timeouts must appear in a short run; the lab's default is 3%.
TEST_TOOL_FAILURE_RATE = "0.25"
# Simulated latencies at 30%: more turns per second of test, same shape of distribution.
TEST_LATENCY_SCALE = "0.3"
# Several scrape intervals: on a busy 2-core machine a scrape can time out and be retried.
SCRAPE_WAIT_S = 90.0


def render_lab_rules(out_dir: Path) -> Path:
    """The lab-clock rendering of config/prometheus/rules, as compose loads it."""
    subprocess.run([sys.executable, "-m", "lab.clock", "render", "--out", str(out_dir)],
                   cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return out_dir


def agent_env(otlp: OtlpReceiver, **overrides: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.traces_endpoint,
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": otlp.logs_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "OTEL_BLRP_SCHEDULE_DELAY": "500",
        "AGENT_LATENCY_SCALE": TEST_LATENCY_SCALE,
        "AGENT_FAULT_TOOL_FAILURE_RATE": TEST_TOOL_FAILURE_RATE,
        **overrides,
    }


def run_locust(
    host: str, users: int, run_time_s: int, workdir: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadgen" / "locustfile.py"),
         "--headless", "-u", str(users), "-r", str(users), "-t", f"{run_time_s}s",
         "--host", host, "--only-summary", "--csv", str(workdir / "locust")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=run_time_s + 60,
    )


def prometheus_query(prometheus: Component, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=10)
    payload = response.json()
    assert payload.get("status") == "success", f"{promql!r} failed: {payload}"
    return payload["data"]["result"]


def scraped_value(agent: Component, family: str) -> float:
    """Sum of one family's samples as the agent itself exposes them right now."""
    text = httpx.get(f"{agent.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(family + "{"))


def wait_until_scraped(prometheus: Component, agent: Component, family: str) -> None:
    """Poll until Prometheus holds at least the agent's current total of `family`.

    At least, not exactly: a chat Locust left in flight when it exited still completes in
    the agent, and a scrape after it counts one more than this snapshot.
    """
    expected = scraped_value(agent, family)
    deadline = time.monotonic() + SCRAPE_WAIT_S
    while time.monotonic() < deadline:
        result = prometheus_query(prometheus, f"sum({family})")
        if result and float(result[0]["value"][1]) >= expected - 1e-9:
            return
        time.sleep(1)
    raise AssertionError(f"Prometheus did not reach {family}={expected} in {SCRAPE_WAIT_S} s")


# Keywords for all four tools (search, file, run, code): every such chat calls each tool.
ALL_TOOLS_PROMPT = "search the file and run the code"
TOP_UP_BATCH = 8
TOP_UP_MAX_CHATS = 120


def agent_has_sample(agent: Component, family: str, label: str) -> bool:
    text = httpx.get(f"{agent.url}/metrics", timeout=5).text
    return any(line.startswith(family + "{") and label in line and not line.endswith(" 0.0")
               for line in text.splitlines())


def top_up_tool_timeouts(agent: Component) -> None:
    """Chats calling every tool until one times out.

    A timeout is 5% of tool calls at the test's failure rate, and a short baseline run on a
    busy machine can, by chance, end with none. Bounded: at TOP_UP_MAX_CHATS chats with four
    tools each, the chance of still having none is far below one in a million.
    """
    def chat(_: int) -> None:
        httpx.post(f"{agent.url}/v1/chat", timeout=30, json={
            "thread_id": "top-up", "message": f"{ALL_TOOLS_PROMPT} #{uuid.uuid4().hex}",
            "category": "coding"})

    with ThreadPoolExecutor(TOP_UP_BATCH) as pool:
        for _ in range(TOP_UP_MAX_CHATS // TOP_UP_BATCH):
            if agent_has_sample(agent, "luminamind_tool_invocations_total", 'status="timeout"'):
                return
            list(pool.map(chat, range(TOP_UP_BATCH)))


@dataclass
class LoadedLab:
    workdir: Path
    otlp: OtlpReceiver
    redis: Component
    exporter: Component
    agent: Component
    prometheus: Component
    locust: subprocess.CompletedProcess[str]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return prometheus_query(self.prometheus, promql)

    def agent_stdout_lines(self) -> list[str]:
        return self.agent.stdout_path.read_text().splitlines()

    def agent_json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.agent_stdout_lines() if line.strip()]


@pytest.fixture(scope="session")
def loaded_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedLab]:
    workdir = tmp_path_factory.mktemp("loaded-lab")
    rules = render_lab_rules(workdir / "rules")
    with OtlpReceiver() as otlp, LoopbackLab(workdir) as lab:
        redis = lab.start_redis()
        exporter = lab.start_redis_exporter(redis)
        agent = lab.start_agent(redis, agent_env(otlp))
        prometheus = lab.start_prometheus(
            {"demo-agent:8000": agent, "redis-exporter:9121": exporter}, rules_dir=rules
        )
        locust = run_locust(agent.url, LOCUST_USERS, LOCUST_RUN_TIME_S, workdir)
        top_up_tool_timeouts(agent)
        wait_until_scraped(prometheus, agent, "luminamind_requests_total")
        yield LoadedLab(workdir, otlp, redis, exporter, agent, prometheus, locust)
