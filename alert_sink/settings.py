"""Settings of the alert sink, read once at start from the environment."""

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable holds a value the sink cannot use."""


@dataclass(frozen=True)
class SinkSettings:
    host: str = "127.0.0.1"
    port: int = 8090
    max_notifications: int = 500
    max_body_bytes: int = 1024 * 1024
    log_level: str = "info"


_LOG_LEVELS = ("debug", "info", "warning", "error")


def _positive_int(environ: Mapping[str, str], name: str, default: int, upper: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; set a whole number") from None
    if not 1 <= value <= upper:
        raise SettingsError(f"{name}={value} is out of range; set 1 to {upper}")
    return value


def load_settings(environ: Mapping[str, str] = os.environ) -> SinkSettings:
    """Build the settings from ``environ``; raise SettingsError naming the bad variable."""
    log_level = environ.get("ALERT_SINK_LOG_LEVEL", "info").strip().lower()
    if log_level not in _LOG_LEVELS:
        raise SettingsError(
            f"ALERT_SINK_LOG_LEVEL={log_level!r} is unknown; use one of {', '.join(_LOG_LEVELS)}"
        )
    return SinkSettings(
        host=environ.get("ALERT_SINK_HOST", "127.0.0.1"),
        port=_positive_int(environ, "ALERT_SINK_PORT", 8090, 65535),
        max_notifications=_positive_int(environ, "ALERT_SINK_MAX_NOTIFICATIONS", 500, 100_000),
        max_body_bytes=_positive_int(
            environ, "ALERT_SINK_MAX_BODY_BYTES", 1024 * 1024, 64 * 1024 * 1024
        ),
        log_level=log_level,
    )
