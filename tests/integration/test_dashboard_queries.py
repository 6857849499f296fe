"""Every PromQL target of every dashboard returns data from the real lab.

The session's Locust run (conftest.py) fills the real Prometheus. Each target is evaluated
the way Grafana evaluates it for a 15-minute view: a range query (or an instant query where
the panel asks for one), its template variables replaced by the label values Prometheus
holds. Targets whose series exist only while something is broken are evaluated after the
agent's fault knobs are set through PUT /admin/faults and traffic is sent.

Loki and Jaeger do not run in this tier: their targets are checked for shape, and against
the logs and spans the agent really exported over OTLP. The smoke tier queries them.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.config.test_grafana_provisioning import (
    AGENT_LOG_SELECTOR,
    AGENT_SERVICE,
    DASHBOARDS,
    PromTarget,
    prom_targets,
    substitute,
)
from tests.dashboard_targets import (
    ERROR_LOG_PANEL,
    FAILED_TRACES_PANEL,
    dashboard_by_uid,
    label_values_arguments,
    panel_by_title,
    resolve_variables,
    targets_of_type,
)
from tests.integration.conftest import LoadedLab

pytestmark = pytest.mark.integration

VIEW_S = 15 * 60
STEP_S = 5
# What Grafana substitutes for a 15-minute view when the data source's scrape interval is
# 5 s: $__rate_interval = max($__interval + scrape interval, 4 x scrape interval).
GRAFANA_INTERVALS = {
    "__rate_interval": "20s",
    "__interval": "5s",
    "__range": "15m",
}

# Panels whose series exist only while the agent is being broken on purpose, with the fault
# knobs that produce them. Every other target must have data after the baseline run.
FIRING_ANNOTATION = "annotation Firing alerts"
FAULTED_PANELS: dict[tuple[str, str], set[str]] = {
    ("luminamind-llm", "LLM error rate"): {"error_rate"},
    ("luminamind-llm", "LLM errors by model"): {"error_rate"},
    ("luminamind-quality", "Negative feedback by category"): {"accuracy_drift"},
    ("luminamind-oncall", "Alerts now (Prometheus ALERTS)"): {"error_rate"},
    **{(uid, FIRING_ANNOTATION): {"error_rate"} for uid in (
        "luminamind-health", "luminamind-tools", "luminamind-llm", "luminamind-quality",
        "luminamind-infra", "luminamind-oncall")},
}
# Half the chats fail (HighErrorRate fires within the lab clock's 10 s `for`), most answers
# are wrong (bad ratings arrive), while traffic keeps flowing.
FAULT_SETTINGS = {"error_rate": 0.5, "accuracy_drift": 0.8}
FAULT_TRAFFIC_THREADS = 4
# Long enough for the lab-timed HighErrorRate (20 s window, 10 s for:) to go from pending to
# firing, with room for a slow machine.
FAULT_WAIT_S = 120.0
# Baseline data is all there once the load has been scraped; the wait only covers one more
# rule evaluation or scrape on a machine too busy to keep the 5 s rhythm.
BASELINE_WAIT_S = 30.0
POLL_S = 2.0

OTLP_STATUS_ERROR = 2


@dataclass(frozen=True)
class Case:
    target: PromTarget
    faulted: bool

    @property
    def name(self) -> str:
        return f"{self.target.dashboard_uid} / {self.target.panel_title} / {self.target.ref_id}"


def collect_cases() -> list[Case]:
    return [Case(target, (target.dashboard_uid, target.panel_title) in FAULTED_PANELS)
            for dashboard in DASHBOARDS.values() for target in prom_targets(dashboard)]


CASES = collect_cases()
BASELINE_CASES = [case for case in CASES if not case.faulted]
FAULTED_CASES = [case for case in CASES if case.faulted]


# ---------------------------------------------------------------- talking to Prometheus


def prometheus_api(lab: LoadedLab, path: str, params: dict[str, Any]) -> Any:
    response = httpx.get(f"{lab.prometheus.url}/api/v1/{path}", params=params, timeout=30)
    payload = response.json()
    assert payload.get("status") == "success", f"{path} {params}: {payload}"
    return payload["data"]


def label_values(lab: LoadedLab, variable_query: str) -> list[str]:
    """What Grafana's label_values(selector, label) lists, from the same HTTP API."""
    selector, label = label_values_arguments(variable_query)
    now = time.time()
    return prometheus_api(lab, f"label/{label}/values",
                          {"match[]": selector, "start": now - VIEW_S, "end": now})


def real_variable_values(lab: LoadedLab, dashboard: dict[str, Any]) -> dict[str, str]:
    return resolve_variables(dashboard, GRAFANA_INTERVALS,
                             lambda variable_query: label_values(lab, variable_query))


def evaluate(lab: LoadedLab, target: PromTarget, expr: str) -> list[dict[str, Any]]:
    now = time.time()
    if target.instant:
        return prometheus_api(lab, "query", {"query": expr, "time": now})["result"]
    return prometheus_api(lab, "query_range", {"query": expr, "start": now - VIEW_S,
                                               "end": now, "step": STEP_S})["result"]


def finite_series(result: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Label sets of the series holding at least one finite value."""
    found = []
    for series in result:
        samples = series.get("values") or [series["value"]]
        if any(math.isfinite(float(value)) for _, value in samples):
            found.append(series["metric"])
    return found


def poll_finite_series(lab: LoadedLab, case: Case, expr: str,
                       deadline: float) -> list[dict[str, str]]:
    """The target's finite series, asked again every POLL_S seconds until some arrive or the
    deadline passes (a recording rule's next evaluation, a scrape on a busy machine)."""
    series = finite_series(evaluate(lab, case.target, expr))
    while not series and time.monotonic() < deadline:
        time.sleep(POLL_S)
        series = finite_series(evaluate(lab, case.target, expr))
    return series


def case_expression(lab: LoadedLab, case: Case) -> str:
    dashboard = dashboard_by_uid(case.target.dashboard_uid)
    return substitute(case.target.expr, real_variable_values(lab, dashboard))


# ---------------------------------------------------------------- breaking the agent on purpose


@dataclass
class FaultedLab:
    lab: LoadedLab
    deadline: float
    chats_sent: list[int]


def send_chats_until(agent_url: str, stop: threading.Event, sent: list[int]) -> None:
    """One user: chats, rating each answer by the simulator's own verdict, until stopped."""
    with httpx.Client(base_url=agent_url, timeout=30) as client:
        while not stop.is_set():
            thread_id = f"fault-{uuid.uuid4().hex[:12]}"
            # A unique message is a cache miss, so every chat reaches the failing LLM and
            # the LLM error series and ERROR logs keep coming for as long as the faults last.
            answer = client.post("/v1/chat", json={
                "thread_id": thread_id,
                "message": f"Search the latest news and run the tests ({thread_id})",
                "category": "research"})
            sent.append(answer.status_code)
            if answer.status_code == 200:
                evaluation = answer.json().get("evaluation", {})
                rating = "good" if evaluation.get("correct", True) else "bad"
                client.post("/v1/feedback", json={
                    "thread_id": thread_id, "category": "research", "rating": rating})


@pytest.fixture(scope="module")
def faulted_lab(loaded_lab: LoadedLab) -> Iterator[FaultedLab]:
    """The loaded lab with FAULT_SETTINGS applied and traffic flowing until the module ends."""
    agent_url = loaded_lab.agent.url
    changed = httpx.put(f"{agent_url}/admin/faults", json=FAULT_SETTINGS, timeout=10)
    assert changed.status_code == 200, changed.text
    stop = threading.Event()
    sent: list[int] = []
    users = [threading.Thread(target=send_chats_until, args=(agent_url, stop, sent), daemon=True)
             for _ in range(FAULT_TRAFFIC_THREADS)]
    for user in users:
        user.start()
    try:
        yield FaultedLab(loaded_lab, time.monotonic() + FAULT_WAIT_S, sent)
    finally:
        stop.set()
        for user in users:
            user.join(timeout=60)
        httpx.delete(f"{agent_url}/admin/faults", timeout=10)


# ---------------------------------------------------------------- PromQL targets


def test_every_dashboard_has_promql_targets_to_check() -> None:
    dashboards_with_targets = {case.target.dashboard_uid for case in CASES}

    assert len(dashboards_with_targets) == len(DASHBOARDS)
    assert {key for key in FAULTED_PANELS if key[1] != FIRING_ANNOTATION} <= {
        (case.target.dashboard_uid, case.target.panel_title) for case in FAULTED_CASES}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_template_variable_lists_real_values(loaded_lab: LoadedLab, name: str) -> None:
    variables = [variable for variable in DASHBOARDS[name]["templating"]["list"]
                 if variable["type"] == "query"]

    listed = {variable["name"]: label_values(loaded_lab, variable["query"])
              for variable in variables}

    assert [variable for variable, values in listed.items() if not values] == []


@pytest.mark.parametrize("case", BASELINE_CASES, ids=lambda case: case.name)
def test_promql_target_returns_finite_series_after_baseline_load(
    loaded_lab: LoadedLab, case: Case
) -> None:
    expr = case_expression(loaded_lab, case)

    series = poll_finite_series(loaded_lab, case, expr, time.monotonic() + BASELINE_WAIT_S)

    assert series, f"no finite series for {expr} within {BASELINE_WAIT_S:.0f} s"


@pytest.mark.parametrize("case", FAULTED_CASES, ids=lambda case: case.name)
def test_promql_target_returns_finite_series_while_faults_are_injected(
    faulted_lab: FaultedLab, case: Case
) -> None:
    expr = case_expression(faulted_lab.lab, case)

    series = poll_finite_series(faulted_lab.lab, case, expr, faulted_lab.deadline)

    assert series, (f"no finite series for {expr} within {FAULT_WAIT_S:.0f} s of faults "
                    f"{FAULT_SETTINGS} ({len(faulted_lab.chats_sent)} chats sent)")


# ---------------------------------------------------------------- LogQL and Jaeger targets


def test_logql_targets_select_the_service_name_the_agent_exports(
    loaded_lab: LoadedLab,
) -> None:
    targets = targets_of_type("loki")
    exported_services = {record.service_name for record in loaded_lab.otlp.logs}

    malformed = [(uid, title) for uid, title, target in targets
                 if AGENT_LOG_SELECTOR not in target["expr"] or target["queryType"] != "range"]

    assert targets and malformed == []
    assert exported_services == {AGENT_SERVICE}


def test_error_log_filter_keeps_the_failures_the_agent_logs_and_drops_info(
    faulted_lab: FaultedLab,
) -> None:
    expr = panel_by_title(*ERROR_LOG_PANEL)["targets"][0]["expr"]
    level_pattern = re.search(r'severity_text=~"([^"]+)"', expr)
    assert level_pattern is not None, expr
    deadline = time.monotonic() + FAULT_WAIT_S

    levels = {record.severity_text for record in faulted_lab.lab.otlp.logs}
    while "ERROR" not in levels and time.monotonic() < deadline:
        time.sleep(POLL_S)
        levels = {record.severity_text for record in faulted_lab.lab.otlp.logs}

    # Loki anchors =~ at both ends, as fullmatch does.
    kept = {level for level in levels if re.fullmatch(level_pattern.group(1), level)}
    assert {"ERROR", "WARNING"} <= kept
    assert "INFO" in levels - kept


def test_jaeger_targets_search_the_service_the_agent_exports(loaded_lab: LoadedLab) -> None:
    targets = targets_of_type("jaeger")
    exported_services = {span.service_name for span in loaded_lab.otlp.spans}

    malformed = [(uid, title) for uid, title, target in targets
                 if target.get("queryType") != "search" or target.get("service") != AGENT_SERVICE]

    assert targets and malformed == []
    assert exported_services == {AGENT_SERVICE}


def test_failed_traces_search_finds_spans_in_error_status(faulted_lab: FaultedLab) -> None:
    tags = panel_by_title(*FAILED_TRACES_PANEL)["targets"][0]["tags"]
    deadline = time.monotonic() + FAULT_WAIT_S

    failed = [span for span in faulted_lab.lab.otlp.spans if span.status_code == OTLP_STATUS_ERROR]
    while not failed and time.monotonic() < deadline:
        time.sleep(POLL_S)
        failed = [span for span in faulted_lab.lab.otlp.spans
                  if span.status_code == OTLP_STATUS_ERROR]

    # Jaeger stores an OTLP span in error status with the tag error=true.
    assert tags == "error=true"
    assert {span.name for span in failed} & {"llm_call", "tool_execution"}
