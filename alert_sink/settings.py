"""Settings of the alert sink, read once at start from the environment."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The repository's runbooks beside the package: docs/runbooks in a checkout, and
# /app/docs/runbooks in the project image, which copies both (demo_agent/Dockerfile).
DEFAULT_RUNBOOKS_DIR = Path(__file__).resolve().parent.parent / "docs" / "runbooks"


class SettingsError(ValueError):
    """An environment variable holds a value the sink cannot use."""


@dataclass(frozen=True)
class SinkSettings:
    host: str = "127.0.0.1"
    port: int = 8090
    max_notifications: int = 500
    max_body_bytes: int = 1024 * 1024
    log_level: str = "info"
    runbooks_dir: Path = DEFAULT_RUNBOOKS_DIR


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


def _runbooks_dir(environ: Mapping[str, str]) -> Path:
    raw = environ.get("ALERT_SINK_RUNBOOKS_DIR", "").strip()
    if not raw:
        return DEFAULT_RUNBOOKS_DIR
    folder = Path(raw)
    if not folder.is_dir():
        raise SettingsError(
            f"ALERT_SINK_RUNBOOKS_DIR={raw!r} is not a directory; point it at the folder of "
            "<AlertName>.md runbooks (the repository's docs/runbooks), or unset it"
        )
    return folder


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
        runbooks_dir=_runbooks_dir(environ),
    )
