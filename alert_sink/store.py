"""The notifications the sink keeps: a bounded, newest-first record in memory."""

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alert_sink.payload import ZERO_TIME, WebhookAlert, WebhookPayload


@dataclass(frozen=True)
class ReceivedAlert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str

    @classmethod
    def from_webhook(cls, alert: WebhookAlert) -> "ReceivedAlert":
        ends_at = None if alert.endsAt <= ZERO_TIME else alert.endsAt
        return cls(
            status=alert.status,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.startsAt,
            ends_at=ends_at,
            fingerprint=alert.fingerprint,
        )

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Notification:
    """One webhook call of one Alertmanager receiver."""

    received_at: datetime
    receiver: str
    status: str
    group_labels: dict[str, str]
    alerts: tuple[ReceivedAlert, ...]

    @classmethod
    def from_webhook(cls, payload: WebhookPayload, received_at: datetime) -> "Notification":
        return cls(
            received_at=received_at,
            receiver=payload.receiver,
            status=payload.status,
            group_labels=dict(payload.groupLabels),
            alerts=tuple(ReceivedAlert.from_webhook(alert) for alert in payload.alerts),
        )

    @property
    def alert_names(self) -> list[str]:
        """Distinct alert names of the notification, in the order Alertmanager sent them."""
        return list(dict.fromkeys(alert.name for alert in self.alerts))

    def as_json(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at.isoformat(),
            "receiver": self.receiver,
            "status": self.status,
            "group_labels": self.group_labels,
            "alerts": [alert.as_json() for alert in self.alerts],
        }


# What the stored notifications may take, counted as the bytes of the payloads they came
# from: Alertmanager's are a few KiB, so this is thousands of them, while a client posting
# large bodies cannot grow the sink past its container's memory.
DEFAULT_MAX_STORED_BYTES = 16 * 1024 * 1024


class NotificationStore:
    """Keeps the last ``capacity`` notifications, and no more than ``max_bytes`` of payload;
    the oldest go first when either is reached (the newest is always kept)."""

    def __init__(self, capacity: int, max_bytes: int = DEFAULT_MAX_STORED_BYTES) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be at least 1")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._notifications: deque[tuple[Notification, int]] = deque()
        self._bytes = 0

    def add(self, notification: Notification, size_bytes: int = 0) -> None:
        self._notifications.append((notification, size_bytes))
        self._bytes += size_bytes
        while len(self._notifications) > 1 and (
            len(self._notifications) > self.capacity or self._bytes > self.max_bytes
        ):
            self._bytes -= self._notifications.popleft()[1]

    def newest_first(self) -> Iterator[Notification]:
        return (notification for notification, _ in reversed(self._notifications))

    def __len__(self) -> int:
        return len(self._notifications)
