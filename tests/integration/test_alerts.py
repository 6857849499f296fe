"""Every alert end to end: its scenario trips it, Alertmanager routes it, the sink shows it.

The real Prometheus (rules rendered by lab.clock at the lab's default factor), Alertmanager
(config/alertmanager/alertmanager.yml, webhooks aimed at the loopback sink), Redis,
redis_exporter, the agent, the sink and Locust run on loopback. Each scenario runs until
its firing notification reached its receivers, then stops; the alert counts as resolved once
every receiver's latest notification is "resolved" and Prometheus holds no firing instance
of it.

The nine trials run in five batches of scenarios that do not disturb each other's alerts
(one agent serves them all): the faults on separate knobs together, then HighLatency with
HighMemoryUsage (memory does not slow turns down), then RedisDown on its own (its chats
must answer quickly while it fires, and Alertmanager mutes LowCacheHitRate meanwhile), then
ToolFailureSpike (it needs the agent's full turn rate), then PodDown, which takes the agent
away. The whole module takes about seven minutes on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lab.clock import DEFAULT_FACTOR
from lab.loopback import LoopbackLab
from loadgen.scenarios import scenario_by_name
from loadgen.trials import (
    NON_INTERFERING_BATCHES,
    AlertingLab,
    Trial,
    run_batches,
    start_alerting_lab,
)

pytestmark = pytest.mark.integration

CRITICAL = frozenset({"pagerduty-critical", "slack-critical"})
WARNING = frozenset({"slack-warnings"})
INFO = frozenset({"slack-info"})
EXPECTED_RECEIVERS = {
    "HighErrorRate": CRITICAL,
    "HighLatency": WARNING,
    "LowAccuracy": WARNING,
    "PodDown": CRITICAL,
    "RedisDown": CRITICAL,
    "HighMemoryUsage": WARNING,
    "ToolFailureSpike": WARNING,
    "HighLLMCosts": WARNING,
    "LowCacheHitRate": INFO,
}
CHATS_WHILE_REDIS_DOWN = 5


def chat_statuses(lab: AlertingLab) -> list[int]:
    """Status of a few chats sent while RedisDown is firing."""
    return [
        httpx.post(
            f"{lab.agent.url}/v1/chat",
            json={"thread_id": f"redis-down-{turn}", "message": f"Are you there? ({turn})"},
            timeout=30,
        ).status_code
        for turn in range(CHATS_WHILE_REDIS_DOWN)
    ]


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Trial]]:
    by_alert = {
        alert: Trial(
            scenario_by_name(alert),
            expected_receivers=receivers,
            while_firing=chat_statuses if alert == "RedisDown" else None,
        )
        for alert, receivers in EXPECTED_RECEIVERS.items()
    }
    with LoopbackLab(tmp_path_factory.mktemp("alerts")) as loopback:
        lab = start_alerting_lab(loopback, clock_factor=DEFAULT_FACTOR)
        batches = [[by_alert[alert] for alert in batch] for batch in NON_INTERFERING_BATCHES]
        run_batches(lab, batches)
        yield by_alert


def describe(trial: Trial) -> dict[str, Any]:
    return {
        "error": trial.error,
        "fired_after_s": trial.fired_after_s,
        "restored_after_s": trial.restored_after_s,
        "resolved_after_s": trial.resolved_after_s,
        "firing_receivers": sorted(trial.firing_receivers),
        "resolved_receivers": sorted(trial.resolved_receivers),
        "refired": trial.refired,
    }


@pytest.mark.parametrize("alert", list(EXPECTED_RECEIVERS))
def test_scenario_fires_its_alert_under_exactly_the_intended_receivers(
    trials: dict[str, Trial], alert: str
) -> None:
    trial = trials[alert]

    assert trial.fired_after_s is not None, describe(trial)
    assert trial.firing_receivers == EXPECTED_RECEIVERS[alert], describe(trial)


@pytest.mark.parametrize("alert", list(EXPECTED_RECEIVERS))
def test_alert_arrives_resolved_after_its_scenario_ends(
    trials: dict[str, Trial], alert: str
) -> None:
    trial = trials[alert]

    assert trial.error is None, describe(trial)
    assert trial.resolved_receivers == EXPECTED_RECEIVERS[alert], describe(trial)
    assert trial.resolved_after_s is not None and trial.restored_after_s is not None
    assert trial.resolved_after_s > trial.restored_after_s, describe(trial)


def test_agent_keeps_serving_chats_while_redis_down_fires(trials: dict[str, Trial]) -> None:
    trial = trials["RedisDown"]

    assert trial.fired_after_s is not None, describe(trial)
    assert trial.while_firing_result == [200] * CHATS_WHILE_REDIS_DOWN
