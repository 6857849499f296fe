"""Locust users that some scenarios need on top of the baseline AgentUser.

Most scenarios trip their alert with ordinary traffic (AgentUser) and a fault knob. Two
alerts need traffic of a particular shape: ToolFailureSpike needs many tool calls a second,
LowAccuracy needs feedback on every answer. Both users keep asking the popular prompts too,
so the cache hit rate stays healthy and LowCacheHitRate is not tripped on the side.

    locust -f loadgen/scenario_users.py --headless -u 20 -r 10 -t 2m \
        --host http://127.0.0.1:8000 ToolHeavyUser
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import FastHttpUser, between, constant, task

from loadgen.locustfile import AgentUser, post_chat, post_feedback
from loadgen.prompts import PROMPT_POOL

__all__ = ["AgentUser", "HonestRaterUser", "ToolHeavyUser"]

# Keywords the agent maps to its two quickest tools (shell, file_read): every tool-heavy
# turn makes two tool calls whose timeouts are short, so a failing tool adds seconds at most
# and the spike does not also trip HighLatency.
TOOL_HEAVY_PROMPT = "Read the log file and run the checks, then list what failed"
# Three favourites asked between tool-heavy turns: they are answered from the cache, which
# holds the hit rate near two thirds while every tool-heavy prompt is a miss.
POPULAR_PROMPTS = PROMPT_POOL[:3]
# Threads are short, like the baseline's: the agent sends a thread's history with every
# turn, so endless threads would inflate token counts and cost far beyond normal traffic.
TURNS_PER_THREAD = 5


class ScenarioUser(FastHttpUser):
    abstract = True

    def on_start(self) -> None:
        self.rng = random.Random()
        self.turns = 0
        self.thread_id = ""

    def chat(self, message: str, category: str) -> dict[str, Any] | None:
        """One turn; None when the agent answered anything but 200."""
        if self.turns % TURNS_PER_THREAD == 0:
            self.thread_id = f"scenario-{uuid.uuid4().hex[:12]}"
        self.turns += 1
        return post_chat(self.client, self.thread_id, message, category)

    def ask_popular(self) -> None:
        category, prompt = self.rng.choice(POPULAR_PROMPTS)
        self.chat(prompt, category)


class ToolHeavyUser(ScenarioUser):
    """Back-to-back turns that each call two tools, with popular questions in between."""

    wait_time = constant(0)

    @task
    def tool_heavy_turn(self) -> None:
        # A unique suffix keeps the turn out of the cache, so its tools really run.
        self.chat(f"{TOOL_HEAVY_PROMPT} (job #{self.rng.randrange(10**9)})", "coding")
        self.ask_popular()
        self.ask_popular()


class HonestRaterUser(ScenarioUser):
    """Rates every answer by the simulator's verdict, spread evenly over the categories."""

    wait_time = between(0.2, 0.6)

    @task
    def rated_turn(self) -> None:
        category, prompt = self.rng.choice(PROMPT_POOL)
        answer = self.chat(prompt, category)
        if answer is not None:
            post_feedback(self.client, self.thread_id, answer)
