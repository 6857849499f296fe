"""The sink's own metrics, scraped by Prometheus as job ``alert-sink``."""

from prometheus_client import Counter, Gauge

# Limitation: receiver names come from the payload, so a client posting many made-up
# receivers grows the label set; on loopback only Alertmanager posts here.
NOTIFICATIONS = Counter(
    "alert_sink_notifications",
    "Webhook notifications accepted, by Alertmanager receiver and group status.",
    ["receiver", "status"],
)
ALERTS = Counter(
    "alert_sink_alerts",
    "Alerts carried by accepted notifications, by receiver and alert status.",
    ["receiver", "status"],
)
REJECTED_PAYLOADS = Counter(
    "alert_sink_rejected_payloads",
    "Webhook calls refused, by reason.",
    ["reason"],
)
STORED_NOTIFICATIONS = Gauge(
    "alert_sink_stored_notifications",
    "Notifications currently kept in memory.",
)

REJECTION_REASONS = ("invalid_json", "invalid_shape", "too_large")
for _reason in REJECTION_REASONS:
    REJECTED_PAYLOADS.labels(reason=_reason)
