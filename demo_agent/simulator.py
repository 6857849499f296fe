"""What a real deep agent would spend and return, simulated.

Latencies are log-normal (a long right tail, like real provider latency), token counts grow
with the prompt, prices are per million tokens. No value here calls the outside world.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

CATEGORIES = ("coding", "research", "general", "data_analysis")

# Share of answers that are correct per category before any drift. The guide's target is 95%
# and LowAccuracy fires under 90% of the last 50 ratings; at 98.5% a healthy agent drops that
# low by chance (six bad ratings in fifty) about once in 7,000 windows, so the alert means a
# real drift. At 95 to 97% the same window dipped under 90% now and then on plain traffic.
BASE_ACCURACY = {"coding": 0.985, "research": 0.985, "general": 0.99, "data_analysis": 0.985}


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    median_latency_s: float
    weight: float  # share of turns routed to this model

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok
                + output_tokens * self.output_usd_per_mtok) / 1_000_000


# Prices roughly follow public list prices. The routing weights put the mean cost of a
# turn near $0.0008, so the lab's baseline load (about one uncached turn a second) projects
# to well under the guide's $100/day HighLLMCosts threshold; cost_multiplier crosses it.
MODELS = (
    Model("openai", "gpt-4o-mini", 0.15, 0.60, 0.7, 0.75),
    Model("anthropic", "claude-haiku-4-5", 1.00, 5.00, 0.9, 0.15),
    Model("openai", "gpt-4o", 2.50, 10.00, 1.4, 0.07),
    Model("anthropic", "claude-sonnet-4-5", 3.00, 15.00, 1.8, 0.03),
)


@dataclass(frozen=True)
class Tool:
    name: str
    median_latency_s: float
    timeout_s: float
    error_type: str
    keywords: tuple[str, ...]


TOOLS = (
    Tool("web_search", 0.35, 3.0, "SearchBackendError", ("search", "find", "latest", "news")),
    Tool("shell", 0.15, 2.0, "CommandFailed", ("run", "install", "list", "deploy")),
    Tool("file_read", 0.05, 1.0, "FileNotFound", ("file", "read", "open", "log")),
    Tool("code_execution", 0.6, 4.0, "ExecutionError", ("code", "python", "compute", "plot")),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}

# Of the tool calls that fail, this share fails by running into the tool's timeout.
TIMEOUT_SHARE_OF_FAILURES = 0.2


@dataclass(frozen=True)
class LlmUsage:
    model: Model
    input_tokens: int
    output_tokens: int
    latency_s: float
    cost_usd: float


def lognormal_latency(rng: random.Random, median_s: float, sigma: float = 0.5) -> float:
    return median_s * math.exp(rng.gauss(0.0, sigma))


def choose_model(rng: random.Random) -> Model:
    return rng.choices(MODELS, weights=[model.weight for model in MODELS])[0]


def simulate_llm_usage(
    rng: random.Random,
    message: str,
    history_turns: int,
    *,
    latency_multiplier: float,
    cost_multiplier: float,
) -> LlmUsage:
    model = choose_model(rng)
    # A system prompt, the conversation so far and the new message, at ~4 characters a token.
    input_tokens = 350 + 120 * min(history_turns, 20) + len(message) // 4
    output_tokens = max(16, int(rng.lognormvariate(math.log(180), 0.6)))
    latency = lognormal_latency(rng, model.median_latency_s) * (1 + output_tokens / 800)
    cost = model.cost_usd(input_tokens, output_tokens)
    return LlmUsage(
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_s=latency * latency_multiplier,
        cost_usd=cost * cost_multiplier,
    )


def plan_tools(rng: random.Random, message: str) -> list[Tool]:
    """Tools the agent decides to call: those the message asks for, else a random few."""
    words = message.lower()
    wanted = [tool for tool in TOOLS if any(keyword in words for keyword in tool.keywords)]
    if wanted:
        return wanted
    return rng.sample(TOOLS, k=rng.choices((0, 1, 2), weights=(0.5, 0.35, 0.15))[0])


def answer_is_correct(rng: random.Random, category: str, accuracy_drift: float) -> bool:
    return rng.random() < max(0.0, BASE_ACCURACY[category] - accuracy_drift)
