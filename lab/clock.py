"""The lab clock: production alert timing compressed by one factor, from one rule source.

config/prometheus/rules/ holds the rules with production timing (five minutes to an hour
before anything fires). `python -m lab.clock render --out DIR` writes a copy of every rule
file in which each group `interval:`, each `for:` / `keep_firing_for:` and each duration
inside an expression (range windows, subquery ranges and steps, offsets) is divided by the
factor, so a lab alert fires within minutes. Nobody keeps a second copy by hand.

The factor comes from --factor, else LAB_CLOCK_FACTOR, else DEFAULT_FACTOR. A compressed
duration never drops below a floor derived from the lab's 5 s scrape and evaluation
interval, and never grows past its production value:

    lab = production                        if production <= floor
    lab = max(floor, production / factor)   otherwise (rounded to whole milliseconds)

    range windows and subquery ranges  floor 4 scrape intervals (20 s): rate() needs two
                                       samples; four survive a missed scrape and jitter
    subquery steps                     floor 1 scrape interval (5 s)
    for: and keep_firing_for:          floor 2 evaluation intervals (10 s): one failed
                                       scrape or one odd evaluation must not page anybody
    group interval:                    floor 1 evaluation interval (5 s)
    offsets                            no floor: they compare with the past, not sample it

Numbers that are not PromQL durations (the 86400 seconds of a daily projection, the
seconds argument of predict_linear) are units, not waits, and are left alone.

Runbook links: each alert's runbook_url points at the alert sink's default host address
(SINK_RUNBOOK_PREFIX). When the sink's host port moves, --runbook-base-url or
RUNBOOK_BASE_URL replaces exactly that prefix, so the links follow it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import structlog
import yaml

log = structlog.get_logger("lab.clock")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT / "config" / "prometheus" / "rules"
FACTOR_ENV = "LAB_CLOCK_FACTOR"
# One hour becomes one minute: HighLLMCosts (1 h window, for: 1 h), the slowest alert,
# then fires about two minutes after its cause and every other alert sooner.
DEFAULT_FACTOR = 60.0
# Must equal the global scrape_interval and evaluation_interval of
# config/prometheus/prometheus.yml (a unit test compares them).
LAB_SCRAPE_INTERVAL_MS = 5_000
LAB_EVALUATION_INTERVAL_MS = 5_000
ANNOTATION = "lab_clock_factor"
RUNBOOK_BASE_ENV = "RUNBOOK_BASE_URL"
# What every runbook_url of config/prometheus/rules/ starts with: the alert sink's runbook
# pages at its default host port. Only this exact prefix is ever rewritten.
SINK_RUNBOOK_PREFIX = "http://127.0.0.1:8090/runbooks/"
RENDERED_MARKER = "# Lab-timed copy written by `python -m lab.clock render`"

MS_PER_UNIT = {
    "y": 365 * 24 * 3_600_000,
    "w": 7 * 24 * 3_600_000,
    "d": 24 * 3_600_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}
# Prometheus' own duration grammar (units in falling order, each at most once), applied
# only to one isolated token at a time, so the regex never sees the rest of an expression.
DURATION_PATTERN = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
IDENTIFIER_START = re.compile(r"[A-Za-z_:]")
IDENTIFIER_BODY = re.compile(r"[A-Za-z0-9_:]*")
DURATION_TOKEN = re.compile(r"[0-9][0-9a-zA-Z]*")


class ClockError(ValueError):
    """A factor, duration or rule file the clock cannot work with; the message says why."""


class DurationKind(Enum):
    """Where a duration sits in a PromQL expression; each kind has its own floor."""

    RANGE = "range"
    SUBQUERY_STEP = "subquery step"
    OFFSET = "offset"


def parse_duration(text: str) -> int:
    """Milliseconds of a Prometheus duration such as 1h30m, 90s or 500ms ("0" is zero)."""
    token = text.strip()
    if token == "0":
        return 0
    match = DURATION_PATTERN.fullmatch(token)
    if not token or match is None or not any(match.groups()):
        raise ClockError(
            f"{text!r} is not a Prometheus duration; write digits with units in falling "
            "order from y, w, d, h, m, s, ms, e.g. 1h30m or 90s"
        )
    return sum(
        int(amount) * MS_PER_UNIT[unit]
        for amount, unit in zip(match.groups(), MS_PER_UNIT, strict=True)
        if amount is not None
    )


def format_duration(milliseconds: int) -> str:
    """The shortest Prometheus spelling: 20s, 1m, 1h30m, 1s500ms (y and w only when exact)."""
    if milliseconds < 0:
        return "-" + format_duration(-milliseconds)
    if milliseconds == 0:
        return "0s"
    parts = []
    remaining = milliseconds
    for unit, size in MS_PER_UNIT.items():
        if unit in ("y", "w") and remaining % size != 0:
            continue
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def compress(milliseconds: int, factor: float, floor_ms: int) -> int:
    """The lab duration: divided by the factor, never below the floor nor above itself."""
    if milliseconds <= floor_ms:
        return milliseconds
    return max(floor_ms, round(milliseconds / factor))


@dataclass(frozen=True)
class LabClock:
    """One compression factor and the floors that keep lab rules sound at a 5 s scrape."""

    factor: float = DEFAULT_FACTOR
    scrape_interval_ms: int = LAB_SCRAPE_INTERVAL_MS
    evaluation_interval_ms: int = LAB_EVALUATION_INTERVAL_MS

    def __post_init__(self) -> None:
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ClockError(
                f"clock factor {self.factor!r} must be a finite number >= 1 "
                "(1 keeps production timing)"
            )

    @property
    def range_floor_ms(self) -> int:
        return 4 * self.scrape_interval_ms

    @property
    def hold_floor_ms(self) -> int:
        return 2 * self.evaluation_interval_ms

    def expression_duration(self, kind: DurationKind, milliseconds: int) -> int:
        if kind is DurationKind.RANGE:
            return compress(milliseconds, self.factor, self.range_floor_ms)
        if kind is DurationKind.SUBQUERY_STEP:
            return compress(milliseconds, self.factor, self.scrape_interval_ms)
        return round(milliseconds / self.factor)

    def hold(self, milliseconds: int) -> int:
        """A `for:` or `keep_firing_for:` duration."""
        return compress(milliseconds, self.factor, self.hold_floor_ms)

    def group_interval(self, milliseconds: int) -> int:
        return compress(milliseconds, self.factor, self.evaluation_interval_ms)

    @property
    def factor_label(self) -> str:
        return f"{self.factor:g}"


def factor_from_env(env: dict[str, str]) -> float:
    """LAB_CLOCK_FACTOR as a number, or the default when it is unset or empty."""
    raw = env.get(FACTOR_ENV, "").strip()
    if not raw:
        return DEFAULT_FACTOR
    try:
        return float(raw)
    except ValueError:
        raise ClockError(
            f"{FACTOR_ENV}={raw!r} is not a number; set it to e.g. 60, or unset it for "
            f"the default {DEFAULT_FACTOR:g}"
        ) from None


def runbook_base_from(option: str | None, env: dict[str, str]) -> str | None:
    """The runbook base URL from the option, else RUNBOOK_BASE_URL; None keeps the source's.

    It must be an http(s) URL ending in `/`, since the alert name is appended to it as is.
    """
    raw = option if option is not None else env.get(RUNBOOK_BASE_ENV, "")
    base = raw.strip()
    if not base:
        return None
    if not base.startswith(("http://", "https://")) or not base.endswith("/") or any(
        char.isspace() for char in base
    ):
        raise ClockError(
            f"runbook base URL {raw!r} must be an http:// or https:// URL ending in '/', "
            f"e.g. http://127.0.0.1:8091/runbooks/ (from --runbook-base-url or "
            f"{RUNBOOK_BASE_ENV})"
        )
    return base


def rebase_runbook_url(url: str, base: str) -> str:
    """``url`` with SINK_RUNBOOK_PREFIX replaced by ``base``; any other URL is kept."""
    if url.startswith(SINK_RUNBOOK_PREFIX):
        return base + url[len(SINK_RUNBOOK_PREFIX):]
    return url


# --------------------------------------------------------------------------------------
# PromQL: durations are found by scanning, never by a regex over the whole expression,
# so a "[5m]" inside a label value, a regex or a comment is left as written.
# --------------------------------------------------------------------------------------

Rewrite = Callable[[DurationKind, int], int]


def rewrite_expression(expr: str, rewrite: Rewrite) -> str:
    """The expression with every range, subquery and offset duration passed through rewrite.

    Outside string literals and comments, square brackets in PromQL only ever hold a range
    (`[5m]`) or a subquery (`[30m:1m]`, `[30m:]`), and a duration literal only follows the
    keyword `offset`; everything else is copied unchanged.
    """
    out: list[str] = []
    position = 0
    while position < len(expr):
        char = expr[position]
        if char in "\"'`":
            end = _string_end(expr, position)
        elif char == "#":
            newline = expr.find("\n", position)
            end = len(expr) if newline == -1 else newline
        elif char == "[":
            end, replacement = _rewrite_brackets(expr, position, rewrite)
            out.append(replacement)
            position = end
            continue
        elif IDENTIFIER_START.match(char):
            end, replacement = _rewrite_identifier(expr, position, rewrite)
            out.append(replacement)
            position = end
            continue
        elif char.isdigit():
            end = DURATION_TOKEN.match(expr, position).end()  # type: ignore[union-attr]
        else:
            end = position + 1
        out.append(expr[position:end])
        position = end
    return "".join(out)


def _string_end(expr: str, start: int) -> int:
    """Index just past the string literal opening at start (backslash escapes honoured)."""
    quote = expr[start]
    position = start + 1
    while position < len(expr):
        if expr[position] == "\\" and quote != "`":
            position += 2
            continue
        if expr[position] == quote:
            return position + 1
        position += 1
    raise ClockError(f"unterminated string literal in expression: {expr!r}")


def _rewrite_brackets(expr: str, start: int, rewrite: Rewrite) -> tuple[int, str]:
    close = expr.find("]", start)
    if close == -1:
        raise ClockError(f"unclosed '[' in expression: {expr!r}")
    content = expr[start + 1:close]
    range_text, colon, step_text = content.partition(":")
    try:
        window = rewrite(DurationKind.RANGE, parse_duration(range_text))
        parts = [format_duration(window)]
        if colon:
            step = step_text.strip()
            if step:
                step = format_duration(
                    rewrite(DurationKind.SUBQUERY_STEP, parse_duration(step))
                )
            parts.append(step)
    except ClockError as error:
        raise ClockError(
            f"cannot compress [{content}] in expression {expr!r}: {error}"
        ) from None
    return close + 1, "[" + ":".join(parts) + "]"


def _rewrite_identifier(expr: str, start: int, rewrite: Rewrite) -> tuple[int, str]:
    end = IDENTIFIER_BODY.match(expr, start + 1).end()  # type: ignore[union-attr]
    word = expr[start:end]
    if word.lower() != "offset":
        return end, word
    position = end
    while position < len(expr) and expr[position].isspace():
        position += 1
    sign = ""
    if position < len(expr) and expr[position] == "-":
        sign = "-"
        position += 1
    token = DURATION_TOKEN.match(expr, position)
    if token is None:
        # `offset` as a label name, e.g. `by (offset)`: not a modifier.
        return end, word
    try:
        lab = rewrite(DurationKind.OFFSET, parse_duration(token.group()))
    except ClockError as error:
        raise ClockError(f"cannot compress offset in expression {expr!r}: {error}") from None
    return token.end(), f"{word}{expr[end:position - len(sign)]}{sign}{format_duration(lab)}"


# --------------------------------------------------------------------------------------
# Rule files
# --------------------------------------------------------------------------------------


def render_rules(
    document: dict[str, Any], clock: LabClock, *, runbook_base: str | None = None
) -> dict[str, Any]:
    """A lab-timed copy of one parsed rule file; the input is left untouched.

    With ``runbook_base``, runbook_url annotations starting with SINK_RUNBOOK_PREFIX point
    there instead.
    """
    groups = document.get("groups")
    if not isinstance(groups, list):
        raise ClockError("a rule file needs a top-level `groups:` list")
    return {
        **document,
        "groups": [_render_group(group, clock, runbook_base) for group in groups],
    }


def _render_group(
    group: dict[str, Any], clock: LabClock, runbook_base: str | None
) -> dict[str, Any]:
    rendered = dict(group)
    if "interval" in group:
        rendered["interval"] = _rewrite_field(group, "interval", clock.group_interval)
    if "query_offset" in group:
        rendered["query_offset"] = _rewrite_field(
            group, "query_offset",
            lambda ms: clock.expression_duration(DurationKind.OFFSET, ms),
        )
    rendered["rules"] = [
        _render_rule(rule, clock, runbook_base) for rule in group.get("rules", [])
    ]
    return rendered


def _render_rule(
    rule: dict[str, Any], clock: LabClock, runbook_base: str | None
) -> dict[str, Any]:
    if "expr" not in rule:
        name = rule.get("alert") or rule.get("record") or "a rule"
        raise ClockError(f"{name} has no expr")
    rendered = dict(rule)
    rendered["expr"] = rewrite_expression(str(rule["expr"]), clock.expression_duration)
    for field in ("for", "keep_firing_for"):
        if field in rule:
            rendered[field] = _rewrite_field(rule, field, clock.hold)
    if "alert" in rule:
        # An annotation, not a label: routing, grouping and inhibition stay as in production.
        annotations = {**rule.get("annotations", {}), ANNOTATION: clock.factor_label}
        if runbook_base is not None and "runbook_url" in annotations:
            annotations["runbook_url"] = rebase_runbook_url(
                str(annotations["runbook_url"]), runbook_base
            )
        rendered["annotations"] = annotations
    return rendered


def _rewrite_field(node: dict[str, Any], field: str, rewrite: Callable[[int], int]) -> str:
    return format_duration(rewrite(parse_duration(str(node[field]))))


class _RuleFileDumper(yaml.SafeDumper):
    """Multi-line strings (expressions) stay literal blocks, so the copy reads like the source."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleFileDumper.add_representer(str, _represent_str)


def render_file_text(
    source_text: str, source_name: str, clock: LabClock, *, runbook_base: str | None = None
) -> str:
    try:
        document = yaml.safe_load(source_text)
    except yaml.YAMLError as error:
        raise ClockError(f"{source_name} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ClockError(f"{source_name} holds no rule groups")
    try:
        rendered = render_rules(document, clock, runbook_base=runbook_base)
    except ClockError as error:
        raise ClockError(f"{source_name}: {error}") from None
    header = (
        f"{RENDERED_MARKER}\n# from {source_name}.\n"
        f"# Every for:, range window and group interval is the production value"
        f" / {clock.factor_label},\n# within the floors listed in docs/alerting.md."
        " Edit the source, not this file.\n"
    )
    if runbook_base is not None:
        header += f"# runbook_url links {SINK_RUNBOOK_PREFIX}... point at {runbook_base}...\n"
    body = yaml.dump(rendered, Dumper=_RuleFileDumper, sort_keys=False, width=1000,
                     allow_unicode=True)
    return header + body


def render_directory(
    source: Path, out: Path, clock: LabClock, *, runbook_base: str | None = None
) -> list[Path]:
    """Writes the lab copy of every *.yml / *.yaml in source to out; returns what it wrote."""
    sources = sorted([*source.glob("*.yml"), *source.glob("*.yaml")])
    if not sources:
        raise ClockError(f"no *.yml rule files in {source}; pass --source with the rules folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        name = _display_name(path)
        target = out / path.name
        text = render_file_text(path.read_text(encoding="utf-8"), name, clock,
                                runbook_base=runbook_base)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    _remove_stale_renderings(out, keep={path.name for path in sources})
    return written


def _display_name(path: Path) -> str:
    resolved = path.resolve()
    if resolved.is_relative_to(REPO_ROOT):
        return str(resolved.relative_to(REPO_ROOT))
    return str(path)


def _remove_stale_renderings(out: Path, keep: set[str]) -> None:
    """A rendering whose source was deleted would keep its rules alive in Prometheus."""
    for path in [*out.glob("*.yml"), *out.glob("*.yaml")]:
        if path.name in keep:
            continue
        with path.open(encoding="utf-8") as handle:
            if handle.readline().startswith(RENDERED_MARKER):
                path.unlink()
                log.info("stale_lab_rules_removed", path=str(path))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.clock",
        description="Render lab-timed copies of the Prometheus rules.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write lab-timed copies of every rule file")
    render.add_argument("--out", type=Path, required=True, help="folder to write into")
    render.add_argument(
        "--factor", type=float, default=None,
        help=f"compression factor (default: ${FACTOR_ENV}, else {DEFAULT_FACTOR:g})",
    )
    render.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE,
        help="folder of production rule files (default: config/prometheus/rules)",
    )
    render.add_argument(
        "--runbook-base-url", default=None,
        help=f"replaces the {SINK_RUNBOOK_PREFIX} prefix of every runbook_url, for a sink "
             f"on another host port (default: ${RUNBOOK_BASE_ENV}, else unchanged)",
    )
    return parser


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    environment = dict(os.environ) if env is None else env
    try:
        factor = arguments.factor
        if factor is None:
            factor = factor_from_env(environment)
        clock = LabClock(factor=factor)
        runbook_base = runbook_base_from(arguments.runbook_base_url, environment)
        written = render_directory(arguments.source, arguments.out, clock,
                                   runbook_base=runbook_base)
    except (ClockError, OSError) as error:
        log.error("lab_rules_render_failed", reason=str(error))
        return 2
    log.info("lab_rules_rendered", factor=clock.factor_label, out=str(arguments.out),
             files=[path.name for path in written],
             runbook_base=runbook_base or SINK_RUNBOOK_PREFIX)
    return 0


if __name__ == "__main__":
    sys.exit(main())
