"""The agent's parts without HTTP: settings, fault knobs, simulator, cache key, log context."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from demo_agent.agent import AccuracyTracker, SessionTracker
from demo_agent.app import shutdown_within
from demo_agent.faults import (
    FaultDefaultsError,
    FaultKnobs,
    FaultRefused,
    FaultState,
    FaultUpdate,
    resident_bytes,
)
from demo_agent.settings import Settings, SettingsError
from demo_agent.simulator import MODELS, answer_is_correct, plan_tools
from demo_agent.store import CACHE_TTL_S, CacheSizeTracker, cache_key
from demo_agent.telemetry import add_trace_context
from lab.listen import listen_problem
from lab.loopback import free_port


def test_settings_refuse_a_port_out_of_range_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"AGENT_PORT=70000 is outside 1\.\.65535"):
        Settings.from_env({"AGENT_PORT": "70000"})


def test_settings_refuse_an_unknown_instrumentation_mode() -> None:
    with pytest.raises(SettingsError, match="AGENT_INSTRUMENTATION='maybe' must be one of on, off"):
        Settings.from_env({"AGENT_INSTRUMENTATION": "maybe"})


def test_settings_read_the_log_export_delay_in_milliseconds() -> None:
    assert Settings.from_env({"OTEL_BLRP_SCHEDULE_DELAY": "250"}).log_export_interval_s == 0.25
    with pytest.raises(SettingsError, match="OTEL_BLRP_SCHEDULE_DELAY='1s' is not a whole"):
        Settings.from_env({"OTEL_BLRP_SCHEDULE_DELAY": "1s"})


def test_settings_collect_fault_defaults_from_prefixed_variables() -> None:
    settings = Settings.from_env({"AGENT_FAULT_ERROR_RATE": "0.2", "AGENT_MEMORY_LIMIT_BYTES": "1"})

    assert settings.fault_defaults == {"error_rate": "0.2"}
    assert settings.memory_limit_bytes == 1


def test_fault_default_out_of_range_names_the_variable() -> None:
    with pytest.raises(FaultDefaultsError, match="AGENT_FAULT_ERROR_RATE: Input should be less"):
        FaultState.from_env_defaults({"error_rate": "3"})


def test_memory_ballast_becomes_resident_memory() -> None:
    state = FaultState.from_env_defaults({})
    before = _resident_bytes()

    state.update(FaultUpdate(memory_ballast_mb=64))
    grown = _resident_bytes() - before
    state.reset()

    assert grown >= 60 * 1024 * 1024


def _resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def test_model_cost_is_priced_per_million_tokens() -> None:
    mini = next(model for model in MODELS if model.name == "gpt-4o-mini")

    assert mini.cost_usd(1000, 500) == pytest.approx(0.00045)


def test_model_routing_weights_sum_to_one() -> None:
    assert sum(model.weight for model in MODELS) == pytest.approx(1.0)


def test_tools_follow_the_keywords_of_the_message() -> None:
    tools = plan_tools(random.Random(1), "Search the latest docs and run the code")

    assert [tool.name for tool in tools] == ["web_search", "shell", "code_execution"]


def test_full_accuracy_drift_makes_every_answer_wrong() -> None:
    rng = random.Random(7)

    answers = [answer_is_correct(rng, "coding", accuracy_drift=1.0) for _ in range(200)]

    assert not any(answers)


def test_cache_key_ignores_case_and_spacing_but_not_category() -> None:
    assert cache_key("Hello  World", "general", bypass=False) == cache_key(
        "hello world", "general", bypass=False)
    assert cache_key("hello", "general", bypass=False) != cache_key(
        "hello", "coding", bypass=False)


def test_cache_bypass_makes_every_key_unique() -> None:
    keys = {cache_key("same question", "general", bypass=True) for _ in range(50)}

    assert len(keys) == 50


def test_cache_size_drops_entries_after_their_ttl() -> None:
    tracker = CacheSizeTracker()
    tracker.add("a", 100, now=0.0)

    size = tracker.add("b", 30, now=CACHE_TTL_S + 1)

    assert size == 30


def test_cache_size_counts_a_rewritten_entry_once_and_expires_it_by_its_last_write() -> None:
    tracker = CacheSizeTracker()
    tracker.add("a", 100, now=0.0)
    tracker.add("b", 30, now=10.0)
    tracker.add("a", 50, now=20.0)

    size = tracker.add("c", 5, now=CACHE_TTL_S + 15)

    assert size == 50 + 5


def test_accuracy_is_the_share_of_good_ratings_in_the_last_fifty() -> None:
    tracker = AccuracyTracker()
    for _ in range(50):
        tracker.add("coding", good=False)

    accuracy = [tracker.add("coding", good=True) for _ in range(10)][-1]

    assert accuracy == pytest.approx(10 / 50)


def test_sessions_idle_for_five_minutes_stop_counting() -> None:
    sessions = SessionTracker()
    sessions.touch("old", now=0.0)

    active = sessions.touch("new", now=301.0)

    assert active == 1


def test_a_thread_seen_again_stays_active_while_older_ones_expire() -> None:
    sessions = SessionTracker()
    sessions.touch("a", now=0.0)
    sessions.touch("b", now=100.0)
    sessions.touch("a", now=250.0)

    active = sessions.touch("c", now=401.0)

    assert active == 2


def test_log_events_inside_a_span_get_its_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("agent_execution") as span:
        event = add_trace_context(None, "info", {"event": "tool_executed"})

    context = span.get_span_context()
    assert event["trace_id"] == format(context.trace_id, "032x")
    assert event["span_id"] == format(context.span_id, "016x")


def test_log_events_outside_a_span_get_no_trace_ids() -> None:
    event = add_trace_context(None, "info", {"event": "agent_started"})

    assert "trace_id" not in event


def test_settings_refuse_a_redis_url_without_a_redis_scheme() -> None:
    with pytest.raises(SettingsError, match="AGENT_REDIS_URL='http://x' must start with redis://"):
        Settings.from_env({"AGENT_REDIS_URL": "http://x"})


def test_a_taken_port_is_reported_in_one_line_naming_the_setting() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        problem = listen_problem("127.0.0.1", port, "AGENT_HOST", "AGENT_PORT")

    assert problem is not None and "\n" not in problem
    assert f"cannot listen on 127.0.0.1:{port}" in problem and "AGENT_PORT" in problem


def test_a_free_port_is_no_problem() -> None:
    assert listen_problem("127.0.0.1", free_port(), "AGENT_HOST", "AGENT_PORT") is None


def test_ballast_past_the_memory_limit_is_refused_and_changes_nothing() -> None:
    state = FaultState(FaultKnobs(), memory_limit_bytes=resident_bytes() + 64 * 1024 * 1024)
    before = REGISTRY.get_sample_value("luminamind_fault_setting", {"fault": "error_rate"})

    with pytest.raises(FaultRefused, match=r"memory_ballast_mb=100 would take the agent to"):
        state.update(FaultUpdate(memory_ballast_mb=100, error_rate=0.5))

    assert state.knobs == FaultKnobs()
    assert REGISTRY.get_sample_value("luminamind_fault_setting", {"fault": "error_rate"}) == before


def test_ballast_under_the_ceiling_is_held() -> None:
    state = FaultState(FaultKnobs(), memory_limit_bytes=resident_bytes() + 64 * 1024 * 1024)

    knobs = state.update(FaultUpdate(memory_ballast_mb=16))

    assert knobs.memory_ballast_mb == 16
    state.reset()


def test_settings_refuse_a_redis_url_the_client_cannot_parse_without_showing_its_password() -> None:
    with pytest.raises(SettingsError, match="is not a usable Redis URL") as refused:
        Settings.from_env({"AGENT_REDIS_URL": "redis://:s3cret@127.0.0.1:notaport/0"})

    assert "s3cret" not in str(refused.value)
    assert "redis://:***@127.0.0.1:notaport/0" in str(refused.value)


def test_settings_refuse_an_otlp_endpoint_that_is_not_a_url() -> None:
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_LOGS_ENDPOINT='not a url' must"):
        Settings.from_env({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "not a url"})


def test_settings_refuse_a_port_written_with_an_underscore() -> None:
    with pytest.raises(SettingsError, match="AGENT_PORT='8_000' is not a whole number"):
        Settings.from_env({"AGENT_PORT": "8_000"})


@pytest.mark.parametrize("raw", ["²", "٣", "８０００"])
def test_settings_take_only_ascii_digits_as_a_whole_number(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"AGENT_PORT='{raw}' is not a whole number"):
        Settings.from_env({"AGENT_PORT": raw})


@pytest.mark.parametrize(("endpoint", "reason"), [
    ("http://[::1", "is not a URL"),
    ("http://127.0.0.1:abc/v1/logs", "is not a URL"),
    ("http://127.0.0.1:99999/v1/logs", "is not a URL"),
    ("http://127.0.0.1:0/v1/logs", "with a host"),
])
def test_settings_refuse_an_otlp_endpoint_with_a_port_no_export_could_reach(
        endpoint: str, reason: str) -> None:
    with pytest.raises(SettingsError, match=reason) as refused:
        Settings.from_env({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": endpoint})

    assert "e.g. http://loki:3100/otlp/v1/logs" in str(refused.value)


def test_settings_refuse_a_redis_url_that_is_not_even_a_url() -> None:
    with pytest.raises(SettingsError, match="AGENT_REDIS_URL is not a usable Redis URL"):
        Settings.from_env({"AGENT_REDIS_URL": "redis://[::1"})


def test_a_host_name_the_resolver_cannot_encode_is_a_problem_not_a_crash() -> None:
    problem = listen_problem("a" * 70, free_port(), "AGENT_HOST", "AGENT_PORT")

    assert problem is not None and problem.startswith("AGENT_HOST='aaaa")


def test_settings_refuse_an_empty_service_name() -> None:
    with pytest.raises(SettingsError, match="OTEL_SERVICE_NAME is empty"):
        Settings.from_env({"OTEL_SERVICE_NAME": " "})


def test_settings_refuse_an_otlp_endpoint_whose_host_cannot_be_a_name() -> None:
    with pytest.raises(SettingsError, match="is not a URL"):
        Settings.from_env({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://{'a' * 64}.com/v1/logs"})


def test_settings_refuse_a_whole_number_of_thousands_of_digits_as_out_of_range() -> None:
    with pytest.raises(SettingsError, match=r"AGENT_PORT=9{20}\.\.\. is outside 1\.\.65535"):
        Settings.from_env({"AGENT_PORT": "9" * 5000})


def test_a_shutdown_that_hangs_is_left_behind_after_its_time() -> None:
    release = threading.Event()
    with structlog.testing.capture_logs() as captured:
        finished = shutdown_within(lambda: release.wait(10), 0.1, "span_export")
    release.set()

    assert finished is False
    assert [item["event"] for item in captured] == ["span_export_unfinished"]
