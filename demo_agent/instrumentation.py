"""Recording of the agent's metrics in the lab's own terms.

Every metric update goes through a function here, so one switch (AGENT_INSTRUMENTATION=off)
can turn all of it off for the overhead benchmark, and so histogram observations made
inside a span carry that span's trace id as an exemplar.
"""

from __future__ import annotations

from opentelemetry import trace

from demo_agent import metrics

_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def is_enabled() -> bool:
    return _enabled


def current_trace_exemplar() -> dict[str, str] | None:
    """{"trace_id": <32 hex>} of the active span, the label Grafana links to Jaeger."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return {"trace_id": trace.format_trace_id(context.trace_id)}


def record_request(method: str, endpoint: str, status: int, duration_s: float,
                   exemplar: dict[str, str] | None) -> None:
    if not _enabled:
        return
    metrics.REQUEST_COUNT.labels(method=method, endpoint=endpoint, status=str(status)).inc()
    metrics.REQUEST_LATENCY.labels(method=method, endpoint=endpoint).observe(duration_s, exemplar)


def record_llm_call(provider: str, model: str, status: str, latency_s: float,
                    input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
    if not _enabled:
        return
    metrics.LLM_REQUESTS.labels(provider=provider, model=model, status=status).inc()
    metrics.LLM_LATENCY.labels(provider=provider, model=model).observe(
        latency_s, current_trace_exemplar()
    )
    if status != "success":
        return
    metrics.LLM_TOKENS.labels(provider=provider, model=model, type="input").inc(input_tokens)
    metrics.LLM_TOKENS.labels(provider=provider, model=model, type="output").inc(output_tokens)
    metrics.LLM_COST.labels(provider=provider, model=model).inc(cost_usd)


def record_tool_call(tool_name: str, status: str, duration_s: float,
                     error_type: str | None) -> None:
    if not _enabled:
        return
    metrics.TOOL_INVOCATIONS.labels(tool_name=tool_name, status=status).inc()
    metrics.TOOL_DURATION.labels(tool_name=tool_name).observe(
        duration_s, current_trace_exemplar()
    )
    if error_type is not None:
        metrics.TOOL_ERRORS.labels(tool_name=tool_name, error_type=error_type).inc()


def record_cache_operation(operation: str, result: str) -> None:
    if _enabled:
        metrics.CACHE_OPERATIONS.labels(operation=operation, result=result).inc()


def record_cache_size(size_bytes: int) -> None:
    if _enabled:
        metrics.CACHE_SIZE.set(size_bytes)


def record_checkpoint(operation: str, backend: str, *, failed: bool, size: int = 0) -> None:
    if not _enabled:
        return
    if failed:
        metrics.CHECKPOINT_ERRORS.labels(operation=operation, backend=backend).inc()
        return
    metrics.CHECKPOINT_OPERATIONS.labels(operation=operation, backend=backend).inc()
    if operation == "save":
        metrics.CHECKPOINT_SIZE.observe(size)


def record_feedback(category: str, rating: str, accuracy: float) -> None:
    if not _enabled:
        return
    metrics.RESPONSE_QUALITY.labels(category=category, rating=rating).inc()
    metrics.ACCURACY_SCORE.labels(category=category).set(accuracy)


def record_active_sessions(count: int) -> None:
    if _enabled:
        metrics.ACTIVE_SESSIONS.set(count)
