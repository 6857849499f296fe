"""Unit tier for lab/stack.py: the .env it writes, the ports it checks, the lines it prints."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import stack

EXAMPLE = """# settings
AGENT_PORT=8000
GRAFANA_PORT=3000
GRAFANA_ADMIN_PASSWORD=
GRAFANA_ANONYMOUS_ENABLED=false
"""


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_example(directory: Path) -> Path:
    example = directory / ".env.example"
    example.write_text(EXAMPLE, encoding="utf-8")
    return example


def test_a_missing_env_file_is_created_with_a_random_password(tmp_path: Path) -> None:
    example, env_file = write_example(tmp_path), tmp_path / ".env"

    done = stack.ensure_env_file(env_file, example)

    password = stack.read_env_file(env_file)["GRAFANA_ADMIN_PASSWORD"]
    assert done == "created .env with a new Grafana admin password (GRAFANA_ADMIN_PASSWORD in .env)"
    assert len(password) >= 20
    assert stack.read_env_file(env_file)["AGENT_PORT"] == "8000"


def test_the_created_env_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"

    stack.ensure_env_file(env_file, write_example(tmp_path))

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_two_env_files_get_different_passwords(tmp_path: Path) -> None:
    example = write_example(tmp_path)

    stack.ensure_env_file(tmp_path / "a.env", example)
    stack.ensure_env_file(tmp_path / "b.env", example)

    first = stack.read_env_file(tmp_path / "a.env")["GRAFANA_ADMIN_PASSWORD"]
    second = stack.read_env_file(tmp_path / "b.env")["GRAFANA_ADMIN_PASSWORD"]
    assert first != second


def test_an_empty_password_in_an_existing_env_file_is_filled_in(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GRAFANA_PORT=3300\nGRAFANA_ADMIN_PASSWORD=\n", encoding="utf-8")

    done = stack.ensure_env_file(env_file, write_example(tmp_path))

    values = stack.read_env_file(env_file)
    assert done == "wrote a new Grafana admin password into .env (GRAFANA_ADMIN_PASSWORD)"
    assert values["GRAFANA_PORT"] == "3300"
    assert values["GRAFANA_ADMIN_PASSWORD"] != ""


def test_an_existing_password_is_left_alone(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GRAFANA_ADMIN_PASSWORD=kept-as-is\n", encoding="utf-8")

    done = stack.ensure_env_file(env_file, write_example(tmp_path))

    assert done is None
    assert env_file.read_text(encoding="utf-8") == "GRAFANA_ADMIN_PASSWORD=kept-as-is\n"


def test_settings_take_the_shell_over_env_file_over_example(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("AGENT_PORT=8100\nGRAFANA_PORT=3100\n", encoding="utf-8")

    settings = stack.lab_settings({"AGENT_PORT": "8200"}, env_file, write_example(tmp_path))

    assert settings["AGENT_PORT"] == "8200"
    assert settings["GRAFANA_PORT"] == "3100"
    assert settings["GRAFANA_ANONYMOUS_ENABLED"] == "false"


def test_quoted_values_and_comments_are_read_like_compose_does(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('# a comment\n\nGRAFANA_ADMIN_PASSWORD="s3cret"\n', encoding="utf-8")

    values = stack.read_env_file(env_file)

    assert values == {"GRAFANA_ADMIN_PASSWORD": "s3cret"}


def test_a_port_something_listens_on_is_taken(listening_port: int) -> None:
    assert stack.port_is_taken(listening_port) is True


def test_a_free_port_is_not_taken(free_port: int) -> None:
    assert stack.port_is_taken(free_port) is False


def test_a_taken_port_is_reported_with_its_variable_and_the_fix(listening_port: int) -> None:
    settings = {endpoint.variable: "1" for endpoint in stack.ENDPOINTS}
    settings["GRAFANA_PORT"] = str(listening_port)
    lab_ports = {1}

    problems = stack.taken_port_problems(settings, lab_ports)

    assert problems == [
        f"port {listening_port} (GRAFANA_PORT, grafana) is already taken on 127.0.0.1: stop "
        f"what uses it (lsof -i :{listening_port}) or set GRAFANA_PORT to a free port in .env"
    ]


def test_a_port_the_lab_itself_publishes_is_not_reported(listening_port: int) -> None:
    settings = {endpoint.variable: str(listening_port) for endpoint in stack.ENDPOINTS}

    problems = stack.taken_port_problems(settings, {listening_port})

    assert problems == []


def test_a_port_that_is_no_number_names_the_variable() -> None:
    settings = {endpoint.variable: "8000" for endpoint in stack.ENDPOINTS}
    settings["LOKI_PORT"] = "31OO"

    with pytest.raises(stack.StackError, match="LOKI_PORT='31OO' is not a port number"):
        stack.taken_port_problems(settings, set())


def test_ps_output_is_read_as_json_lines_and_as_a_json_array() -> None:
    lines = '{"Service": "redis", "State": "running"}\n{"Service": "loki", "State": "exited"}\n'
    array = '[{"Service": "redis", "State": "running"}, {"Service": "loki", "State": "exited"}]'

    from_lines, from_array = stack.parse_ps_output(lines), stack.parse_ps_output(array)

    assert from_lines == from_array
    assert [container["Service"] for container in from_lines] == ["redis", "loki"]


def test_ports_published_by_the_lab_come_from_ps_publishers() -> None:
    containers = [
        {"Service": "grafana", "Publishers": [{"PublishedPort": 3000, "TargetPort": 3000}]},
        {"Service": "redis", "Publishers": [{"PublishedPort": 0, "TargetPort": 6379}]},
        {"Service": "rules-init", "Publishers": None},
    ]

    assert stack.ports_published_by_lab(containers) == {3000}


@pytest.mark.parametrize(
    ("has_healthcheck", "state", "health", "exit_code", "expected"),
    [
        (True, "running", "healthy", 0, "ready"),
        (True, "running", "starting", 0, "starting"),
        (True, "running", "unhealthy", 0, "failed"),
        (True, "exited", "", 1, "failed"),
        (False, "exited", "", 0, "ready"),
        (False, "exited", "", 2, "failed"),
    ],
)
def test_readiness_of_a_container(
    has_healthcheck: bool, state: str, health: str, exit_code: int, expected: str
) -> None:
    container = stack.ServiceState("svc", state, health, exit_code)

    assert stack.readiness(has_healthcheck, container) == expected


def test_a_service_without_a_container_is_not_created() -> None:
    assert stack.readiness(True, None) == "not created"


def test_progress_names_what_is_still_starting() -> None:
    verdicts = {"redis": "ready", "loki": "starting", "grafana": "not created"}

    line = stack.progress_line(verdicts, 12.4)

    assert line == "     12 s  1/3 healthy; waiting for grafana (not created), loki (starting)"


def test_url_table_lists_every_host_port_on_loopback() -> None:
    settings = {endpoint.variable: str(9000 + n) for n, endpoint in enumerate(stack.ENDPOINTS)}

    table = stack.url_table(settings)

    assert "  Grafana        http://127.0.0.1:9000" in table
    assert "  Locust web UI  http://127.0.0.1:9007" in table
    assert "GRAFANA_ADMIN_PASSWORD in .env" in table


def test_missing_docker_is_one_line_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    status = stack.main(["check-docker"])

    error = capsys.readouterr().err
    assert status == 1
    assert error == (
        "error: Docker is not installed: install Docker Engine or Docker Desktop, then rerun\n"
    )


def test_a_service_without_host_port_is_one_line_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = stack.main(["url", "redis"])

    error = capsys.readouterr().err
    assert status == 1
    assert error.count("\n") == 1
    assert error.startswith("error: 'redis' has no host port: use one of grafana, prometheus")


def test_url_of_the_agent_follows_its_port_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(os.environ, "AGENT_PORT", "18123")

    status = stack.main(["url", "demo-agent"])

    assert status == 0
    assert capsys.readouterr().out == "http://127.0.0.1:18123\n"
