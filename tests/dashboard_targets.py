"""The queries the provisioned dashboards send, collected once for every tier that runs them.

The integration tier evaluates the PromQL targets against a real Prometheus and checks the
LogQL and Jaeger targets for shape; the smoke tier sends the LogQL and Jaeger targets
through Grafana to the real Loki and Jaeger. Both read the targets and resolve template
variables the same way, from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.config.test_grafana_provisioning import DASHBOARDS, panels_of

# Panels that read what the agent writes only while something fails on purpose.
ERROR_LOG_PANEL = ("luminamind-oncall", "Errors and warnings")
FAILED_TRACES_PANEL = ("luminamind-oncall", "Failed traces")
SLOW_TRACES_PANEL = ("luminamind-oncall", "Slow traces (over 5 s)")

REGEX_SPECIALS = re.compile(r"([\\^$.|?*+()\[\]{}])")
LABEL_VALUES_QUERY = re.compile(r"label_values\((.+),\s*(\w+)\)")


def panel_targets() -> list[tuple[str, str, dict[str, Any]]]:
    """(dashboard uid, panel title, target) of every panel query of every dashboard."""
    return [(dashboard["uid"], panel["title"], target) for dashboard in DASHBOARDS.values()
            for panel in panels_of(dashboard) for target in panel.get("targets", [])]


def targets_of_type(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(uid, title, target) for uid, title, target in panel_targets()
            if target["datasource"]["type"] == kind]


def dashboard_by_uid(uid: str) -> dict[str, Any]:
    return next(dashboard for dashboard in DASHBOARDS.values() if dashboard["uid"] == uid)


def panel_by_title(uid: str, title: str) -> dict[str, Any]:
    return next(panel for panel in panels_of(dashboard_by_uid(uid)) if panel["title"] == title)


def label_values_arguments(variable_query: str) -> tuple[str, str]:
    """(selector, label) of a Grafana `label_values(selector, label)` variable query."""
    match = LABEL_VALUES_QUERY.fullmatch(variable_query)
    assert match is not None, f"not a label_values() variable: {variable_query}"
    selector, label = match.groups()
    return selector, label


def as_regex_alternation(values: list[str]) -> str:
    """The value Grafana sends when every option of a multi-value variable is selected."""
    escaped = [REGEX_SPECIALS.sub(r"\\\\\1", value) for value in values]
    return "(" + "|".join(escaped) + ")"


def resolve_variables(
    dashboard: dict[str, Any],
    builtins: dict[str, str],
    list_label_values: Callable[[str], list[str]],
) -> dict[str, str]:
    """Each template variable's value with every option selected, plus Grafana's builtins.

    `list_label_values` answers a `label_values(...)` variable query from a real Prometheus.
    """
    values = dict(builtins)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = list_label_values(variable["query"])
            assert found, f"variable ${variable['name']} lists nothing: {variable['query']}"
            values[variable["name"]] = as_regex_alternation(found)
        else:
            values[variable["name"]] = variable["current"]["value"]
    return values
