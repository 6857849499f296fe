"""Smoke tier: one chat followed through the running lab, and one alert from trip to sink.

Everything is asserted through Grafana's HTTP API, the way a person reaches it: the four
data sources report healthy, the chat's trace is in Jaeger (by id and by search), its log
lines are in Loki under its trace id, its request is counted in Prometheus, and the alert
a short HighErrorRate scenario trips reaches the alert sink and shows in the Alertmanager
data source.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from tests.smoke.conftest import CHATS, REPO_ROOT, Stack

pytestmark = pytest.mark.smoke

T = TypeVar("T")
SIGNAL_TIMEOUT_S = 90
ALERT_TIMEOUT_S = 240
SCENARIO_DURATION_S = 200
DATASOURCE_UIDS = ("prometheus", "loki", "jaeger", "alertmanager")


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `probe` every two seconds until it returns something, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(2)
    pytest.fail(f"{what} not seen within {timeout:.0f} s")


def query_grafana(stack: Stack, query: dict[str, Any]) -> list[dict[str, Any]]:
    """POST /api/ds/query with one query; the frames of its result ([] on a query error)."""
    with stack.grafana() as grafana:
        response = grafana.post(
            "/api/ds/query",
            json={"from": "now-30m", "to": "now", "queries": [{"refId": "A", **query}]},
        )
    if response.status_code != 200:
        return []
    return response.json()["results"]["A"].get("frames", [])


def frame_values(frames: list[dict[str, Any]]) -> Iterator[Any]:
    for frame in frames:
        for column in frame.get("data", {}).get("values", []):
            yield from column


def row_count(frames: list[dict[str, Any]]) -> int:
    return sum(len(frame["data"]["values"][0]) for frame in frames if frame["data"]["values"])


def test_every_service_is_healthy_or_done(stack: Stack) -> None:
    states = {
        container.config.labels["com.docker.compose.service"]: (
            container.state.status,
            container.state.health.status if container.state.health else None,
            container.state.exit_code,
        )
        for container in stack.docker.compose.ps(all=True)
    }

    not_ready = {
        service: state
        for service, state in states.items()
        if state[:2] != ("running", "healthy") and state != ("exited", None, 0)
    }

    assert len(states) == 11
    assert not_ready == {}


@pytest.mark.parametrize("uid", DATASOURCE_UIDS)
def test_grafana_datasource_reports_healthy(stack: Stack, uid: str) -> None:
    with stack.grafana() as grafana:
        response = grafana.get(f"/api/datasources/uid/{uid}/health")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "OK"


def test_trace_of_a_chat_is_found_in_jaeger_by_its_id(
    stack: Stack, chat_trace_ids: list[str]
) -> None:
    trace_id = chat_trace_ids[0]

    frames = eventually(
        lambda: query_grafana(stack, {"datasource": {"uid": "jaeger"}, "query": trace_id}),
        SIGNAL_TIMEOUT_S,
        f"trace {trace_id} in Jaeger",
    )

    operations = set(frame_values(frames))
    assert {"agent_execution", "llm_call"} <= operations


def test_trace_of_a_chat_is_found_by_a_jaeger_search(
    stack: Stack, chat_trace_ids: list[str]
) -> None:
    search = {
        "datasource": {"uid": "jaeger"},
        "queryType": "search",
        "service": "luminamind",
        "operation": "agent_execution",
        "limit": 100,
    }

    found = eventually(
        lambda: chat_trace_ids[0] in set(frame_values(query_grafana(stack, search))),
        SIGNAL_TIMEOUT_S,
        f"trace {chat_trace_ids[0]} in a Jaeger search for service luminamind",
    )

    assert found is True


def test_log_lines_of_a_chat_are_found_in_loki_by_its_trace_id(
    stack: Stack, chat_trace_ids: list[str]
) -> None:
    trace_id = chat_trace_ids[0]
    query = {
        "datasource": {"uid": "loki"},
        "expr": f'{{service_name="luminamind"}} | trace_id="{trace_id}"',
        "queryType": "range",
        "maxLines": 100,
    }

    lines = eventually(
        lambda: row_count(query_grafana(stack, query)),
        SIGNAL_TIMEOUT_S,
        f"log lines with trace_id {trace_id} in Loki",
    )

    assert lines >= 1


def test_requests_of_the_chats_are_counted_in_prometheus(
    stack: Stack, chat_trace_ids: list[str]
) -> None:
    query = {
        "datasource": {"uid": "prometheus"},
        "expr": 'sum(luminamind_requests_total{endpoint="/v1/chat"})',
        "instant": True,
        "range": False,
    }

    def counted() -> float | None:
        frames = query_grafana(stack, query)
        values = [value for value in frame_values(frames) if isinstance(value, float)]
        return values[-1] if values and values[-1] >= len(chat_trace_ids) else None

    total = eventually(counted, SIGNAL_TIMEOUT_S, f"{len(chat_trace_ids)} chats in Prometheus")

    assert total >= CHATS


def high_error_rate_in_sink(stack: Stack) -> list[str]:
    """Receivers that got a firing HighErrorRate notification."""
    response = httpx.get(f"{stack.sink_url}/api/notifications", timeout=10)
    return [
        notification["receiver"]
        for notification in response.json()["notifications"]
        for alert in notification["alerts"]
        if alert["labels"].get("alertname") == "HighErrorRate" and alert["status"] == "firing"
    ]


def high_error_rate_in_alertmanager_datasource(stack: Stack) -> bool:
    with stack.grafana() as grafana:
        response = grafana.get("/api/datasources/proxy/uid/alertmanager/api/v2/alerts")
    return response.status_code == 200 and any(
        alert["labels"].get("alertname") == "HighErrorRate" for alert in response.json()
    )


def test_high_error_rate_reaches_the_sink_and_the_alertmanager_datasource(
    stack: Stack,
) -> None:
    scenario = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "HighErrorRate"]
        + ["--host", stack.agent_url, "--duration", str(SCENARIO_DURATION_S)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        in_alertmanager = eventually(
            lambda: high_error_rate_in_alertmanager_datasource(stack),
            ALERT_TIMEOUT_S,
            "HighErrorRate in Grafana's Alertmanager data source",
        )
        receivers = eventually(
            lambda: high_error_rate_in_sink(stack), ALERT_TIMEOUT_S, "HighErrorRate in the sink"
        )
    finally:
        scenario.terminate()
        _, errors = scenario.communicate(timeout=60)

    assert in_alertmanager is True
    assert receivers, errors
