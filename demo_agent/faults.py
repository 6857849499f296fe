"""The fault knobs: what an SRE turns at runtime to break the agent on purpose.

One place holds their names, ranges and start values; the admin API, the metrics and the
scenarios read them from here. Each knob is named after what it breaks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from demo_agent.metrics import FAULT_SETTING

MEBIBYTE = 1024 * 1024


class FaultKnobs(BaseModel):
    """Every knob with its range; pydantic's errors name the field and the bound broken."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    error_rate: float = Field(0.0, ge=0.0, le=1.0,
                              description="share of LLM calls that fail, answering 502; "
                                          "a chat answered from the cache calls no LLM")
    llm_latency_multiplier: float = Field(1.0, ge=0.0, le=50.0, description="scales LLM latency")
    tool_failure_rate: float = Field(0.03, ge=0.0, le=1.0, description="share of failed tools")
    cost_multiplier: float = Field(1.0, ge=0.0, le=1000.0, description="scales token prices")
    accuracy_drift: float = Field(0.0, ge=0.0, le=1.0, description="lowers answer correctness")
    cache_bypass: bool = Field(False, description="every cache lookup misses")
    memory_ballast_mb: int = Field(0, ge=0, le=4096, description="memory held by the agent")


class FaultUpdate(BaseModel):
    """A partial change: only the knobs given are changed, unknown knobs are refused.

    Strict, so JSON must give numbers as numbers and switches as true or false: "0.5" or
    true for a rate, or 1 for a switch, is refused rather than quietly converted.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    error_rate: float | None = Field(None, ge=0.0, le=1.0)
    llm_latency_multiplier: float | None = Field(None, ge=0.0, le=50.0)
    tool_failure_rate: float | None = Field(None, ge=0.0, le=1.0)
    cost_multiplier: float | None = Field(None, ge=0.0, le=1000.0)
    accuracy_drift: float | None = Field(None, ge=0.0, le=1.0)
    cache_bypass: bool | None = None
    memory_ballast_mb: int | None = Field(None, ge=0, le=4096)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any) -> Any:
        # None is how the model says "not given"; a null sent on purpose would otherwise be
        # answered 200 while changing nothing.
        if value is None:
            raise PydanticCustomError("null_knob", "null is not a value: leave the knob out "
                                      "to keep it as it is")
        return value


class FaultDefaultsError(ValueError):
    """An AGENT_FAULT_* variable that names no knob or holds a value out of range."""


class FaultRefused(ValueError):
    """A knob change that would break the agent itself rather than the signal it trips."""


# The ballast may lift resident memory to this share of the limit and no further: above 90%
# trips HighMemoryUsage, at 100% the container is killed and the lesson becomes PodDown.
BALLAST_CEILING_SHARE = 0.98


def resident_bytes() -> int:
    """The process's resident memory from /proc (Linux); 0 where that cannot be read."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


class FaultState:
    """The live knobs, the values to reset to, and the memory the ballast knob holds."""

    def __init__(self, defaults: FaultKnobs, memory_limit_bytes: int = 0) -> None:
        self._defaults = defaults
        self._memory_limit = memory_limit_bytes
        self._ballast = b""
        self.knobs = FaultKnobs()
        self._apply(defaults)

    @classmethod
    def from_env_defaults(cls, raw: dict[str, str], memory_limit_bytes: int = 0) -> FaultState:
        try:
            return cls(FaultKnobs.model_validate(raw), memory_limit_bytes)
        except ValidationError as error:
            raise FaultDefaultsError(_describe(error, prefix="AGENT_FAULT_")) from None
        except FaultRefused as error:
            raise FaultDefaultsError(f"AGENT_FAULT_MEMORY_BALLAST_MB: {error}") from None

    def update(self, change: FaultUpdate) -> FaultKnobs:
        """Apply the given knobs, all or none: a refused ballast changes nothing."""
        return self._apply(self.knobs.model_copy(update=change.model_dump(exclude_none=True)))

    def reset(self) -> FaultKnobs:
        return self._apply(self._defaults)

    def _apply(self, knobs: FaultKnobs) -> FaultKnobs:
        try:
            self._set_ballast(knobs.memory_ballast_mb)
        except MemoryError:
            # The old ballast is gone too: say so in the knobs and the gauge, then refuse.
            self._publish(self.knobs.model_copy(update={"memory_ballast_mb": 0}))
            raise FaultRefused(f"memory_ballast_mb={knobs.memory_ballast_mb}: the agent could "
                               "not allocate that much memory; the ballast is now 0") from None
        return self._publish(knobs)

    def _publish(self, knobs: FaultKnobs) -> FaultKnobs:
        self.knobs = knobs.model_copy()
        for name, value in self.knobs.model_dump().items():
            FAULT_SETTING.labels(fault=name).set(float(value))
        return self.knobs

    def _set_ballast(self, megabytes: int) -> None:
        wanted = megabytes * MEBIBYTE
        if len(self._ballast) == wanted:
            return
        self._refuse_ballast_past_the_limit(megabytes)
        self._ballast = b""
        # Filled with a non-zero byte so the pages are really touched and count as resident
        # memory; zero-filled allocations can stay virtual.
        self._ballast = b"\xa5" * wanted

    def _refuse_ballast_past_the_limit(self, megabytes: int) -> None:
        if self._memory_limit <= 0:
            return
        without_ballast = max(0, resident_bytes() - len(self._ballast))
        ceiling = BALLAST_CEILING_SHARE * self._memory_limit
        if megabytes * MEBIBYTE + without_ballast <= ceiling:
            return
        largest = max(0, int((ceiling - without_ballast) // MEBIBYTE))
        raise FaultRefused(
            f"memory_ballast_mb={megabytes} would take the agent to "
            f"{(megabytes * MEBIBYTE + without_ballast) / MEBIBYTE:.0f} MiB of its "
            f"{self._memory_limit / MEBIBYTE:.0f} MiB limit, where it would be killed; "
            f"at most {largest} fits now")


def _describe(error: ValidationError, prefix: str = "") -> str:
    known = [f"{prefix}{name.upper()}" for name in FaultKnobs.model_fields]
    return "; ".join(describe_validation_errors(error.errors(), prefix=prefix, known_fields=known))


def describe_validation_errors(errors: list[dict[str, Any]], prefix: str = "",
                               known_fields: Iterable[str] = ()) -> list[str]:
    """One readable line per invalid field: its name, what was wrong, the allowed range.

    An error about the body as a whole (empty, or not an object) names "request body"; an
    unknown field's line lists the fields that exist.
    """
    lines = []
    for error in errors:
        field = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        name = f"{prefix}{field.upper()}" if prefix and field else field or "request body"
        line = f"{name}: {error.get('msg', 'invalid value')}"
        if error.get("type") == "extra_forbidden" and known_fields:
            line += f" (known: {', '.join(known_fields)})"
        lines.append(line)
    return lines
