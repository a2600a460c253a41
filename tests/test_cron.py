"""Cron expressions: fields, validation, and the daylight-saving policy on real dates."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runtime.cron import CronSchedule
from runtime.errors import DefinitionError

NEW_YORK = ZoneInfo("America/New_York")


def firings(expression: str, start: datetime, end: datetime, tz: str = "America/New_York"):
    """Every firing in (start, end], as New York wall times (with their UTC offsets)."""
    return [
        moment.astimezone(NEW_YORK)
        for moment in CronSchedule(expression, tz).firings_between(start, end, limit=10_000)
    ]


def test_five_fields_fire_at_minutes_in_utc_by_default() -> None:
    cron = CronSchedule("0 2 * * *")
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert cron.next_after(start) == datetime(2026, 5, 2, 2, 0, tzinfo=UTC)
    assert cron.next_after(start).tzinfo is UTC
    assert not cron.seconds


def test_six_fields_have_seconds_first() -> None:
    cron = CronSchedule("*/10 * * * * *")
    start = datetime(2026, 5, 1, 12, 0, 3, tzinfo=UTC)
    found = cron.firings_between(start, start + timedelta(seconds=40), limit=100)
    assert [m.second for m in found] == [10, 20, 30, 40]
    assert cron.seconds


def test_next_after_is_strictly_after() -> None:
    cron = CronSchedule("*/15 * * * *")
    at = datetime(2026, 5, 1, 12, 15, tzinfo=UTC)
    assert cron.next_after(at) == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


def test_a_timezone_shifts_the_wall_clock() -> None:
    cron = CronSchedule("0 9 * * 1-5", "Europe/Paris")
    # Friday 2026-05-01 10:00 UTC is past 09:00 in Paris (UTC+2): next is Monday 07:00 UTC.
    assert cron.next_after(datetime(2026, 5, 1, 10, 0, tzinfo=UTC)) == datetime(
        2026, 5, 4, 7, 0, tzinfo=UTC
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronSchedule("* * * * *").next_after(datetime(2026, 5, 1))


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("61 * * * *", "is not valid"),
        ("* 25 * * *", "is not valid"),
        ("every day", "has 2 fields"),
        ("*/x * * * *", "is not valid"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(DefinitionError, match=reason) as caught:
        CronSchedule(expression)
    assert repr(expression) in str(caught.value)


def test_a_non_string_expression_is_refused() -> None:
    with pytest.raises(DefinitionError, match="must be a string"):
        CronSchedule(5)  # type: ignore[arg-type]


def test_an_unknown_timezone_is_refused_with_the_reason() -> None:
    with pytest.raises(DefinitionError, match=r"unknown timezone 'Mars/Olympus'.*IANA"):
        CronSchedule("0 2 * * *", "Mars/Olympus")


# -- daylight saving, America/New_York ------------------------------------
# 2026-03-08: at 02:00 EST the clock jumps to 03:00 EDT (02:xx does not exist).
# 2026-11-01: at 02:00 EDT the clock falls back to 01:00 EST (01:xx happens twice).

SPRING = (datetime(2026, 3, 7, 12, tzinfo=NEW_YORK), datetime(2026, 3, 9, 12, tzinfo=NEW_YORK))
AUTUMN = (datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), datetime(2026, 11, 2, 12, tzinfo=NEW_YORK))


def test_a_skipped_fixed_time_fires_once_right_after_the_jump() -> None:
    found = firings("30 2 * * *", *SPRING)
    on_the_day = [m for m in found if m.date() == datetime(2026, 3, 8).date()]
    assert len(on_the_day) == 1
    # 03:00 EDT, the instant the clock jumped over 02:30.
    assert on_the_day[0].astimezone(UTC) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert on_the_day[0].strftime("%H:%M %Z") == "03:00 EDT"
    # The days around it fire at 02:30 as usual.
    assert found[-1].strftime("%Y-%m-%d %H:%M %Z") == "2026-03-09 02:30 EDT"


def test_a_wildcard_hour_skips_the_missing_hour_and_keeps_elapsed_spacing() -> None:
    start = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST
    found = firings("*/15 * * * *", start, start + timedelta(hours=2))
    assert [m.strftime("%H:%M") for m in found] == [
        "01:15",
        "01:30",
        "01:45",
        "03:00",
        "03:15",
        "03:30",
        "03:45",
        "04:00",
    ]
    assert not any(m.hour == 2 for m in found)
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(found)}
    assert gaps == {timedelta(minutes=15)}


def test_a_repeated_fixed_time_fires_once_at_its_first_occurrence() -> None:
    found = firings("30 1 * * *", *AUTUMN)
    on_the_day = [m for m in found if m.date() == datetime(2026, 11, 1).date()]
    assert len(on_the_day) == 1
    # (Compared in UTC: Python never equates an ambiguous wall time across zones.)
    assert on_the_day[0].astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert on_the_day[0].strftime("%H:%M %Z") == "01:30 EDT"


def test_a_wildcard_hour_fires_in_both_repeated_hours() -> None:
    start = datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK)
    found = firings("*/30 * * * *", start, datetime(2026, 11, 1, 7, 15, tzinfo=UTC))
    assert [m.strftime("%H:%M %Z") for m in found] == [
        "01:00 EDT",
        "01:30 EDT",
        "01:00 EST",
        "01:30 EST",
        "02:00 EST",
    ]
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(found)}
    assert gaps == {timedelta(minutes=30)}


def test_firings_between_keeps_the_latest_when_limited() -> None:
    cron = CronSchedule("* * * * *")
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    found = cron.firings_between(start, start + timedelta(minutes=10), limit=3)
    assert [m.minute for m in found] == [8, 9, 10]


# -- issue 7: expressions that can never fire, steps out of range --------------------------


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
        ("0 0 0 31 2 *", "can never fire"),
        ("*/61 * * * *", "the step /61 of the minute field is out of range (1 to 60)"),
        ("0 */25 * * *", "the step /25 of the hour field is out of range (1 to 24)"),
        ("0 0 */32 * *", "the step /32 of the day of month field is out of range (1 to 31)"),
        ("0 0 1 */13 *", "the step /13 of the month field is out of range (1 to 12)"),
        ("0 0 * * 1-5/8", "the step /8 of the day of week field is out of range (1 to 7)"),
        ("*/90 * * * * *", "the step /90 of the second field is out of range (1 to 60)"),
        ("0,5-10/70 * * * *", "the step /70 of the minute field"),
    ],
)
def test_expressions_that_cannot_work_are_refused(expression: str, needle: str) -> None:
    # Failed before: accepted, then next_after raised CroniterBadDateError (a traceback from
    # check, start and jobs list), or */61 silently meant "once an hour".
    with pytest.raises(DefinitionError) as caught:
        CronSchedule(expression)
    assert f"cron expression {expression!r}" in str(caught.value)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    "expression", ["0 0 29 2 *", "0 0 31 * *", "*/60 * * * *", "0 0 30 2 1", "*/59 * * * * *"]
)
def test_rare_but_possible_expressions_are_accepted(expression: str) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert CronSchedule(expression).next_after(start) > start
