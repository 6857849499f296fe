"""The agent's OTLP log export: batches, a bounded queue, retries, and nothing lost unseen."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog
from prometheus_client import REGISTRY

from demo_agent.log_export import ExportRefused, HttpPoster, LogShipper, resource_of
from lab.otlp_receiver import OtlpReceiver, decode_logs

RESOURCE = resource_of({"service.name": "luminamind", "telemetry.sdk.language": "python"})


class Endpoint:
    """What the shipper posts, kept to be decoded; answers with `failure` while it is set."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.failure: Exception | None = None

    def __call__(self, body: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.bodies.append(body)

    def batches(self) -> list[list[str]]:
        return [[record.body for record in decode_logs(body)] for body in self.bodies]

    def lines(self) -> list[str]:
        return [line for batch in self.batches() for line in batch]


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("luminamind_log_records_dropped_total",
                                     {"reason": reason}) or 0.0


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
def shipper(endpoint: Endpoint) -> Iterator[LogShipper]:
    # An interval no test waits for: each test flushes in its own thread.
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600, max_queue=4, max_batch=3)
    yield shipper
    shipper.shutdown()


def submit_lines(shipper: LogShipper, *lines: str) -> None:
    for line in lines:
        shipper.submit("demo_agent.agent", "info", line)


def test_lines_are_sent_in_batches_of_at_most_max_batch_in_order(
        shipper: LogShipper, endpoint: Endpoint) -> None:
    submit_lines(shipper, "a", "b", "c", "d")

    assert shipper.flush()

    assert endpoint.lines() == ["a", "b", "c", "d"]
    assert max(len(batch) for batch in endpoint.batches()) <= 3


def test_lines_that_arrive_during_an_export_wait_for_the_next_round(
        endpoint: Endpoint) -> None:
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600)
    post = endpoint.__call__

    def post_while_lines_arrive(body: bytes) -> None:
        post(body)
        if len(endpoint.bodies) <= 3:
            submit_lines(shipper, f"arrived during post {len(endpoint.bodies)}")

    shipper._post = post_while_lines_arrive  # noqa: SLF001 (lines arriving mid-export)
    try:
        submit_lines(shipper, "queued")
        shipper.flush()
        posts_of_first_flush = len(endpoint.bodies)
        shipper.flush()
    finally:
        shipper._post = post  # noqa: SLF001
        shipper.shutdown()

    # Without a snapshot of the queue, one flush would chase the lines that keep arriving.
    assert posts_of_first_flush == 1
    assert endpoint.lines()[:2] == ["queued", "arrived during post 1"]


def test_a_full_queue_drops_its_oldest_lines_and_counts_them(
        shipper: LogShipper, endpoint: Endpoint) -> None:
    before = dropped("queue_full")

    submit_lines(shipper, "1", "2", "3", "4", "5", "6")
    shipper.flush()

    assert endpoint.lines() == ["3", "4", "5", "6"]
    assert dropped("queue_full") == before + 2


def test_an_unreachable_endpoint_keeps_the_batch_for_the_next_attempt(
        shipper: LogShipper, endpoint: Endpoint) -> None:
    endpoint.failure = ConnectionRefusedError("connection refused")
    submit_lines(shipper, "kept-1", "kept-2")

    assert not shipper.flush()
    endpoint.failure = None
    submit_lines(shipper, "later")
    assert shipper.flush()

    assert endpoint.lines() == ["kept-1", "kept-2", "later"]


def test_a_refused_batch_is_dropped_counted_and_the_next_one_still_goes(
        shipper: LogShipper, endpoint: Endpoint) -> None:
    before = dropped("refused")
    endpoint.failure = ExportRefused("HTTP 400: bad request")
    submit_lines(shipper, "refused-1", "refused-2")

    assert shipper.flush()
    endpoint.failure = None
    submit_lines(shipper, "next")
    shipper.flush()

    assert endpoint.lines() == ["next"]
    assert dropped("refused") == before + 2


def test_export_failures_are_logged_when_they_start_and_when_they_end(
        endpoint: Endpoint) -> None:
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600)
    try:
        with structlog.testing.capture_logs() as captured:
            endpoint.failure = ConnectionRefusedError("connection refused")
            submit_lines(shipper, "x")
            shipper.flush()
            shipper.flush()
            endpoint.failure = None
            shipper.flush()
    finally:
        shipper.shutdown()

    assert [(item["event"], item["log_level"]) for item in captured] == [
        ("log_export_failing", "warning"), ("log_export_recovered", "info")]
    assert captured[1]["failed_attempts"] == 2


def test_a_run_of_refusals_is_logged_once_so_the_log_line_cannot_feed_itself(
        endpoint: Endpoint) -> None:
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600)
    endpoint.failure = ExportRefused("HTTP 400: structured metadata is disabled")
    try:
        with structlog.testing.capture_logs() as captured:
            for round_ in range(3):
                submit_lines(shipper, f"line {round_}")
                shipper.flush()
            endpoint.failure = None
            submit_lines(shipper, "taken")
            shipper.flush()
    finally:
        shipper.shutdown()

    assert [item["event"] for item in captured] == ["log_export_refused",
                                                    "log_export_recovered"]
    assert endpoint.lines() == ["taken"]


def test_the_backoff_stays_at_its_ceiling_however_long_the_endpoint_is_down(
        shipper: LogShipper, endpoint: Endpoint) -> None:
    endpoint.failure = ConnectionRefusedError("connection refused")
    submit_lines(shipper, "waiting")
    delays = []
    for _ in range(1100):
        shipper.flush()
        delays.append(shipper._next_delay())  # noqa: SLF001 (the worker's next wait)

    assert max(delays) == delays[-1] == 30.0
    endpoint.failure = None
    assert shipper.flush()
    assert endpoint.lines() == ["waiting"]


def test_lines_an_unreachable_endpoint_never_got_are_named_at_shutdown(
        endpoint: Endpoint) -> None:
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600)
    endpoint.failure = ConnectionRefusedError("connection refused")
    submit_lines(shipper, "a", "b")

    with structlog.testing.capture_logs() as captured:
        shipper.shutdown()

    unfinished = [item for item in captured if item["event"] == "log_export_unfinished"]
    assert [item["lines_not_sent"] for item in unfinished] == [2]


def test_shutdown_sends_what_is_still_queued(endpoint: Endpoint) -> None:
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600)
    submit_lines(shipper, "last words")

    shipper.shutdown()

    assert endpoint.lines() == ["last words"]


def test_shutdown_gives_up_on_an_endpoint_that_hangs_and_says_so() -> None:
    release = threading.Event()
    shipper = LogShipper(lambda body: release.wait(10), RESOURCE, interval_s=3600)
    submit_lines(shipper, "stuck")
    try:
        with structlog.testing.capture_logs() as captured:
            started = time.monotonic()
            shipper.shutdown(timeout_s=0.2)
            waited = time.monotonic() - started
    finally:
        release.set()

    assert waited < 2
    assert [(item["event"], item["lines_not_sent"]) for item in captured] == [
        ("log_export_unfinished", 1)]


def test_the_worker_sends_a_full_batch_without_waiting_for_the_interval(
        endpoint: Endpoint) -> None:
    shipper = LogShipper(endpoint, RESOURCE, interval_s=3600, max_batch=2)
    delivered = threading.Event()
    post = endpoint.__call__

    def post_and_signal(body: bytes) -> None:
        post(body)
        delivered.set()

    shipper._post = post_and_signal  # noqa: SLF001 (observe the worker's own post)
    try:
        submit_lines(shipper, "one", "two")
        assert delivered.wait(5)
    finally:
        shipper.shutdown()

    assert endpoint.lines() == ["one", "two"]


def test_lines_reach_a_real_otlp_http_endpoint_with_their_resource() -> None:
    with OtlpReceiver() as receiver:
        shipper = LogShipper(HttpPoster(receiver.logs_endpoint), RESOURCE, interval_s=3600)
        shipper.submit("demo_agent.http", "warning", '{"event": "x"}',
                       0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7)
        shipper.shutdown()

        [record] = receiver.logs

    assert (record.body, record.severity_text, record.scope_name, record.service_name) == (
        '{"event": "x"}', "WARNING", "demo_agent.http", "luminamind")
    assert record.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert record.span_id == "00f067aa0ba902b7"


class StatusHandler(BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (the name http.server dispatches on)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.status)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"because")

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize(("status", "error"), [(400, ExportRefused), (413, ExportRefused),
                                               (429, OSError), (503, OSError)])
def test_the_poster_tells_a_refusal_from_a_failure_worth_retrying(
        status: int, error: type[Exception]) -> None:
    handler = type("Handler", (StatusHandler,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(error, match=f"HTTP {status}: because"):
            HttpPoster(f"http://127.0.0.1:{server.server_port}/otlp/v1/logs")(b"")
    finally:
        server.shutdown()
        server.server_close()


def test_the_poster_reports_an_unreachable_endpoint_as_retryable() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StatusHandler)
    port = server.server_port
    server.server_close()

    with pytest.raises(OSError):
        HttpPoster(f"http://127.0.0.1:{port}/v1/logs", timeout_s=2)(b"")


def test_the_poster_refuses_an_endpoint_whose_host_cannot_be_encoded() -> None:
    with pytest.raises(ExportRefused, match="not a usable name"):
        HttpPoster(f"http://{'a' * 64}.com/v1/logs")(b"")


def test_a_batch_that_fails_unexpectedly_is_dropped_once_logged_and_the_next_still_goes(
        shipper: LogShipper, endpoint: Endpoint) -> None:
    before = dropped("refused")
    endpoint.failure = RuntimeError("cannot encode")

    with structlog.testing.capture_logs() as captured:
        submit_lines(shipper, "bad-1")
        assert shipper.flush()
        submit_lines(shipper, "bad-2")
        assert shipper.flush()
    endpoint.failure = None
    submit_lines(shipper, "next")
    shipper.flush()

    assert [item["event"] for item in captured] == ["log_export_crashed"]
    assert captured[0]["exc_info"] is True
    assert dropped("refused") == before + 2
    assert endpoint.lines() == ["next"]
