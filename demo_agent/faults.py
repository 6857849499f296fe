"""The fault knobs: what an SRE turns at runtime to break the agent on purpose.

One place holds their names, ranges and start values; the admin API, the metrics and the
scenarios read them from here. Each knob is named after what it breaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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

    model_config = ConfigDict(extra="forbid", strict=True)

    error_rate: float | None = Field(None, ge=0.0, le=1.0)
    llm_latency_multiplier: float | None = Field(None, ge=0.0, le=50.0)
    tool_failure_rate: float | None = Field(None, ge=0.0, le=1.0)
    cost_multiplier: float | None = Field(None, ge=0.0, le=1000.0)
    accuracy_drift: float | None = Field(None, ge=0.0, le=1.0)
    cache_bypass: bool | None = None
    memory_ballast_mb: int | None = Field(None, ge=0, le=4096)


class FaultDefaultsError(ValueError):
    """An AGENT_FAULT_* variable that names no knob or holds a value out of range."""


class FaultState:
    """The live knobs, the values to reset to, and the memory the ballast knob holds."""

    def __init__(self, defaults: FaultKnobs) -> None:
        self._defaults = defaults
        self.knobs = defaults.model_copy()
        self._ballast = b""
        self._apply_side_effects()

    @classmethod
    def from_env_defaults(cls, raw: dict[str, str]) -> FaultState:
        try:
            defaults = FaultKnobs.model_validate(raw)
        except ValidationError as error:
            raise FaultDefaultsError(_describe(error, prefix="AGENT_FAULT_")) from None
        return cls(defaults)

    def update(self, change: FaultUpdate) -> FaultKnobs:
        given = change.model_dump(exclude_none=True)
        self.knobs = self.knobs.model_copy(update=given)
        self._apply_side_effects()
        return self.knobs

    def reset(self) -> FaultKnobs:
        self.knobs = self._defaults.model_copy()
        self._apply_side_effects()
        return self.knobs

    def _apply_side_effects(self) -> None:
        wanted = self.knobs.memory_ballast_mb * MEBIBYTE
        if len(self._ballast) != wanted:
            # Filled with a non-zero byte so the pages are really touched and count as
            # resident memory; zero-filled allocations can stay virtual.
            self._ballast = b""
            self._ballast = b"\xa5" * wanted
        for name, value in self.knobs.model_dump().items():
            FAULT_SETTING.labels(fault=name).set(float(value))


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
