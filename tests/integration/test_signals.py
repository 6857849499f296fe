"""Every signal of the agent, proven through the real Prometheus and the OTLP wire format.

The session's Locust run (tests/integration/conftest.py) fills Prometheus; these tests read
what Prometheus scraped, what the agent printed and what it exported as spans and logs.
"""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import time
import uuid

import httpx
import pytest
from redis import Redis

from demo_agent.store import cache_key
from lab.loopback import LoopbackLab
from lab.otlp_receiver import OtlpReceiver
from tests.integration.conftest import LoadedLab, agent_env

pytestmark = pytest.mark.integration

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")

# Each guide metric (section 2) as Prometheus scrapes it, with label values that a
# baseline run with tool failures must produce.
EXPECTED_SERIES = [
    'luminamind_requests_total{endpoint="/v1/chat", method="POST", status="200"}',
    'luminamind_requests_total{endpoint="/v1/feedback", method="POST", status="202"}',
    'luminamind_request_duration_seconds_bucket{endpoint="/v1/chat", le="+Inf"}',
    'luminamind_tool_invocations_total{status="success"}',
    'luminamind_tool_invocations_total{status="error"}',
    'luminamind_tool_invocations_total{status="timeout"}',
    'luminamind_tool_duration_seconds_bucket{le="+Inf"}',
    'luminamind_tool_errors_total{error_type="TimeoutError"}',
    'luminamind_llm_requests_total{status="success"}',
    'luminamind_llm_tokens_total{type="input"}',
    'luminamind_llm_tokens_total{type="output"}',
    'luminamind_llm_latency_seconds_bucket{le="+Inf"}',
    "luminamind_llm_cost_usd_total",
    'luminamind_cache_operations_total{operation="get", result="hit"}',
    'luminamind_cache_operations_total{operation="get", result="miss"}',
    'luminamind_cache_operations_total{operation="set", result="success"}',
    "luminamind_cache_size_bytes",
    'luminamind_response_quality_total{rating="good"}',
    "luminamind_accuracy_score",
    "luminamind_active_sessions",
    'luminamind_checkpoint_operations_total{operation="save", backend="redis"}',
    'luminamind_checkpoint_operations_total{operation="load", backend="redis"}',
    "luminamind_checkpoint_size_bytes_bucket",
    "luminamind_memory_limit_bytes",
]


def test_locust_baseline_run_had_no_failed_requests(loaded_lab: LoadedLab) -> None:
    assert loaded_lab.locust.returncode == 0, loaded_lab.locust.stderr[-2000:]


@pytest.mark.parametrize("selector", EXPECTED_SERIES)
def test_guide_metric_has_positive_agent_samples(loaded_lab: LoadedLab, selector: str) -> None:
    query = f'sum({selector[:-1]}, job="luminamind"}})' if selector.endswith("}") else (
        f'sum({selector}{{job="luminamind"}})')

    result = loaded_lab.query(query)

    assert result, f"no samples for {selector}"
    assert float(result[0]["value"][1]) > 0, f"{selector} is zero"


def test_agent_and_redis_are_up(loaded_lab: LoadedLab) -> None:
    agent_up = loaded_lab.query('up{job="luminamind"}')
    redis_up = loaded_lab.query('redis_up{job="redis"}')

    assert [sample["value"][1] for sample in agent_up] == ["1"]
    assert [sample["value"][1] for sample in redis_up] == ["1"]


def test_p95_request_latency_is_finite(loaded_lab: LoadedLab) -> None:
    result = loaded_lab.query(
        "histogram_quantile(0.95, sum by (le) ("
        'rate(luminamind_request_duration_seconds_bucket{endpoint="/v1/chat"}[1m])))'
    )

    p95 = float(result[0]["value"][1])
    assert math.isfinite(p95)
    assert 0 < p95 < 30


def test_latency_exemplars_carry_trace_ids_of_exported_spans(loaded_lab: LoadedLab) -> None:
    end = time.time()
    response = httpx.get(
        f"{loaded_lab.prometheus.url}/api/v1/query_exemplars",
        params={"query": "luminamind_request_duration_seconds_bucket",
                "start": end - 600, "end": end},
        timeout=10,
    ).json()
    exemplar_trace_ids = {
        exemplar["labels"]["trace_id"]
        for series in response["data"] for exemplar in series["exemplars"]
    }
    exported_trace_ids = {span.trace_id for span in loaded_lab.otlp.spans}

    assert exemplar_trace_ids, "Prometheus stored no exemplars"
    assert all(HEX32.match(trace_id) for trace_id in exemplar_trace_ids)
    assert exemplar_trace_ids & exported_trace_ids


def test_stdout_lines_are_json_events_with_trace_ids_of_exported_spans(
    loaded_lab: LoadedLab,
) -> None:
    events = loaded_lab.agent_json_lines()
    exported_trace_ids = {span.trace_id for span in loaded_lab.otlp.spans}
    traced = [event for event in events if "trace_id" in event]

    assert all({"event", "level", "logger", "timestamp"} <= event.keys() for event in events)
    assert {event["event"] for event in traced} >= {
        "agent_turn_completed", "tool_execution_failed", "request_handled"}
    assert all(HEX32.match(event["trace_id"]) and HEX16.match(event["span_id"])
               for event in traced)
    assert {event["trace_id"] for event in traced} <= exported_trace_ids


def test_scrapes_of_metrics_are_not_logged(loaded_lab: LoadedLab) -> None:
    endpoints = {event.get("endpoint") for event in loaded_lab.agent_json_lines()}
    paths = {event.get("path") for event in loaded_lab.agent_json_lines()}

    assert "/metrics" not in endpoints | paths


def test_otlp_logs_carry_the_trace_context_of_their_span(loaded_lab: LoadedLab) -> None:
    spans_by_id = {span.span_id: span for span in loaded_lab.otlp.spans}
    turn_logs = [log for log in loaded_lab.otlp.logs
                 if json.loads(log.body)["event"] == "agent_turn_completed"]

    assert turn_logs, "no agent_turn_completed log record arrived over OTLP"
    for record in turn_logs:
        assert record.service_name == "luminamind"
        assert record.severity_text == "INFO"
        assert spans_by_id[record.span_id].trace_id == record.trace_id
        assert spans_by_id[record.span_id].name == "agent_execution"
        assert record.scope_name == "demo_agent.agent"


def test_otlp_log_bodies_are_the_very_lines_the_agent_printed(loaded_lab: LoadedLab) -> None:
    printed = set(loaded_lab.agent_stdout_lines())
    bodies = [record.body for record in loaded_lab.otlp.logs]

    assert bodies, "no log record arrived over OTLP"
    assert [body for body in bodies if body not in printed] == []
    assert {json.loads(body)["logger"] for body in bodies} >= {
        "demo_agent.agent", "demo_agent.http"}


def test_spans_nest_llm_and_tool_calls_inside_agent_execution(loaded_lab: LoadedLab) -> None:
    spans = loaded_lab.otlp.spans
    by_id = {span.span_id: span for span in spans}
    llm_calls = [span for span in spans if span.name == "llm_call"]
    tool_calls = [span for span in spans if span.name == "tool_execution"]

    assert llm_calls and tool_calls
    assert all(by_id[span.parent_span_id].name == "agent_execution" for span in llm_calls)
    assert all(by_id[span.parent_span_id].name == "agent_execution" for span in tool_calls)
    assert {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
            "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
            } <= llm_calls[0].attributes.keys()
    assert {span.attributes["gen_ai.tool.name"] for span in tool_calls} <= {
        "web_search", "shell", "file_read", "code_execution"}


def test_agent_keeps_answering_chats_while_redis_is_down(tmp_path) -> None:
    with OtlpReceiver() as otlp, LoopbackLab(tmp_path) as lab:
        redis = lab.start_redis()
        agent = lab.start_agent(redis, agent_env(otlp, AGENT_LATENCY_SCALE="0"))
        redis.stop()

        chat = httpx.post(f"{agent.url}/v1/chat", timeout=10,
                          json={"thread_id": "outage", "message": "hello"})
        ready = httpx.get(f"{agent.url}/readyz", timeout=10)
        metrics = httpx.get(f"{agent.url}/metrics", timeout=10).text

    assert chat.status_code == 200
    assert ready.status_code == 503
    assert "ConnectionError" in ready.json()["redis"]
    assert 'luminamind_cache_operations_total{operation="get",result="error"} 1.0' in metrics
    assert 'luminamind_checkpoint_errors_total{backend="redis",operation="save"} 1.0' in metrics


def test_sigterm_flushes_the_spans_and_logs_of_the_last_request(tmp_path) -> None:
    with OtlpReceiver() as otlp, LoopbackLab(tmp_path) as lab:
        redis = lab.start_redis()
        # Batch delays far longer than the test: only the shutdown flush can export.
        agent = lab.start_agent(redis, agent_env(otlp, AGENT_LATENCY_SCALE="0",
                                                 OTEL_BSP_SCHEDULE_DELAY="600000",
                                                 OTEL_BLRP_SCHEDULE_DELAY="600000"))
        trace_id = httpx.post(f"{agent.url}/v1/chat", timeout=10,
                              json={"thread_id": "flush", "message": "hello"}
                              ).headers["X-Trace-Id"]
        exported_before_stop = {span.trace_id for span in otlp.spans}
        logged_before_stop = {record.trace_id for record in otlp.logs}

        agent.stop(signal.SIGTERM)

        exported_after_stop = {span.trace_id for span in otlp.spans}
        events_after_stop = [json.loads(record.body)["event"] for record in otlp.logs]
        uvicorn_lines = [json.loads(record.body) for record in otlp.logs
                         if record.scope_name == "uvicorn.error"]
        logged_after_stop = {record.trace_id for record in otlp.logs}

    assert trace_id not in exported_before_stop | logged_before_stop
    assert trace_id in exported_after_stop
    assert trace_id in logged_after_stop
    # The agent's very last line, written after the server stopped, is exported too.
    assert "agent_stopped" in events_after_stop
    # uvicorn's own lines are the same JSON lines, exported the same way.
    startup = [line for line in uvicorn_lines if line["event"] == "Application startup complete."]
    assert [line["level"] for line in startup] == ["info"]


def test_sigterm_stops_the_agent_in_time_when_jaeger_and_loki_do_not_answer(tmp_path) -> None:
    # A socket that listens but never accepts: connections open, requests get no answer.
    with socket.socket() as silent, LoopbackLab(tmp_path) as lab:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        redis = lab.start_redis()
        agent = lab.start_agent(redis, {
            "AGENT_LATENCY_SCALE": "0",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{endpoint}/v1/logs",
        })
        chat = httpx.post(f"{agent.url}/v1/chat", timeout=10,
                          json={"thread_id": "silent", "message": "hello"})

        started = time.monotonic()
        agent.process.send_signal(signal.SIGTERM)
        agent.process.wait(timeout=30)
        stopped_after = time.monotonic() - started

    assert chat.status_code == 200
    # Docker waits 10 s after SIGTERM before it kills a container.
    assert stopped_after < 9, f"the agent took {stopped_after:.1f} s to stop"


@pytest.mark.parametrize("stray", [b"[1, 2]", b'{"reply": 7}', b"\xff not json",
                                   b"[" * 200_000 + b"]" * 200_000])
def test_a_stray_value_in_redis_is_a_miss_not_a_failed_chat(
    loaded_lab: LoadedLab, stray: bytes
) -> None:
    message = f"a question whose cache entry was overwritten ({uuid.uuid4().hex})"
    redis = Redis.from_url(f"redis://{loaded_lab.redis.address}/0")
    redis.set(cache_key(message, "general", bypass=False), stray)
    redis.set("checkpoint:stray-thread", stray)

    answer = httpx.post(f"{loaded_lab.agent.url}/v1/chat", timeout=10, json={
        "thread_id": "stray-thread", "message": message, "category": "general"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["cached"] is False
