"""The agent's HTTP API: chat, feedback, health, fault knobs and /metrics.

Every request except a scrape of /metrics passes RequestTelemetry, which names it by its
route template (never the raw path, so label values stay bounded), times it, counts it,
wraps it in a span (up to AGENT_TRACES_PER_SECOND new traces a second, sampling.py) and
returns that span's trace id in the X-Trace-Id header.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client import make_asgi_app
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demo_agent import instrumentation
from demo_agent.agent import Agent, LlmProviderError, tool_calls_as_dicts
from demo_agent.faults import (
    FaultKnobs,
    FaultRefused,
    FaultState,
    FaultUpdate,
    describe_validation_errors,
)
from demo_agent.log_export import LogShipper
from demo_agent.metrics import MEMORY_LIMIT, REQUEST_COUNT, REQUEST_LATENCY
from demo_agent.sampling import TraceBudget
from demo_agent.settings import Settings, redact_url
from demo_agent.simulator import CATEGORIES
from demo_agent.store import AgentStore, connect

log = structlog.get_logger("demo_agent.http")

TRACE_HEADER = "X-Trace-Id"
MAX_BODY_BYTES = 64 * 1024
BODY_LIMIT_MESSAGE = f"request bodies are limited to {MAX_BODY_BYTES} bytes"
# Probes run every few seconds; tracing them would bury the interesting traces in Jaeger.
UNTRACED_ROUTES = {"/healthz", "/readyz"}
CHAT_ROUTE = "/v1/chat"
# Scrapes and the API schema are not the agent's traffic: neither metered, traced nor logged.
UNMETERED_PATHS = {"/metrics", "/openapi.json"}
Category = Literal["coding", "research", "general", "data_analysis"]
ThreadId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
assert set(CATEGORIES) == set(Category.__args__)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: ThreadId
    message: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
    category: Category = "general"


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: ThreadId
    category: Category
    rating: Literal["good", "bad"]


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


class RequestTelemetry:
    """ASGI middleware: route-templated request metrics, a server span, X-Trace-Id."""

    def __init__(self, app: ASGIApp, routes_app: FastAPI, tracer: trace.Tracer,
                 budget: TraceBudget) -> None:
        self.app = app
        self.routes_app = routes_app
        self.tracer = tracer
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMETERED_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        endpoint = self._route_template(scope)
        if endpoint is None:
            # Unknown paths (404) and methods a route does not take (405) are answered and
            # logged but never become label values: a scanner sending made-up paths or
            # methods must not be able to create metric series.
            await self.app(scope, receive, send)
            log.info("route_not_found", method=method[:16], path=scope["path"][:200])
            return
        if endpoint in UNTRACED_ROUTES or not self.budget.admit():
            await self._handle(scope, receive, send, method, endpoint, None)
            return
        with self.tracer.start_as_current_span(f"{method} {endpoint}", kind=SpanKind.SERVER,
                                               attributes={"http.request.method": method,
                                                           "http.route": endpoint}) as span:
            await self._handle(scope, receive, send, method, endpoint, span)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, method: str,
                      endpoint: str, span: trace.Span | None) -> None:
        started = time.perf_counter()
        exemplar = instrumentation.current_trace_exemplar()
        status_holder = {"status": 500}

        async def send_with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                if exemplar is not None:
                    headers = list(message.get("headers", []))
                    headers.append((TRACE_HEADER.lower().encode(), exemplar["trace_id"].encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace_id)
        finally:
            status = status_holder["status"]
            duration = time.perf_counter() - started
            if span is not None:
                span.set_attribute("http.response.status_code", status)
            instrumentation.record_request(method, endpoint, status, duration, exemplar)
            log_event = log.debug if self._logged_elsewhere(endpoint, status) else log.info
            log_event("request_handled", method=method, endpoint=endpoint, status=status,
                      duration_ms=round(duration * 1000, 1))

    @staticmethod
    def _logged_elsewhere(endpoint: str, status: int) -> bool:
        """Probes are too frequent to log at info, and an answered chat already has its one
        info event (agent_turn_completed, with everything about the turn): one line per
        chat keeps Loki's volume and the agent's export cost at half."""
        return endpoint in UNTRACED_ROUTES or (endpoint == CHAT_ROUTE and status == 200)

    def _route_template(self, scope: Scope) -> str | None:
        for route in self.routes_app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "path", None)
        return None


class MetricsEndpoint:
    """prometheus-client's exposition as a plain route: a Mount would redirect /metrics."""

    def __init__(self) -> None:
        self.app = make_asgi_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuses bodies over MAX_BODY_BYTES with 413 before any of it is parsed.

    A declared Content-Length is checked up front; a chunked body, which declares none, is
    counted as it arrives and refused as soon as it passes the limit, so a streamed upload
    can never be read into memory whole.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            response = JSONResponse(error_body("payload_too_large", BODY_LIMIT_MESSAGE),
                                    status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise StarletteHTTPException(status_code=413, detail=BODY_LIMIT_MESSAGE)
            return message

        await self.app(scope, counting_receive, send)


# The SDK's own shutdown may wait 30 s for an export a slow Jaeger trickles its answer to.
SPAN_SHUTDOWN_TIMEOUT_S = 3.0


def shutdown_within(shutdown: Callable[[], object], timeout_s: float, what: str) -> bool:
    """Run `shutdown` for at most timeout_s (in a thread left behind if it takes longer),
    so a stopping agent stays within the 10 s Docker gives it; False, and a warning, if
    it did not finish."""
    worker = threading.Thread(target=shutdown, name=f"{what}-shutdown", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        log.warning(f"{what}_unfinished", waited_s=timeout_s)
        return False
    return True


def create_app(settings: Settings, *, tracer_provider: TracerProvider | None = None,
               log_shipper: LogShipper | None = None,
               faults: FaultState | None = None) -> FastAPI:
    instrumentation.set_enabled(settings.instrumentation)
    tracer = (tracer_provider.get_tracer("demo_agent") if tracer_provider is not None
              else trace.NoOpTracer())
    faults = faults or FaultState.from_env_defaults(settings.fault_defaults,
                                                    settings.memory_limit_bytes)
    store = AgentStore(connect(settings.redis_url))
    agent = Agent(store, faults, tracer, settings.latency_scale)
    MEMORY_LIMIT.set(settings.memory_limit_bytes)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("agent_started", host=settings.host, port=settings.port,
                 redis_url=redact_url(settings.redis_url), instrumentation=settings.instrumentation)
        yield
        # Spans of the last requests are still in the batch processor.
        if tracer_provider is not None:
            shutdown_within(tracer_provider.shutdown, SPAN_SHUTDOWN_TIMEOUT_S, "span_export")
        await store.redis.aclose()
        log.info("agent_stopped")
        # Here rather than after uvicorn.run(): on SIGTERM uvicorn ends by raising the signal
        # again, which ends the process before any code after run() could export anything.
        # Limitation: uvicorn's last two lines, after this, are on stdout only.
        if log_shipper is not None:
            log_shipper.shutdown()

    # No Swagger UI: FastAPI's page loads its scripts from a CDN, and the lab works offline.
    # The schema itself is served at /openapi.json.
    app = FastAPI(title="LuminaMind demo agent", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.agent = agent
    app.state.faults = faults
    _add_error_handlers(app)
    _add_routes(app, agent, faults, store, settings)
    app.router.routes.append(Route("/metrics", MetricsEndpoint(), methods=["GET"]))
    # Added last, so outermost: a 413 from BodySizeLimit is still counted and traced.
    app.add_middleware(BodySizeLimit)
    # Without a tracer provider spans are the API's no-ops: nothing to budget.
    budget = TraceBudget(settings.traces_per_second if tracer_provider is not None else 0)
    app.add_middleware(RequestTelemetry, routes_app=app, tracer=tracer, budget=budget)
    if settings.instrumentation:
        _create_request_series()
    return app


# The statuses each route can answer. Their series exist from the start (at zero), so an
# error ratio has a denominator before the first error, and bad input never adds a series.
# Every route can answer 413: BodySizeLimit refuses a large body before routing, even one
# sent to a route that takes none.
ROUTE_STATUSES = {
    ("POST", "/v1/chat"): (200, 400, 413, 422, 500, 502),
    ("POST", "/v1/feedback"): (202, 400, 413, 422, 500),
    ("GET", "/healthz"): (200, 413, 500),
    ("GET", "/readyz"): (200, 413, 500, 503),
    ("GET", "/admin/faults"): (200, 413, 500),
    ("PUT", "/admin/faults"): (200, 400, 413, 422, 500),
    ("DELETE", "/admin/faults"): (200, 413, 500),
}


def _create_request_series() -> None:
    for (method, endpoint), statuses in ROUTE_STATUSES.items():
        REQUEST_LATENCY.labels(method=method, endpoint=endpoint)
        for status in statuses:
            REQUEST_COUNT.labels(method=method, endpoint=endpoint, status=str(status))


def malformed_json() -> JSONResponse:
    return JSONResponse(error_body("malformed_json", "the request body is not valid JSON"),
                        status_code=400)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        if any(item.get("type") == "json_invalid" for item in errors):
            return malformed_json()
        model = BODY_MODELS.get(request.url.path)
        known = list(model.model_fields) if model is not None else []
        message = "; ".join(describe_validation_errors(errors, known_fields=known))
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type:
            # `curl -d` sends form encoding unless told otherwise; the body then never parses.
            message += (f" (the body was sent as {content_type.split(';')[0]}; send JSON with "
                        "content-type: application/json)")
        return JSONResponse(error_body("invalid_request", message), status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        # Starlette still re-raises the error after this answer, so uvicorn logs its
        # traceback as a JSON line; the client gets the API's JSON shape, not plain text.
        return JSONResponse(error_body("internal_error",
                                       f"the agent failed: {type(error).__name__}; "
                                       "its log has the traceback"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and "parsing the body" in str(error.detail):
            # FastAPI's answer to a body that is not even text (invalid UTF-8).
            return malformed_json()
        code = {404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(error.status_code, "http_error")
        # error.headers carries Allow on a 405, which a client needs to correct itself.
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code,
                            headers=error.headers)


# The model of each route's JSON body, so an unknown field's error can list the known ones.
BODY_MODELS: dict[str, type[BaseModel]] = {
    CHAT_ROUTE: ChatRequest, "/v1/feedback": FeedbackRequest, "/admin/faults": FaultUpdate,
}


def _add_routes(app: FastAPI, agent: Agent, faults: FaultState, store: AgentStore,
                settings: Settings) -> None:
    @app.post(CHAT_ROUTE)
    async def chat(body: ChatRequest, request: Request) -> JSONResponse:
        if len(body.message) > settings.max_message_chars:
            return JSONResponse(error_body(
                "message_too_long",
                f"message has {len(body.message)} characters; the limit is "
                f"{settings.max_message_chars} (AGENT_MAX_MESSAGE_CHARS)"), status_code=422)
        trace_id = (instrumentation.current_trace_exemplar() or {}).get("trace_id")
        try:
            result = await agent.run_turn(body.thread_id, body.message, body.category)
        except LlmProviderError as error:
            return JSONResponse(error_body("llm_provider_error", str(error), trace_id=trace_id),
                                status_code=502)
        return JSONResponse({
            "thread_id": result.thread_id,
            "reply": result.reply,
            "provider": result.provider,
            "model": result.model,
            "cached": result.cached,
            "tool_calls": tool_calls_as_dicts(result),
            "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
            "cost_usd": round(result.cost_usd, 8),
            "trace_id": trace_id,
            # The simulator's ground truth, so a load generator can give honest feedback.
            "evaluation": {"category": result.category, "correct": result.correct},
        })

    @app.post("/v1/feedback", status_code=202)
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        accuracy = agent.record_feedback(body.category, body.rating)
        return {"accepted": True, "category": body.category, "accuracy": round(accuracy, 4)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        cause = await store.ping()
        if cause is not None:
            return JSONResponse({"status": "unavailable", "redis": cause}, status_code=503)
        return JSONResponse({"status": "ready", "redis": "ok"})

    @app.get("/admin/faults")
    async def get_faults() -> FaultKnobs:
        return faults.knobs

    @app.put("/admin/faults", response_model=FaultKnobs)
    async def put_faults(change: FaultUpdate) -> FaultKnobs | JSONResponse:
        try:
            knobs = faults.update(change)
        except FaultRefused as error:
            return JSONResponse(error_body("fault_refused", str(error)), status_code=422)
        log.warning("faults_changed", **change.model_dump(exclude_none=True))
        return knobs

    @app.delete("/admin/faults")
    async def reset_faults() -> FaultKnobs:
        knobs = faults.reset()
        log.warning("faults_reset")
        return knobs
