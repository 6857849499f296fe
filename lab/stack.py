"""What `make up` and its neighbours do around `docker compose`: checks, .env, waiting, URLs.

Standard library only, so `make up` runs with any Python 3.11 before the virtual
environment exists. Every failure ends in one line on stderr that names the problem and
its fix, and a non-zero exit status; none ends in a traceback.

    python -m lab.stack preflight      Docker, Compose v2 and free host ports
    python -m lab.stack env            create .env with a random Grafana password if needed
    python -m lab.stack start          docker compose up -d --build
    python -m lab.stack wait           poll until every service is healthy, showing progress
    python -m lab.stack reload-rules   make Prometheus load the freshly rendered rules
    python -m lab.stack urls           the table of where everything is
    python -m lab.stack url SERVICE    one service's URL (for make load / make scenario)
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = REPO_ROOT / ".env"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
PASSWORD_VARIABLE = "GRAFANA_ADMIN_PASSWORD"
COMPOSE = ("docker", "compose")
DOCKER_PROBE_TIMEOUT_S = 20.0
WAIT_POLL_S = 2.0
WAIT_HEARTBEAT_S = 15.0
DEFAULT_WAIT_TIMEOUT_S = 300.0


class StackError(Exception):
    """A problem the user can fix; the message is the one line they will read."""


@dataclass(frozen=True)
class Endpoint:
    """A service published on the host: its port variable and what a person opens there."""

    service: str
    variable: str
    title: str
    path: str = ""
    note: str = ""


# The host ports of docs/architecture.md, in the order the URL table shows them.
ENDPOINTS = (
    Endpoint("grafana", "GRAFANA_PORT", "Grafana", note="dashboards, Explore"),
    Endpoint("prometheus", "PROMETHEUS_PORT", "Prometheus"),
    Endpoint("alertmanager", "ALERTMANAGER_PORT", "Alertmanager"),
    Endpoint("jaeger", "JAEGER_PORT", "Jaeger UI"),
    Endpoint("loki", "LOKI_PORT", "Loki API", "/ready"),
    Endpoint("demo-agent", "AGENT_PORT", "Demo agent", "/openapi.json", "POST /v1/chat"),
    Endpoint("alert-sink", "ALERT_SINK_PORT", "Alert sink", note="notifications by receiver"),
    Endpoint("locust", "LOCUST_PORT", "Locust web UI"),
)


@dataclass(frozen=True)
class ServiceState:
    """One compose service as `docker compose ps` reports it."""

    service: str
    state: str
    health: str
    exit_code: int


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose-style env file; comments, blanks and quotes handled."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def lab_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path = ENV_FILE,
    example: Path = ENV_EXAMPLE,
) -> dict[str, str]:
    """Settings as compose resolves them: the shell wins over .env, .env over the defaults."""
    settings = read_env_file(example)
    settings.update(read_env_file(env_file))
    shell = os.environ if environ is None else environ
    settings.update({key: shell[key] for key in settings.keys() & shell.keys()})
    return settings


def host_port(endpoint: Endpoint, settings: Mapping[str, str]) -> int:
    raw = settings.get(endpoint.variable, "")
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 65536:
        raise StackError(
            f"{endpoint.variable}={raw!r} is not a port number: set it to 1-65535 in .env "
            "(or in the shell, which wins over .env)"
        )
    return int(raw)


def endpoint_named(service: str) -> Endpoint:
    for endpoint in ENDPOINTS:
        if endpoint.service == service:
            return endpoint
    names = ", ".join(endpoint.service for endpoint in ENDPOINTS)
    raise StackError(f"{service!r} has no host port: use one of {names}")


def service_url(service: str, settings: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{host_port(endpoint_named(service), settings)}"


def ensure_env_file(env_file: Path = ENV_FILE, example: Path = ENV_EXAMPLE) -> str | None:
    """Create .env (or fill its empty password); return what was done, None when nothing."""
    password = secrets.token_urlsafe(18)
    if not env_file.exists():
        if not example.exists():
            raise StackError(f"{example.name} is missing: restore it with git checkout")
        text = set_variable(example.read_text(encoding="utf-8"), PASSWORD_VARIABLE, password)
        write_private(env_file, text)
        return f"created .env with a new Grafana admin password ({PASSWORD_VARIABLE} in .env)"
    if read_env_file(env_file).get(PASSWORD_VARIABLE, ""):
        return None
    text = set_variable(env_file.read_text(encoding="utf-8"), PASSWORD_VARIABLE, password)
    write_private(env_file, text)
    return f"wrote a new Grafana admin password into .env ({PASSWORD_VARIABLE})"


def set_variable(text: str, name: str, value: str) -> str:
    pattern = re.compile(rf"^{re.escape(name)}=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(f"{name}={value}", text, count=1)
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}{name}={value}\n"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: it holds a password."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def run_command(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
    except subprocess.TimeoutExpired as expired:
        shown = " ".join(command)
        raise StackError(f"`{shown}` did not answer within {timeout:.0f} s") from expired
    except FileNotFoundError as missing:
        raise StackError(f"{command[0]} is not installed: install Docker Engine or Docker "
                         "Desktop, then rerun") from missing


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def check_docker() -> None:
    """Docker CLI, Compose v2 plugin and a reachable engine, each with its own fix."""
    if shutil.which("docker") is None:
        raise StackError(
            "Docker is not installed: install Docker Engine or Docker Desktop, then rerun"
        )
    if run_command([*COMPOSE, "version"], DOCKER_PROBE_TIMEOUT_S).returncode != 0:
        raise StackError(
            "Docker Compose v2 is missing (`docker compose`): install the "
            "docker-compose-plugin package or update Docker Desktop"
        )
    info = run_command(["docker", "info", "--format", "{{.ServerVersion}}"], DOCKER_PROBE_TIMEOUT_S)
    if info.returncode != 0:
        raise StackError(
            f"the Docker engine is not reachable ({first_line(info.stderr)}): start Docker "
            "Desktop or the docker service, and check you may use it (docker info)"
        )


def compose_ps() -> list[dict[str, object]]:
    """Containers of this project, running or not, as compose prints them in JSON."""
    result = run_command([*COMPOSE, "ps", "--all", "--format", "json"], DOCKER_PROBE_TIMEOUT_S)
    if result.returncode != 0:
        raise StackError(f"docker compose ps failed: {first_line(result.stderr)}")
    return parse_ps_output(result.stdout)


def parse_ps_output(output: str) -> list[dict[str, object]]:
    """Compose prints one JSON object per line (v2.21+) or one JSON array (older)."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ports_published_by_lab(containers: Sequence[Mapping[str, object]]) -> set[int]:
    published: set[int] = set()
    for container in containers:
        for publisher in container.get("Publishers") or []:
            port = publisher.get("PublishedPort") if isinstance(publisher, dict) else None
            if isinstance(port, int) and port > 0:
                published.add(port)
    return published


def port_is_taken(port: int) -> bool:
    """True when something on this machine already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(0.5)
        return client.connect_ex(("127.0.0.1", port)) == 0


def taken_port_problems(settings: Mapping[str, str], lab_ports: set[int]) -> list[str]:
    """One line per host port that is taken by something other than this lab."""
    problems = []
    for endpoint in ENDPOINTS:
        port = host_port(endpoint, settings)
        if port not in lab_ports and port_is_taken(port):
            problems.append(
                f"port {port} ({endpoint.variable}, {endpoint.service}) is already taken on "
                f"127.0.0.1: stop what uses it (lsof -i :{port}) or set {endpoint.variable} "
                "to a free port in .env"
            )
    return problems


def preflight() -> int:
    check_docker()
    problems = taken_port_problems(lab_settings(), ports_published_by_lab(compose_ps()))
    for problem in problems:
        sys.stderr.write(f"error: {problem}\n")
    return 1 if problems else 0


def start() -> int:
    """docker compose up -d --build, its progress shown as it comes, then one summary line."""
    command = [*COMPOSE, "up", "--detach", "--build", "--remove-orphans"]
    if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
        raise StackError(
            "docker compose up failed (see above): images could not be pulled or built, or a "
            "container could not start; fix the first error shown and rerun make up"
        )
    return 0


def compose_services() -> dict[str, dict[str, object]]:
    result = run_command([*COMPOSE, "config", "--format", "json"], DOCKER_PROBE_TIMEOUT_S)
    if result.returncode != 0:
        raise StackError(f"compose.yaml does not load: {first_line(result.stderr)}")
    return dict(json.loads(result.stdout)["services"])


def service_states(containers: Sequence[Mapping[str, object]]) -> dict[str, ServiceState]:
    states = {}
    for container in containers:
        service = str(container.get("Service", ""))
        states[service] = ServiceState(
            service=service,
            state=str(container.get("State", "")),
            health=str(container.get("Health", "")),
            exit_code=int(str(container.get("ExitCode", 0) or 0)),
        )
    return states


def readiness(has_healthcheck: bool, state: ServiceState | None) -> str:
    """'ready', 'failed' or a short word for what the service is still doing."""
    if state is None:
        return "not created"
    if state.state == "exited":
        return "ready" if state.exit_code == 0 and not has_healthcheck else "failed"
    if state.state in ("dead", "removing"):
        return "failed"
    if not has_healthcheck:
        return "ready" if state.state == "running" else state.state or "starting"
    if state.health == "unhealthy":
        return "failed"
    return "ready" if state.health == "healthy" else state.health or state.state or "starting"


def progress_line(verdicts: Mapping[str, str], elapsed: float) -> str:
    ready = sum(1 for verdict in verdicts.values() if verdict == "ready")
    pending = ", ".join(
        f"{service} ({verdict})"
        for service, verdict in sorted(verdicts.items())
        if verdict != "ready"
    )
    line = f"  {elapsed:5.0f} s  {ready}/{len(verdicts)} healthy"
    return f"{line}; waiting for {pending}" if pending else line


def wait_for_health(timeout: float) -> int:
    """Poll `docker compose ps`, print a line whenever the picture changes (and a heartbeat)."""
    services = compose_services()
    healthchecked = {name: "healthcheck" in spec for name, spec in services.items()}
    started = time.monotonic()
    shown_verdicts: dict[str, str] = {}
    shown_at = 0.0
    while True:
        states = service_states(compose_ps())
        verdicts = {name: readiness(healthchecked[name], states.get(name)) for name in services}
        elapsed = time.monotonic() - started
        if verdicts != shown_verdicts or elapsed - shown_at >= WAIT_HEARTBEAT_S:
            sys.stdout.write(f"{progress_line(verdicts, elapsed)}\n")
            sys.stdout.flush()
            shown_verdicts, shown_at = verdicts, elapsed
        failed = sorted(name for name, verdict in verdicts.items() if verdict == "failed")
        if failed:
            raise StackError(
                f"{', '.join(failed)} failed its healthcheck or exited: read "
                f"`make logs SERVICE={failed[0]}`, fix it, then rerun make up"
            )
        if all(verdict == "ready" for verdict in verdicts.values()):
            sys.stdout.write(f"all {len(verdicts)} services healthy after {elapsed:.0f} s\n")
            return 0
        if elapsed >= timeout:
            slow = sorted(name for name, verdict in verdicts.items() if verdict != "ready")
            raise StackError(
                f"{', '.join(slow)} not healthy after {timeout:.0f} s: read "
                f"`make logs SERVICE={slow[0]}`, or wait and check `make ps`"
            )
        time.sleep(WAIT_POLL_S)


def reload_rules() -> int:
    """Prometheus reads rule files at start; a second `make up` re-renders them."""
    url = f"{service_url('prometheus', lab_settings())}/-/reload"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).close()
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"warning: Prometheus did not reload its rules ({error}): run make up\n")
    return 0


def url_table(settings: Mapping[str, str]) -> str:
    rows = []
    for endpoint in ENDPOINTS:
        url = f"http://127.0.0.1:{host_port(endpoint, settings)}{endpoint.path}"
        rows.append(f"  {endpoint.title:<14} {url:<32} {endpoint.note}".rstrip())
    footer = [
        f"Grafana: user admin, password = {PASSWORD_VARIABLE} in .env",
        "make down stops the lab and keeps its data; make clean deletes the data too.",
    ]
    return "\n".join(["The lab is up:", *rows, *footer]) + "\n"


def require_running(service: str) -> int:
    """Fail with one line when the service is not up, before a load run hits a closed port."""
    check_docker()
    state = service_states(compose_ps()).get(service)
    if state is None or state.state != "running":
        raise StackError(f"{service} is not running: start the lab with make up")
    return 0


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-docker", help="Docker CLI, Compose v2 and the engine")
    commands.add_parser("preflight", help="check-docker plus free host ports")
    commands.add_parser("env", help="create .env with a random Grafana password if missing")
    commands.add_parser("start", help="docker compose up -d --build")
    wait = commands.add_parser("wait", help="wait until every service is healthy")
    wait.add_argument("--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT_S)
    commands.add_parser("reload-rules", help="POST /-/reload to Prometheus")
    commands.add_parser("urls", help="print the URL table")
    url = commands.add_parser("url", help="print one service's URL")
    url.add_argument("service")
    running = commands.add_parser("require-running", help="fail unless SERVICE is running")
    running.add_argument("service")
    return parser.parse_args(argv)


def run(arguments: argparse.Namespace) -> int:
    command = arguments.command
    if command == "check-docker":
        check_docker()
        return 0
    if command == "preflight":
        return preflight()
    if command == "env":
        done = ensure_env_file()
        if done:
            sys.stdout.write(f"{done}\n")
        return 0
    if command == "start":
        return start()
    if command == "wait":
        return wait_for_health(arguments.timeout)
    if command == "reload-rules":
        return reload_rules()
    if command == "urls":
        sys.stdout.write(url_table(lab_settings()))
        return 0
    if command == "url":
        sys.stdout.write(f"{service_url(arguments.service, lab_settings())}\n")
        return 0
    return require_running(arguments.service)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        return run(arguments)
    except StackError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: the lab keeps running; make ps shows its state\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
