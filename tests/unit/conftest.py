"""Unit-tier fixtures: the agent's ASGI app in process, spans kept in memory.

Redis points at a loopback port nobody listens on, so every Redis call fails fast the way
it does when Redis is down; the agent must answer anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demo_agent.app import create_app
from demo_agent.settings import Settings
from lab.loopback import free_port


class AppClient:
    """Synchronous calls into the ASGI app, on one event loop kept for the whole test."""

    def __init__(self, app: FastAPI, raise_app_exceptions: bool = True) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://agent.test")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def client(spans: InMemorySpanExporter) -> Iterator[AppClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", latency_scale=0.0,
                        max_message_chars=200)
    app = create_app(settings, tracer_provider=provider)
    app_client = AppClient(app)
    yield app_client
    app_client.close()
    app.state.faults.reset()
