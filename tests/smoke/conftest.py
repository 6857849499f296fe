"""Fixtures of the smoke tier: the real compose stack, up once, down with its volumes, and a
few chats sent through it whose trace ids the tests follow.

The suite runs only when selected with `-m smoke` (`make smoke`). Before it starts anything
it checks, for real, that this machine can run the lab: the docker CLI, a reachable engine,
Compose v2, pulling every upstream image and building the project image. The first check
that fails skips the whole suite with that reason. With LAB_SMOKE_REQUIRE=1 (CI on a Docker
host) the same check fails the suite instead, so a broken Docker setup cannot pass as a skip.

The stack runs as its own compose project on free loopback ports, so a lab already running
on this machine is left alone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from python_on_whales import DockerClient, DockerException

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "demo_agent" / "Dockerfile"
SMOKE_DIR = Path(__file__).resolve().parent
PROJECT_NAME = "luminamind-smoke"
PROBE_TIMEOUT_S = 30
PULL_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 1200
HEALTHY_TIMEOUT_S = 300
CHATS = 5
CHAT_TIMEOUT_S = 60
# Host port variables of .env.example, each given a free port for this run.
PORT_VARIABLES = (
    "AGENT_PORT",
    "ALERT_SINK_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "GRAFANA_PORT",
    "LOKI_PORT",
    "JAEGER_PORT",
    "LOCUST_PORT",
)


@dataclass(frozen=True)
class SmokeSettings:
    """The env file of this run and what it says."""

    env_file: Path
    ports: dict[str, int]
    grafana_password: str

    def url(self, variable: str) -> str:
        return f"http://127.0.0.1:{self.ports[variable]}"


@dataclass(frozen=True)
class Stack:
    """The running lab, as a test reaches it."""

    docker: DockerClient
    settings: SmokeSettings

    @property
    def agent_url(self) -> str:
        return self.settings.url("AGENT_PORT")

    @property
    def sink_url(self) -> str:
        return self.settings.url("ALERT_SINK_PORT")

    def grafana(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.settings.url("GRAFANA_PORT"),
            auth=("admin", self.settings.grafana_password),
            timeout=30,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep a plain `pytest` run from starting Docker: the tier runs only with -m smoke."""
    if "smoke" in (config.getoption("markexpr") or ""):
        return
    not_selected = pytest.mark.skip(reason="smoke tier: run it with make smoke (pytest -m smoke)")
    for item in items:
        if SMOKE_DIR in Path(str(item.fspath)).parents:
            item.add_marker(not_selected)


def unavailable(reason: str) -> None:
    """Skip the suite for a reason outside the lab, or fail where Docker is required."""
    if os.environ.get("LAB_SMOKE_REQUIRE") == "1":
        pytest.fail(f"smoke tier required (LAB_SMOKE_REQUIRE=1) but {reason}")
    pytest.skip(reason)


def attempt(command: Sequence[str], timeout: float, last: bool = True) -> tuple[bool, str]:
    """Run a probe; (succeeded, its last or first line of output: what went wrong)."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
    except subprocess.TimeoutExpired:
        return False, f"`{' '.join(command[:3])} ...` did not finish within {timeout:.0f} s"
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    detail = (lines[-1] if last else lines[0]) if lines else "no output"
    return done.returncode == 0, detail


def base_image() -> str:
    """The FROM image of demo_agent/Dockerfile."""
    found = re.search(r"^FROM\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    if found is None:
        pytest.fail(f"{DOCKERFILE} has no FROM line")
    return found.group(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def compose_command(settings: SmokeSettings) -> list[str]:
    return [
        "docker",
        "compose",
        "--file",
        str(COMPOSE_FILE),
        "--env-file",
        str(settings.env_file),
        "--project-name",
        PROJECT_NAME,
    ]


@pytest.fixture(scope="session")
def smoke_settings(tmp_path_factory: pytest.TempPathFactory) -> SmokeSettings:
    ports = {variable: free_port() for variable in PORT_VARIABLES}
    password = secrets.token_urlsafe(18)
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    overrides = {key: str(port) for key, port in ports.items()}
    overrides["GRAFANA_ADMIN_PASSWORD"] = password
    kept = [line for line in lines if line.partition("=")[0].strip() not in overrides]
    env_file = tmp_path_factory.mktemp("smoke") / "smoke.env"
    env_file.write_text(
        "\n".join(kept + [f"{key}={value}" for key, value in overrides.items()]) + "\n",
        encoding="utf-8",
    )
    return SmokeSettings(env_file=env_file, ports=ports, grafana_password=password)


@pytest.fixture(scope="session")
def docker_ready(smoke_settings: SmokeSettings) -> None:
    """Really try every step the lab needs from Docker; skip at the first that fails."""
    if shutil.which("docker") is None:
        unavailable("docker is not installed (no docker CLI on PATH)")
    info = ["docker", "info", "--format", "{{.ServerVersion}}"]
    ok, detail = attempt(info, PROBE_TIMEOUT_S, last=False)
    if not ok:
        unavailable(f"the Docker engine is not reachable: {detail}")
    ok, detail = attempt(["docker", "compose", "version"], PROBE_TIMEOUT_S, last=False)
    if not ok:
        unavailable(f"Docker Compose v2 is missing (docker compose): {detail}")
    compose = compose_command(smoke_settings)
    ok, detail = attempt([*compose, "pull", "--ignore-buildable", "--quiet"], PULL_TIMEOUT_S)
    if not ok:
        unavailable(f"the lab's upstream images cannot be pulled: {detail}")
    ok, detail = attempt(["docker", "pull", "--quiet", base_image()], PULL_TIMEOUT_S)
    if not ok:
        unavailable(f"the project image's base cannot be pulled: {detail}")
    ok, detail = attempt([*compose, "build"], BUILD_TIMEOUT_S)
    if not ok:
        unavailable(f"the project image cannot be built: {detail}")


@pytest.fixture(scope="session")
def stack(docker_ready: None, smoke_settings: SmokeSettings) -> Iterator[Stack]:
    docker = DockerClient(
        compose_files=[COMPOSE_FILE],
        compose_env_files=[smoke_settings.env_file],
        compose_project_name=PROJECT_NAME,
    )
    try:
        docker.compose.up(detach=True, wait=True, wait_timeout=HEALTHY_TIMEOUT_S, quiet=True)
    except DockerException as error:
        report = startup_report(docker)
        docker.compose.down(volumes=True, remove_orphans=True, quiet=True)
        pytest.fail(f"the lab did not become healthy ({error.return_code}):\n{report}")
    try:
        yield Stack(docker=docker, settings=smoke_settings)
    finally:
        docker.compose.down(volumes=True, remove_orphans=True, timeout=10, quiet=True)


def startup_report(docker: DockerClient) -> str:
    """State of every container and the log tail of those that are not healthy."""
    lines = []
    for container in docker.compose.ps(all=True):
        health = container.state.health.status if container.state.health else "no healthcheck"
        lines.append(f"{container.name}: {container.state.status}, {health}")
        if health != "healthy":
            lines.append(docker.container.logs(container, tail=20))
    return "\n".join(lines)


def send_chat(agent: httpx.Client, message: str) -> str:
    """One chat on a thread of its own; its trace id, from the X-Trace-Id header of the answer."""
    response = agent.post(
        "/v1/chat",
        json={"thread_id": f"smoke-{uuid.uuid4().hex[:8]}", "message": message},
    )
    assert response.status_code == 200, response.text
    return response.headers["X-Trace-Id"]


@pytest.fixture(scope="session")
def chat_trace_ids(stack: Stack) -> list[str]:
    """Trace ids of a few chats, sent once for every test that reads what chats leave behind."""
    with httpx.Client(base_url=stack.agent_url, timeout=CHAT_TIMEOUT_S) as agent:
        return [
            send_chat(agent, f"Search the latest news on vector databases ({turn})")
            for turn in range(CHATS)
        ]
