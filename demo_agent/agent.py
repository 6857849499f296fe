"""One simulated agent turn: cache lookup, an LLM call, tool calls, a checkpoint.

Spans follow the guide's shape (agent_execution > llm_call, tool_execution) with the
OpenTelemetry GenAI attribute names, so Jaeger shows what a real deep agent would do.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from demo_agent import instrumentation
from demo_agent.faults import FaultState
from demo_agent.simulator import (
    TIMEOUT_SHARE_OF_FAILURES,
    LlmUsage,
    Tool,
    answer_is_correct,
    lognormal_latency,
    plan_tools,
    simulate_llm_usage,
)
from demo_agent.store import AgentStore, cache_key
from demo_agent.telemetry import start_child_span

log = structlog.get_logger("demo_agent.agent")

SESSION_IDLE_S = 300
ACCURACY_WINDOW = 50
# Threads keep their last turns in the checkpoint, like a real agent's short-term memory.
CHECKPOINT_TURNS = 20


class LlmProviderError(Exception):
    """The simulated provider failed; the API answers 502."""


@dataclass
class ToolCall:
    tool_name: str
    status: str
    duration_ms: int
    error_type: str | None = None


@dataclass
class TurnResult:
    thread_id: str
    category: str
    reply: str
    provider: str
    model: str
    cached: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: list[ToolCall] = field(default_factory=list)
    correct: bool = True


class SessionTracker:
    """Threads seen within the last SESSION_IDLE_S seconds count as active sessions."""

    def __init__(self) -> None:
        # Least recently seen first, so expiry looks only at the threads that went idle
        # instead of scanning every session on every turn.
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def touch(self, thread_id: str, now: float) -> int:
        self._last_seen[thread_id] = now
        self._last_seen.move_to_end(thread_id)
        while self._last_seen:
            oldest, seen = next(iter(self._last_seen.items()))
            if now - seen <= SESSION_IDLE_S:
                break
            del self._last_seen[oldest]
        return len(self._last_seen)


class AccuracyTracker:
    """Rolling share of good feedback over the last ACCURACY_WINDOW ratings per category."""

    def __init__(self) -> None:
        self._ratings: dict[str, deque[bool]] = {}

    def add(self, category: str, good: bool) -> float:
        window = self._ratings.setdefault(category, deque(maxlen=ACCURACY_WINDOW))
        window.append(good)
        return sum(window) / len(window)


class Agent:
    def __init__(self, store: AgentStore, faults: FaultState, tracer: trace.Tracer,
                 latency_scale: float, rng: random.Random | None = None) -> None:
        self.store = store
        self.faults = faults
        self.tracer = tracer
        self.latency_scale = latency_scale
        self.rng = rng or random.Random()
        self.sessions = SessionTracker()
        self.accuracy = AccuracyTracker()

    async def run_turn(self, thread_id: str, message: str, category: str) -> TurnResult:
        started = time.perf_counter()
        with start_child_span(self.tracer, "agent_execution", attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "luminamind",
            "gen_ai.conversation.id": thread_id,
            "luminamind.category": category,
            "luminamind.input_length": len(message),
        }) as span:
            instrumentation.record_active_sessions(self.sessions.touch(thread_id, time.time()))

            history = await self.store.load_checkpoint(thread_id)
            knobs = self.faults.knobs
            key = cache_key(message, category, bypass=knobs.cache_bypass)
            cached = await self.store.cache_get(key)
            if cached is not None:
                result = TurnResult(thread_id=thread_id, category=category, cached=True,
                                    reply=cached["reply"], provider=cached["provider"],
                                    model=cached["model"])
            else:
                result = await self._answer(thread_id, message, category, len(history))
                await self.store.cache_set(key, {"reply": result.reply,
                                                 "provider": result.provider,
                                                 "model": result.model})

            result.correct = answer_is_correct(self.rng, category, knobs.accuracy_drift)
            span.set_attribute("luminamind.cache_hit", result.cached)
            history = [*history, {"user": message, "assistant": result.reply}][-CHECKPOINT_TURNS:]
            await self.store.save_checkpoint(thread_id, history)
            # One info event per turn carries what the per-step debug events say, so the
            # default level costs one log record a turn (logs are exported over OTLP too);
            # the HTTP middleware logs an answered chat only at debug.
            log.info("agent_turn_completed", thread_id=thread_id, category=category,
                     provider=result.provider, model=result.model, cached=result.cached,
                     input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                     tool_calls=len(result.tool_calls),
                     tools_failed=sum(call.status != "success" for call in result.tool_calls),
                     cost_usd=round(result.cost_usd, 6),
                     duration_ms=round((time.perf_counter() - started) * 1000, 1))
            return result

    async def _answer(self, thread_id: str, message: str, category: str,
                      history_turns: int) -> TurnResult:
        usage = await self._call_llm(message, history_turns)
        calls = [await self._execute_tool(tool) for tool in plan_tools(self.rng, message)]
        failed = sum(1 for call in calls if call.status != "success")
        reply = (f"[{usage.model.name}] Answer for a {category} question"
                 f" using {len(calls)} tool(s), {failed} failed.")
        return TurnResult(thread_id=thread_id, category=category, reply=reply, cached=False,
                          provider=usage.model.provider, model=usage.model.name,
                          input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                          cost_usd=usage.cost_usd, tool_calls=calls)

    async def _call_llm(self, message: str, history_turns: int) -> LlmUsage:
        knobs = self.faults.knobs
        usage = simulate_llm_usage(self.rng, message, history_turns,
                                   latency_multiplier=knobs.llm_latency_multiplier,
                                   cost_multiplier=knobs.cost_multiplier)
        model = usage.model
        with start_child_span(
            self.tracer, "llm_call", kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": model.provider,
                        "gen_ai.request.model": model.name},
        ) as span:
            started = time.perf_counter()
            if self.rng.random() < knobs.error_rate:
                await self._sleep(usage.latency_s / 2)
                elapsed = time.perf_counter() - started
                instrumentation.record_llm_call(model.provider, model.name, "error", elapsed)
                span.set_status(Status(StatusCode.ERROR, "provider returned 503"))
                span.set_attribute("error.type", "ProviderUnavailable")
                log.error("llm_call_failed", provider=model.provider, model=model.name,
                          error_type="ProviderUnavailable")
                raise LlmProviderError(f"{model.provider} {model.name} returned 503")
            await self._sleep(usage.latency_s)
            elapsed = time.perf_counter() - started
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            span.set_attribute("gen_ai.response.model", model.name)
            instrumentation.record_llm_call(model.provider, model.name, "success", elapsed,
                                            usage.input_tokens, usage.output_tokens,
                                            usage.cost_usd)
            log.debug("llm_call_completed", provider=model.provider, model=model.name,
                     input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                     duration_ms=round(elapsed * 1000))
            return usage

    async def _execute_tool(self, tool: Tool) -> ToolCall:
        knobs = self.faults.knobs
        with start_child_span(
            self.tracer, "tool_execution",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.name,
                        "gen_ai.tool.type": "function"},
        ) as span:
            started = time.perf_counter()
            failed = self.rng.random() < knobs.tool_failure_rate
            timed_out = failed and self.rng.random() < TIMEOUT_SHARE_OF_FAILURES
            if timed_out:
                await self._sleep(tool.timeout_s)
                status, error_type = "timeout", "TimeoutError"
            else:
                await self._sleep(lognormal_latency(self.rng, tool.median_latency_s))
                status, error_type = ("error", tool.error_type) if failed else ("success", None)
            elapsed = time.perf_counter() - started
            instrumentation.record_tool_call(tool.name, status, elapsed, error_type)
            if error_type is not None:
                span.set_status(Status(StatusCode.ERROR, error_type))
                span.set_attribute("error.type", error_type)
                log.warning("tool_execution_failed", tool_name=tool.name, status=status,
                            error_type=error_type, duration_ms=round(elapsed * 1000))
            else:
                log.debug("tool_executed", tool_name=tool.name, duration_ms=round(elapsed * 1000))
            return ToolCall(tool.name, status, round(elapsed * 1000), error_type)

    async def _sleep(self, seconds: float) -> None:
        if self.latency_scale > 0 and seconds > 0:
            await asyncio.sleep(seconds * self.latency_scale)

    def record_feedback(self, category: str, rating: str) -> float:
        accuracy = self.accuracy.add(category, rating == "good")
        instrumentation.record_feedback(category, rating, accuracy)
        log.info("feedback_recorded", category=category, rating=rating,
                 accuracy=round(accuracy, 4))
        return accuracy


def tool_calls_as_dicts(result: TurnResult) -> list[dict]:
    return [asdict(call) for call in result.tool_calls]
