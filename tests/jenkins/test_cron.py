"""Jenkins' cron dialect: the H hash must land on the same minute as Jenkins itself.

Expected values were computed on a JVM with ``java.util.Random`` seeded the way
``hudson.scheduler.Hash.from`` seeds it (MD5 of the full name folded to 8 bytes), drawing
in the order Jenkins' parser draws.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.jenkins.cron import JavaRandom, SpecError, jenkins_hash, next_fire, parse_spec


def test_java_random_matches_the_jvm() -> None:
    assert JavaRandom(42).next_int() == -1170105035
    assert JavaRandom(0).next_int(10) == 0


@pytest.mark.parametrize(
    ("name", "minute", "hour"),
    [
        ("nightly-report", 13, 22),
        ("team/app/main", 5, 5),
        ("platform/backup", 7, 14),
        ("build", 17, 19),
        ("ops/nightly-cleanup", 43, 3),
        ("équipe/déploiement", 13, 19),
    ],
)
def test_h_h_daily_resolves_like_jenkins(name: str, minute: int, hour: int) -> None:
    spec = parse_spec("H H * * *", name)
    assert spec.resolved == f"{minute} {hour} * * *"


@pytest.mark.parametrize(
    ("name", "spec", "resolved"),
    [
        ("build", "H/15 * * * *", "2,17,32,47 * * * *"),
        ("nightly-report", "@midnight", "13 1 * * *"),
        ("team/app/main", "@weekly", "5 5 * * 1"),
        ("platform/backup", "@monthly", "7 14 17 * *"),
        ("build", "@monthly", "17 19 27 * *"),
        ("team/app/main", "H(0-29)/10 H(8-17) * * 1-5", "5,15,25 17 * * 1-5"),
        # One generator for the whole spec: the second line draws the next number.
        ("ops/nightly-report", "H 1 * * *\nH 13 * * *", "40 1 * * *\n6 13 * * *"),
    ],
)
def test_hashed_specs_resolve_like_jenkins(name: str, spec: str, resolved: str) -> None:
    assert parse_spec(spec, name).resolved == resolved


def test_same_spec_differs_between_jobs_and_is_stable() -> None:
    a = parse_spec("H H * * *", "team/app/build").resolved
    b = parse_spec("H H * * *", "team/app/deploy").resolved
    assert a != b
    assert parse_spec("H H * * *", "team/app/build").resolved == a  # deterministic
    assert jenkins_hash("x").next_int(1000) == jenkins_hash("x").next_int(1000)


def test_timezone_line_comments_and_sunday_as_seven() -> None:
    spec = parse_spec("TZ=Europe/London\n# weekly\n\n30 6 * * 7", "job")
    assert spec.timezone == "Europe/London"
    assert spec.expression == "30 6 * * 7"
    assert spec.resolved == "30 6 * * 0"


@pytest.mark.parametrize(
    "bad",
    [
        "H H * *",
        "61 * * * *",
        "* 24 * * *",
        "5-1 * * * *",
        "*/0 * * * *",
        "@sometimes",
        "TZ=Mars/Olympus\nH * * * *",
        "H/61 * * * *",
        "x * * * *",
    ],
)
def test_specs_jenkins_rejects_raise(bad: str) -> None:
    with pytest.raises(SpecError):
        parse_spec(bad, "job")


def test_next_fire_uses_the_resolved_minute_and_the_zone() -> None:
    spec = parse_spec("H 2 * * *", "build")  # minute 17
    after = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert next_fire(spec, after) == datetime(2024, 5, 2, 2, 17, tzinfo=UTC)
    berlin = next_fire(spec, after, "Europe/Berlin")
    assert berlin == datetime(2024, 5, 2, 0, 17, tzinfo=UTC)  # 02:17 CEST


def test_next_fire_ands_day_of_month_and_weekday() -> None:
    # Jenkins matches all five fields: Friday the 13th, not every Friday and every 13th.
    spec = parse_spec("0 9 13 * 5", "job")
    assert next_fire(spec, datetime(2024, 1, 1, tzinfo=UTC)) == datetime(
        2024, 9, 13, 9, 0, tzinfo=UTC
    )


def test_next_fire_skips_wall_times_lost_to_dst_and_finds_nothing_for_impossible_dates() -> None:
    spec = parse_spec("TZ=Europe/Berlin\n30 2 31 3 *", "job")
    # 2024-03-31 02:30 does not exist in Berlin (clocks jump 02:00 → 03:00 that night);
    # in 2025 the switch is on March 30, so March 31 02:30 CEST exists.
    assert next_fire(spec, datetime(2024, 1, 1, tzinfo=UTC)) == datetime(
        2025, 3, 31, 0, 30, tzinfo=UTC
    )
    assert next_fire(parse_spec("0 0 30 2 *", "job"), datetime(2024, 1, 1, tzinfo=UTC)) is None


def test_next_fire_is_strictly_after() -> None:
    spec = parse_spec("0 * * * *", "job")
    on_the_hour = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert next_fire(spec, on_the_hour) == datetime(2024, 1, 1, 11, 0, tzinfo=UTC)
