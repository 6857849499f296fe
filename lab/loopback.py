"""The lab's real components as child processes on free 127.0.0.1 ports.

Redis, redis_exporter, Prometheus, Alertmanager, the demo agent and the alert sink are
started from the very files under config/, with only scrape and webhook addresses rewritten
from compose service names to loopback ports. The integration tests and the benchmarks use
this; nothing here needs Docker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml

log = structlog.get_logger("lab.loopback")

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG = REPO_ROOT / "config" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "config" / "alertmanager" / "alertmanager.yml"
SINK_WEBHOOK_ORIGIN = "http://alert-sink:8090"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# Debian package that ships each binary, named in the error when it is missing.
BINARY_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


class LoopbackError(RuntimeError):
    """A component could not be started; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = BINARY_PACKAGES.get(name, name)
        raise LoopbackError(f"{name} is not installed: apt-get install {package}")
    return path


@dataclass
class Component:
    """One child process: how to start it, how to tell it is ready, where its output goes."""

    name: str
    argv: list[str]
    port: int
    workdir: Path
    ready: Callable[[Component], bool]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"{self.name}.out"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.name}.err"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Component:
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=err, cwd=REPO_ROOT,
                env={**os.environ, **self.env}, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise LoopbackError(f"{self.name} exited at start; see {self.stderr_path}")
            if self.ready(self):
                log.info("component_started", component=self.name, address=self.address)
                return self
            time.sleep(0.1)
        self.stop()
        raise LoopbackError(f"{self.name} not ready after {timeout_s:.0f} s; "
                            f"see {self.stderr_path}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("component_stopped", component=self.name)


def http_ready(path: str) -> Callable[[Component], bool]:
    def check(component: Component) -> bool:
        try:
            return httpx.get(component.url + path, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False
    return check


def redis_ready(component: Component) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", component.port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def rewrite_prometheus_config(config: dict[str, Any], targets: dict[str, str],
                              rules_dir: Path | None, alertmanager: str | None) -> dict[str, Any]:
    """The compose config with service:port targets swapped for loopback addresses.

    Jobs whose targets are not running here (Grafana, Loki, Jaeger) are dropped rather
    than left failing, so `up == 0` only ever means a component the test stopped.
    """
    rewritten = dict(config)
    jobs = []
    for job in config.get("scrape_configs", []):
        groups = []
        for group in job.get("static_configs", []):
            mapped = [targets[target] for target in group["targets"] if target in targets]
            if mapped:
                groups.append({**group, "targets": mapped})
        if groups:
            jobs.append({**job, "static_configs": groups})
    rewritten["scrape_configs"] = jobs
    rewritten["rule_files"] = [str(rules_dir / "*.yml")] if rules_dir is not None else []
    if alertmanager is None:
        rewritten.pop("alerting", None)
    else:
        rewritten["alerting"] = {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager]}]}]}
    return rewritten


def rewrite_webhook_urls(node: Any, sink_url: str) -> Any:
    """Every webhook URL aimed at the compose alert-sink, aimed at the loopback sink."""
    if isinstance(node, dict):
        return {key: rewrite_webhook_urls(value, sink_url) for key, value in node.items()}
    if isinstance(node, list):
        return [rewrite_webhook_urls(item, sink_url) for item in node]
    if isinstance(node, str) and node.startswith(SINK_WEBHOOK_ORIGIN):
        return sink_url + node.removeprefix(SINK_WEBHOOK_ORIGIN)
    return node


class LoopbackLab:
    """Starts components on demand and stops all of them, newest first, on close()."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.components: list[Component] = []

    def __enter__(self) -> LoopbackLab:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for component in reversed(self.components):
            component.stop()

    def _start(self, component: Component) -> Component:
        self.components.append(component)
        return component.start()

    def start_redis(self) -> Component:
        port = free_port()
        argv = [require_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        return self._start(Component("redis", argv, port, self.workdir, redis_ready))

    def start_redis_exporter(self, redis: Component) -> Component:
        port = free_port()
        argv = [require_binary("prometheus-redis-exporter"),
                f"-redis.addr=redis://{redis.address}", f"-web.listen-address=127.0.0.1:{port}"]
        return self._start(Component("redis-exporter", argv, port, self.workdir,
                                     http_ready("/metrics")))

    def start_agent(self, redis: Component, env: dict[str, str] | None = None) -> Component:
        port = free_port()
        agent_env = {"AGENT_HOST": "127.0.0.1", "AGENT_PORT": str(port),
                     "AGENT_REDIS_URL": f"redis://{redis.address}/0", **(env or {})}
        argv = [sys.executable, "-m", "demo_agent"]
        return self._start(Component("demo-agent", argv, port, self.workdir,
                                     http_ready("/healthz"), env=agent_env))

    def start_sink(self, env: dict[str, str] | None = None) -> Component:
        port = free_port()
        sink_env = {"ALERT_SINK_HOST": "127.0.0.1", "ALERT_SINK_PORT": str(port), **(env or {})}
        argv = [sys.executable, "-m", "alert_sink"]
        return self._start(Component("alert-sink", argv, port, self.workdir,
                                     http_ready("/healthz"), env=sink_env))

    def start_alertmanager(self, sink: Component,
                           config_path: Path = ALERTMANAGER_CONFIG) -> Component:
        port = free_port()
        config = rewrite_webhook_urls(yaml.safe_load(config_path.read_text()), sink.url)
        written = self.workdir / "alertmanager.yml"
        written.write_text(yaml.safe_dump(config, sort_keys=False))
        _copy_templates(config_path.parent, self.workdir)
        argv = [require_binary("prometheus-alertmanager"), f"--config.file={written}",
                f"--storage.path={self.workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
        return self._start(Component("alertmanager", argv, port, self.workdir,
                                     http_ready("/-/ready")))

    def start_prometheus(self, scrape: dict[str, Component], rules_dir: Path | None = None,
                         alertmanager: Component | None = None) -> Component:
        """scrape maps each compose "service:port" target to the component serving it."""
        port = free_port()
        targets = {name: component.address for name, component in scrape.items()}
        targets["localhost:9090"] = f"127.0.0.1:{port}"
        config = rewrite_prometheus_config(
            yaml.safe_load(PROMETHEUS_CONFIG.read_text()), targets, rules_dir,
            alertmanager.address if alertmanager is not None else None,
        )
        written = self.workdir / "prometheus.yml"
        written.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [require_binary("prometheus"), f"--config.file={written}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                "--enable-feature=exemplar-storage"]
        return self._start(Component("prometheus", argv, port, self.workdir,
                                     http_ready("/-/ready")))


def _copy_templates(config_dir: Path, workdir: Path) -> None:
    templates = config_dir / "templates"
    if templates.is_dir():
        shutil.copytree(templates, workdir / "templates", dirs_exist_ok=True)
