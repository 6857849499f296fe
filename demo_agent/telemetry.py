"""Logs and traces of the agent: structlog to stdout and OTLP, spans to OTLP.

Log events pass one visible processor chain. Two processors are the lab's own: one adds the
active trace and span ids, one hands the event to the OpenTelemetry log pipeline (Loki in
the compose stack) before it is rendered as one JSON line on stdout.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from demo_agent.sampling import build_sampler
from demo_agent.settings import Settings

TRACER_NAME = "demo_agent"
SEVERITY = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
}
# A context whose span is the invalid one: a log record emitted with it carries no trace or
# span id. (An empty Context() would not do: the SDK takes an empty one for "none given" and
# reads the active span instead, an unsampled request's ids that lead to no trace.)
NO_TRACE_CONTEXT = trace.set_span_in_context(trace.INVALID_SPAN)
# Keys the OTLP record carries in its own fields rather than as attributes.
RECORD_FIELDS = {"event", "level", "timestamp", "trace_id", "span_id"}


class NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that remembers the name given to structlog.get_logger(name)."""

    def __init__(self, file: Any, name: str) -> None:
        super().__init__(file)
        self.name = name


def named_print_logger_factory(*args: Any) -> NamedPrintLogger:
    return NamedPrintLogger(sys.stdout, str(args[0]) if args else "demo_agent")


def add_logger_name(logger: Any, _: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


def add_trace_context(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add trace_id and span_id (32 and 16 lowercase hex) while a recorded span is active.

    An unsampled request has ids too, but no trace in Jaeger: a log line names only traces
    that can be opened.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


class OtlpLogForwarder:
    """structlog processor that emits each event as an OpenTelemetry log record.

    The record's body is the event name; the other keys become attributes (Loki stores
    them as structured metadata). The SDK reads the trace context of the active span, when
    add_trace_context found it recorded; an unsampled request's record gets none.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        self._logger = provider.get_logger(TRACER_NAME)

    def __call__(self, _: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        level = event_dict.get("level", method_name)
        self._logger.emit(
            context=None if "trace_id" in event_dict else NO_TRACE_CONTEXT,
            severity_number=SEVERITY.get(level, SeverityNumber.INFO),
            severity_text=level.upper(),
            body=str(event_dict.get("event", "")),
            attributes={
                key: _attribute_value(value)
                for key, value in event_dict.items()
                if key not in RECORD_FIELDS
            },
        )
        return event_dict


def _attribute_value(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def configure_logging(settings: Settings, log_provider: LoggerProvider | None) -> None:
    """structlog for the agent's events, and the same JSON shape for uvicorn's own lines."""
    level = getattr(logging, settings.log_level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]
    forward = [OtlpLogForwarder(log_provider)] if log_provider is not None else []
    structlog.configure(
        processors=[
            *shared,
            *forward,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=named_print_logger_factory,
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(level, shared)


def _route_stdlib_logging(level: int, shared: list[Any]) -> None:
    """uvicorn logs through the standard library: render those records as JSON lines too."""

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Each request is already logged by the agent's middleware, with its trace id.
    logging.getLogger("uvicorn.access").disabled = True


def build_log_provider(settings: Settings) -> LoggerProvider | None:
    """An OTLP/HTTP log pipeline when OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is set, else None."""
    if not settings.instrumentation or not os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"):
        return None
    provider = LoggerProvider(resource=_resource(settings))
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    return provider


def build_tracer_provider(settings: Settings) -> TracerProvider | None:
    """Spans exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.

    Without an endpoint spans are still created, so trace ids reach logs, exemplars and
    the X-Trace-Id header. With instrumentation off, no provider: the API's no-op tracer.
    Past AGENT_TRACES_PER_SECOND new traces a second, requests are not traced (sampling.py).
    """
    if not settings.instrumentation:
        return None
    provider = TracerProvider(resource=_resource(settings),
                              sampler=build_sampler(settings.traces_per_second))
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _resource(settings: Settings) -> Resource:
    return Resource.create({SERVICE_NAME: settings.service_name})


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)
