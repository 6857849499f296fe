"""The agent's HTTP API: answers, errors that say what to fix, and bounded metric labels."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from tests.unit.conftest import AppClient

CHAT = {"thread_id": "unit-thread", "message": "search the latest news", "category": "research"}


def series_keys() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in REGISTRY.collect() if family.name.startswith("luminamind_")
        for sample in family.samples
    }


def test_chat_answers_with_the_trace_id_of_its_agent_execution_span(
    client: AppClient, spans: InMemorySpanExporter
) -> None:
    response = client.post("/v1/chat", json=CHAT)

    body = response.json()
    agent_span = next(s for s in spans.get_finished_spans() if s.name == "agent_execution")
    assert response.status_code == 200
    assert response.headers["X-Trace-Id"] == body["trace_id"]
    assert body["trace_id"] == format(agent_span.context.trace_id, "032x")
    assert body["tool_calls"][0]["tool_name"] == "web_search"
    assert body["evaluation"]["category"] == "research"


def test_chat_spans_nest_llm_call_and_tool_execution_in_agent_execution(
    client: AppClient, spans: InMemorySpanExporter
) -> None:
    client.post("/v1/chat", json=CHAT)

    finished = {span.name: span for span in spans.get_finished_spans()}
    agent_span_id = finished["agent_execution"].context.span_id
    assert finished["llm_call"].parent.span_id == agent_span_id
    assert finished["tool_execution"].parent.span_id == agent_span_id
    assert finished["tool_execution"].attributes["gen_ai.tool.name"] == "web_search"
    assert finished["llm_call"].attributes["gen_ai.operation.name"] == "chat"


def test_malformed_json_gets_400_naming_the_problem(client: AppClient) -> None:
    response = client.post("/v1/chat", content=b"{not json",
                           headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_a_body_that_is_not_utf8_is_malformed_json_too(client: AppClient) -> None:
    response = client.post("/v1/chat", content=b'{"thread_id": "\xff\xfe", "message": "x"}',
                           headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_an_empty_body_is_named_as_the_request_body(client: AppClient) -> None:
    response = client.post("/v1/chat", content=b"", headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["message"] == "request body: Field required"


def test_a_form_encoded_body_is_told_to_send_json(client: AppClient) -> None:
    response = client.post("/v1/chat", content=b'{"thread_id": "t", "message": "hi"}',
                           headers={"content-type": "application/x-www-form-urlencoded"})

    assert response.status_code == 422
    assert response.json()["message"].endswith(
        "(the body was sent as application/x-www-form-urlencoded; send JSON with "
        "content-type: application/json)")


def test_missing_field_gets_422_naming_the_field(client: AppClient) -> None:
    response = client.post("/v1/chat", json={"thread_id": "t"})

    assert response.status_code == 422
    assert response.json() == {"error": "invalid_request", "message": "message: Field required"}


def test_unknown_category_gets_422_naming_the_field(client: AppClient) -> None:
    response = client.post("/v1/chat", json={**CHAT, "category": "poetry"})

    assert response.status_code == 422
    assert response.json()["message"].startswith("category:")


def test_message_over_the_limit_gets_422_naming_the_setting(client: AppClient) -> None:
    response = client.post("/v1/chat", json={**CHAT, "message": "x" * 201})

    assert response.status_code == 422
    assert "AGENT_MAX_MESSAGE_CHARS" in response.json()["message"]


def test_body_over_64_kib_gets_413_before_parsing(client: AppClient) -> None:
    response = client.post("/v1/chat", content=b"x" * (64 * 1024 + 1),
                           headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_unknown_route_gets_404_as_json(client: AppClient) -> None:
    response = client.get("/wp-admin/setup.php")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_method_a_route_does_not_take_gets_405_with_allow(client: AppClient) -> None:
    response = client.get("/v1/chat")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


def test_bad_input_creates_no_new_metric_series(client: AppClient) -> None:
    client.post("/v1/chat", json=CHAT)
    before = series_keys()

    client.get("/random/path/1")
    client.get("/random/path/2")
    client.post("/v1/chat", content=b"{", headers={"content-type": "application/json"})
    client.post("/v1/chat", json={"thread_id": "t"})
    client.post("/v1/chat", content=b"x" * 70_000, headers={"content-type": "application/json"})
    client.get("/v1/chat")
    client.put("/admin/faults", json={"error_rate": 7})
    # A body too large for any route, even one that takes none, is refused before routing.
    for method, path in (("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/admin/faults"),
                         ("DELETE", "/admin/faults")):
        refused = client.request(method, path, content=b"x" * 70_000)
        assert refused.status_code == 413

    assert series_keys() == before


def test_fault_out_of_range_gets_422_naming_field_and_bound(client: AppClient) -> None:
    response = client.put("/admin/faults", json={"tool_failure_rate": 1.5})

    assert response.status_code == 422
    assert response.json()["message"] == (
        "tool_failure_rate: Input should be less than or equal to 1")


def test_unknown_fault_knob_is_refused(client: AppClient) -> None:
    response = client.put("/admin/faults", json={"disk_full": True})

    assert response.status_code == 422
    assert response.json()["message"].startswith("disk_full: Extra inputs are not permitted")
    assert "(known: error_rate, llm_latency_multiplier," in response.json()["message"]


@pytest.mark.parametrize(("knob", "value"), [
    ("error_rate", "0.5"), ("error_rate", True), ("cache_bypass", 1), ("memory_ballast_mb", 1.5),
])
def test_fault_values_of_the_wrong_json_type_are_refused_not_converted(
    client: AppClient, knob: str, value: object
) -> None:
    before = client.get("/admin/faults").json()

    response = client.put("/admin/faults", json={knob: value})

    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{knob}: Input should be a valid")
    assert client.get("/admin/faults").json() == before


def test_a_rate_of_nan_is_refused_as_not_finite(client: AppClient) -> None:
    response = client.put("/admin/faults", content=b'{"error_rate": NaN}',
                          headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["message"] == "error_rate: Input should be a finite number"


def test_a_whole_number_is_a_valid_rate(client: AppClient) -> None:
    response = client.put("/admin/faults", json={"error_rate": 1})

    assert response.json()["error_rate"] == 1.0


def test_the_api_schema_is_served_offline_and_unmetered(client: AppClient) -> None:
    before = series_keys()

    schema = client.get("/openapi.json")
    swagger = client.get("/docs")

    assert schema.status_code == 200 and "/v1/chat" in schema.json()["paths"]
    assert swagger.status_code == 404
    assert series_keys() == before


def test_put_changes_only_the_given_knobs_and_delete_restores(client: AppClient) -> None:
    changed = client.put("/admin/faults", json={"error_rate": 0.5}).json()
    restored = client.delete("/admin/faults").json()

    assert changed["error_rate"] == 0.5
    assert changed["tool_failure_rate"] == 0.03
    assert restored["error_rate"] == 0.0


def test_fault_setting_gauge_follows_the_knob(client: AppClient) -> None:
    client.put("/admin/faults", json={"cost_multiplier": 40})

    value = REGISTRY.get_sample_value("luminamind_fault_setting", {"fault": "cost_multiplier"})
    assert value == 40.0


def test_error_rate_one_answers_502_and_counts_the_5xx(client: AppClient) -> None:
    labels = {"method": "POST", "endpoint": "/v1/chat", "status": "502"}
    before = REGISTRY.get_sample_value("luminamind_requests_total", labels)
    client.put("/admin/faults", json={"error_rate": 1})

    response = client.post("/v1/chat", json=CHAT)

    assert response.status_code == 502
    assert response.json()["error"] == "llm_provider_error"
    assert response.json()["trace_id"] == response.headers["X-Trace-Id"]
    assert REGISTRY.get_sample_value("luminamind_requests_total", labels) == before + 1


def test_chat_with_redis_unreachable_still_answers_and_counts_cache_errors(
    client: AppClient,
) -> None:
    labels = {"operation": "get", "result": "error"}
    before = REGISTRY.get_sample_value("luminamind_cache_operations_total", labels) or 0.0

    response = client.post("/v1/chat", json=CHAT)

    assert response.status_code == 200
    assert REGISTRY.get_sample_value("luminamind_cache_operations_total", labels) == before + 1


def test_readyz_names_the_redis_failure(client: AppClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["redis"].startswith("ConnectionError")


def test_feedback_updates_the_category_accuracy(client: AppClient) -> None:
    client.post("/v1/feedback", json={"thread_id": "t", "category": "coding", "rating": "good"})

    response = client.post("/v1/feedback",
                           json={"thread_id": "t", "category": "coding", "rating": "bad"})

    assert response.status_code == 202
    assert REGISTRY.get_sample_value("luminamind_accuracy_score", {"category": "coding"}) == (
        response.json()["accuracy"])


def test_feedback_with_unknown_rating_gets_422(client: AppClient) -> None:
    response = client.post("/v1/feedback",
                           json={"thread_id": "t", "category": "coding", "rating": "meh"})

    assert response.status_code == 422
    assert response.json()["message"].startswith("rating:")


def test_chunked_body_over_64_kib_gets_413_without_reading_it_whole(client: AppClient) -> None:
    async def chunks():  # no Content-Length: sent chunked, as a streamed upload is
        for _ in range(100):
            yield b"x" * 4096

    response = client.post("/v1/chat", content=chunks(),
                           headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_an_unexpected_failure_answers_json_500_and_counts_it(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_turn(*_: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(client.app.state.agent, "run_turn", broken_turn)
    # As a real server does, answer the client instead of raising into the test.
    answering = AppClient(client.app, raise_app_exceptions=False)
    before = series_keys()

    response = answering.post("/v1/chat", json=CHAT)
    answering.close()

    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "RuntimeError" in response.json()["message"]
    assert REGISTRY.get_sample_value("luminamind_requests_total", {
        "method": "POST", "endpoint": "/v1/chat", "status": "500"}) >= 1
    assert series_keys() == before


def test_a_null_knob_is_refused_rather_than_answered_as_a_change(client: AppClient) -> None:
    before = client.get("/admin/faults").json()

    response = client.put("/admin/faults", json={"error_rate": None})

    assert response.status_code == 422
    assert response.json()["message"].startswith("error_rate: null is not a value")
    assert client.get("/admin/faults").json() == before
