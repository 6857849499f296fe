"""Unit tests of the lab clock: duration arithmetic, PromQL scanning and rule rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.clock import (
    ANNOTATION,
    RENDERED_MARKER,
    ClockError,
    DurationKind,
    LabClock,
    compress,
    factor_from_env,
    format_duration,
    main,
    parse_duration,
    render_directory,
    render_rules,
    rewrite_expression,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB = LabClock(factor=60)


def lab_expression(expr: str) -> str:
    return rewrite_expression(expr, LAB.expression_duration)


@pytest.mark.parametrize(("text", "milliseconds"), [
    ("0", 0),
    ("500ms", 500),
    ("90s", 90_000),
    ("5m", 300_000),
    ("1h30m", 5_400_000),
    ("1m30s500ms", 90_500),
    ("1d", 86_400_000),
    ("2w", 1_209_600_000),
    ("1y", 31_536_000_000),
])
def test_parse_duration_reads_prometheus_durations(text: str, milliseconds: int) -> None:
    parsed = parse_duration(text)

    assert parsed == milliseconds


@pytest.mark.parametrize("text", ["", "5", "1.5h", "30m1h", "5M", "1h 30m", "-5m", "m"])
def test_parse_duration_refuses_what_prometheus_refuses(text: str) -> None:
    with pytest.raises(ClockError, match="not a Prometheus duration"):
        parse_duration(text)


@pytest.mark.parametrize(("milliseconds", "text"), [
    (0, "0s"),
    (500, "500ms"),
    (1_500, "1s500ms"),
    (20_000, "20s"),
    (60_000, "1m"),
    (90_000, "1m30s"),
    (5_400_000, "1h30m"),
    (691_200_000, "8d"),
    (1_209_600_000, "2w"),
    (31_536_000_000, "1y"),
])
def test_format_duration_writes_the_shortest_prometheus_spelling(milliseconds: int,
                                                                 text: str) -> None:
    formatted = format_duration(milliseconds)

    assert formatted == text


@pytest.mark.parametrize(("milliseconds", "factor", "floor_ms", "expected"), [
    (3_600_000, 60, 20_000, 60_000),   # 1h window -> 1m
    (5_400_000, 60, 20_000, 90_000),   # 1h30m -> 1m30s
    (1_800_000, 60, 10_000, 30_000),   # for: 30m -> 30s
    (300_000, 60, 20_000, 20_000),     # 5m window -> 5s, raised to the 20s floor
    (10_000, 60, 20_000, 10_000),      # already below the floor: never made longer
    (300_000, 1, 20_000, 300_000),     # factor 1 is production timing
    (100_000, 3, 1_000, 33_333),       # rounded to whole milliseconds
])
def test_compress_divides_by_the_factor_within_the_floor(milliseconds: int, factor: float,
                                                         floor_ms: int, expected: int) -> None:
    compressed = compress(milliseconds, factor, floor_ms)

    assert compressed == expected


def test_lab_clock_floors_follow_the_five_second_scrape() -> None:
    clock = LabClock()

    floors = (clock.range_floor_ms, clock.hold_floor_ms, clock.evaluation_interval_ms)

    assert floors == (20_000, 10_000, 5_000)


@pytest.mark.parametrize(("production", "lab"), [
    ("1m", "10s"),    # PodDown, RedisDown: 1s would page on two failed scrapes
    ("5m", "10s"),
    ("15m", "15s"),
    ("30m", "30s"),
    ("1h", "1m"),
])
def test_lab_clock_hold_compresses_for_durations(production: str, lab: str) -> None:
    held = LAB.hold(parse_duration(production))

    assert format_duration(held) == lab


@pytest.mark.parametrize(("production", "lab"), [("30s", "5s"), ("5m", "5s"), ("1h", "1m")])
def test_lab_clock_group_interval_never_beats_one_evaluation(production: str, lab: str) -> None:
    interval = LAB.group_interval(parse_duration(production))

    assert format_duration(interval) == lab


@pytest.mark.parametrize("factor", [0.5, 0, -60, float("nan"), float("inf")])
def test_lab_clock_refuses_a_factor_below_one_or_not_finite(factor: float) -> None:
    with pytest.raises(ClockError, match=">= 1"):
        LabClock(factor=factor)


def test_factor_defaults_to_sixty_without_the_environment_variable() -> None:
    factor = factor_from_env({})

    assert factor == 60.0


def test_factor_comes_from_lab_clock_factor() -> None:
    factor = factor_from_env({"LAB_CLOCK_FACTOR": "120"})

    assert factor == 120.0


def test_factor_that_is_not_a_number_names_the_variable() -> None:
    with pytest.raises(ClockError, match="LAB_CLOCK_FACTOR='fast' is not a number"):
        factor_from_env({"LAB_CLOCK_FACTOR": "fast"})


def test_lab_intervals_match_the_prometheus_config() -> None:
    config = yaml.safe_load((REPO_ROOT / "config/prometheus/prometheus.yml").read_text())

    intervals = (config["global"]["scrape_interval"], config["global"]["evaluation_interval"])

    assert intervals == ("5s", "5s")
    assert (LAB.scrape_interval_ms, LAB.evaluation_interval_ms) == (5_000, 5_000)


@pytest.mark.parametrize(("production", "lab"), [
    ("rate(x[5m])", "rate(x[20s])"),
    ("rate(x[1h30m])", "rate(x[1m30s])"),
    ("sum(rate(x[1h])) * 86400 > 100", "sum(rate(x[1m])) * 86400 > 100"),
    ("max_over_time(rate(x[5m])[2h:1m])", "max_over_time(rate(x[20s])[2m:5s])"),
    ("max_over_time(x[2h:])", "max_over_time(x[2m:])"),
    ("rate(x[ 1h ])", "rate(x[1m])"),
    ("rate(x[1h] offset 1d)", "rate(x[1m] offset 24m)"),
    ("x OFFSET -2h", "x OFFSET -2m"),
    ("job:luminamind_requests:rate5m > 5", "job:luminamind_requests:rate5m > 5"),
    ("sum by (offset) (x)", "sum by (offset) (x)"),
    ('x{offset="5m"}', 'x{offset="5m"}'),
])
def test_rewrite_expression_compresses_ranges_subqueries_and_offsets(production: str,
                                                                     lab: str) -> None:
    rewritten = lab_expression(production)

    assert rewritten == lab


@pytest.mark.parametrize(("production", "lab"), [
    ('rate(x{path=~"/a[5m]"}[5m])', 'rate(x{path=~"/a[5m]"}[20s])'),
    ("rate(x{path=~'/a[5m]'}[5m])", "rate(x{path=~'/a[5m]'}[20s])"),
    ("rate(x{path=~`/a\\d[5m]`}[5m])", "rate(x{path=~`/a\\d[5m]`}[20s])"),
    ('rate(x{path=~"say \\"[5m]\\""}[5m])', 'rate(x{path=~"say \\"[5m]\\""}[20s])'),
    ("rate(x[5m]) # was [1h] offset 1d\n", "rate(x[20s]) # was [1h] offset 1d\n"),
])
def test_rewrite_expression_leaves_strings_and_comments_alone(production: str,
                                                              lab: str) -> None:
    rewritten = lab_expression(production)

    assert rewritten == lab


@pytest.mark.parametrize(("expr", "message"), [
    ("rate(x[5m * 2])", "cannot compress"),
    ("rate(x[300])", "cannot compress"),
    ("rate(x[5m)", "unclosed"),
    ('x{a="b}', "unterminated"),
])
def test_rewrite_expression_refuses_what_it_cannot_compress(expr: str, message: str) -> None:
    with pytest.raises(ClockError, match=message):
        lab_expression(expr)


def test_rewrite_expression_reports_each_kind_of_duration() -> None:
    seen: list[tuple[DurationKind, int]] = []

    def record(kind: DurationKind, milliseconds: int) -> int:
        seen.append((kind, milliseconds))
        return milliseconds

    rewrite_expression("max_over_time(rate(x[5m])[1h:1m] offset 1d)", record)

    assert seen == [(DurationKind.RANGE, 300_000), (DurationKind.RANGE, 3_600_000),
                    (DurationKind.SUBQUERY_STEP, 60_000), (DurationKind.OFFSET, 86_400_000)]


PRODUCTION_DOCUMENT = {
    "groups": [{
        "name": "business",
        "interval": "5m",
        "rules": [
            {"record": "job:cost:rate1h", "expr": "sum by (job) (rate(cost_total[1h]))"},
            {
                "alert": "HighCost",
                "expr": "job:cost:rate1h > 1",
                "for": "1h",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "cost"},
            },
        ],
    }],
}


def test_render_rules_compresses_interval_for_and_windows() -> None:
    rendered = render_rules(PRODUCTION_DOCUMENT, LAB)

    assert rendered == {
        "groups": [{
            "name": "business",
            "interval": "5s",
            "rules": [
                {"record": "job:cost:rate1h", "expr": "sum by (job) (rate(cost_total[1m]))"},
                {
                    "alert": "HighCost",
                    "expr": "job:cost:rate1h > 1",
                    "for": "1m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "cost", "lab_clock_factor": "60"},
                },
            ],
        }],
    }


def test_render_rules_leaves_the_source_document_untouched() -> None:
    before = yaml.safe_dump(PRODUCTION_DOCUMENT)

    render_rules(PRODUCTION_DOCUMENT, LAB)

    assert yaml.safe_dump(PRODUCTION_DOCUMENT) == before


def test_render_rules_compresses_keep_firing_for() -> None:
    document = {"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "x > 1", "for": "5m", "keep_firing_for": "30m"}]}]}

    rule = render_rules(document, LAB)["groups"][0]["rules"][0]

    assert (rule["for"], rule["keep_firing_for"]) == ("10s", "30s")


def test_render_rules_refuses_a_file_without_groups() -> None:
    with pytest.raises(ClockError, match="groups"):
        render_rules({"rules": []}, LAB)


def write_source(folder: Path) -> Path:
    folder.mkdir()
    (folder / "cost.yml").write_text(yaml.safe_dump(PRODUCTION_DOCUMENT))
    return folder


def test_render_directory_writes_a_marked_copy_per_rule_file(tmp_path: Path) -> None:
    source = write_source(tmp_path / "rules")

    written = render_directory(source, tmp_path / "lab", LAB)

    assert [path.name for path in written] == ["cost.yml"]
    text = written[0].read_text()
    assert text.startswith(RENDERED_MARKER)
    assert yaml.safe_load(text) == render_rules(PRODUCTION_DOCUMENT, LAB)


def test_render_directory_removes_renderings_whose_source_is_gone(tmp_path: Path) -> None:
    source = write_source(tmp_path / "rules")
    out = tmp_path / "lab"
    out.mkdir()
    (out / "deleted.yml").write_text(f"{RENDERED_MARKER}\ngroups: []\n")
    (out / "hand-written.yml").write_text("groups: []\n")

    render_directory(source, out, LAB)

    assert sorted(path.name for path in out.iterdir()) == ["cost.yml", "hand-written.yml"]


def test_render_directory_refuses_an_empty_source(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()

    with pytest.raises(ClockError, match="no \\*.yml rule files"):
        render_directory(tmp_path / "rules", tmp_path / "lab", LAB)


def test_command_line_takes_the_factor_from_the_environment(tmp_path: Path) -> None:
    source = write_source(tmp_path / "rules")

    status = main(["render", "--out", str(tmp_path / "lab"), "--source", str(source)],
                  env={"LAB_CLOCK_FACTOR": "30"})

    rule = yaml.safe_load((tmp_path / "lab" / "cost.yml").read_text())["groups"][0]["rules"][1]
    assert status == 0
    assert (rule["for"], rule["annotations"][ANNOTATION]) == ("2m", "30")


def test_command_line_factor_option_wins_over_the_environment(tmp_path: Path) -> None:
    source = write_source(tmp_path / "rules")

    status = main(["render", "--out", str(tmp_path / "lab"), "--source", str(source),
                   "--factor", "1"], env={"LAB_CLOCK_FACTOR": "30"})

    rule = yaml.safe_load((tmp_path / "lab" / "cost.yml").read_text())["groups"][0]["rules"][1]
    assert status == 0
    assert (rule["for"], rule["annotations"][ANNOTATION]) == ("1h", "1")


def test_command_line_fails_with_status_2_on_a_bad_factor(tmp_path: Path) -> None:
    source = write_source(tmp_path / "rules")

    status = main(["render", "--out", str(tmp_path / "lab"), "--source", str(source)],
                  env={"LAB_CLOCK_FACTOR": "fast"})

    assert status == 2
    assert not (tmp_path / "lab").exists()


def test_command_line_renders_the_repository_rules_by_default(tmp_path: Path) -> None:
    status = main(["render", "--out", str(tmp_path)], env={})

    assert status == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "luminamind-alerts.yml", "luminamind-recording.yml"]


def alert_with_runbook(runbook_url: str) -> dict[str, object]:
    return {"groups": [{"name": "g", "rules": [{
        "alert": "HighCost",
        "expr": "x > 1",
        "annotations": {
            "summary": "cost",
            "description": "see http://127.0.0.1:8090/runbooks/HighCost",
            "runbook_url": runbook_url,
        },
    }]}]}


def test_render_rules_points_runbook_links_at_the_given_base() -> None:
    document = alert_with_runbook("http://127.0.0.1:8090/runbooks/HighCost")

    rendered = render_rules(document, LAB, runbook_base="http://127.0.0.1:18090/runbooks/")

    assert rendered["groups"][0]["rules"][0]["annotations"] == {
        "summary": "cost",
        "description": "see http://127.0.0.1:8090/runbooks/HighCost",
        "runbook_url": "http://127.0.0.1:18090/runbooks/HighCost",
        "lab_clock_factor": "60",
    }


def test_render_rules_keeps_runbook_links_without_a_base() -> None:
    document = alert_with_runbook("http://127.0.0.1:8090/runbooks/HighCost")

    rendered = render_rules(document, LAB)

    annotations = rendered["groups"][0]["rules"][0]["annotations"]
    assert annotations["runbook_url"] == "http://127.0.0.1:8090/runbooks/HighCost"


@pytest.mark.parametrize("runbook_url", [
    "http://localhost:8090/runbooks/HighCost",
    "https://127.0.0.1:8090/runbooks/HighCost",
    "http://127.0.0.1:80900/runbooks/HighCost",
    "http://127.0.0.1:8090/runbooksHighCost",
    "http://127.0.0.1:8090/runbook/HighCost",
    "https://wiki.example/?next=http://127.0.0.1:8090/runbooks/HighCost",
])
def test_render_rules_rewrites_only_the_exact_sink_prefix(runbook_url: str) -> None:
    document = alert_with_runbook(runbook_url)

    rendered = render_rules(document, LAB, runbook_base="http://127.0.0.1:18090/runbooks/")

    assert rendered["groups"][0]["rules"][0]["annotations"]["runbook_url"] == runbook_url


def rendered_runbook_urls(out: Path) -> dict[str, str]:
    document = yaml.safe_load((out / "luminamind-alerts.yml").read_text())
    return {rule["alert"]: rule["annotations"]["runbook_url"]
            for group in document["groups"] for rule in group["rules"]}


def test_command_line_takes_the_runbook_base_from_the_environment(tmp_path: Path) -> None:
    env = {"RUNBOOK_BASE_URL": "http://127.0.0.1:18090/runbooks/"}

    status = main(["render", "--out", str(tmp_path)], env=env)

    assert status == 0
    assert rendered_runbook_urls(tmp_path) == {
        "HighErrorRate": "http://127.0.0.1:18090/runbooks/HighErrorRate",
        "HighLatency": "http://127.0.0.1:18090/runbooks/HighLatency",
        "LowAccuracy": "http://127.0.0.1:18090/runbooks/LowAccuracy",
        "PodDown": "http://127.0.0.1:18090/runbooks/PodDown",
        "RedisDown": "http://127.0.0.1:18090/runbooks/RedisDown",
        "HighMemoryUsage": "http://127.0.0.1:18090/runbooks/HighMemoryUsage",
        "ToolFailureSpike": "http://127.0.0.1:18090/runbooks/ToolFailureSpike",
        "HighLLMCosts": "http://127.0.0.1:18090/runbooks/HighLLMCosts",
        "LowCacheHitRate": "http://127.0.0.1:18090/runbooks/LowCacheHitRate",
    }


def test_command_line_runbook_base_option_wins_over_the_environment(tmp_path: Path) -> None:
    env = {"RUNBOOK_BASE_URL": "http://127.0.0.1:18090/runbooks/"}

    status = main(["render", "--out", str(tmp_path),
                   "--runbook-base-url", "http://127.0.0.1:28090/runbooks/"], env=env)

    assert status == 0
    assert rendered_runbook_urls(tmp_path)["PodDown"] == "http://127.0.0.1:28090/runbooks/PodDown"


def test_command_line_keeps_the_source_runbook_links_when_the_base_is_empty(
    tmp_path: Path,
) -> None:
    status = main(["render", "--out", str(tmp_path)], env={"RUNBOOK_BASE_URL": ""})

    assert status == 0
    assert rendered_runbook_urls(tmp_path)["PodDown"] == "http://127.0.0.1:8090/runbooks/PodDown"


@pytest.mark.parametrize("base", [
    "http://127.0.0.1:18090/runbooks",
    "127.0.0.1:18090/runbooks/",
    "ftp://127.0.0.1/runbooks/",
    "http://127.0.0.1:18090/run books/",
])
def test_command_line_fails_with_status_2_on_a_bad_runbook_base(tmp_path: Path,
                                                                  base: str) -> None:
    status = main(["render", "--out", str(tmp_path / "lab")], env={"RUNBOOK_BASE_URL": base})

    assert status == 2
    assert not (tmp_path / "lab").exists()
