"""Logs and traces of the agent: structlog to stdout and OTLP, spans to OTLP.

Log events pass one visible processor chain that ends in a JSON line. The lab's own parts
are a processor that adds the active trace and span ids, and the logger at the end of the
chain, which prints that line on stdout and, when an OTLP logs endpoint is set, hands the
very same line to the log exporter (log_export.py; Loki in the compose stack). uvicorn's and
the standard library's records take the same way (ExportingStreamHandler), so what
`docker compose logs` shows is what Loki stores.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from demo_agent.log_export import SEVERITY, HttpPoster, LogShipper, resource_of
from demo_agent.settings import Settings, redact_url

TRACER_NAME = "demo_agent"
SPAN_EXPORT_TIMEOUT_S = 3.0


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


class AgentLogger(structlog.PrintLogger):
    """The end of the chain: prints each rendered JSON line and exports it over OTLP.

    The record's body is the line itself, so Loki holds exactly what stdout shows and
    `| json` in LogQL reads every field. Its severity comes from the level the event was
    logged at, its scope is this logger's name, and its trace and span ids are those of the
    active span when that span is recorded (the ones add_trace_context put in the line).
    The line is not split into one attribute per field: encoding a dozen attributes per
    record cost the agent more than every metric it records.
    """

    def __init__(self, file: TextIO, name: str, shipper: LogShipper | None) -> None:
        super().__init__(file)
        self.name = name
        self._shipper = shipper

    def _write(self, level: str, line: str) -> None:
        super().msg(line)
        if self._shipper is not None:
            export_line(self._shipper, self.name, level, line)

    # structlog calls the method named after the event's level with the rendered line.
    debug = functools.partialmethod(_write, "debug")
    info = functools.partialmethod(_write, "info")
    warning = functools.partialmethod(_write, "warning")
    error = functools.partialmethod(_write, "error")
    critical = functools.partialmethod(_write, "critical")
    # PrintLogger's other names for the same methods, so none of them skips the export.
    warn = warning
    err = exception = error
    fatal = failure = critical
    log = msg = info


def export_line(shipper: LogShipper, scope: str, level: str, line: str) -> None:
    """Hand a printed line to the exporter with the ids of the active span, if recorded."""
    context = trace.get_current_span().get_span_context()
    if context.trace_flags.sampled:
        shipper.submit(scope, level, line, context.trace_id, context.span_id)
    else:
        # An unsampled request's ids lead to no trace: its lines name none.
        shipper.submit(scope, level, line)


class ExportingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Standard-library records (uvicorn's start and stop, invalid HTTP requests, the
    traceback of an unhandled error, the OpenTelemetry SDK's export errors): printed as
    JSON lines like the agent's own events, and exported the same way."""

    def __init__(self, stream: TextIO, shipper: LogShipper | None) -> None:
        super().__init__(stream)
        self._shipper = shipper

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:
            self.handleError(record)
            return
        if self._shipper is not None:
            level = record.levelname.lower()
            export_line(self._shipper, record.name, level if level in SEVERITY else "info", line)


class AgentLoggerFactory:
    """structlog.get_logger(name) gets an AgentLogger of that name, exporting through
    `shipper` when there is one."""

    def __init__(self, shipper: LogShipper | None) -> None:
        self._shipper = shipper

    def __call__(self, *args: Any) -> AgentLogger:
        name = str(args[0]) if args else TRACER_NAME
        return AgentLogger(sys.stdout, name, self._shipper)


def event_enrichers() -> list[Any]:
    """What every event gets before it is rendered: context, level, logger, time, trace."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]


def event_processors() -> list[Any]:
    """The agent's whole chain, ending in the JSON line that AgentLogger prints and exports."""
    return [
        *event_enrichers(),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]


def configure_logging(settings: Settings, log_shipper: LogShipper | None) -> None:
    """structlog for the agent's events, and the same JSON shape for uvicorn's own lines."""
    level = getattr(logging, settings.log_level.upper())
    structlog.configure(
        processors=event_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=AgentLoggerFactory(log_shipper),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(level, stdlib_handler(sys.stdout, log_shipper))


def stdlib_handler(stream: TextIO, shipper: LogShipper | None) -> ExportingStreamHandler:
    """The handler of standard-library records: the agent's enrichers, then a JSON line."""
    handler = ExportingStreamHandler(stream, shipper)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=event_enrichers(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    return handler


def _route_stdlib_logging(level: int, handler: logging.Handler) -> None:
    """uvicorn logs through the standard library: its records go through `handler` too,
    so that every line on stdout is also in Loki."""
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Each request is already logged by the agent's middleware, with its trace id.
    logging.getLogger("uvicorn.access").disabled = True


def build_log_shipper(settings: Settings) -> LogShipper | None:
    """OTLP/HTTP log export when OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is set, else None.

    The resource is the spans' own (service.name and the SDK's attributes), so Loki and
    Jaeger name the service alike.
    """
    if not settings.instrumentation or not settings.logs_endpoint:
        return None
    # Limitation: of the OTEL_EXPORTER_OTLP_* variables only the logs endpoint is read; no
    # headers, compression or client certificates, which the local Loki does not need.
    return LogShipper(HttpPoster(settings.logs_endpoint),
                      resource_of(_resource(settings).attributes),
                      interval_s=settings.log_export_interval_s,
                      endpoint=redact_url(settings.logs_endpoint))


def build_tracer_provider(settings: Settings) -> TracerProvider | None:
    """Spans exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.

    Without an endpoint spans are still created, so trace ids reach logs, exemplars and
    the X-Trace-Id header. With instrumentation off, no provider: the API's no-op tracer.
    Past AGENT_TRACES_PER_SECOND new traces a second, requests are not traced: the API's
    middleware decides before it starts a span (sampling.py), so the provider keeps the SDK's
    default sampler.
    """
    if not settings.instrumentation:
        return None
    provider = TracerProvider(resource=_resource(settings))
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        # Each export gives up after this long on a Jaeger that does not answer, so the
        # last one fits in the 3 s the agent's shutdown gives the span flush (app.py).
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(timeout=SPAN_EXPORT_TIMEOUT_S)))
    return provider


def _resource(settings: Settings) -> Resource:
    return Resource.create({SERVICE_NAME: settings.service_name})


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def start_child_span(tracer: trace.Tracer, name: str,
                     **options: Any) -> AbstractContextManager[trace.Span]:
    """A span under the active one, or no span at all when the active one is not recorded.

    The sampler would drop the children of an unrecorded request anyway (ParentBased), but
    only after building, attaching and ending each of them: for a chat with no simulated
    latency that is more work than the chat's own steps. Skipping them changes nothing
    anyone can see, since an unrecorded request names no trace anywhere.
    """
    if not trace.get_current_span().is_recording():
        return nullcontext(trace.INVALID_SPAN)
    return tracer.start_as_current_span(name, **options)
