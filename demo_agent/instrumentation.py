"""Recording of the agent's metrics in the lab's own terms.

Every metric update goes through a function here, so one switch (AGENT_INSTRUMENTATION=off)
can turn all of it off for the overhead benchmark, and so histogram observations made
inside a span carry that span's trace id as an exemplar.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry import trace
from prometheus_client.metrics import MetricWrapperBase

from demo_agent import metrics

_enabled = True


@functools.cache
def series(metric: MetricWrapperBase, **labels: str) -> Any:
    """The metric's child for these label values, looked up once.

    prometheus-client's labels() validates the values and takes a lock on every call, a
    visible share of a cheap chat's cost when done ten times per request. Every label value
    here is bounded (route templates, tools, models, statuses), so the cache stays small.
    """
    return metric.labels(**labels)


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def is_enabled() -> bool:
    return _enabled


def current_trace_exemplar() -> dict[str, str] | None:
    """{"trace_id": <32 hex>} of the active span, the label Grafana links to Jaeger.

    None for an unsampled request (past AGENT_TRACES_PER_SECOND): its trace was never
    recorded, so neither an exemplar nor the X-Trace-Id header may point to it.
    """
    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return {"trace_id": trace.format_trace_id(context.trace_id)}


def record_request(method: str, endpoint: str, status: int, duration_s: float,
                   exemplar: dict[str, str] | None) -> None:
    if not _enabled:
        return
    series(metrics.REQUEST_COUNT, method=method, endpoint=endpoint, status=str(status)).inc()
    series(metrics.REQUEST_LATENCY, method=method, endpoint=endpoint).observe(duration_s, exemplar)


def record_llm_call(provider: str, model: str, status: str, latency_s: float,
                    input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
    if not _enabled:
        return
    series(metrics.LLM_REQUESTS, provider=provider, model=model, status=status).inc()
    series(metrics.LLM_LATENCY, provider=provider, model=model).observe(
        latency_s, current_trace_exemplar()
    )
    if status != "success":
        return
    series(metrics.LLM_TOKENS, provider=provider, model=model, type="input").inc(input_tokens)
    series(metrics.LLM_TOKENS, provider=provider, model=model, type="output").inc(output_tokens)
    series(metrics.LLM_COST, provider=provider, model=model).inc(cost_usd)


def record_tool_call(tool_name: str, status: str, duration_s: float,
                     error_type: str | None) -> None:
    if not _enabled:
        return
    series(metrics.TOOL_INVOCATIONS, tool_name=tool_name, status=status).inc()
    series(metrics.TOOL_DURATION, tool_name=tool_name).observe(
        duration_s, current_trace_exemplar()
    )
    if error_type is not None:
        series(metrics.TOOL_ERRORS, tool_name=tool_name, error_type=error_type).inc()


def record_cache_operation(operation: str, result: str) -> None:
    if _enabled:
        series(metrics.CACHE_OPERATIONS, operation=operation, result=result).inc()


def record_cache_size(size_bytes: int) -> None:
    if _enabled:
        metrics.CACHE_SIZE.set(size_bytes)


def record_checkpoint(operation: str, backend: str, *, failed: bool, size: int = 0) -> None:
    if not _enabled:
        return
    if failed:
        series(metrics.CHECKPOINT_ERRORS, operation=operation, backend=backend).inc()
        return
    series(metrics.CHECKPOINT_OPERATIONS, operation=operation, backend=backend).inc()
    if operation == "save":
        metrics.CHECKPOINT_SIZE.observe(size)


def record_feedback(category: str, rating: str, accuracy: float) -> None:
    if not _enabled:
        return
    series(metrics.RESPONSE_QUALITY, category=category, rating=rating).inc()
    series(metrics.ACCURACY_SCORE, category=category).set(accuracy)


def record_active_sessions(count: int) -> None:
    if _enabled:
        metrics.ACTIVE_SESSIONS.set(count)
