"""Which requests are traced: all of them, up to a rate (AGENT_TRACES_PER_SECOND).

Lab traffic (a few chats a second, a few dozen in the busiest scenario) stays far below the
default of 100 traces a second, so every request of it is traced. The integration tier runs
with latency off and goes past it, which its tests use: only recorded traces may be named.
Under a flood, recording and exporting every span would cost the agent a large part of its
throughput; past the rate a root span is not recorded, as Jaeger's rate-limiting sampler
does. Its children follow it (ParentBased), so a trace is kept or dropped whole, and the
drops are counted in luminamind_traces_unsampled_total rather than lost silently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.util.types import Attributes

from demo_agent.metrics import TRACES_UNSAMPLED


class RateLimitingSampler(Sampler):
    """Keeps root spans while a token bucket of `per_second` tokens (a burst of one second,
    at least one trace) has one to spend: about `per_second` new traces a second at most."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_second
        # Room for at least one token, so a rate under one a second still keeps a trace
        # every 1/per_second seconds.
        self._capacity = max(1.0, per_second)
        self._clock = clock
        self._tokens = self._capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: object = None) -> SamplingResult:
        state = get_current_span(parent_context).get_span_context().trace_state
        if self._take_token():
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        TRACES_UNSAMPLED.inc()
        return SamplingResult(Decision.DROP, None, state)

    def _take_token(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity,
                               self._tokens + (now - self._updated) * self._per_second)
            self._updated = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def get_description(self) -> str:
        return f"RateLimitingSampler{{{self._per_second}/s}}"


def build_sampler(traces_per_second: float) -> Sampler:
    """Every trace when the rate is 0, else at most that many new traces a second."""
    if traces_per_second <= 0:
        return ParentBased(ALWAYS_ON)
    return ParentBased(RateLimitingSampler(traces_per_second))
