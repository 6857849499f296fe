"""OTLP/HTTP export of the agent's log lines (Loki in the compose stack).

Every JSON line the agent prints becomes, unchanged, the body of one OTLP log record, with
its level as severity, its logger as the instrumentation scope and, inside a recorded
trace, that trace's ids. A line is queued as one small tuple; a background thread encodes
what is queued into the official protobuf messages (opentelemetry-proto) once per
OTEL_BLRP_SCHEDULE_DELAY, or sooner when a batch is full, and posts it.

Why not the OpenTelemetry SDK's log pipeline: bench/agent_overhead.py measured it. For a chat
with no simulated latency, building an SDK record per line, queueing it and encoding it
again in the batch thread cost more than every metric and span of the chat together, and
the records it held alive made garbage collection run several times as often. Logs are
the lab's own instrumentation, so the lab carries this small exporter instead.

Nothing is dropped silently: a full queue drops its oldest lines and a batch the endpoint
refuses (4xx) is dropped, both counted in luminamind_log_records_dropped_total; an
unreachable endpoint (or a 429 or 5xx answer) keeps the batch and retries it with backoff
while the queue fills, and the agent logs when export starts failing and when it recovers.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber as Severity
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from demo_agent.metrics import LOG_RECORDS_DROPPED

log = structlog.get_logger("demo_agent.log_export")

# The SDK's batch defaults, which the lab has always run with.
MAX_QUEUE = 2048
MAX_BATCH = 512
EXPORT_TIMEOUT_S = 10.0
# Within the 10 s a container gets between SIGTERM and SIGKILL, with the spans' flush.
SHUTDOWN_TIMEOUT_S = 3.0
MAX_BACKOFF_S = 30.0
MAX_BACKOFF_DOUBLINGS = 16
SEVERITY = {
    "debug": Severity.SEVERITY_NUMBER_DEBUG,
    "info": Severity.SEVERITY_NUMBER_INFO,
    "warning": Severity.SEVERITY_NUMBER_WARN,
    "error": Severity.SEVERITY_NUMBER_ERROR,
    "critical": Severity.SEVERITY_NUMBER_FATAL,
}
DROP_REASONS = ("queue_full", "refused")
SAMPLED_FLAG = 0x01
# (time in ns, scope, level, line, trace id, span id); ids are 0 outside a recorded trace.
QueuedLine = tuple[int, str, str, str, int, int]


class ExportRefused(Exception):
    """The endpoint answered with a status that a retry cannot change (4xx but 429)."""


def encode_lines(lines: Iterable[QueuedLine], resource: Resource) -> bytes:
    """One ExportLogsServiceRequest: a ScopeLogs per logger, a LogRecord per line."""
    by_scope: dict[str, list[LogRecord]] = {}
    for time_ns, scope, level, line, trace_id, span_id in lines:
        record = LogRecord(time_unix_nano=time_ns, observed_time_unix_nano=time_ns,
                           severity_number=SEVERITY[level], severity_text=level.upper(),
                           body=AnyValue(string_value=line))
        if trace_id:
            record.trace_id = trace_id.to_bytes(16, "big")
            record.span_id = span_id.to_bytes(8, "big")
            record.flags = SAMPLED_FLAG
        by_scope.setdefault(scope, []).append(record)
    scope_logs = [ScopeLogs(scope=InstrumentationScope(name=name), log_records=records)
                  for name, records in by_scope.items()]
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=scope_logs)])
    return request.SerializeToString()


def resource_of(attributes: Mapping[str, Any]) -> Resource:
    """The OTLP resource for attributes such as the SDK Resource's (service.name, ...)."""
    return Resource(attributes=[KeyValue(key=key, value=_any_value(value))
                                for key, value in attributes.items()])


def _any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


class HttpPoster:
    """POSTs an encoded request to the endpoint: ExportRefused for a 4xx that is not a 429,
    OSError (connection, timeout, 429, 5xx) for what a later retry may fix."""

    def __init__(self, endpoint: str, timeout_s: float = EXPORT_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self._timeout_s = timeout_s
        # The collectors are the lab's own neighbours: never reach them through a proxy
        # that the environment may name for the outside world.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __call__(self, body: bytes) -> None:
        # Limitation: the timeout bounds each socket read, not the whole post, so an endpoint
        # that trickles its answer a byte at a time holds the export up (not the agent's
        # requests, and not its shutdown, which waits at most SHUTDOWN_TIMEOUT_S).
        request = urllib.request.Request(self.endpoint, data=body, method="POST",
                                         headers={"Content-Type": "application/x-protobuf"})
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                response.read()
        except http.client.InvalidURL as error:
            raise ExportRefused(f"the endpoint is not a usable URL: {error}") from None
        except http.client.HTTPException as error:
            # A connection that broke mid-answer: as retryable as one that never opened.
            raise OSError(f"{type(error).__name__}: {error}") from None
        except UnicodeError as error:
            # A host name the resolver cannot encode: no retry will change it.
            raise ExportRefused(f"the endpoint's host is not a usable name: {error}") from None
        except urllib.error.HTTPError as error:
            detail = error.read(200).decode("utf-8", "replace").strip()
            if 400 <= error.code < 500 and error.code != 429:
                raise ExportRefused(f"HTTP {error.code}: {detail}") from None
            raise OSError(f"HTTP {error.code}: {detail}") from None


class LogShipper:
    """Queues log lines from any thread and exports them in batches from its own."""

    def __init__(self, post: Callable[[bytes], None], resource: Resource, *,
                 interval_s: float = 1.0, max_queue: int = MAX_QUEUE,
                 max_batch: int = MAX_BATCH, endpoint: str = "") -> None:
        self._post = post
        self._resource = resource
        self._interval_s = interval_s
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._endpoint = endpoint
        for reason in DROP_REASONS:
            # At zero from the start, so a rate over the counter has a baseline.
            LOG_RECORDS_DROPPED.labels(reason=reason)
        # deque(maxlen) drops the oldest line itself once full; append and popleft are
        # thread-safe, so the request path takes no lock.
        self._queue: deque[QueuedLine] = deque(maxlen=max_queue)
        # A batch that failed and is retried before anything newer.
        self._pending: list[QueuedLine] = []
        self._failures = 0
        self._refusing = False
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-log-export", daemon=True)
        self._thread.start()

    def submit(self, scope: str, level: str, line: str, trace_id: int = 0,
               span_id: int = 0) -> None:
        """Queue one line; called on the request path, so it only appends."""
        queue = self._queue
        if len(queue) == self._max_queue:
            LOG_RECORDS_DROPPED.labels(reason="queue_full").inc()
        queue.append((time.time_ns(), scope, level, line, trace_id, span_id))
        if len(queue) == self._max_batch:
            self._wake.set()

    def flush(self) -> bool:
        """Export everything queued now, in the caller's thread; False if some is left
        for a retry because the endpoint could not be reached."""
        with self._export_lock:
            return self._export_queued()

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """One last export of what is queued, waiting at most timeout_s for it: a stopping
        agent must not hang on an endpoint that does not answer."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._warn_unfinished()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._next_delay())
            self._wake.clear()
            # Stopping is read before the export, so lines that arrive while it runs still
            # get the round after it.
            stopping = self._stopped.is_set()
            self.flush()
            if stopping:
                break
        if self._pending or self._queue:
            self._warn_unfinished()

    def _warn_unfinished(self) -> None:
        log.warning("log_export_unfinished", endpoint=self._endpoint,
                    lines_not_sent=len(self._pending) + len(self._queue))

    def _next_delay(self) -> float:
        if self._failures == 0:
            return self._interval_s
        # The exponent is capped first: 2 ** 1024 is past what a float can hold, and an
        # endpoint can be down for that many attempts (an unattended night).
        return min(self._interval_s * 2 ** min(self._failures, MAX_BACKOFF_DOUBLINGS),
                   MAX_BACKOFF_S)

    def _export_queued(self) -> bool:
        # Only what is queued now: lines arriving meanwhile wait for the next round, so a
        # busy agent sends full batches instead of one small post after another.
        left = len(self._queue)
        while self._pending or left:
            if not self._pending:
                count = min(left, self._max_batch)
                self._pending = [self._queue.popleft() for _ in range(count)]
                left -= count
            if not self._send(self._pending):
                return False
            self._pending = []
        return True

    def _send(self, lines: list[QueuedLine]) -> bool:
        """True when the batch is done with (delivered, or refused and counted)."""
        try:
            self._post(encode_lines(lines, self._resource))
        except ExportRefused as error:
            self._drop_refused(lines, "log_export_refused", error=str(error),
                               note="refused lines are dropped and counted until a batch "
                                    "is taken")
            return True
        except OSError as error:
            if self._failures == 0:
                log.warning("log_export_failing", endpoint=self._endpoint, error=str(error),
                            retry="with backoff; lines are kept while the queue has room")
            self._failures += 1
            return False
        except Exception:
            # A batch that cannot even be encoded would fail forever: drop it like a refused
            # one, and keep the thread alive for the lines after it.
            self._drop_refused(lines, "log_export_crashed", exc_info=True)
            return True
        if self._failures or self._refusing:
            log.info("log_export_recovered", endpoint=self._endpoint,
                     failed_attempts=self._failures)
            self._failures = 0
            self._refusing = False
        return True

    def _drop_refused(self, lines: list[QueuedLine], event: str, **fields: Any) -> None:
        """Count a batch that no retry can deliver, and log it once per run of them: the
        event is itself a line of the next batch, which would be refused in turn."""
        LOG_RECORDS_DROPPED.labels(reason="refused").inc(len(lines))
        if not self._refusing:
            log.error(event, endpoint=self._endpoint, dropped=len(lines), **fields)
        self._refusing = True
