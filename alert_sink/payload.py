"""The shape of an Alertmanager webhook payload (version 4), as the sink accepts it.

Field names follow Alertmanager's JSON (camelCase); unknown fields are ignored so a
newer Alertmanager that adds fields is still accepted.
"""

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

AlertStatus = Literal["firing", "resolved"]

# Alertmanager sends this "zero time" as endsAt of an alert that is still firing.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    # Alertmanager always sends RFC 3339 with a zone; a time without one cannot be placed.
    startsAt: AwareDatetime
    endsAt: AwareDatetime
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1)


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    status: AlertStatus
    receiver: str = Field(min_length=1)
    groupLabels: dict[str, str]
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """One line naming each wrong field by its path, e.g. ``alerts.0.status: ...``."""
    problems = []
    for detail in error.errors()[:limit]:
        path = ".".join(str(part) for part in detail["loc"]) or "payload"
        problems.append(f"{path}: {detail['msg']}")
    hidden = error.error_count() - limit
    if hidden > 0:
        problems.append(f"and {hidden} more")
    return "; ".join(problems)
