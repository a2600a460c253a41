"""A workflow schedule's input: a value, or a function of nothing or of the nominal time."""

from __future__ import annotations

from datetime import UTC, datetime

from runtime.sdk.specs import Schedule

NOMINAL = datetime(2026, 3, 8, 9, 0, tzinfo=UTC)


def test_a_value_is_the_input() -> None:
    assert Schedule(cron="0 9 * * *", input={"kind": "full"}).input_now(NOMINAL) == {"kind": "full"}


def test_a_function_of_nothing_is_called_at_each_firing() -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    schedule = Schedule(cron="0 9 * * *", input=compute)
    assert [schedule.input_now(NOMINAL), schedule.input_now(NOMINAL)] == [{"n": 1}, {"n": 2}]


def test_a_function_of_one_argument_gets_the_nominal_time() -> None:
    # A report fired late after downtime still covers the day it was due for.
    schedule = Schedule(cron="0 9 * * *", input=lambda at: {"date": at.date().isoformat()})
    assert schedule.input_now(NOMINAL) == {"date": "2026-03-08"}
