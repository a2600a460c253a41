"""``runtime bench``: every figure is reported, and the interleaving figure can tell."""

from __future__ import annotations

from pathlib import Path

import anyio

from runtime.bench.figures import STEPS, _chain, _concurrent, _InFlight, _sequential, measure
from runtime.service import Runtime

FIGURES = (
    "steps_per_s_sequential",
    "steps_per_s_concurrent",
    "latency_ms_p50",
    "queue_latency_ms_p50",
    "durable_fn_steps_per_s",
    "events_per_s",
    "emit_latency_ms_p50",
    "loop_stall_ms_max",
    "peak_rss_mb",
)


async def test_measure_reports_every_figure_and_concurrent_runs_interleave(
    tmp_path: Path,
) -> None:
    figures = await measure(tmp_path, with_cron=False)
    for name in FIGURES:
        assert figures[name] > 0, name
    # 200 runs started together are under way together (before issue 7 they ran one
    # after another: 1).
    assert figures["concurrent_in_flight_max"] > 50


async def test_in_flight_counts_runs_between_their_first_and_last_step(db_url: str) -> None:
    """Runs started together but executed one after another count 1, not the number of
    tasks started (what the figure measured before)."""
    in_flight = _InFlight()
    counted = _chain("counted", STEPS, in_flight)
    async with Runtime(database=db_url, workflows=[counted], background=False) as rt:
        await _sequential(rt, counted)
        assert (in_flight.most, in_flight.now) == (1, 0)

        one_at_a_time = anyio.Lock()

        async def serialized() -> None:
            async with one_at_a_time:
                await counted(rt.container).run(input={"start": 0})

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(serialized)
        assert (in_flight.most, in_flight.now) == (1, 0)

        await _concurrent(rt, counted)
        assert in_flight.most > 1
