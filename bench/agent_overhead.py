"""What the agent's instrumentation costs in throughput.

Starts the real agent against a real Redis, with no simulated latency, alternately with
instrumentation on (metrics, spans and logs exported over OTLP to a local receiver) and off
(AGENT_INSTRUMENTATION=off), drives each with the same closed-loop chat load, and prints
requests per second of each and the overhead. Target: instrumentation costs under 15%.

    .venv/bin/python bench/agent_overhead.py [--rounds 3] [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.loopback import Component, LoopbackLab  # noqa: E402
from lab.otlp_receiver import OtlpReceiver  # noqa: E402
from loadgen.locustfile import choose_prompt  # noqa: E402

TARGET_OVERHEAD = 0.15
WARMUP_S = 1.0


async def drive(url: str, seconds: float, concurrency: int) -> float:
    """Closed-loop load: `concurrency` clients chatting back to back; returns answers/s."""
    completed = 0
    deadline = time.perf_counter() + WARMUP_S + seconds
    measure_from = time.perf_counter() + WARMUP_S

    async def client_loop(client: httpx.AsyncClient, rng: random.Random) -> None:
        nonlocal completed
        while (now := time.perf_counter()) < deadline:
            category, prompt = choose_prompt(rng)
            response = await client.post("/v1/chat", json={
                "thread_id": f"bench-{rng.randrange(1000)}", "message": prompt,
                "category": category})
            response.raise_for_status()
            if now >= measure_from:
                completed += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(client_loop(client, random.Random(seed))
                               for seed in range(concurrency)))
    return completed / seconds


def measure(lab: LoopbackLab, redis: Component, otlp: OtlpReceiver, instrumented: bool,
            seconds: float, concurrency: int) -> float:
    env = {"AGENT_LATENCY_SCALE": "0", "AGENT_LOG_LEVEL": "info",
           "AGENT_INSTRUMENTATION": "on" if instrumented else "off"}
    if instrumented:
        env |= {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.traces_endpoint,
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": otlp.logs_endpoint}
    agent = lab.start_agent(redis, env)
    try:
        return asyncio.run(drive(agent.url, seconds, concurrency))
    finally:
        agent.stop()
        lab.components.remove(agent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as workdir, OtlpReceiver() as otlp, \
            LoopbackLab(Path(workdir)) as lab:
        redis = lab.start_redis()
        for _ in range(args.rounds):
            # Interleaved, so drift of the machine's load hits both sides alike.
            for instrumented in (False, True):
                results[instrumented].append(
                    measure(lab, redis, otlp, instrumented, args.seconds, args.concurrency))
        exported_spans = len(otlp.spans)

    baseline = statistics.median(results[False])
    instrumented = statistics.median(results[True])
    overhead = 1 - instrumented / baseline
    out = sys.stdout
    out.write(f"agent overhead: {args.rounds} rounds of {args.seconds:.0f} s, "
              f"{args.concurrency} concurrent clients, no simulated latency\n")
    out.write(f"{'instrumentation':<18}{'median req/s':>14}{'rounds':>30}\n")
    for label, key in (("off (baseline)", False), ("on", True)):
        rounds = ", ".join(f"{value:.0f}" for value in results[key])
        out.write(f"{label:<18}{statistics.median(results[key]):>14.1f}{rounds:>30}\n")
    out.write(f"overhead: {overhead:.1%} of throughput (target < {TARGET_OVERHEAD:.0%}); "
              f"spans received: {exported_spans}\n")
    return 0 if overhead < TARGET_OVERHEAD else 1


if __name__ == "__main__":
    sys.exit(main())
