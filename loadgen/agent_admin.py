"""The agent's admin API and /metrics, as the scenarios use them."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

FaultValues = dict[str, Any]
REQUEST_TIMEOUT_S = 5.0


class AgentUnreachable(RuntimeError):
    """The agent did not answer; the message names the URL and what to start."""


class AgentAdmin:
    def __init__(self, host: str) -> None:
        self.host = host.rstrip("/")
        self._client = httpx.Client(base_url=self.host, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise AgentUnreachable(
                f"{method} {self.host}{path} failed ({type(error).__name__}: {error}); "
                "is the agent running? Start the lab with `make up` or pass --host"
            ) from None
        if response.status_code >= 400:
            raise AgentUnreachable(
                f"{method} {self.host}{path} answered {response.status_code}: {response.text}"
            )
        return response

    def check_alive(self) -> None:
        """Raise AgentUnreachable unless the agent answers /healthz now."""
        self._request("GET", "/healthz")

    def faults(self) -> FaultValues:
        return self._request("GET", "/admin/faults").json()

    def set_faults(self, values: FaultValues) -> FaultValues:
        return self._request("PUT", "/admin/faults", json=values).json()

    def metric(self, name: str) -> float:
        """The value of an unlabelled sample on the agent's /metrics page."""
        text = self._request("GET", "/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        raise AgentUnreachable(f"{self.host}/metrics has no sample named {name}")

    def wait_until(self, path: str, timeout_s: float) -> bool:
        """Poll ``path`` until it answers 200; False when ``timeout_s`` ran out first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self._client.get(path, timeout=1.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        return False
