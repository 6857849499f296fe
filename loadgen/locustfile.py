"""Baseline traffic: people holding short threads with the agent, sometimes rating answers.

Prompts come from a small pool with a few favourites, as real users repeat common questions,
which is what gives the agent's cache its hits; a share of prompts are one-off. About a
third of answers get feedback, rated by the simulator's own verdict on the answer.

    locust -f loadgen/locustfile.py --headless -u 5 -r 1 -t 2m --host http://127.0.0.1:8000
"""

from __future__ import annotations

import random
import uuid

from locust import FastHttpUser, between, task

# (category, prompt). Keywords in a prompt decide which tools the agent calls.
PROMPT_POOL = (
    ("coding", "Why does my Python code raise a KeyError here?"),
    ("coding", "Run the unit tests and list the failing ones"),
    ("coding", "Write code to parse this CSV file and plot the totals"),
    ("coding", "Read the log file and tell me why the deploy failed"),
    ("coding", "Explain this stack trace from our worker"),
    ("research", "Search the latest news on vector databases"),
    ("research", "Find recent papers about retrieval augmented generation"),
    ("research", "Summarise what changed in the latest Kubernetes release"),
    ("research", "Compare Redis and Memcached for session storage"),
    ("general", "Draft a polite reply to a customer asking for a refund"),
    ("general", "What is the difference between latency and throughput?"),
    ("general", "Give me three names for an internal tooling team"),
    ("general", "Translate 'the deploy is rolled back' into German"),
    ("data_analysis", "Compute the weekly active users from this table"),
    ("data_analysis", "Plot revenue by region for last quarter with Python"),
    ("data_analysis", "Open the sales file and find the top ten products"),
    ("data_analysis", "Which metric moved most between these two reports?"),
)
# Zipf-like popularity: the first prompts of the pool are asked far more often.
POOL_WEIGHTS = tuple(1.0 / (rank + 1) for rank in range(len(PROMPT_POOL)))
ONE_OFF_SHARE = 0.15
FEEDBACK_SHARE = 0.35
TURNS_PER_THREAD = (1, 5)


def choose_prompt(rng: random.Random) -> tuple[str, str]:
    category, prompt = rng.choices(PROMPT_POOL, weights=POOL_WEIGHTS)[0]
    if rng.random() < ONE_OFF_SHARE:
        prompt = f"{prompt} (context #{rng.randrange(1_000_000)})"
    return category, prompt


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
        with self.client.post(
            "/v1/chat",
            json={"thread_id": self.thread_id, "message": prompt, "category": category},
            name="/v1/chat",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                # Injected 502s are the point of some scenarios: count them, keep going.
                response.failure(f"chat answered {response.status_code}")
            else:
                response.success()
                self._maybe_rate(response.json())
        self.turns_left -= 1
        if self.turns_left <= 0:
            self._new_thread()

    def _maybe_rate(self, answer: dict) -> None:
        if self.rng.random() >= FEEDBACK_SHARE:
            return
        evaluation = answer.get("evaluation", {})
        rating = "good" if evaluation.get("correct", True) else "bad"
        self.client.post(
            "/v1/feedback",
            json={"thread_id": self.thread_id, "category": evaluation.get("category", "general"),
                  "rating": rating},
            name="/v1/feedback",
        )
