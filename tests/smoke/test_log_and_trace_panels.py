"""Smoke tier: every LogQL and Jaeger target of every dashboard returns rows through Grafana.

Loki and Jaeger do not run in the integration tier, which checks these targets only for
shape. Here each one goes through Grafana's POST /api/ds/query to the real Loki or Jaeger
the way its panel sends it: over the dashboard's own time range, with the dashboard's
template variables replaced by the values Prometheus holds, and with the builtins that
Grafana's Loki backend fills in ($__auto and its kin) left for Grafana to replace. The
targets run after the chats every smoke test shares; the panels that show failing or slow
requests run after chats sent while the agent's fault knobs were set through its admin API.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from loadgen.agent_admin import AgentAdmin
from tests.config.test_grafana_provisioning import load_datasources, substitute
from tests.dashboard_targets import (
    ERROR_LOG_PANEL,
    FAILED_TRACES_PANEL,
    SLOW_TRACES_PANEL,
    dashboard_by_uid,
    label_values_arguments,
    panel_targets,
    resolve_variables,
)
from tests.smoke.conftest import Stack, send_chat
from tests.smoke.test_stack import SIGNAL_TIMEOUT_S, row_count

pytestmark = pytest.mark.smoke

DATASOURCE_UIDS = ("loki", "jaeger")
POLL_S = 2
# Grafana's frontend sends these as written and its Loki backend replaces them from the
# query's interval and time range, so they stay in the query for Grafana to fill in.
LOKI_BACKEND_VARIABLES = {
    name: f"${name}"
    for name in ("__auto", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms")
}
# A panel about 900 points wide over the dashboards' 30-minute view: one point every 2 s.
PANEL_INTERVAL_MS = 2000
PANEL_MAX_DATA_POINTS = 900
# Grafana's frontend gives a Loki query without maxLines the data source's maxLines.
LOKI_MAX_LINES = next(source["jsonData"]["maxLines"] for source in load_datasources()
                      if source["uid"] == "loki")

# Every tool call fails (its span ends in error status, the agent logs a warning) and every
# LLM call is 15 times slower (the busiest model's 0.7 s median becomes 10.5 s, far over
# the slow-trace panel's 5 s). Chats still answer 200: an injected 5xx would trip
# HighErrorRate, which test_stack.py must see tripped by its own scenario.
FAULT_SETTINGS = {"tool_failure_rate": 1.0, "llm_latency_multiplier": 15.0}
FAULTED_PANELS = {ERROR_LOG_PANEL, FAILED_TRACES_PANEL, SLOW_TRACES_PANEL}
FAULTED_CHATS = 4
FAULTED_CHAT_TIMEOUT_S = 180


@dataclass(frozen=True)
class Case:
    dashboard_uid: str
    panel_title: str
    target: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.dashboard_uid} / {self.panel_title} / {self.target['refId']}"

    @property
    def faulted(self) -> bool:
        return (self.dashboard_uid, self.panel_title) in FAULTED_PANELS


def collect_cases() -> list[Case]:
    cases = [Case(uid, title, target) for uid, title, target in panel_targets()
             if target["datasource"]["uid"] in DATASOURCE_UIDS]
    missing = FAULTED_PANELS - {(case.dashboard_uid, case.panel_title) for case in cases}
    if missing:
        raise ValueError(f"FAULTED_PANELS names {sorted(missing)}, which no dashboard has as a "
                         "Loki or Jaeger panel: use the panel titles of the dashboard JSON")
    return cases


CASES = collect_cases()
BASELINE_CASES = [case for case in CASES if not case.faulted]
FAULTED_CASES = [case for case in CASES if case.faulted]


# ---------------------------------------------------------------- the query a panel sends


def label_values(stack: Stack, variable_query: str) -> list[str]:
    """What a label_values() variable lists, from Prometheus through Grafana's proxy."""
    selector, label = label_values_arguments(variable_query)
    with stack.grafana() as grafana:
        response = grafana.get(
            f"/api/datasources/proxy/uid/prometheus/api/v1/label/{label}/values",
            params={"match[]": selector},
        )
    assert response.status_code == 200, f"{variable_query}: {response.text}"
    return response.json()["data"]


def panel_query(stack: Stack, case: Case) -> dict[str, Any]:
    """The case's target with its variables replaced, at the panel's interval."""
    values = resolve_variables(dashboard_by_uid(case.dashboard_uid), LOKI_BACKEND_VARIABLES,
                               lambda variable_query: label_values(stack, variable_query))
    resolved = {key: substitute(value, values) if isinstance(value, str) else value
                for key, value in case.target.items()}
    if resolved["datasource"]["type"] == "loki":
        resolved.setdefault("maxLines", LOKI_MAX_LINES)
    return {**resolved, "intervalMs": PANEL_INTERVAL_MS, "maxDataPoints": PANEL_MAX_DATA_POINTS}


def ask_grafana(stack: Stack, case: Case, query: dict[str, Any]) -> httpx.Response:
    view = dashboard_by_uid(case.dashboard_uid)["time"]
    with stack.grafana() as grafana:
        return grafana.post(
            "/api/ds/query", json={"from": view["from"], "to": view["to"], "queries": [query]}
        )


def result_of(response: httpx.Response, ref_id: str) -> dict[str, Any]:
    """The query's entry under `results` ({} when Grafana answered without one)."""
    try:
        return response.json().get("results", {}).get(ref_id, {})
    except ValueError:
        return {}


def rows_of(response: httpx.Response, ref_id: str) -> int:
    return row_count(result_of(response, ref_id).get("frames", []))


def run_until_rows(stack: Stack, case: Case) -> tuple[dict[str, Any], httpx.Response]:
    """Send the case's query until it returns a row or SIGNAL_TIMEOUT_S ran out.

    Spans and log lines reach Jaeger and Loki in batches a few seconds after the chat.
    """
    query = panel_query(stack, case)
    deadline = time.monotonic() + SIGNAL_TIMEOUT_S
    response = ask_grafana(stack, case, query)
    while not rows_of(response, query["refId"]) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        response = ask_grafana(stack, case, query)
    return query, response


# ---------------------------------------------------------------- breaking the agent on purpose


def send_faulted_chats(stack: Stack) -> list[str]:
    """FAULTED_CHATS chats at once (each takes seconds while the LLM is slowed down)."""
    messages = [f"Search the latest news and run the tests ({uuid.uuid4().hex[:8]})"
                for _ in range(FAULTED_CHATS)]
    with (
        httpx.Client(base_url=stack.agent_url, timeout=FAULTED_CHAT_TIMEOUT_S) as agent,
        ThreadPoolExecutor(max_workers=FAULTED_CHATS) as senders,
    ):
        return list(senders.map(lambda message: send_chat(agent, message), messages))


@pytest.fixture(scope="module")
def faulted_chat_trace_ids(stack: Stack) -> list[str]:
    """Trace ids of chats sent while FAULT_SETTINGS were set; the knobs are put back after."""
    admin = AgentAdmin(stack.agent_url)
    current = admin.faults()
    admin.set_faults(FAULT_SETTINGS)
    try:
        return send_faulted_chats(stack)
    finally:
        admin.set_faults({knob: current[knob] for knob in FAULT_SETTINGS})
        admin.close()


# ---------------------------------------------------------------- LogQL and Jaeger targets


def assert_target_returns_rows(stack: Stack, case: Case, context: str) -> None:
    """Grafana answers the panel's query without error and with at least one row."""
    query, response = run_until_rows(stack, case)

    result = result_of(response, query["refId"])
    assert response.status_code == 200, f"{query}: {response.text}"
    assert result.get("error") is None, f"{query}: {result.get('error')}"
    assert rows_of(response, query["refId"]) >= 1, (
        f"no rows within {SIGNAL_TIMEOUT_S} s for {query} {context}")


@pytest.mark.parametrize("case", BASELINE_CASES, ids=lambda case: case.name)
def test_log_or_trace_target_returns_rows_after_the_chats(
    stack: Stack, chat_trace_ids: list[str], case: Case
) -> None:
    assert_target_returns_rows(stack, case, f"after chats {chat_trace_ids}")


@pytest.mark.parametrize("case", FAULTED_CASES, ids=lambda case: case.name)
def test_log_or_trace_target_returns_rows_after_chats_under_faults(
    stack: Stack, faulted_chat_trace_ids: list[str], case: Case
) -> None:
    assert_target_returns_rows(
        stack, case, f"after chats {faulted_chat_trace_ids} under faults {FAULT_SETTINGS}")
