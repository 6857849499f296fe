"""What the agent's instrumentation costs in throughput.

Starts the real agent against a real Redis, with no simulated latency, alternately with
instrumentation on (metrics, spans and logs exported over OTLP to a local receiver) and off
(AGENT_INSTRUMENTATION=off), drives each with the same closed-loop chat load from wrk, and
prints requests per second of each and the overhead. Target: instrumentation costs under 15%.

wrk (Debian package `wrk`) generates the load because a Python client saturates a core long
before the agent does, which would hide the very cost this measures.

    .venv/bin/python bench/agent_overhead.py [--rounds 3] [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.loopback import Component, LoopbackLab  # noqa: E402
from lab.otlp_receiver import OtlpReceiver  # noqa: E402
from loadgen.locustfile import choose_prompt  # noqa: E402

TARGET_OVERHEAD = 0.15
CHAT_BODIES = 500
# wrk runs on one core, leaving the other to the agent and Redis.
WRK_THREADS = 1
REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def write_wrk_script(path: Path) -> Path:
    """A wrk Lua script cycling through chat bodies drawn like the baseline Locust user's."""
    rng = random.Random(42)
    bodies = []
    for index in range(CHAT_BODIES):
        category, prompt = choose_prompt(rng)
        bodies.append(json.dumps({"thread_id": f"bench-{index % 100}", "message": prompt,
                                  "category": category}))
    table = ",\n".join(f"  [==[{body}]==]" for body in bodies)
    path.write_text(
        f"local bodies = {{\n{table}\n}}\n"
        "local counter = 0\n"
        "wrk.method = \"POST\"\n"
        "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
        "request = function()\n"
        "  counter = counter % #bodies + 1\n"
        "  return wrk.format(nil, \"/v1/chat\", nil, bodies[counter])\n"
        "end\n"
    )
    return path


def drive(url: str, script: Path, seconds: float, connections: int) -> float:
    """Closed-loop load from wrk; returns answers per second."""
    result = subprocess.run(
        [shutil.which("wrk") or "wrk", f"-t{WRK_THREADS}", f"-c{connections}",
         f"-d{seconds:.0f}s", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    failed = NON_2XX.search(result.stdout)
    if failed is not None:
        raise RuntimeError(f"{failed.group(1)} chats failed during the run:\n{result.stdout}")
    match = REQUESTS_PER_SEC.search(result.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{result.stdout}")
    return float(match.group(1))


def measure(lab: LoopbackLab, redis: Component, otlp: OtlpReceiver, script: Path,
            instrumented: bool, seconds: float, connections: int) -> float:
    env = {"AGENT_LATENCY_SCALE": "0", "AGENT_LOG_LEVEL": "info",
           "AGENT_INSTRUMENTATION": "on" if instrumented else "off"}
    if instrumented:
        env |= {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.traces_endpoint,
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": otlp.logs_endpoint}
    agent = lab.start_agent(redis, env)
    try:
        return drive(agent.url, script, seconds, connections)
    finally:
        agent.stop()
        lab.components.remove(agent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("agent_overhead: wrk is not installed: apt-get install wrk\n")
        return 2

    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as workdir, OtlpReceiver() as otlp, \
            LoopbackLab(Path(workdir)) as lab:
        redis = lab.start_redis()
        script = write_wrk_script(Path(workdir) / "chat.lua")
        for _ in range(args.rounds):
            # Interleaved, so drift of the machine's load hits both sides alike.
            for instrumented in (False, True):
                results[instrumented].append(
                    measure(lab, redis, otlp, script, instrumented, args.seconds,
                            args.connections))
        exported_spans = len(otlp.spans)

    baseline = statistics.median(results[False])
    instrumented = statistics.median(results[True])
    overhead = 1 - instrumented / baseline
    out = sys.stdout
    out.write(f"agent overhead: {args.rounds} rounds of {args.seconds:.0f} s, "
              f"{args.connections} wrk connections, no simulated latency\n")
    out.write(f"{'instrumentation':<18}{'median req/s':>14}{'rounds':>30}\n")
    for label, key in (("off (baseline)", False), ("on", True)):
        rounds = ", ".join(f"{value:.0f}" for value in results[key])
        out.write(f"{label:<18}{statistics.median(results[key]):>14.1f}{rounds:>30}\n")
    out.write(f"overhead: {overhead:.1%} of throughput (target < {TARGET_OVERHEAD:.0%}); "
              f"spans received: {exported_spans}\n")
    return 0 if overhead < TARGET_OVERHEAD else 1


if __name__ == "__main__":
    sys.exit(main())
