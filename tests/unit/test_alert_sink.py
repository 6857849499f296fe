"""The alert sink through its ASGI app, fed webhook payloads in Alertmanager 0.25's format.

The payloads below were recorded from a real Alertmanager posting to a webhook receiver;
only receiver names, labels and times vary between tests.
"""

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from alert_sink.app import create_app
from alert_sink.payload import WebhookPayload
from alert_sink.settings import SettingsError, SinkSettings, load_settings
from alert_sink.store import Notification, NotificationStore

FIRING_PAYLOAD: dict[str, Any] = {
    "receiver": "slack-critical",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighErrorRate",
                "severity": "critical",
                "team": "engineering",
            },
            "annotations": {
                "description": "Error rate is 7.5% (threshold: 1%)",
                "runbook_url": "docs/runbooks/HighErrorRate.md",
                "summary": "High error rate detected",
            },
            "startsAt": "2026-12-03T15:43:37Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=x",
            "fingerprint": "70d38f6608fafe66",
        }
    ],
    "groupLabels": {"alertname": "HighErrorRate"},
    "commonLabels": {
        "alertname": "HighErrorRate",
        "severity": "critical",
        "team": "engineering",
    },
    "commonAnnotations": {
        "description": "Error rate is 7.5% (threshold: 1%)",
        "runbook_url": "docs/runbooks/HighErrorRate.md",
        "summary": "High error rate detected",
    },
    "externalURL": "http://127.0.0.1:9093",
    "version": "4",
    "groupKey": '{}:{alertname="HighErrorRate"}',
    "truncatedAlerts": 0,
}


def resolved_payload(receiver: str = "slack-critical") -> dict[str, Any]:
    payload = copy.deepcopy(FIRING_PAYLOAD)
    payload["receiver"] = receiver
    payload["status"] = "resolved"
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2026-12-03T15:43:41Z"
    return payload


def firing_payload(
    receiver: str = "slack-critical", alertname: str = "HighErrorRate"
) -> dict[str, Any]:
    payload = copy.deepcopy(FIRING_PAYLOAD)
    payload["receiver"] = receiver
    payload["groupLabels"]["alertname"] = alertname
    payload["alerts"][0]["labels"]["alertname"] = alertname
    return payload


pytestmark = pytest.mark.anyio

Sink = httpx.AsyncClient


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sink_client(settings: SinkSettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://alert-sink")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with sink_client(SinkSettings(max_notifications=500, max_body_bytes=64_000)) as client:
        yield client


async def metric_value(
    client: httpx.AsyncClient, sample_name: str, labels: dict[str, str]
) -> float:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and sample.labels == labels:
                return sample.value
    return 0.0


async def test_firing_notification_is_listed_with_its_receiver_and_alert(client: Sink) -> None:
    await client.post("/webhook", json=firing_payload())

    response = await client.get("/api/notifications")

    assert response.status_code == 200
    [notification] = response.json()["notifications"]
    assert notification["receiver"] == "slack-critical"
    assert notification["status"] == "firing"
    assert notification["group_labels"] == {"alertname": "HighErrorRate"}
    assert notification["alerts"] == [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighErrorRate",
                "severity": "critical",
                "team": "engineering",
            },
            "annotations": {
                "description": "Error rate is 7.5% (threshold: 1%)",
                "runbook_url": "docs/runbooks/HighErrorRate.md",
                "summary": "High error rate detected",
            },
            "starts_at": "2026-12-03T15:43:37+00:00",
            "ends_at": None,
            "fingerprint": "70d38f6608fafe66",
        }
    ]


async def test_webhook_accepts_a_valid_payload_with_200(client: Sink) -> None:
    response = await client.post("/webhook", json=firing_payload())

    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}


async def test_resolved_alert_keeps_its_end_time(client: Sink) -> None:
    await client.post("/webhook", json=resolved_payload())

    [notification] = (await client.get("/api/notifications")).json()["notifications"]

    assert notification["status"] == "resolved"
    assert notification["alerts"][0]["ends_at"] == "2026-12-03T15:43:41+00:00"


async def test_notifications_are_listed_newest_first(client: Sink) -> None:
    await client.post("/webhook", json=firing_payload(receiver="pagerduty-critical"))
    await client.post("/webhook", json=firing_payload(receiver="slack-critical"))
    await client.post("/webhook", json=resolved_payload(receiver="slack-critical"))

    notifications = (await client.get("/api/notifications")).json()["notifications"]

    assert [(entry["receiver"], entry["status"]) for entry in notifications] == [
        ("slack-critical", "resolved"),
        ("slack-critical", "firing"),
        ("pagerduty-critical", "firing"),
    ]


async def test_sink_keeps_only_the_last_max_notifications() -> None:
    settings = load_settings({"ALERT_SINK_MAX_NOTIFICATIONS": "2"})
    async with sink_client(settings) as client:
        for alertname in ("HighErrorRate", "HighLatency", "LowAccuracy"):
            await client.post("/webhook", json=firing_payload(alertname=alertname))

        notifications = (await client.get("/api/notifications")).json()["notifications"]

    assert [entry["group_labels"]["alertname"] for entry in notifications] == [
        "LowAccuracy",
        "HighLatency",
    ]


def test_the_store_drops_the_oldest_when_the_payload_bytes_pass_its_budget() -> None:
    store = NotificationStore(capacity=100, max_bytes=1000)
    received = datetime.now(UTC)
    for alertname in ("HighErrorRate", "HighLatency", "LowAccuracy"):
        payload = WebhookPayload.model_validate(firing_payload(alertname=alertname))
        store.add(Notification.from_webhook(payload, received), size_bytes=400)

    kept = [notification.group_labels["alertname"] for notification in store.newest_first()]

    assert kept == ["LowAccuracy", "HighLatency"]


def test_max_notifications_defaults_to_500() -> None:
    settings = load_settings({})

    assert settings.max_notifications == 500


def test_max_notifications_that_is_not_a_number_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="ALERT_SINK_MAX_NOTIFICATIONS='many'"):
        load_settings({"ALERT_SINK_MAX_NOTIFICATIONS": "many"})


async def test_body_that_is_not_json_gets_400_invalid_json(client: Sink) -> None:
    response = await client.post(
        "/webhook", content=b'{"receiver": "slack-critical",', headers={"content-type": "json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert "not valid JSON" in response.json()["message"]


@pytest.mark.parametrize("ends_at", ["2026-01-01T00:00:00", "2026-01-01"])
async def test_alert_time_without_a_zone_gets_422_not_a_crash(client: Sink, ends_at: str) -> None:
    payload = resolved_payload()
    payload["alerts"][0]["endsAt"] = ends_at

    response = await client.post("/webhook", json=payload)

    assert response.status_code == 422
    assert "alerts.0.endsAt: Input should have timezone info" in response.json()["message"]


async def test_alert_without_fingerprint_gets_422_naming_the_field(client: Sink) -> None:
    payload = firing_payload()
    del payload["alerts"][0]["fingerprint"]

    response = await client.post("/webhook", json=payload)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_shape"
    assert "alerts.0.fingerprint: Field required" in response.json()["message"]


async def test_payload_of_another_version_gets_422_naming_version(client: Sink) -> None:
    payload = firing_payload()
    payload["version"] = "3"

    response = await client.post("/webhook", json=payload)

    assert response.status_code == 422
    assert "version: Input should be '4'" in response.json()["message"]


async def test_json_array_instead_of_payload_gets_422(client: Sink) -> None:
    response = await client.post("/webhook", json=[firing_payload()])

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_shape"


async def test_body_over_the_size_limit_gets_413(client: Sink) -> None:
    payload = firing_payload()
    payload["alerts"][0]["annotations"]["description"] = "x" * 70_000

    response = await client.post("/webhook", json=payload)

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert "ALERT_SINK_MAX_BODY_BYTES" in response.json()["message"]


async def test_rejected_payload_is_not_stored_and_sink_keeps_serving(client: Sink) -> None:
    await client.post("/webhook", content=b"\xff\xfe not json")

    health = await client.get("/healthz")
    notifications = (await client.get("/api/notifications")).json()["notifications"]

    assert health.status_code == 200
    assert notifications == []


async def test_rejected_payload_is_counted_by_reason(client: Sink) -> None:
    labels = {"reason": "invalid_json"}
    before = await metric_value(client, "alert_sink_rejected_payloads_total", labels)

    await client.post("/webhook", content=b"not json")

    after = await metric_value(client, "alert_sink_rejected_payloads_total", labels)
    assert after - before == 1.0


async def test_accepted_notification_is_counted_by_receiver_and_status(client: Sink) -> None:
    labels = {"receiver": "slack-info", "status": "resolved"}
    before = await metric_value(client, "alert_sink_notifications_total", labels)

    await client.post("/webhook", json=resolved_payload(receiver="slack-info"))

    after = await metric_value(client, "alert_sink_notifications_total", labels)
    assert after - before == 1.0


async def test_notification_is_logged_with_receiver_status_and_alertnames(client: Sink) -> None:
    with capture_logs() as events:
        await client.post("/webhook", json=firing_payload(receiver="slack-warnings"))

    assert {
        "event": "notification_received",
        "log_level": "info",
        "receiver": "slack-warnings",
        "status": "firing",
        "alertnames": ["HighErrorRate"],
        "count": 1,
    } in events


async def test_rejected_payload_is_logged_with_its_reason(client: Sink) -> None:
    with capture_logs() as events:
        await client.post("/webhook", content=b"not json")

    [event] = [event for event in events if event["event"] == "payload_rejected"]
    assert event["reason"] == "invalid_json"
    assert event["log_level"] == "warning"


async def test_page_shows_one_section_per_receiver_in_name_order(client: Sink) -> None:
    await client.post("/webhook", json=firing_payload(receiver="slack-critical"))
    await client.post("/webhook", json=firing_payload(receiver="pagerduty-critical"))

    page = (await client.get("/")).text

    assert page.index("<h2>pagerduty-critical <small>(1)</small></h2>") < page.index(
        "<h2>slack-critical <small>(1)</small></h2>"
    )


async def test_page_marks_firing_and_resolved_notifications(client: Sink) -> None:
    await client.post("/webhook", json=firing_payload())
    await client.post("/webhook", json=resolved_payload())

    page = (await client.get("/")).text

    assert '<article class="firing"><h3><span class="status">FIRING</span>' in page
    assert '<article class="resolved"><h3><span class="status">RESOLVED</span>' in page


async def test_page_escapes_label_values_from_the_payload(client: Sink) -> None:
    payload = firing_payload(alertname="<script>alert(1)</script>")
    payload["receiver"] = "slack-<b>info</b>"
    await client.post("/webhook", json=payload)

    page = (await client.get("/")).text

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "slack-&lt;b&gt;info&lt;/b&gt;" in page


async def test_page_without_notifications_says_how_to_trip_one(client: Sink) -> None:
    page = await client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "No notification yet" in page.text


async def test_healthz_answers_200(client: Sink) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_unknown_route_gets_a_json_404(client: Sink) -> None:
    response = await client.get("/alerts")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
