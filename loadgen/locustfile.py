"""Baseline traffic: people holding short threads with the agent, sometimes rating answers.

Prompts come from a small pool with a few favourites, as real users repeat common questions,
which is what gives the agent's cache its hits; a share of prompts are one-off. About a
third of answers get feedback, rated by the simulator's own verdict on the answer.

    locust -f loadgen/locustfile.py --headless -u 5 -r 1 -t 2m --host http://127.0.0.1:8000
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import FastHttpUser, between, task

from loadgen.prompts import TURNS_PER_THREAD, choose_prompt

FEEDBACK_SHARE = 0.35


def post_chat(client: Any, thread_id: str, message: str, category: str) -> dict[str, Any] | None:
    """One chat turn, counted by Locust; the answer, or None when the agent did not say 200.

    Injected 502s are the point of some scenarios: they are counted as failures and the
    user keeps going.
    """
    with client.post(
        "/v1/chat",
        json={"thread_id": thread_id, "message": message, "category": category},
        name="/v1/chat",
        catch_response=True,
    ) as response:
        if response.status_code != 200:
            response.failure(f"chat answered {response.status_code}")
            return None
        response.success()
        return response.json()


def post_feedback(client: Any, thread_id: str, answer: dict[str, Any]) -> None:
    """Rate an answer by the simulator's own verdict on it, as an honest user would."""
    evaluation = answer.get("evaluation", {})
    rating = "good" if evaluation.get("correct", True) else "bad"
    client.post(
        "/v1/feedback",
        json={"thread_id": thread_id, "category": evaluation.get("category", "general"),
              "rating": rating},
        name="/v1/feedback",
    )


class AgentUser(FastHttpUser):
    """One person chatting with the agent: a thread of a few turns, then a new thread."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.rng = random.Random()
        self._new_thread()

    def _new_thread(self) -> None:
        self.thread_id = f"thread-{uuid.uuid4().hex[:12]}"
        self.turns_left = self.rng.randint(*TURNS_PER_THREAD)

    @task
    def chat_turn(self) -> None:
        category, prompt = choose_prompt(self.rng)
        answer = post_chat(self.client, self.thread_id, prompt, category)
        if answer is not None and self.rng.random() < FEEDBACK_SHARE:
            post_feedback(self.client, self.thread_id, answer)
        self.turns_left -= 1
        if self.turns_left <= 0:
            self._new_thread()
