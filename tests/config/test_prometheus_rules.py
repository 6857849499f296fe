"""Config tier: the alerting and recording rules, checked and unit-tested by the real promtool.

Both timings are covered: the production files under config/prometheus/rules/ as they are,
and the copy the lab clock renders from them (factor 60, what the lab runs). promtool comes
from Debian's `prometheus` package, which .ci/run installs; without it these tests fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.config.conftest import required_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "config" / "prometheus" / "rules"
UNIT_TESTS_DIR = REPO_ROOT / "config" / "prometheus" / "tests"
LAB_UNIT_TESTS_DIR = UNIT_TESTS_DIR / "lab"
PROMETHEUS_CONFIG = REPO_ROOT / "config" / "prometheus" / "prometheus.yml"
RUNBOOKS_DIR = REPO_ROOT / "docs" / "runbooks"
ALERTING_DOC = REPO_ROOT / "docs" / "alerting.md"

LAB_FACTOR = "60"
PROMTOOL_TIMEOUT_S = 120
# The alert sink's runbook pages at its default host address (alert_sink/runbooks.py).
RUNBOOK_BASE = "http://127.0.0.1:8090/runbooks/"

# The guide's nine alerts with their severity and team labels, which must not change.
GUIDE_ALERTS = {
    "HighErrorRate": ("critical", "engineering"),
    "HighLatency": ("warning", "engineering"),
    "LowAccuracy": ("warning", "ml_ops"),
    "PodDown": ("critical", "sre"),
    "RedisDown": ("critical", "sre"),
    "HighMemoryUsage": ("warning", "sre"),
    "ToolFailureSpike": ("warning", "engineering"),
    "HighLLMCosts": ("warning", "finance"),
    "LowCacheHitRate": ("info", "engineering"),
}

# Lab timing at factor 60: (for, the range window the alert's expression depends on).
LAB_TIMING = {
    "HighErrorRate": ("10s", "20s"),
    "HighLatency": ("10s", "20s"),
    "LowAccuracy": ("15s", None),
    "PodDown": ("10s", None),
    "RedisDown": ("10s", None),
    "HighMemoryUsage": ("10s", None),
    "ToolFailureSpike": ("10s", "20s"),
    "HighLLMCosts": ("1m", "1m"),
    "LowCacheHitRate": ("30s", "20s"),
}

RECORDING_RULE_NAME = re.compile(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*")


def promtool() -> str:
    return required_tool("promtool")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True,
                          timeout=PROMTOOL_TIMEOUT_S, check=False)


def load_rules(folder: Path) -> dict[str, dict[str, Any]]:
    """Every rule of every file in folder, by alert or record name."""
    rules: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                rules[rule.get("alert") or rule["record"]] = {**rule, "group": group["name"]}
    return rules


def alerting_rules(folder: Path) -> dict[str, dict[str, Any]]:
    return {name: rule for name, rule in load_rules(folder).items() if "alert" in rule}


def recording_rules(folder: Path) -> dict[str, dict[str, Any]]:
    return {name: rule for name, rule in load_rules(folder).items() if "record" in rule}


@pytest.fixture(scope="module")
def lab_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab clock's rendering, made by its real command line as compose runs it."""
    out = tmp_path_factory.mktemp("lab") / "rules"
    # A RUNBOOK_BASE_URL left in the caller's shell would move the runbook links.
    env = {name: value for name, value in os.environ.items() if name != "RUNBOOK_BASE_URL"}
    subprocess.run([sys.executable, "-m", "lab.clock", "render", "--factor", LAB_FACTOR,
                    "--out", str(out)], cwd=REPO_ROOT, check=True, capture_output=True,
                   text=True, timeout=60, env=env)
    return out


def prometheus_config_reading(rules_dir: Path, folder: Path) -> Path:
    """prometheus.yml with its container rule path (/etc/prometheus/rules) swapped for rules_dir."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["rule_files"] = [str(rules_dir / "*.yml")]
    written = folder / "prometheus.yml"
    written.write_text(yaml.safe_dump(config, sort_keys=False))
    return written


def unit_test_cases(folder: Path) -> list[dict[str, Any]]:
    return [case for path in sorted(folder.glob("*.yml"))
            for case in yaml.safe_load(path.read_text())["tests"]]


def alert_behaviours(cases: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per alert, which behaviours the unit tests show: fires, resolves, stays silent."""
    shown: dict[str, set[str]] = {}
    for case in cases:
        checks = sorted(case.get("alert_rule_test", []), key=lambda check: _seconds(
            str(check["eval_time"])))
        by_alert: dict[str, list[bool]] = {}
        for check in checks:
            by_alert.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))
        for alert, firing in by_alert.items():
            behaviours = shown.setdefault(alert, set())
            if any(firing):
                behaviours.add("fires")
                first = firing.index(True)
                if not all(firing[first:]):
                    behaviours.add("resolves")
            else:
                behaviours.add("stays silent")
    return shown


def _seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(amount) * units[unit]
               for amount, unit in re.findall(r"(\d+)([hms])", duration))


def test_promtool_accepts_the_production_rules() -> None:
    files = sorted(str(path) for path in RULES_DIR.glob("*.yml"))

    result = run_promtool("check", "rules", *files)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_accepts_the_lab_rules(lab_rules: Path) -> None:
    files = sorted(str(path) for path in lab_rules.glob("*.yml"))

    result = run_promtool("check", "rules", *files)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout
    assert "SUCCESS: 7 rules found" in result.stdout


def test_prometheus_config_is_valid_with_the_production_rules(tmp_path: Path) -> None:
    config = prometheus_config_reading(RULES_DIR, tmp_path)

    result = run_promtool("check", "config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "luminamind-alerts.yml" in result.stdout
    assert "luminamind-recording.yml" in result.stdout


def test_prometheus_config_is_valid_with_the_lab_rules(lab_rules: Path, tmp_path: Path) -> None:
    config = prometheus_config_reading(lab_rules, tmp_path)

    result = run_promtool("check", "config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_production_unit_tests_pass() -> None:
    files = sorted(str(path) for path in UNIT_TESTS_DIR.glob("*.yml"))

    result = run_promtool("test", "rules", *files)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files) == 9


def test_lab_unit_tests_pass_against_the_lab_rendering(lab_rules: Path) -> None:
    # The lab test files read `rules/*.yml` beside themselves: put them next to the rendering.
    workdir = lab_rules.parent
    copies = [shutil.copy(path, workdir) for path in sorted(LAB_UNIT_TESTS_DIR.glob("*.yml"))]

    result = run_promtool("test", "rules", *map(str, copies))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(copies) == 9


def test_lab_unit_tests_fail_against_production_timing(tmp_path: Path) -> None:
    shutil.copytree(RULES_DIR, tmp_path / "rules")
    copies = [shutil.copy(path, tmp_path) for path in sorted(LAB_UNIT_TESTS_DIR.glob("*.yml"))]

    result = run_promtool("test", "rules", *map(str, copies))

    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.parametrize("folder", [UNIT_TESTS_DIR, LAB_UNIT_TESTS_DIR],
                         ids=["production", "lab"])
def test_every_alert_is_tested_firing_resolving_and_silent(folder: Path) -> None:
    cases = unit_test_cases(folder)

    shown = alert_behaviours(cases)

    assert shown == {alert: {"fires", "resolves", "stays silent"} for alert in GUIDE_ALERTS}


def test_alerts_keep_the_guides_names_severities_and_teams() -> None:
    rules = alerting_rules(RULES_DIR)

    found = {name: (rule["labels"]["severity"], rule["labels"]["team"])
             for name, rule in rules.items()}

    assert found == GUIDE_ALERTS


@pytest.mark.parametrize("alert", sorted(GUIDE_ALERTS))
def test_alert_has_summary_description_with_value_and_runbook(alert: str) -> None:
    annotations = alerting_rules(RULES_DIR)[alert]["annotations"]

    runbook = annotations["runbook_url"]

    assert annotations["summary"].strip()
    assert "$value" in annotations["description"]
    assert runbook == f"{RUNBOOK_BASE}{alert}"
    assert (RUNBOOKS_DIR / f"{alert}.md").is_file()


def test_lab_rendering_keeps_labels_and_marks_the_factor(lab_rules: Path) -> None:
    production = alerting_rules(RULES_DIR)

    lab = alerting_rules(lab_rules)

    assert {name: rule["labels"] for name, rule in lab.items()} == {
        name: rule["labels"] for name, rule in production.items()}
    for name, rule in lab.items():
        assert rule["annotations"] == {**production[name]["annotations"],
                                       "lab_clock_factor": "60"}


def test_lab_rendering_times_each_alert_as_documented(lab_rules: Path) -> None:
    alerts = alerting_rules(lab_rules)
    records = recording_rules(lab_rules)

    timing = {}
    for name, rule in alerts.items():
        source = records.get(rule["expr"].split()[0], rule)
        windows = re.findall(r"\[(\w+)\]", source["expr"])
        timing[name] = (rule["for"], windows[0] if windows else None)

    assert timing == LAB_TIMING


def test_lab_rendering_compresses_group_intervals(lab_rules: Path) -> None:
    groups = {group["name"]: group.get("interval")
              for path in lab_rules.glob("*.yml")
              for group in yaml.safe_load(path.read_text())["groups"]}

    assert groups == {"luminamind_recording": None, "luminamind_critical": "5s",
                      "luminamind_business": "5s"}


def test_recording_rules_are_named_level_metric_operations() -> None:
    names = recording_rules(RULES_DIR)

    badly_named = [name for name in names if not RECORDING_RULE_NAME.fullmatch(name)]

    assert badly_named == []


def test_recording_rules_are_listed_in_the_alerting_doc() -> None:
    names = recording_rules(RULES_DIR)

    undocumented = [name for name in names if f"`{name}`" not in ALERTING_DOC.read_text()]

    assert len(names) == 7
    assert undocumented == []


def test_no_expression_uses_a_name_the_lab_never_scrapes() -> None:
    expressions = "\n".join(rule["expr"] for rule in load_rules(RULES_DIR).values())

    unscraped = re.findall(r"luminamind_llm_cost_usd\b(?!_total)|container_\w+|kube_\w+",
                           expressions)

    assert unscraped == []
