"""An OTLP/HTTP endpoint that keeps what it receives, decoded with the official protobufs.

The integration tests point the agent's span and log exporters here to read what the agent
really sent over the wire, the same bytes Jaeger and Loki would get. It speaks only the
protobuf encoding the Python exporters use, on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service_name: str
    attributes: dict[str, Any]
    status_code: int


@dataclass(frozen=True)
class ReceivedLog:
    trace_id: str
    span_id: str
    body: str
    severity_text: str
    service_name: str
    scope_name: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                ReceivedSpan(
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(), name=span.name,
                    service_name=service, attributes=_attributes(span.attributes),
                    status_code=span.status.code,
                )
                for span in scope_spans.spans
            )
    return spans


def decode_logs(body: bytes) -> list[ReceivedLog]:
    request = ExportLogsServiceRequest.FromString(body)
    records = []
    for resource_logs in request.resource_logs:
        service = _attributes(resource_logs.resource.attributes).get("service.name", "")
        for scope_logs in resource_logs.scope_logs:
            records.extend(
                ReceivedLog(
                    trace_id=record.trace_id.hex(), span_id=record.span_id.hex(),
                    body=str(_value(record.body)), severity_text=record.severity_text,
                    service_name=service, scope_name=scope_logs.scope.name,
                    attributes=_attributes(record.attributes),
                )
                for record in scope_logs.log_records
            )
    return records


@dataclass
class Received:
    spans: list[ReceivedSpan] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OtlpReceiver:
    """Serves POST /v1/traces and /v1/logs on a loopback port until close()."""

    def __init__(self) -> None:
        self.received = Received()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self.received))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def traces_endpoint(self) -> str:
        return self.url + TRACES_PATH

    @property
    def logs_endpoint(self) -> str:
        return self.url + LOGS_PATH

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self.received.lock:
            return list(self.received.spans)

    @property
    def logs(self) -> list[ReceivedLog]:
        with self.received.lock:
            return list(self.received.logs)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(received: Received) -> type[BaseHTTPRequestHandler]:
    class OtlpHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the name http.server dispatches on)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == TRACES_PATH:
                spans = decode_spans(body)
                with received.lock:
                    received.spans.extend(spans)
                self._reply(ExportTraceServiceResponse().SerializeToString())
            elif self.path == LOGS_PATH:
                logs = decode_logs(body)
                with received.lock:
                    received.logs.extend(logs)
                self._reply(ExportLogsServiceResponse().SerializeToString())
            else:
                self.send_error(404, "only /v1/traces and /v1/logs are served")

        def _reply(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            """Quiet: the tests read what arrived, not an access log."""

    return OtlpHandler
