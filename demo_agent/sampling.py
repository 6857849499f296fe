"""Which requests are traced: all of them, up to a rate (AGENT_TRACES_PER_SECOND).

Lab traffic (a few chats a second, a few dozen in the busiest scenario) stays far below the
default of 100 traces a second, so every request of it is traced. The integration tier runs
with latency off and goes past it, which its tests use: only recorded traces may be named.
Under a flood, recording and exporting every span would cost the agent a large part of its
throughput; past the rate a request is answered without a span at all, and the requests
left untraced are counted in luminamind_traces_unsampled_total rather than lost silently.

The decision is taken before the request's root span would be started, not by an
OpenTelemetry sampler: a sampler that drops a span runs only after the SDK has made ids and
a context for it, and for a chat with no simulated latency that work alone was a tenth of
the chat. A request left untraced has no active span, so its steps start none either
(telemetry.start_child_span) and a trace is kept or dropped whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from demo_agent.metrics import TRACES_UNSAMPLED


class TraceBudget:
    """A token bucket of `per_second` new traces a second, with a burst of one second (at
    least one trace); a rate of 0 or less admits every request.

    Called from the event loop only, so it takes no lock.
    """

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_second
        # Room for at least one token, so a rate under one a second still admits a trace
        # every 1/per_second seconds.
        self._capacity = max(1.0, per_second)
        self._clock = clock
        self._tokens = self._capacity
        self._updated = clock()

    def admit(self) -> bool:
        """True when this request may be traced; False (and counted) past the rate."""
        if self._per_second <= 0:
            return True
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now
        if self._tokens < 1.0:
            TRACES_UNSAMPLED.inc()
            return False
        self._tokens -= 1.0
        return True
