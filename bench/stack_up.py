"""How long `make up` takes and how much memory the lab uses under baseline load.

On a Docker host whose images are already cached (run `make up` once first), this
script stops the lab (data kept), times `make up` until every service is healthy, drives
the agent with the baseline Locust load for N minutes, then reads `docker stats` and
prints each service's memory beside its limit and the total beside the 2 GiB budget.

    python bench/stack_up.py --minutes 5 --users 10

Where Docker cannot run the lab it stops at once with one line saying why.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from lab.stack import (  # noqa: E402
    COMPOSE,
    StackError,
    check_docker,
    ensure_env_file,
    lab_settings,
    service_url,
)

BUDGET_BYTES = 2 * 1024**3
UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2}
UNITS["gb"] = 1000**3


@dataclass(frozen=True)
class MemoryUse:
    service: str
    used_bytes: int
    limit_bytes: int


def run(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def missing_images() -> list[str]:
    listed = run([*COMPOSE, "config", "--images"], 60)
    if listed.returncode != 0:
        raise StackError(f"compose.yaml does not load: {listed.stderr.strip()}")
    images = sorted(set(listed.stdout.split()))
    return [image for image in images if run(["docker", "image", "inspect", image], 30).returncode]


def seconds_to_healthy() -> float:
    """`make up` from a stopped lab with cached images; its log goes to .lab/stack_up.log."""
    run([*COMPOSE, "down", "--remove-orphans"], 300)
    log = REPO_ROOT / ".lab" / "stack_up.log"
    log.parent.mkdir(exist_ok=True)
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as output:
        status = subprocess.run(["make", "up"], cwd=REPO_ROOT, stdout=output, stderr=output)
    elapsed = time.monotonic() - started
    if status.returncode != 0:
        raise StackError(f"make up failed after {elapsed:.0f} s: read {log}")
    return elapsed


def baseline_load(minutes: float, users: int) -> None:
    host = service_url("demo-agent", lab_settings())
    command = [sys.executable, "-m", "loadgen", "baseline", "--host", host]
    command += ["--run-time", str(minutes * 60), "--users", str(users)]
    if run(command, minutes * 60 + 120).returncode != 0:
        raise StackError("the baseline load failed: run make load to see why")


def to_bytes(text: str) -> int:
    match = re.fullmatch(r"([\d.]+)\s*([a-zA-Z]+)", text.strip())
    if match is None:
        raise StackError(f"docker stats printed an unknown size {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def memory_use() -> list[MemoryUse]:
    ids = run([*COMPOSE, "ps", "--quiet"], 60).stdout.split()
    stats = run(["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids], 120)
    uses = []
    for line in stats.stdout.splitlines():
        row = json.loads(line)
        used, limit = (to_bytes(part) for part in row["MemUsage"].split("/"))
        service = re.sub(r"^luminamind-lab-|-\d+$", "", row["Name"])
        uses.append(MemoryUse(service, used, limit))
    return sorted(uses, key=lambda use: use.service)


def report(startup_s: float, minutes: float, users: int, uses: list[MemoryUse]) -> str:
    mib = 1024**2
    lines = [
        f"machine: {platform.machine()}, {platform.system()} {platform.release()}",
        f"make up to all healthy (images cached): {startup_s:.1f} s",
        f"memory after {minutes:g} min of baseline load ({users} users):",
    ]
    lines += [
        f"  {use.service:<16} {use.used_bytes / mib:7.1f} MiB of {use.limit_bytes / mib:6.0f} MiB"
        for use in uses
    ]
    total = sum(use.used_bytes for use in uses)
    lines.append(f"  {'total':<16} {total / mib:7.1f} MiB of {BUDGET_BYTES / mib:6.0f} MiB budget")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of baseline load")
    parser.add_argument("--users", type=int, default=10, help="Locust users")
    arguments = parser.parse_args(argv)
    try:
        check_docker()
    except StackError as error:
        sys.stderr.write(f"Docker is unavailable, nothing to measure: {error}\n")
        return 2
    try:
        ensure_env_file()  # compose.yaml needs the Grafana password that make up writes
        missing = missing_images()
        if missing:
            raise StackError(
                f"{len(missing)} images are not cached ({', '.join(missing)}): run make up "
                "once with network access, then rerun this benchmark"
            )
        startup_s = seconds_to_healthy()
        baseline_load(arguments.minutes, arguments.users)
        uses = memory_use()
    except (StackError, subprocess.TimeoutExpired) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stdout.write(report(startup_s, arguments.minutes, arguments.users, uses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
