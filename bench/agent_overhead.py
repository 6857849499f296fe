"""What the agent's instrumentation costs in throughput.

Starts the real agent against a real Redis, with no simulated latency, alternately with
instrumentation on (metrics, spans and logs exported over OTLP to a local receiver) and off
(AGENT_INSTRUMENTATION=off), drives each with the same closed-loop chat load from wrk, and
prints requests per second of each and the overhead. Target: instrumentation costs under 15%.

wrk (Debian package `wrk`) generates the load because a Python client saturates a core long
before the agent does, which would hide the very cost this measures.

    .venv/bin/python bench/agent_overhead.py [--rounds 5] [--seconds 8] [--connections 16]
                                             [--traces-per-second 100]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo_agent.settings import Settings  # noqa: E402
from lab.loopback import Component, LoopbackLab  # noqa: E402
from lab.otlp_receiver import OtlpReceiver  # noqa: E402
from loadgen.prompts import TURNS_PER_THREAD, choose_prompt  # noqa: E402

TARGET_OVERHEAD = 0.15
# More bodies than a round sends, so one-off prompts stay cache misses as in the baseline
# traffic instead of turning into hits when wrk cycles through the list.
CHAT_BODIES = 40_000
# wrk runs on one core, leaving the other to the agent and Redis.
WRK_THREADS = 1
REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def write_wrk_script(path: Path) -> Path:
    """A wrk Lua script of chat bodies drawn like the baseline Locust user's: the same
    prompt mix, in threads of the same few turns (a thread's history is in every turn)."""
    rng = random.Random(42)
    bodies = []
    thread, turns_left = 0, 0
    for _ in range(CHAT_BODIES):
        if turns_left == 0:
            thread, turns_left = thread + 1, rng.randint(*TURNS_PER_THREAD)
        turns_left -= 1
        category, prompt = choose_prompt(rng)
        bodies.append(json.dumps({"thread_id": f"bench-{thread}", "message": prompt,
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


@dataclass(frozen=True)
class Round:
    requests_per_sec: float
    # The agent's own CPU time per answered chat, which other processes cannot disturb.
    cpu_ms_per_request: float


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def split_cores() -> tuple[set[int], set[int]]:
    """(the agent's core, everyone else's): the agent alone on the last core, so wrk, Redis
    and the receiver cannot take turns on its core and blur the comparison."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[-1]}, set(cpus[:-1])


def measure(lab: LoopbackLab, redis: Component, otlp: OtlpReceiver, script: Path,
            instrumented: bool, args: argparse.Namespace, agent_core: set[int]) -> Round:
    env = {"AGENT_LATENCY_SCALE": "0", "AGENT_LOG_LEVEL": "info",
           "AGENT_INSTRUMENTATION": "on" if instrumented else "off"}
    if instrumented:
        env |= {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.traces_endpoint,
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": otlp.logs_endpoint,
                "AGENT_TRACES_PER_SECOND": str(args.traces_per_second)}
    # Every measurement starts from an empty cache and short threads, as the first did.
    Redis.from_url(f"redis://{redis.address}/0").flushall()
    agent = lab.start_agent(redis, env)
    try:
        pid = agent.process.pid
        os.sched_setaffinity(pid, agent_core)
        cpu_before = process_cpu_seconds(pid)
        rate = drive(agent.url, script, args.seconds, args.connections)
        cpu = process_cpu_seconds(pid) - cpu_before
        return Round(rate, cpu * 1000 / (rate * args.seconds))
    finally:
        agent.stop()
        lab.components.remove(agent)


def at_least_one(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of 1 or more")
    return int(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=at_least_one, default=5)
    parser.add_argument("--seconds", type=at_least_one, default=8)
    parser.add_argument("--connections", type=at_least_one, default=16)
    parser.add_argument("--traces-per-second", type=float, default=Settings.traces_per_second,
                        help="the agent's trace rate cap; 0 traces every request")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("agent_overhead: wrk is not installed: apt-get install wrk\n")
        return 2

    results: dict[bool, list[Round]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as workdir, OtlpReceiver() as otlp, \
            LoopbackLab(Path(workdir)) as lab:
        redis = lab.start_redis()
        agent_core, other_cores = split_cores()
        # wrk, started later by this process, inherits its cores.
        for pid in (0, redis.process.pid):
            os.sched_setaffinity(pid, other_cores)
        script = write_wrk_script(Path(workdir) / "chat.lua")
        for _ in range(args.rounds):
            # Interleaved, so drift of the machine's load hits both sides alike.
            for instrumented in (False, True):
                results[instrumented].append(
                    measure(lab, redis, otlp, script, instrumented, args, agent_core))
        exported_spans = len(otlp.spans)

    report(results, args, exported_spans)
    overhead = 1 - median_rate(results[True]) / median_rate(results[False])
    return 0 if overhead < TARGET_OVERHEAD else 1


def median_rate(rounds: list[Round]) -> float:
    return statistics.median(item.requests_per_sec for item in rounds)


def report(results: dict[bool, list[Round]], args: argparse.Namespace,
           exported_spans: int) -> None:
    out = sys.stdout
    cap = f"{args.traces_per_second:g}/s" if args.traces_per_second > 0 else "none"
    out.write(f"agent overhead: {args.rounds} rounds of {args.seconds:.0f} s, "
              f"{args.connections} wrk connections, no simulated latency, "
              f"trace rate cap {cap}\n")
    out.write(f"{'instrumentation':<18}{'median req/s':>14}{'agent CPU ms/req':>18}"
              f"  rounds (req/s)\n")
    for label, key in (("off (baseline)", False), ("on", True)):
        rounds = results[key]
        cpu = statistics.median(item.cpu_ms_per_request for item in rounds)
        rates = ", ".join(f"{item.requests_per_sec:.0f}" for item in rounds)
        out.write(f"{label:<18}{median_rate(rounds):>14.1f}{cpu:>18.2f}  {rates}\n")
    overhead = 1 - median_rate(results[True]) / median_rate(results[False])
    out.write(f"overhead: {overhead:.1%} of throughput (target < {TARGET_OVERHEAD:.0%}); "
              f"spans received: {exported_spans}\n")


if __name__ == "__main__":
    sys.exit(main())
