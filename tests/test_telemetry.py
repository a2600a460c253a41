"""``runtime.telemetry``: the in-process counts ``GET /metrics`` serves."""

from __future__ import annotations

import math

from runtime.telemetry import LAG_BUCKETS, STEP_BUCKETS, Histogram, Telemetry


def test_an_observation_lands_in_the_first_bucket_at_or_above_it() -> None:
    histogram = Histogram.empty((0.1, 1.0, 10.0))
    for value in (0.05, 0.1, 0.5, 1.0, 10.0, 11.0, 1e9):
        histogram.observe(value)

    # "le" buckets: a value equal to a bound is counted in that bound's bucket.
    assert histogram.counts == [2, 2, 1, 2]
    assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (10.0, 5), (math.inf, 7)]
    assert histogram.count == 7
    assert math.isclose(histogram.total, 0.05 + 0.1 + 0.5 + 1.0 + 10.0 + 11.0 + 1e9)


def test_the_bounds_ascend() -> None:
    for bounds in (STEP_BUCKETS, LAG_BUCKETS):
        assert list(bounds) == sorted(set(bounds))


def test_steps_are_counted_by_workflow_and_outcome() -> None:
    telemetry = Telemetry()
    telemetry.step_completed("orders", 0.002)
    telemetry.step_completed("orders", 2.0)
    telemetry.step_failed("orders", 30.0)
    telemetry.step_failed("refunds", 0.0)

    steps = telemetry.snapshot().steps
    assert (steps["orders"].completed, steps["orders"].failed) == (2, 1)
    assert (steps["refunds"].completed, steps["refunds"].failed) == (0, 1)
    # Completed and failed steps alike are timed.
    assert steps["orders"].duration.count == 3
    assert math.isclose(steps["orders"].duration.total, 32.002)
    assert dict(steps["orders"].duration.cumulative())[2.5] == 2


def test_firings_are_counted_by_schedule_and_outcome_with_the_lag_of_those_that_started() -> None:
    telemetry = Telemetry()
    telemetry.schedule_fired("nightly", "started", 0.004)
    telemetry.schedule_fired("nightly", "started", 0.3)
    telemetry.schedule_fired("nightly", "skipped_overlap")
    telemetry.schedule_fired("nightly", "missed", count=5)

    nightly = telemetry.snapshot().schedules["nightly"]
    assert nightly.outcomes == {"started": 2, "skipped_overlap": 1, "missed": 5}
    assert nightly.lag.count == 2
    assert nightly.last_lag == 0.3


def test_a_snapshot_is_not_changed_by_later_counts() -> None:
    telemetry = Telemetry()
    telemetry.step_completed("orders", 0.1)
    telemetry.schedule_fired("nightly", "started", 0.1)
    before = telemetry.snapshot()
    telemetry.step_completed("orders", 0.1)
    telemetry.schedule_fired("nightly", "started", 0.2)

    assert before.steps["orders"].completed == 1
    assert before.steps["orders"].duration.count == 1
    assert before.schedules["nightly"].outcomes == {"started": 1}
    assert before.schedules["nightly"].lag.count == 1
    assert telemetry.snapshot().steps["orders"].completed == 2


def test_two_telemetries_keep_their_counts_apart() -> None:
    one, two = Telemetry(), Telemetry()
    one.step_completed("orders", 0.1)
    assert two.snapshot().steps == {}
