"""Stopping and starting the lab's components, for the scenarios that take one away.

PodDown stops the agent and RedisDown stops Redis. In the compose lab that is
``docker compose stop <service>``; on loopback (tests, benchmarks) the launcher hands over
callables that stop and start its child processes. Either way the scenario names the
component by its compose service name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger("loadgen.components")

AGENT_SERVICE = "demo-agent"
REDIS_SERVICE = "redis"
COMPOSE_TIMEOUT_S = 90.0


class ComponentError(RuntimeError):
    """A component could not be stopped or started; the message says what to check."""


class Components(Protocol):
    """What a scenario needs to take a component away and bring it back."""

    def stop(self, service: str) -> None: ...

    def start(self, service: str) -> None: ...


@dataclass(frozen=True)
class ComposeComponents:
    """Components as services of the compose project, driven by the docker CLI."""

    compose_file: Path
    command: Sequence[str] = ("docker", "compose")

    def argv(self, action: str, service: str) -> list[str]:
        return [*self.command, "-f", str(self.compose_file), action, service]

    def _run(self, action: str, service: str) -> None:
        argv = self.argv(action, service)
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ComponentError(
                f"{' '.join(argv)} failed ({error}); is Docker running and the lab up?"
            ) from None
        if completed.returncode != 0:
            detail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
            if "docker --help" in detail[0]:
                # The docker CLI without its compose plugin treats "compose" as unknown.
                raise ComponentError(
                    f"{' '.join(argv)} failed: Docker Compose v2 is missing; install the "
                    "docker-compose-plugin package or update Docker Desktop"
                )
            raise ComponentError(
                f"{' '.join(argv)} exited {completed.returncode}: {detail[0]}; "
                "check `make ps` and that the service name exists in compose.yaml"
            )
        log.info("component_" + ("stopped" if action == "stop" else "started"), service=service)

    def stop(self, service: str) -> None:
        self._run("stop", service)

    def start(self, service: str) -> None:
        self._run("start", service)


@dataclass(frozen=True)
class ComponentControl:
    stop: Callable[[], object]
    start: Callable[[], object]


class LocalComponents:
    """Components as local processes, stopped and started by the callables given."""

    def __init__(self, controls: Mapping[str, ComponentControl]) -> None:
        self._controls = dict(controls)

    def _control(self, service: str) -> ComponentControl:
        try:
            return self._controls[service]
        except KeyError:
            known = ", ".join(sorted(self._controls)) or "none"
            raise ComponentError(
                f"no local control for {service!r}; this launcher controls: {known}"
            ) from None

    def stop(self, service: str) -> None:
        self._control(service).stop()
        log.info("component_stopped", service=service)

    def start(self, service: str) -> None:
        self._control(service).start()
        log.info("component_started", service=service)
