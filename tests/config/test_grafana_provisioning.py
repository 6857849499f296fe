"""Config tier: Grafana's provisioning and dashboards hold together without a running Grafana.

Grafana, Loki and Jaeger do not run in this tier, so their configuration is checked by
structure and by cross-reference: every uid a dashboard or a link names is provisioned,
every data source URL names a compose service on its documented port, and every PromQL
target parses with the real promtool and reads only metrics the lab exposes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.config.conftest import required_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO_ROOT / "config" / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
ARCHITECTURE_DOC = REPO_ROOT / "docs" / "architecture.md"
RULES_DIR = REPO_ROOT / "config" / "prometheus" / "rules"
COMPOSE_FILE = REPO_ROOT / "compose.yaml"

DASHBOARD_MOUNT = "/var/lib/grafana/dashboards"
GRID_COLUMNS = 24
# Schema 39 is Grafana 10.4's. Grafana migrates older models on load, so an older number would
# still load, but it means panels written against a Grafana the lab does not run.
OLDEST_SCHEMA_VERSION = 39

EXPECTED_DASHBOARD_UIDS = {
    "luminamind-health",
    "luminamind-tools",
    "luminamind-llm",
    "luminamind-quality",
    "luminamind-infra",
    "luminamind-oncall",
}
EXPECTED_DATASOURCES = {
    "prometheus": ("prometheus", "http://prometheus:9090"),
    "loki": ("loki", "http://loki:3100"),
    "jaeger": ("jaeger", "http://jaeger:16686"),
    "alertmanager": ("alertmanager", "http://alertmanager:9093"),
}

# What a dashboard variable stands for when an expression is only parsed: the value Grafana
# sends for "All" on a query variable, and fixed lab values for Grafana's own interval
# variables.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "30m",
    "__auto": "1m",
}

# Metric names the dashboards may read besides the agent's table in docs/architecture.md.
# redis_exporter: present in both Debian's 1.45 and upstream 1.8x.
REDIS_EXPORTER_METRICS = {
    "redis_up",
    "redis_connected_clients",
    "redis_commands_processed_total",
    "redis_commands_total",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_db_keys",
}
# prometheus-client's process collector (Linux).
PROCESS_METRICS = {
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
}
# Series Prometheus writes itself.
PROMETHEUS_METRICS = {"up", "ALERTS", "ALERTS_FOR_STATE"}

# Panels that show what an alert watches carry its threshold, written out from the guide's
# alert rules: (colour, value) steps, the base step first. Ratios are 0..1 (the recording
# rules' unit, shown by Grafana's percentunit): 1% is 0.01.
ABOVE = "green", "red"
BELOW = "red", "green"
ALERT_THRESHOLDS = {
    ("luminamind-health", "5xx error rate"): (ABOVE, 0.01),
    ("luminamind-health", "5xx error rate over time"): (ABOVE, 0.01),
    ("luminamind-health", "p95 latency (slowest endpoint)"): (ABOVE, 5),
    ("luminamind-health", "Request latency p50 / p95 / p99"): (ABOVE, 5),
    ("luminamind-health", "p95 latency by endpoint"): (ABOVE, 5),
    ("luminamind-tools", "Tool failures per second"): (ABOVE, 10),
    ("luminamind-tools", "Failures by tool and status"): (ABOVE, 10),
    ("luminamind-llm", "Projected daily cost"): (ABOVE, 100),
    ("luminamind-llm", "Projected daily cost (HighLLMCosts)"): (ABOVE, 100),
    ("luminamind-quality", "Accuracy by category"): (BELOW, 0.9),
    ("luminamind-quality", "Lowest category accuracy"): (BELOW, 0.9),
    ("luminamind-quality", "Accuracy trend"): (BELOW, 0.9),
    ("luminamind-infra", "Agent memory (% of limit)"): (ABOVE, 0.9),
    ("luminamind-infra", "Agent memory use (% of limit)"): (ABOVE, 0.9),
    ("luminamind-infra", "Cache hit rate"): (BELOW, 0.5),
    ("luminamind-infra", "Cache hit rate over time"): (BELOW, 0.5),
    ("luminamind-oncall", "5xx error rate"): (ABOVE, 0.01),
    ("luminamind-oncall", "p95 latency"): (ABOVE, 5),
    ("luminamind-oncall", "Tool failures/s"): (ABOVE, 10),
    ("luminamind-oncall", "Lowest accuracy"): (BELOW, 0.9),
    ("luminamind-oncall", "Projected $/day"): (ABOVE, 100),
    ("luminamind-oncall", "Cache hit rate"): (BELOW, 0.5),
    ("luminamind-oncall", "Agent memory"): (ABOVE, 0.9),
}

AGENT_LOG_SELECTOR = '{service_name="luminamind"}'
AGENT_SERVICE = "luminamind"


# ---------------------------------------------------------------- reading the files


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON file, by file name."""
    return {path.name: json.loads(path.read_text()) for path in
            sorted(DASHBOARD_DIR.glob("*.json"))}


def load_datasources() -> list[dict[str, Any]]:
    return yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]


def provisioned_types() -> dict[str, str]:
    """uid -> data source type."""
    return {source["uid"]: source["type"] for source in load_datasources()}


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels and the panels folded into collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@dataclass(frozen=True)
class PromTarget:
    dashboard_uid: str
    panel_title: str
    ref_id: str
    expr: str
    instant: bool


def prom_targets(dashboard: dict[str, Any]) -> Iterator[PromTarget]:
    """Every Prometheus query of a dashboard: panel targets and annotation queries."""
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("type") == "prometheus":
                yield PromTarget(dashboard["uid"], panel["title"], target["refId"],
                                 target["expr"], bool(target.get("instant")))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") == "prometheus":
            yield PromTarget(dashboard["uid"], f"annotation {annotation['name']}", "-",
                             annotation["expr"], instant=False)


VARIABLE_REFERENCE = re.compile(r"\$(?:\{(\w+)(?::[^}]*)?\}|(\w+))")


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """The value each variable takes when an expression is only parsed."""
    values = dict(BUILTIN_VARIABLES)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            values[variable["name"]] = variable.get("allValue") or ".+"
        else:
            values[variable["name"]] = variable["current"]["value"]
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"variable ${name} in {expr!r} is not defined by the dashboard")
        return values[name]
    return VARIABLE_REFERENCE.sub(replace, expr)


STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
BRACES = re.compile(r"\{[^}]*\}")
BRACKETS = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN",
                "by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression that promtool accepted selects.

    Strings, label matchers, ranges and grouping clauses are removed first; what remains
    outside function calls and keywords are vector selectors.
    """
    bare = STRING_LITERAL.sub('""', expr)
    bare = BRACES.sub("", bare)
    bare = BRACKETS.sub("", bare)
    bare = GROUPING.sub("", bare)
    return {name for name in IDENTIFIER.findall(bare) if name not in PROMQL_WORDS}


def architecture_metric_names() -> set[str]:
    """Scraped names of the agent's metrics table; histograms expand to their series."""
    text = ARCHITECTURE_DOC.read_text()
    section = text.split("## Metrics the agent exposes", 1)[1].split("\n## ", 1)[0]
    names = set()
    for name, kind in re.findall(r"^\| `(\w+)` \| (\w+)", section, re.MULTILINE):
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
        else:
            names.add(name)
    return names


def recording_rule_names() -> set[str]:
    names = set()
    for path in sorted(RULES_DIR.glob("*.yml")) + sorted(RULES_DIR.glob("*.yaml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            names.update(rule["record"] for rule in group.get("rules", []) if "record" in rule)
    return names


def service_ports() -> dict[str, set[int]]:
    """Compose service -> container ports, from the services table of docs/architecture.md."""
    text = ARCHITECTURE_DOC.read_text()
    section = text.split("## Services, ports and Prometheus jobs", 1)[1].split("\n## ", 1)[0]
    ports = {}
    for service, port_cell in re.findall(r"^\| ([a-z-]+) \| ([^|]+)\|", section, re.MULTILINE):
        ports[service] = {int(number) for number in re.findall(r"\b\d{2,5}\b", port_cell)}
    return ports


def walk_datasource_links(node: Any, path: str = "jsonData") -> Iterator[tuple[str, str]]:
    """(where, uid) of every datasourceUid / alertmanagerUid inside a data source's jsonData."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("datasourceUid", "alertmanagerUid"):
                yield f"{path}.{key}", value
            else:
                yield from walk_datasource_links(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk_datasource_links(item, f"{path}[{index}]")


def grafana_expanded(value: str) -> str:
    """A provisioned value as Grafana reads it: an escaped $$ becomes one $."""
    return value.replace("$$", "$")


def threshold_steps(panel: dict[str, Any]) -> list[tuple[str, float | None]]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [(step["color"], step["value"]) for step in steps]


DASHBOARDS = load_dashboards()


def find_panel(uid: str, title: str) -> dict[str, Any]:
    for dashboard in DASHBOARDS.values():
        if dashboard["uid"] == uid:
            for panel in panels_of(dashboard):
                if panel["title"] == title:
                    return panel
    raise AssertionError(f"no panel {title!r} in dashboard {uid}")


def promtool() -> str:
    return required_tool("promtool")


# ---------------------------------------------------------------- data sources


def test_datasources_have_the_fixed_uids_types_and_service_urls() -> None:
    sources = load_datasources()

    found = {source["uid"]: (source["type"], source["url"]) for source in sources}

    assert found == EXPECTED_DATASOURCES


def test_datasource_urls_name_a_compose_service_on_its_documented_port() -> None:
    ports = service_ports()

    addresses = [re.fullmatch(r"http://([a-z-]+):(\d+)", source["url"])
                 for source in load_datasources()]

    for source, address in zip(load_datasources(), addresses, strict=True):
        assert address is not None, f"{source['uid']}: url {source['url']} is not host:port"
        host, port = address.group(1), int(address.group(2))
        assert host in ports, f"{source['uid']}: {host} is not a service of the architecture"
        assert port in ports[host], f"{source['uid']}: {host} does not serve port {port}"


def test_provisioning_never_addresses_localhost() -> None:
    texts = {path: path.read_text() for path in (DATASOURCES_FILE, PROVIDER_FILE)}

    offenders = [str(path) for path, text in texts.items()
                 if "localhost" in text or "127.0.0.1" in text]

    assert offenders == []


def test_every_datasource_link_points_at_a_provisioned_uid() -> None:
    uids = set(provisioned_types())

    links = [(source["uid"], where, target) for source in load_datasources()
             for where, target in walk_datasource_links(source.get("jsonData", {}))]

    assert [link for link in links if link[2] not in uids] == []
    assert sorted((source, target) for source, _, target in links) == [
        ("jaeger", "loki"),  # traces to logs
        ("jaeger", "prometheus"),  # traces to metrics
        ("loki", "jaeger"),  # log line to trace
        ("prometheus", "alertmanager"),  # rule alerts to their Alertmanager
        ("prometheus", "jaeger"),  # exemplar to trace
    ]


def test_every_dollar_in_provisioning_is_escaped() -> None:
    texts = {path: path.read_text() for path in (DATASOURCES_FILE, PROVIDER_FILE)}

    unescaped = {str(path): re.findall(r"(?<!\$)\$(?!\$)\S*", text.replace("$$", ""))
                 for path, text in texts.items()}

    assert unescaped == {str(DATASOURCES_FILE): [], str(PROVIDER_FILE): []}


def test_no_grafana_variable_in_provisioning_is_left_for_env_expansion() -> None:
    text = DATASOURCES_FILE.read_text()

    single = re.findall(r"(?<!\$)\$\{__[^}]*\}", text)

    assert single == []


def test_escaped_links_reach_grafana_as_its_own_variables() -> None:
    sources = {source["uid"]: source["jsonData"] for source in load_datasources()}

    derived = sources["loki"]["derivedFields"][0]
    traces_to_logs = sources["jaeger"]["tracesToLogsV2"]
    metric_queries = [grafana_expanded(query["query"])
                      for query in sources["jaeger"]["tracesToMetrics"]["queries"]]

    assert grafana_expanded(derived["url"]) == "${__value.raw}"
    assert grafana_expanded(traces_to_logs["query"]) == (
        '{${__tags}} | trace_id="${__trace.traceId}"')
    assert all("{$__tags" in query for query in metric_queries)


def test_loki_trace_link_reads_structured_metadata() -> None:
    loki = next(source for source in load_datasources() if source["uid"] == "loki")

    derived = loki["jsonData"]["derivedFields"][0]

    assert (derived["matcherType"], derived["matcherRegex"], derived["datasourceUid"]) == (
        "label", "trace_id", "jaeger")


def test_exemplars_link_the_trace_id_label_to_jaeger() -> None:
    prometheus = next(source for source in load_datasources() if source["uid"] == "prometheus")

    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]

    assert [(item["name"], item["datasourceUid"]) for item in destinations] == [
        ("trace_id", "jaeger")]


def test_traces_to_logs_widens_the_span_window_and_maps_the_service() -> None:
    jaeger = next(source for source in load_datasources() if source["uid"] == "jaeger")

    settings = jaeger["jsonData"]["tracesToLogsV2"]

    assert settings["spanStartTimeShift"].startswith("-")
    assert settings["spanEndTimeShift"] not in ("", "0")
    assert settings["tags"] == [{"key": "service.name", "value": "service_name"}]
    assert settings["customQuery"] is True


def test_alertmanager_datasource_reads_a_prometheus_alertmanager() -> None:
    alertmanager = next(source for source in load_datasources()
                        if source["uid"] == "alertmanager")

    settings = alertmanager["jsonData"]

    assert settings["implementation"] == "prometheus"
    assert settings["handleGrafanaManagedAlerts"] is False


# ---------------------------------------------------------------- dashboard provider


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    providers = yaml.safe_load(PROVIDER_FILE.read_text())["providers"]

    file_providers = [(item["type"], item["options"]["path"]) for item in providers]

    assert file_providers == [("file", DASHBOARD_MOUNT)]


def test_compose_mounts_the_dashboards_where_the_provider_reads_them() -> None:
    if not COMPOSE_FILE.exists():
        pytest.skip("compose.yaml is not written yet")
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]

    volumes = [str(volume) for volume in services["grafana"].get("volumes", [])]

    assert any(volume.split(":")[0].rstrip("/").endswith("config/grafana/dashboards")
               and volume.split(":")[1].rstrip("/") == DASHBOARD_MOUNT for volume in volumes)


# ---------------------------------------------------------------- dashboards as Grafana models


def test_the_six_dashboards_have_unique_expected_uids() -> None:
    uids = [dashboard.get("uid") for dashboard in DASHBOARDS.values()]

    assert sorted(uids) == sorted(EXPECTED_DASHBOARD_UIDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_a_grafana_dashboard_model(name: str) -> None:
    dashboard = DASHBOARDS[name]

    panels = panels_of(dashboard)

    assert name == f"{dashboard['uid']}.json"
    assert dashboard["title"].startswith("LuminaMind / ")
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= OLDEST_SCHEMA_VERSION
    assert "luminamind" in dashboard["tags"]
    assert panels, "a dashboard without panels"
    for panel in panels:
        assert isinstance(panel["id"], int) and panel["type"] and panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("h", "w", "x", "y"))
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids repeat"
    assert len({panel["title"] for panel in panels if panel["type"] != "row"}) == len(
        [panel for panel in panels if panel["type"] != "row"]), "panel titles repeat"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap(name: str) -> None:
    boxes = [(panel["title"], panel["gridPos"]) for panel in DASHBOARDS[name]["panels"]]

    overlaps = [
        (first, second)
        for index, (first, a) in enumerate(boxes)
        for second, b in boxes[index + 1:]
        if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    ]

    assert overlaps == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_names_a_provisioned_datasource_by_uid(name: str) -> None:
    types = provisioned_types()
    dashboard = DASHBOARDS[name]

    references = [(panel["title"], panel["datasource"])
                  for panel in panels_of(dashboard) if panel.get("targets")]
    references += [(f"{panel['title']} {target['refId']}", target["datasource"])
                   for panel in panels_of(dashboard) for target in panel.get("targets", [])]
    references += [(variable["name"], variable["datasource"])
                   for variable in dashboard["templating"]["list"] if "datasource" in variable]
    references += [(annotation["name"], annotation["datasource"])
                   for annotation in dashboard["annotations"]["list"]]

    wrong = [(where, source) for where, source in references
             if not isinstance(source, dict) or types.get(source.get("uid")) != source.get("type")]
    assert wrong == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_target_of_a_panel_has_its_own_ref_id(name: str) -> None:
    ref_ids = {panel["title"]: [target.get("refId") for target in panel.get("targets", [])]
               for panel in panels_of(DASHBOARDS[name])}

    repeated = {title: ids for title, ids in ref_ids.items()
                if None in ids or len(set(ids)) != len(ids)}

    assert repeated == {}


def test_dashboards_link_to_each_other() -> None:
    uids = {dashboard["uid"] for dashboard in DASHBOARDS.values()}

    tag_links = {dashboard["uid"]: [link for link in dashboard["links"]
                                    if link["type"] == "dashboards"
                                    and link["tags"] == ["luminamind"]]
                 for dashboard in DASHBOARDS.values()}
    panel_link_uids = {match for dashboard in DASHBOARDS.values()
                       for panel in panels_of(dashboard) for link in panel.get("links", [])
                       for match in re.findall(r"^/d/([\w-]+)", link["url"])}

    assert all(tag_links.values()), tag_links
    assert panel_link_uids <= uids


@pytest.mark.parametrize(("uid", "title"), sorted(ALERT_THRESHOLDS))
def test_alert_panel_thresholds_match_the_alert_rule(uid: str, title: str) -> None:
    (base, past), value = ALERT_THRESHOLDS[(uid, title)]

    steps = threshold_steps(find_panel(uid, title))

    assert steps == [(base, None), (past, value)]


# ---------------------------------------------------------------- queries


def all_prom_targets() -> list[PromTarget]:
    return [target for dashboard in DASHBOARDS.values() for target in prom_targets(dashboard)]


def test_every_variable_a_query_uses_is_defined() -> None:
    undefined = []

    for dashboard in DASHBOARDS.values():
        values = variable_values(dashboard)
        for target in prom_targets(dashboard):
            try:
                substitute(target.expr, values)
            except KeyError as error:
                undefined.append(str(error))

    assert undefined == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_promql_target_parses_with_promtool(name: str, tmp_path: Path) -> None:
    dashboard = DASHBOARDS[name]
    values = variable_values(dashboard)
    targets = list(prom_targets(dashboard))
    selectors = [variable["query"].removeprefix("label_values(").rsplit(",", 1)[0]
                 for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    expressions = [substitute(target.expr, values) for target in targets] + selectors
    group = re.sub(r"\W", "_", dashboard["uid"])
    rules = [{"record": f"dashboard:{group}:query_{index}", "expr": expr}
             for index, expr in enumerate(expressions)]
    rule_file = tmp_path / f"{group}.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": group, "rules": rules}]}))

    result = subprocess.run([promtool(), "check", "rules", str(rule_file)],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_metric_a_dashboard_reads_is_known() -> None:
    known = (architecture_metric_names() | REDIS_EXPORTER_METRICS | PROCESS_METRICS
             | PROMETHEUS_METRICS | recording_rule_names())

    unknown = {}
    for dashboard in DASHBOARDS.values():
        values = variable_values(dashboard)
        for target in prom_targets(dashboard):
            names = metric_names(substitute(target.expr, values)) - known
            if names:
                unknown[f"{target.dashboard_uid} / {target.panel_title}"] = sorted(names)

    assert unknown == {}


def test_metric_name_check_sees_every_selector_of_a_query() -> None:
    expr = ('100 * sum by (le) (rate(a_total{x="b{c}"}[5m])) / on (job) group_left b_bytes'
            ' or vector(0) + c:rule:sum offset 1m')

    names = metric_names(expr)

    assert names == {"a_total", "b_bytes", "c:rule:sum"}


def test_dashboards_use_the_scraped_cost_counter_name() -> None:
    exprs = [target.expr for target in all_prom_targets()]

    bare = [expr for expr in exprs
            if re.search(r"(?<![\w:])luminamind_llm_cost_usd(?![\w:])", expr)]

    assert bare == []
    assert any("luminamind_llm_cost_usd_total" in expr for expr in exprs)


def test_every_quantile_sums_bucket_rates_by_le() -> None:
    exprs = [target.expr for target in all_prom_targets() if "histogram_quantile" in target.expr]

    unsummed = [expr for expr in exprs
                if not re.search(r"histogram_quantile\([\d.]+, sum by \([^)]*\ble\b[^)]*\) "
                                 r"\(\s*rate\(\w+_bucket", expr)]

    assert exprs and unsummed == []


def test_logql_targets_select_the_agent_service() -> None:
    targets = [(panel["title"], target) for dashboard in DASHBOARDS.values()
               for panel in panels_of(dashboard) for target in panel.get("targets", [])
               if target["datasource"]["type"] == "loki"]

    malformed = [title for title, target in targets
                 if AGENT_LOG_SELECTOR not in target["expr"]
                 or target.get("queryType") not in ("range", "instant")]

    assert len(targets) >= 3 and malformed == []


def test_jaeger_targets_search_the_agent_service() -> None:
    targets = [(panel["title"], target) for dashboard in DASHBOARDS.values()
               for panel in panels_of(dashboard) for target in panel.get("targets", [])
               if target["datasource"]["type"] == "jaeger"]

    malformed = [title for title, target in targets
                 if target.get("queryType") != "search" or target.get("service") != AGENT_SERVICE]

    assert len(targets) >= 1 and malformed == []
