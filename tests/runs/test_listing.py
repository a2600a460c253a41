"""Reading runs: ``list_runs`` filters and pages without gaps or duplicates; ``get_run`` details."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

from runtime import (
    Client,
    DefinitionError,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    Runtime,
    StepContext,
    StepStatus,
    StoreError,
    WorkflowContext,
    WorkflowResponse,
    create_step,
    create_workflow,
    workflow,
)
from runtime.testing import ManualClock
from tests.helpers.definitions import STYLES, Probe, Style


@workflow
async def alpha(ctx: WorkflowContext[Any]) -> int:
    return int(ctx.input["n"])


@workflow
async def beta(ctx: WorkflowContext[Any]) -> int:
    return int(ctx.input["n"])


async def every_page(rt: Runtime, limit: int, **filters: Any) -> list[list[RunRecord]]:
    pages: list[list[RunRecord]] = []
    cursor = None
    while True:
        page = await rt.workflows.list_runs(limit=limit, cursor=cursor, **filters)
        pages.append(page.runs)
        assert len(page.runs) <= limit
        if page.next_cursor is None:
            return pages
        assert len(page.runs) == limit
        cursor = page.next_cursor


def newest_first(runs: list[RunRecord]) -> list[str]:
    return [r.id for r in sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)]


async def seeded(rt: Runtime, clock: ManualClock) -> dict[str, list[str]]:
    """23 alpha runs (every third canceled) and 7 beta runs, several per timestamp."""
    ids: dict[str, list[str]] = {"alpha": [], "beta": [], "canceled": []}
    for n in range(23):
        handle = await rt.workflows.run(alpha, {"n": n}, delay=3600)
        ids["alpha"].append(handle.run_id)
        if n % 3 == 0:
            await rt.workflows.cancel(handle.run_id)
            ids["canceled"].append(handle.run_id)
        if n % 4 == 3:
            clock.advance(1)  # most timestamps are shared by several runs
    for n in range(7):
        ids["beta"].append((await rt.workflows.run(beta, {"n": n}, delay=3600)).run_id)
    return ids


async def test_paging_visits_every_run_once_newest_first(db_url: str) -> None:
    clock = ManualClock()
    async with Runtime(
        database=db_url, workflows=[alpha, beta], clock=clock, background=False
    ) as rt:
        ids = await seeded(rt, clock)
        everything = (await rt.workflows.list_runs(limit=100)).runs
        assert len(everything) == 30
        assert {r.id for r in everything} == set(ids["alpha"] + ids["beta"])
        assert [r.id for r in everything] == newest_first(everything)

        for limit in (1, 4, 5, 7, 30, 31):
            pages = await every_page(rt, limit)
            seen = [r.id for page in pages for r in page]
            assert seen == [r.id for r in everything], limit
        assert len(await every_page(rt, 5)) == 6
        assert (await rt.workflows.list_runs(limit=30)).next_cursor is None


async def test_filters_by_status_and_workflow_while_paging(db_url: str) -> None:
    clock = ManualClock()
    async with Runtime(
        database=db_url, workflows=[alpha, beta], clock=clock, background=False
    ) as rt:
        ids = await seeded(rt, clock)

        canceled = [r for page in await every_page(rt, 2, status=["canceled"]) for r in page]
        assert sorted(r.id for r in canceled) == sorted(ids["canceled"])
        assert {r.status for r in canceled} == {RunStatus.CANCELED}

        betas = [r for page in await every_page(rt, 3, workflow="beta") for r in page]
        assert sorted(r.id for r in betas) == sorted(ids["beta"])

        pending_alpha = [
            r
            for page in await every_page(rt, 4, status=[RunStatus.PENDING], workflow="alpha")
            for r in page
        ]
        assert sorted(r.id for r in pending_alpha) == sorted(
            set(ids["alpha"]) - set(ids["canceled"])
        )
        both = [r for page in await every_page(rt, 6, status=["pending", "canceled"]) for r in page]
        assert len(both) == 30
        assert (await rt.workflows.list_runs(workflow="gamma")).runs == []
        assert (await rt.workflows.list_runs(status=["failed"])).runs == []


async def test_runs_started_between_pages_cause_no_gap_and_no_duplicate(db_url: str) -> None:
    clock = ManualClock()
    async with Runtime(database=db_url, workflows=[alpha], clock=clock, background=False) as rt:
        first_ids = [(await rt.workflows.run(alpha, {"n": n}, delay=60)).run_id for n in range(9)]
        page = await rt.workflows.list_runs(limit=4)
        clock.advance(1)  # started after the first page was read
        for n in range(5):
            await rt.workflows.run(alpha, {"n": 100 + n}, delay=60)
        seen = [r.id for r in page.runs]
        cursor = page.next_cursor
        while cursor is not None:
            page = await rt.workflows.list_runs(limit=4, cursor=cursor)
            seen += [r.id for r in page.runs]
            cursor = page.next_cursor
        assert len(seen) == len(set(seen)) == 9
        assert set(seen) == set(first_ids)


async def test_a_client_pages_the_same_way(db_url: str) -> None:
    clock = ManualClock()
    async with Runtime(
        database=db_url, workflows=[alpha, beta], clock=clock, background=False
    ) as rt:
        await seeded(rt, clock)
        expected = [r.id for r in (await rt.workflows.list_runs(limit=100)).runs]
    async with Client(db_url) as client:
        seen: list[str] = []
        cursor = None
        while True:
            page = await client.list_runs(limit=7, cursor=cursor)
            seen += [r.id for r in page.runs]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected


async def test_bad_limits_and_cursors_are_refused(db_url: str) -> None:
    async with Runtime(database=db_url, background=False) as rt:
        # Arguments are checked before the store is asked (tests/test_limits.py).
        with pytest.raises(DefinitionError, match="limit must be between 1 and 10000"):
            await rt.workflows.list_runs(limit=0)
        with pytest.raises(StoreError, match="cursor"):
            await rt.workflows.list_runs(cursor="not-a-cursor")
        with pytest.raises(DefinitionError, match="unknown run status 'exploded'"):
            await rt.workflows.list_runs(status=["exploded"])


# -- get_run -----------------------------------------------------------------------------


def audited(style: Style, probe: Probe) -> Any:
    """``flaky`` fails once then succeeds; ``broken`` fails twice for good; ``flaky`` is undone."""
    probe.fail("flaky", 1)
    probe.fail("broken", 2)
    if style == "durable":

        @workflow(name="audited")
        async def flow(ctx: WorkflowContext[Any]) -> str:
            await ctx.step(
                "flaky",
                probe.call,
                "flaky",
                max_retries=1,
                retry_interval=0.01,
                compensate=probe.undo,
            )
            return await ctx.step(
                "broken", probe.call, "broken", max_retries=1, retry_interval=0.01
            )

        return flow

    async def flaky(input: Any, ctx: StepContext) -> str:
        return await probe.call("flaky")

    async def broken(input: Any, ctx: StepContext) -> str:
        return await probe.call("broken")

    flaky_step = create_step(
        "flaky", flaky, compensate=probe.undo, max_retries=1, retry_interval=0.01
    )
    broken_step = create_step("broken", broken, max_retries=1, retry_interval=0.01)
    return create_workflow(
        "audited", lambda input: WorkflowResponse([flaky_step(input), broken_step(input)])
    )


@pytest.mark.parametrize("style", STYLES)
async def test_get_run_shows_steps_with_attempts_errors_and_timings(
    db_url: str, style: Style
) -> None:
    probe = Probe()
    flow = audited(style, probe)
    async with Runtime(database=db_url, workflows=[flow]) as rt:
        handle = await rt.workflows.run(flow, {"order": "o1"})
        await rt.workflows.wait(handle.run_id, timeout=5)
        record = await rt.workflows.get_run(handle.run_id)

        assert record.status is RunStatus.FAILED
        assert (record.workflow, record.input, record.output) == ("audited", {"order": "o1"}, None)
        assert record.error is not None
        assert (record.error.step, record.error.type, record.error.message) == (
            "broken",
            "RuntimeError",
            "broken broke",
        )
        assert record.ended_at is not None and record.ended_at >= record.created_at
        assert record.owner_id is None

        assert [(s.seq, s.name, s.status, s.attempts) for s in record.steps] == [
            (1, "flaky", StepStatus.COMPENSATED, 2),
            (2, "broken", StepStatus.FAILED, 2),
        ]
        flaky, broken = record.steps
        assert flaky.output == "flaky"
        assert flaky.error is None  # it succeeded on its second attempt
        assert broken.error is not None
        assert (broken.error.type, broken.error.message) == ("RuntimeError", "broken broke")
        assert broken.error.traceback is not None and "broken broke" in broken.error.traceback
        for step in record.steps:
            assert step.run_id == handle.run_id
            assert step.started_at is not None and step.ended_at is not None
            assert step.ended_at >= step.started_at
            assert step.started_at >= record.created_at
            assert step.started_at.utcoffset() == timedelta(0)
        assert flaky.ended_at is not None and broken.started_at is not None
        assert broken.started_at >= flaky.ended_at
        assert probe.calls == ["flaky", "flaky", "broken", "broken", "undo flaky"]

        bare = await rt.workflows.get_run(handle.run_id, steps=False)
        assert (bare.id, bare.status, bare.steps) == (handle.run_id, RunStatus.FAILED, [])


async def test_get_run_of_an_unknown_id_is_not_found(db_url: str) -> None:
    async with Runtime(database=db_url, background=False) as rt:
        with pytest.raises(RunNotFoundError, match="run_nope"):
            await rt.workflows.get_run("run_nope")
        with anyio.fail_after(5):
            assert (await rt.workflows.list_runs()).runs == []
