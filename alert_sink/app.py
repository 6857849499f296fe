"""The sink's ASGI app: webhook intake, JSON and HTML views, runbooks, health, metrics."""

import json
from datetime import UTC, datetime

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from alert_sink import metrics
from alert_sink.page import render_page
from alert_sink.payload import WebhookPayload, describe_validation_error
from alert_sink.runbooks import RunbookFolder, is_runbook_name, render_index, render_runbook
from alert_sink.settings import SinkSettings
from alert_sink.store import Notification, NotificationStore

log = structlog.get_logger("alert_sink")


class RejectedPayload(Exception):
    """A webhook call the sink refuses, with the HTTP status and a message naming the fix."""

    def __init__(self, reason: str, status_code: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code
        self.message = message


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it grows past ``limit`` bytes."""
    too_large = RejectedPayload(
        "too_large",
        413,
        f"body exceeds {limit} bytes; raise ALERT_SINK_MAX_BODY_BYTES "
        "or lower max_alerts in the Alertmanager webhook config",
    )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _parse_payload(body: bytes) -> WebhookPayload:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise RejectedPayload(
            "invalid_json",
            400,
            f"body is not valid JSON ({error}); send an Alertmanager webhook payload",
        ) from None
    try:
        return WebhookPayload.model_validate(document)
    except ValidationError as error:
        raise RejectedPayload(
            "invalid_shape",
            422,
            "not an Alertmanager webhook payload (version 4): " + describe_validation_error(error),
        ) from None


def _record(notification: Notification, size_bytes: int, store: NotificationStore) -> None:
    store.add(notification, size_bytes)
    metrics.NOTIFICATIONS.labels(notification.receiver, notification.status).inc()
    for alert in notification.alerts:
        metrics.ALERTS.labels(notification.receiver, alert.status).inc()
    metrics.STORED_NOTIFICATIONS.set(len(store))
    log.info(
        "notification_received",
        receiver=notification.receiver,
        status=notification.status,
        alertnames=notification.alert_names,
        count=len(notification.alerts),
    )


def _runbook_not_found(name: str, runbooks: RunbookFolder) -> JSONResponse:
    shown = name[:64]
    if is_runbook_name(name):
        known = ", ".join(runbooks.names()) or f"none (no runbook in {runbooks.folder})"
        message = f"no runbook named {shown!r}; the runbooks are: {known}"
    else:
        message = (
            f"{shown!r} is not an alert name: runbook names are letters only, "
            "e.g. /runbooks/HighErrorRate; GET /runbooks lists them"
        )
    log.info("runbook_not_found", name=shown)
    return JSONResponse({"error": "runbook_not_found", "message": message}, status_code=404)


def create_app(settings: SinkSettings) -> Starlette:
    """A sink keeping the last ``settings.max_notifications`` notifications."""
    store = NotificationStore(settings.max_notifications)
    runbooks = RunbookFolder(settings.runbooks_dir)

    async def receive_webhook(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, settings.max_body_bytes)
            payload = _parse_payload(body)
        except RejectedPayload as rejection:
            metrics.REJECTED_PAYLOADS.labels(rejection.reason).inc()
            log.warning(
                "payload_rejected",
                reason=rejection.reason,
                detail=rejection.message,
                client=request.client.host if request.client else None,
            )
            return JSONResponse(
                {"error": rejection.reason, "message": rejection.message},
                status_code=rejection.status_code,
            )
        notification = Notification.from_webhook(payload, datetime.now(UTC))
        _record(notification, len(body), store)
        return JSONResponse({"status": "accepted"})

    async def list_notifications(request: Request) -> JSONResponse:
        notifications = [notification.as_json() for notification in store.newest_first()]
        return JSONResponse({"notifications": notifications, "capacity": store.capacity})

    async def show_page(request: Request) -> HTMLResponse:
        return HTMLResponse(
            render_page(store.newest_first(), store.capacity, set(runbooks.names()))
        )

    async def list_runbooks(request: Request) -> HTMLResponse:
        return HTMLResponse(render_index(runbooks.names(), runbooks.folder))

    async def show_runbook(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "":
            # /runbooks/ is the index typed with a slash; its links are relative to /runbooks.
            return RedirectResponse("../runbooks", status_code=307)
        if name.endswith("/") and is_runbook_name(name[:-1]):
            return RedirectResponse(f"../{name[:-1]}", status_code=307)
        text = runbooks.read(name) if is_runbook_name(name) else None
        if text is None:
            return _runbook_not_found(name, runbooks)
        return HTMLResponse(render_runbook(name, text))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def serve_metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        code = "not_found" if error.status_code == 404 else "http_error"
        message = (
            f"{request.method} {request.url.path}: {error.detail}; the routes are "
            "POST /webhook and GET /, /api/notifications, /runbooks, "
            "/runbooks/<AlertName>, /healthz, /metrics"
        )
        # error.headers carries Allow on a 405.
        return JSONResponse({"error": code, "message": message}, status_code=error.status_code,
                            headers=error.headers)

    routes = [
        Route("/webhook", receive_webhook, methods=["POST"]),
        Route("/api/notifications", list_notifications, methods=["GET"]),
        Route("/", show_page, methods=["GET"]),
        Route("/runbooks", list_runbooks, methods=["GET"]),
        # `path` lets a name holding `/` (../../etc/passwd) reach the name check and get the
        # runbook's own 404 that says what a runbook name is.
        Route("/runbooks/{name:path}", show_runbook, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/metrics", serve_metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
