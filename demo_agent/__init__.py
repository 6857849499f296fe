"""LuminaMind demo agent: a fake LLM deep agent that emits real metrics, logs and traces.

Nothing here calls a real model. Latencies, token counts, costs and failures come from
a seeded simulator so the lab's dashboards and alerts have realistic data to show.
"""
