"""The agent's log events: one JSON line on stdout, the same line as an OTLP log record."""

from __future__ import annotations

import io
import json
import logging

import structlog
from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from demo_agent.log_export import LogShipper, resource_of
from demo_agent.telemetry import (
    AgentLogger,
    event_processors,
    start_child_span,
    stdlib_handler,
)
from lab.otlp_receiver import ReceivedLog, decode_logs


class CapturedLogs:
    """An agent logger named `demo_agent.agent` writing to a buffer and to a log shipper
    whose posts are kept, to be decoded with the official protobufs."""

    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.bodies: list[bytes] = []
        # The worker thread never wakes on its own; exported() flushes in this thread.
        self.shipper = LogShipper(self.bodies.append, resource_of({"service.name": "test"}),
                                  interval_s=3600)
        self.log = structlog.wrap_logger(
            AgentLogger(self.stdout, "demo_agent.agent", self.shipper),
            processors=event_processors(),
            wrapper_class=structlog.make_filtering_bound_logger(0),
        )

    def lines(self) -> list[str]:
        return self.stdout.getvalue().splitlines()

    def exported(self) -> list[ReceivedLog]:
        self.shipper.shutdown()
        return [record for body in self.bodies for record in decode_logs(body)]

    def severity_numbers(self) -> list[int]:
        return [record.severity_number for body in self.bodies
                for resource in ExportLogsServiceRequest.FromString(body).resource_logs
                for scope in resource.scope_logs for record in scope.log_records]


def test_the_exported_record_body_is_the_line_printed_on_stdout() -> None:
    logs = CapturedLogs()

    logs.log.warning("tool_execution_failed", tool_name="shell", error_type="PermissionError")

    [line] = logs.lines()
    [record] = logs.exported()
    assert record.body == line
    assert json.loads(line) | {"timestamp": "t"} == {
        "event": "tool_execution_failed", "tool_name": "shell", "error_type": "PermissionError",
        "level": "warning", "logger": "demo_agent.agent", "timestamp": "t"}


def test_the_exported_record_has_the_level_as_severity_and_the_logger_as_scope() -> None:
    logs = CapturedLogs()

    logs.log.info("agent_turn_completed")
    logs.log.error("llm_call_failed")
    logs.log.debug("tool_executed")

    records = logs.exported()
    assert [record.severity_text for record in records] == ["INFO", "ERROR", "DEBUG"]
    # OTLP's SeverityNumber: INFO 9, ERROR 17, DEBUG 5.
    assert logs.severity_numbers() == [9, 17, 5]
    assert {record.scope_name for record in records} == {"demo_agent.agent"}
    assert {record.service_name for record in records} == {"test"}


def test_a_record_logged_in_a_recorded_span_carries_its_ids_like_the_line() -> None:
    logs = CapturedLogs()
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("agent_execution") as span:
        logs.log.info("agent_turn_completed")

    [record] = logs.exported()
    line = json.loads(logs.lines()[0])
    assert record.span_id == format(span.get_span_context().span_id, "016x")
    assert record.trace_id == line["trace_id"]
    assert record.span_id == line["span_id"]


def test_a_record_of_an_untraced_request_names_no_trace() -> None:
    logs = CapturedLogs()
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with tracer.start_as_current_span("untraced"):
        logs.log.info("agent_turn_completed")

    [record] = logs.exported()
    assert (record.trace_id, record.span_id) == ("", "")
    assert "trace_id" not in json.loads(logs.lines()[0])


def test_no_record_is_exported_without_a_log_pipeline() -> None:
    stdout = io.StringIO()
    log = structlog.wrap_logger(AgentLogger(stdout, "demo_agent.http", None),
                                processors=event_processors())

    log.info("request_handled", status=404)

    assert json.loads(stdout.getvalue())["status"] == 404


def test_a_standard_library_record_is_printed_and_exported_as_one_json_line() -> None:
    stdout = io.StringIO()
    bodies: list[bytes] = []
    shipper = LogShipper(bodies.append, resource_of({"service.name": "test"}), interval_s=3600)
    logger = logging.getLogger("uvicorn.error.test")
    logger.addHandler(stdlib_handler(stdout, shipper))
    logger.propagate = False
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("Exception in ASGI application")
    finally:
        logger.handlers.clear()
        shipper.shutdown()

    [line] = stdout.getvalue().splitlines()
    [record] = [record for body in bodies for record in decode_logs(body)]
    assert record.body == line
    assert (record.severity_text, record.scope_name) == ("ERROR", "uvicorn.error.test")
    event = json.loads(line)
    assert event["event"] == "Exception in ASGI application"
    assert "RuntimeError: boom" in event["exception"]


def test_no_child_span_is_started_under_an_unrecorded_request() -> None:
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with tracer.start_as_current_span("untraced"), \
            start_child_span(tracer, "agent_execution") as child:
        pass

    assert child is trace.INVALID_SPAN


def test_a_child_span_is_started_under_a_recorded_request() -> None:
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("POST /v1/chat") as parent, \
            start_child_span(tracer, "agent_execution") as child:
        pass

    assert child.name == "agent_execution"
    assert child.parent.span_id == parent.get_span_context().span_id
