"""Settings of the demo agent, read once from the environment at start.

Every variable is listed in docs/architecture.md; a bad value stops the agent with a
message that names the variable and what it accepts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis.connection import parse_url

CGROUP_V2_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
# cgroup v1 reports "no limit" as a huge page-aligned number rather than "max".
CGROUP_V1_UNLIMITED = 1 << 60


class SettingsError(ValueError):
    """A setting from the environment that the agent cannot use."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "info"
    instrumentation: bool = True
    memory_limit_bytes: int = 0
    max_message_chars: int = 8000
    latency_scale: float = 1.0
    traces_per_second: float = 100.0
    # OTLP/HTTP endpoint of the agent's logs ("" = stdout only) and how often they are sent.
    logs_endpoint: str = ""
    log_export_interval_s: float = 1.0
    service_name: str = "luminamind"
    fault_defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        check_otlp_endpoints(env)
        return cls(
            host=env.get("AGENT_HOST", cls.host),
            port=_int(env, "AGENT_PORT", cls.port, low=1, high=65535),
            redis_url=_redis_url(env),
            log_level=_choice(env, "AGENT_LOG_LEVEL", "info", LOG_LEVELS),
            instrumentation=_choice(env, "AGENT_INSTRUMENTATION", "on", ("on", "off")) == "on",
            memory_limit_bytes=_memory_limit(env),
            max_message_chars=_int(env, "AGENT_MAX_MESSAGE_CHARS", 8000, low=1, high=1_000_000),
            latency_scale=_float(env, "AGENT_LATENCY_SCALE", 1.0, low=0.0, high=100.0),
            traces_per_second=_float(env, "AGENT_TRACES_PER_SECOND", cls.traces_per_second,
                                     low=0.0, high=1_000_000.0),
            logs_endpoint=env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", ""),
            # The SDK's variable for its log batch delay, in milliseconds.
            log_export_interval_s=_int(env, "OTEL_BLRP_SCHEDULE_DELAY", 1000,
                                       low=1, high=600_000) / 1000,
            service_name=_service_name(env),
            fault_defaults={
                key.removeprefix("AGENT_FAULT_").lower(): value
                for key, value in env.items()
                if key.startswith("AGENT_FAULT_")
            },
        )


LOG_LEVELS = ("debug", "info", "warning", "error")


def _service_name(env: dict[str, str]) -> str:
    value = env.get("OTEL_SERVICE_NAME", Settings.service_name)
    if not value.strip():
        # Loki's stream label and Jaeger's service list would show an empty name.
        raise SettingsError("OTEL_SERVICE_NAME is empty; leave it unset for luminamind")
    return value


def _int(env: dict[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() would also take "8_000" or " 80 ", and isdigit() alone takes
    # superscripts that int() refuses and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()):
        raise SettingsError(f"{name}={raw!r} is not a whole number")
    if len(raw.lstrip("0")) > len(str(high)):
        # Out of range whatever its digits, and past a few thousand of them int() refuses.
        raise SettingsError(f"{name}={raw[:20]}... is outside {low}..{high}")
    value = int(raw)
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _float(env: dict[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


def _redis_url(env: dict[str, str]) -> str:
    value = env.get("AGENT_REDIS_URL", Settings.redis_url)
    try:
        shown = redact_url(value)
    except ValueError as error:
        # Not even a URL (an unclosed "[" of an IPv6 host): nothing to redact it by.
        raise SettingsError(f"AGENT_REDIS_URL is not a usable Redis URL: {error}") from None
    if not value.startswith(REDIS_URL_SCHEMES):
        raise SettingsError(f"AGENT_REDIS_URL={shown!r} must start with "
                            f"{', '.join(REDIS_URL_SCHEMES)}, e.g. redis://127.0.0.1:6379/0")
    try:
        # The client's own parser, so every URL it would refuse later is refused now.
        parse_url(value)
    except ValueError as error:
        raise SettingsError(
            f"AGENT_REDIS_URL={shown!r} is not a usable Redis URL: {error}") from None
    return value


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


OTLP_ENDPOINT_EXAMPLES = {
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:3100/otlp/v1/logs",
}


def check_otlp_endpoints(env: dict[str, str]) -> None:
    """An OTLP endpoint that is set must be an http(s) URL with a host and a usable port:
    a typo would otherwise only show as an export error logged for every batch."""
    for name, example in OTLP_ENDPOINT_EXAMPLES.items():
        value = env.get(name)
        if not value:
            continue
        try:
            parts = urlsplit(value)
            port = parts.port
            # A host the resolver cannot even encode (a label over 63 characters, "a..b").
            (parts.hostname or "").encode("idna")
        except (ValueError, UnicodeError) as error:
            raise SettingsError(f"{name}={value!r} is not a URL ({error}), e.g. {example}"
                                ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise SettingsError(f"{name}={value!r} must be an http(s) URL with a host "
                                f"(and a port of 1..65535 if any), e.g. {example}")


def _memory_limit(env: dict[str, str]) -> int:
    """The memory the agent may use: explicit setting, else its cgroup limit, else all RAM."""
    if "AGENT_MEMORY_LIMIT_BYTES" in env:
        return _int(env, "AGENT_MEMORY_LIMIT_BYTES", 0, low=1, high=1 << 50)
    for path in (CGROUP_V2_MEMORY_MAX, CGROUP_V1_MEMORY_LIMIT):
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < CGROUP_V1_UNLIMITED:
            return int(raw)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
