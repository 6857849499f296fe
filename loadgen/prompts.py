"""What the lab's users ask: a small pool of prompts with a few favourites.

Kept apart from the Locust users so that tools which only need the prompts (the overhead
benchmark) do not import Locust, which patches the standard library with gevent on import.
"""

from __future__ import annotations

import random

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
# One-off prompts carry a unique suffix, so the cache can never answer them.
ONE_OFF_SHARE = 0.15
TURNS_PER_THREAD = (1, 5)


def choose_prompt(rng: random.Random) -> tuple[str, str]:
    category, prompt = rng.choices(PROMPT_POOL, weights=POOL_WEIGHTS)[0]
    if rng.random() < ONE_OFF_SHARE:
        prompt = f"{prompt} (context #{rng.randrange(1_000_000)})"
    return category, prompt
