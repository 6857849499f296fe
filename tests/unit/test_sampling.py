"""Tracing past AGENT_TRACES_PER_SECOND: whole traces dropped, counted, and never linked."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import REGISTRY

from demo_agent.app import create_app
from demo_agent.sampling import TraceBudget
from demo_agent.settings import Settings, SettingsError
from demo_agent.telemetry import add_trace_context
from lab.loopback import free_port
from tests.unit.conftest import AppClient

CHAT = {"thread_id": "sampled-thread", "message": "search the latest news", "category": "research"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def unsampled_total() -> float:
    return REGISTRY.get_sample_value("luminamind_traces_unsampled_total") or 0.0


def test_the_budget_admits_the_rate_then_refuses_and_counts_the_rest() -> None:
    budget = TraceBudget(2.0, clock=FakeClock())
    dropped_before = unsampled_total()

    decisions = [budget.admit() for _ in range(3)]

    assert decisions == [True, True, False]
    assert unsampled_total() == dropped_before + 1


def test_the_budget_earns_back_a_trace_as_time_passes() -> None:
    clock = FakeClock()
    budget = TraceBudget(2.0, clock=clock)
    for _ in range(2):
        budget.admit()

    clock.now += 0.25
    too_early = budget.admit()
    clock.now += 0.25

    assert not too_early
    assert budget.admit()


def test_a_rate_under_one_a_second_still_admits_a_trace_now_and_then() -> None:
    clock = FakeClock()
    budget = TraceBudget(0.5, clock=clock)

    first = budget.admit()
    clock.now += 1.0
    too_early = budget.admit()
    clock.now += 1.0

    assert first and not too_early
    assert budget.admit()


def test_a_rate_of_zero_traces_everything_and_counts_nothing() -> None:
    budget = TraceBudget(0, clock=FakeClock())
    dropped_before = unsampled_total()

    assert all(budget.admit() for _ in range(1000))
    assert unsampled_total() == dropped_before


def test_settings_refuse_a_negative_trace_rate() -> None:
    with pytest.raises(SettingsError, match="AGENT_TRACES_PER_SECOND=-1.0 is outside"):
        Settings.from_env({"AGENT_TRACES_PER_SECOND": "-1"})


def test_a_chat_past_the_rate_is_answered_untraced_and_links_to_no_trace() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", latency_scale=0.0,
                        traces_per_second=1.0)
    client = AppClient(create_app(settings, tracer_provider=provider))
    try:
        first = client.post("/v1/chat", json=CHAT)
        traced_spans = len(spans.get_finished_spans())
        second = client.post("/v1/chat", json=CHAT)
    finally:
        client.close()

    assert first.headers["X-Trace-Id"] == first.json()["trace_id"]
    assert second.status_code == 200
    assert "X-Trace-Id" not in second.headers
    assert second.json()["trace_id"] is None
    assert len(spans.get_finished_spans()) == traced_spans


def test_log_events_of_an_untraced_request_name_no_trace() -> None:
    # An unsampled span: valid ids, but no trace anyone can open.
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with tracer.start_as_current_span("dropped"):
        event = add_trace_context(None, "info", {"event": "agent_turn_completed"})

    assert "trace_id" not in event and "span_id" not in event
