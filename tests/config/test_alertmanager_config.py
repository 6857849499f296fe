"""Config tier: Alertmanager routing, receivers and inhibition, proven with the real amtool.

amtool comes from Debian's `prometheus-alertmanager` package, which .ci/run installs; without
it these tests fail. The inhibition tests start the real Alertmanager (and the lab's alert
sink) on loopback ports and ask its API which alerts it mutes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lab.loopback import Component, LoopbackLab
from tests.config.conftest import required_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "config" / "alertmanager"
LAB_CONFIG = CONFIG_DIR / "alertmanager.yml"
REAL_RECEIVERS_CONFIG = CONFIG_DIR / "alertmanager-real-receivers.yml"
RULES_DIR = REPO_ROOT / "config" / "prometheus" / "rules"

SINK_WEBHOOK = "http://alert-sink:8090/webhook"
AMTOOL_TIMEOUT_S = 30
INHIBITION_WAIT_S = 10.0

# Which receivers each of the guide's alerts must reach, written out from the guide's tree.
INTENDED_RECEIVERS = {
    "HighErrorRate": "pagerduty-critical,slack-critical",
    "PodDown": "pagerduty-critical,slack-critical",
    "RedisDown": "pagerduty-critical,slack-critical",
    "HighLatency": "slack-warnings",
    "LowAccuracy": "slack-warnings",
    "HighMemoryUsage": "slack-warnings",
    "ToolFailureSpike": "slack-warnings",
    "HighLLMCosts": "slack-warnings",
    "LowCacheHitRate": "slack-info",
}


def amtool() -> str:
    return required_tool("amtool")


def run_amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool(), *args], capture_output=True, text=True,
                          timeout=AMTOOL_TIMEOUT_S, check=False)


def route_test(labels: list[str], expected: str,
               config: Path = LAB_CONFIG) -> subprocess.CompletedProcess[str]:
    return run_amtool("config", "routes", "test", f"--config.file={config}",
                      f"--verify.receivers={expected}", *labels)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def keys_anywhere(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in keys_anywhere(value)}
    if isinstance(node, list):
        return {key for item in node for key in keys_anywhere(item)}
    return set()


def alert_labels_from_rules() -> dict[str, dict[str, str]]:
    """Each alert's labels as Alertmanager receives them: alertname plus the rule labels."""
    labels = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    labels[rule["alert"]] = {"alertname": rule["alert"], **rule["labels"]}
    return labels


@pytest.mark.parametrize("config", [LAB_CONFIG, REAL_RECEIVERS_CONFIG], ids=lambda p: p.name)
def test_amtool_accepts_the_config(config: Path) -> None:
    result = run_amtool("check-config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 2 inhibit rules" in result.stdout
    assert " - 5 receivers" in result.stdout


@pytest.mark.parametrize(("labels", "receivers"), [
    (["severity=critical"], "pagerduty-critical,slack-critical"),
    (["severity=warning"], "slack-warnings"),
    (["severity=info"], "slack-info"),
    (["alertname=Watchdog"], "default"),
    (["severity=page"], "default"),
], ids=["critical", "warning", "info", "no-severity", "unknown-severity"])
def test_severity_reaches_exactly_its_receivers(labels: list[str], receivers: str) -> None:
    result = route_test(labels, receivers)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_route_verification_fails_when_a_critical_reaches_one_receiver_only() -> None:
    result = route_test(["severity=critical"], "slack-critical")

    assert result.returncode != 0
    assert "did not match" in result.stdout + result.stderr


@pytest.mark.parametrize("alert", sorted(INTENDED_RECEIVERS))
def test_each_alert_of_the_rules_reaches_its_intended_receivers(alert: str) -> None:
    labels = alert_labels_from_rules()[alert]

    result = route_test([f"{name}={value}" for name, value in labels.items()],
                        INTENDED_RECEIVERS[alert])

    assert result.returncode == 0, result.stdout + result.stderr


def test_real_receivers_config_routes_like_the_lab_config() -> None:
    result = route_test(["severity=critical"], "pagerduty-critical,slack-critical",
                        config=REAL_RECEIVERS_CONFIG)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_lab_receiver_posts_to_the_sink_with_resolved_notifications() -> None:
    receivers = load(LAB_CONFIG)["receivers"]

    deliveries = {receiver["name"]: receiver["webhook_configs"] for receiver in receivers}

    assert deliveries == {
        name: [{"url": SINK_WEBHOOK, "send_resolved": True}]
        for name in ("default", "pagerduty-critical", "slack-critical", "slack-warnings",
                     "slack-info")
    }
    assert all(set(receiver) == {"name", "webhook_configs"} for receiver in receivers)


@pytest.mark.parametrize("config", [LAB_CONFIG, REAL_RECEIVERS_CONFIG], ids=lambda p: p.name)
def test_config_uses_matchers_never_the_deprecated_match(config: Path) -> None:
    keys = keys_anywhere(load(config))

    deprecated = keys & {"match", "match_re", "source_match", "source_match_re",
                         "target_match", "target_match_re"}

    assert deprecated == set()
    assert {"matchers", "source_matchers", "target_matchers"} <= keys


def test_real_receivers_config_shares_the_route_tree_and_inhibition() -> None:
    lab, real = load(LAB_CONFIG), load(REAL_RECEIVERS_CONFIG)

    same = (real["route"], real["inhibit_rules"], [r["name"] for r in real["receivers"]])

    assert same == (lab["route"], lab["inhibit_rules"], [r["name"] for r in lab["receivers"]])


def test_real_receivers_keep_the_sink_and_read_credentials_from_files() -> None:
    receivers = load(REAL_RECEIVERS_CONFIG)["receivers"]

    credentials = {
        receiver["name"]: [value for config in receiver.get("slack_configs", [])
                           + receiver.get("pagerduty_configs", [])
                           for key, value in config.items() if key.endswith("_file")]
        for receiver in receivers
    }

    assert all(receiver["webhook_configs"][0]["url"] == SINK_WEBHOOK for receiver in receivers)
    assert credentials == {
        "default": ["/etc/alertmanager/secrets/slack_api_url"],
        "pagerduty-critical": ["/etc/alertmanager/secrets/pagerduty_routing_key"],
        "slack-critical": ["/etc/alertmanager/secrets/slack_api_url"],
        "slack-warnings": ["/etc/alertmanager/secrets/slack_api_url"],
        "slack-info": ["/etc/alertmanager/secrets/slack_api_url"],
    }
    assert keys_anywhere(receivers) & {"api_url", "routing_key", "service_key"} == set()


@pytest.mark.parametrize(("path", "ignored"), [
    ("config/alertmanager/secrets/slack_api_url", True),
    ("config/alertmanager/secrets/pagerduty_routing_key", True),
    ("config/alertmanager/secrets/README.md", False),
])
def test_secrets_folder_keeps_credentials_out_of_git(path: str, ignored: bool) -> None:
    result = subprocess.run(["git", "check-ignore", "--quiet", "--no-index", path],
                            cwd=REPO_ROOT, check=False, timeout=AMTOOL_TIMEOUT_S)

    assert (result.returncode == 0) is ignored


def test_notification_templates_render() -> None:
    result = run_amtool(
        "template", "render", f"--template.glob={CONFIG_DIR / 'templates' / '*.tmpl'}",
        '--template.text={{ template "luminamind.text" . }}',
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Runbook:" in result.stdout


# --------------------------------------------------------------------------------------
# Inhibition, asked of a running Alertmanager
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Component]:
    """The lab config on loopback, its webhooks pointed at a loopback alert sink."""
    with LoopbackLab(tmp_path_factory.mktemp("alertmanager")) as lab:
        sink = lab.start_sink()
        yield lab.start_alertmanager(sink, LAB_CONFIG)


def post_alerts(alertmanager: Component, *alerts: dict[str, str]) -> None:
    now = datetime.now(UTC)
    payload = [{"labels": labels, "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=5)).isoformat()} for labels in alerts]
    response = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=payload, timeout=5.0)
    response.raise_for_status()


def alert_state(alertmanager: Component, labels: dict[str, str]) -> str | None:
    """'active' or 'suppressed', once Alertmanager holds the alert with exactly these labels."""
    response = httpx.get(f"{alertmanager.url}/api/v2/alerts", timeout=5.0)
    response.raise_for_status()
    for alert in response.json():
        if alert["labels"] == labels:
            return alert["status"]["state"]
    return None


def settled_state(alertmanager: Component, labels: dict[str, str], expected: str) -> str | None:
    """The alert's state, polled until it is the expected one or INHIBITION_WAIT_S passed."""
    deadline = time.monotonic() + INHIBITION_WAIT_S
    state = alert_state(alertmanager, labels)
    while state != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        state = alert_state(alertmanager, labels)
    return state


# Each test uses its own cluster label: `equal: [cluster]` keeps the tests from muting each
# other's alerts inside the one Alertmanager of this module.
def alert(name: str, severity: str, cluster: str, job: str = "luminamind") -> dict[str, str]:
    return {"alertname": name, "severity": severity, "job": job, "cluster": cluster}


@pytest.mark.integration
def test_redis_down_mutes_low_cache_hit_rate(alertmanager: Component) -> None:
    low_cache = alert("LowCacheHitRate", "info", cluster="redis-down")

    post_alerts(alertmanager, alert("RedisDown", "critical", "redis-down", job="redis"),
                low_cache)

    assert settled_state(alertmanager, low_cache, "suppressed") == "suppressed"


@pytest.mark.integration
def test_low_cache_hit_rate_alone_is_not_muted(alertmanager: Component) -> None:
    low_cache = alert("LowCacheHitRate", "info", cluster="cache-only")

    post_alerts(alertmanager, low_cache)

    assert settled_state(alertmanager, low_cache, "active") == "active"


@pytest.mark.integration
def test_pod_down_mutes_the_agents_warnings_and_infos(alertmanager: Component) -> None:
    latency = alert("HighLatency", "warning", cluster="pod-down")
    low_cache = alert("LowCacheHitRate", "info", cluster="pod-down")

    post_alerts(alertmanager, alert("PodDown", "critical", "pod-down"), latency, low_cache)

    assert settled_state(alertmanager, latency, "suppressed") == "suppressed"
    assert settled_state(alertmanager, low_cache, "suppressed") == "suppressed"


# The negative cases post a warning of the same job beside the alert under test: once that
# warning is suppressed, PodDown is known to Alertmanager, so "active" is a settled answer.
@pytest.mark.integration
def test_pod_down_leaves_critical_alerts_paging(alertmanager: Component) -> None:
    errors = alert("HighErrorRate", "critical", cluster="pod-down-critical")
    witness = alert("HighMemoryUsage", "warning", cluster="pod-down-critical")

    post_alerts(alertmanager, alert("PodDown", "critical", "pod-down-critical"), errors, witness)

    assert settled_state(alertmanager, witness, "suppressed") == "suppressed"
    assert alert_state(alertmanager, errors) == "active"


@pytest.mark.integration
def test_pod_down_leaves_warnings_of_other_jobs_alone(alertmanager: Component) -> None:
    other = alert("HighLatency", "warning", cluster="pod-down-other-job", job="grafana")
    witness = alert("HighLatency", "warning", cluster="pod-down-other-job")

    post_alerts(alertmanager, alert("PodDown", "critical", "pod-down-other-job"), other, witness)

    assert settled_state(alertmanager, witness, "suppressed") == "suppressed"
    assert alert_state(alertmanager, other) == "active"
