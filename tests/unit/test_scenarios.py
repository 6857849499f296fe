"""The scenario catalogue, the command line and the signal handling, without a network."""

import os
import signal
from pathlib import Path

import pytest

from loadgen.__main__ import Interrupted, interrupt_on_signals, main
from loadgen.components import ComponentControl, ComponentError, ComposeComponents, LocalComponents
from loadgen.scenarios import SCENARIOS, ScenarioError, run_scenario, scenario_by_name


def test_every_alert_of_the_guide_has_a_scenario_named_after_it() -> None:
    names = [scenario.name for scenario in SCENARIOS]

    assert names == [
        "HighErrorRate",
        "HighLatency",
        "LowAccuracy",
        "PodDown",
        "RedisDown",
        "HighMemoryUsage",
        "ToolFailureSpike",
        "HighLLMCosts",
        "LowCacheHitRate",
    ]


def test_each_scenario_trips_the_alert_it_is_named_after() -> None:
    assert all(scenario.alert == scenario.name for scenario in SCENARIOS)


def test_pod_down_and_redis_down_stop_the_compose_services() -> None:
    stops = {scenario.name: scenario.stops for scenario in SCENARIOS if scenario.stops}

    assert stops == {"PodDown": ("demo-agent",), "RedisDown": ("redis",)}


def test_list_prints_every_scenario_with_its_alert_and_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_code = main(["list"])

    lines = capsys.readouterr().out.splitlines()
    assert exit_code == 0
    assert lines[0].split() == ["SCENARIO", "TRIPS", "WHAT", "IT", "DOES"]
    assert lines[1].split()[:3] == ["HighErrorRate", "HighErrorRate", "Half"]
    assert len(lines) == 10


def test_unknown_scenario_exits_2_with_one_line_naming_the_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_code = main(["run", "HighErorRate", "--host", "http://127.0.0.1:9"])

    error = capsys.readouterr().err
    assert exit_code == 2
    assert error.count("\n") == 1
    assert error.startswith("loadgen: unknown scenario 'HighErorRate'; valid scenarios: ")
    assert "HighErrorRate, HighLatency, LowAccuracy, PodDown, RedisDown" in error


def test_scenario_by_name_is_case_sensitive_like_alert_names() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'higherrorrate'"):
        scenario_by_name("higherrorrate")


def test_component_scenario_without_a_way_to_stop_components_is_refused() -> None:
    with pytest.raises(ScenarioError, match="PodDown stops demo-agent"):
        run_scenario(scenario_by_name("PodDown"), "http://127.0.0.1:9", duration_s=1)


def test_compose_components_stop_the_service_of_the_lab_compose_file() -> None:
    components = ComposeComponents(compose_file=Path("/lab/compose.yaml"))

    argv = components.argv("stop", "demo-agent")

    assert argv == ["docker", "compose", "-f", "/lab/compose.yaml", "stop", "demo-agent"]


def test_compose_components_report_a_missing_docker_cli_by_name() -> None:
    components = ComposeComponents(compose_file=Path("compose.yaml"), command=("no-such-cli",))

    with pytest.raises(ComponentError, match="no-such-cli -f compose.yaml stop redis failed"):
        components.stop("redis")


def test_local_components_call_the_given_stop_and_start() -> None:
    calls: list[str] = []
    components = LocalComponents({
        "redis": ComponentControl(stop=lambda: calls.append("stop"),
                                  start=lambda: calls.append("start")),
    })  # fmt: skip

    components.stop("redis")
    components.start("redis")

    assert calls == ["stop", "start"]


def test_local_components_refuse_a_service_they_do_not_control() -> None:
    components = LocalComponents({"redis": ComponentControl(stop=list, start=list)})

    with pytest.raises(ComponentError, match="no local control for 'demo-agent'.*: redis"):
        components.stop("demo-agent")


def test_first_sigterm_becomes_interrupted_with_exit_code_143() -> None:
    with pytest.raises(Interrupted) as caught, interrupt_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)

    assert caught.value.exit_code == 143


def test_second_signal_while_restoring_is_ignored() -> None:
    restored = []

    with pytest.raises(Interrupted), interrupt_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
        finally:
            os.kill(os.getpid(), signal.SIGINT)
            restored.append(True)

    assert restored == [True]


def test_signal_handlers_are_put_back_after_the_run() -> None:
    before = signal.getsignal(signal.SIGTERM)

    with interrupt_on_signals():
        pass

    assert signal.getsignal(signal.SIGTERM) is before


def test_a_scenario_that_cannot_stop_its_component_reports_the_stop_not_the_restore() -> None:
    without_docker = ComposeComponents(compose_file=Path("compose.yaml"), command=("no-such-cli",))

    with pytest.raises(ComponentError, match=r"no-such-cli -f compose.yaml stop demo-agent"):
        run_scenario(scenario_by_name("PodDown"), "http://127.0.0.1:9", duration_s=1,
                     components=without_docker)
