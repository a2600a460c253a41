"""The service's pruner: rounds on the injected clock, errors retried, stopped by a drain."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from runtime import RunNotFoundError, RunStatus, Runtime, StoreError, create_step, create_workflow
from runtime.pruner import PRUNE_INTERVAL, Retention
from runtime.sdk.definitions import WorkflowDefinition
from runtime.testing import ManualClock

DAY = 24 * 3600


@create_step("double")
async def double(input: dict[str, Any]) -> int:
    return int(input["n"]) * 2


@create_step("explode")
async def explode(input: Any) -> None:
    raise RuntimeError("kaboom")


DOUBLER = create_workflow("doubler", lambda input: double(input))
EXPLODER = create_workflow("exploder", lambda input: explode(input))


def workflows() -> tuple[WorkflowDefinition, WorkflowDefinition]:
    return DOUBLER, EXPLODER


async def finished_runs(rt: Runtime) -> tuple[str, str]:
    """A completed run and a failed one, both ended at the clock's now."""
    done = await DOUBLER(rt.container).run(input={"n": 2})
    failed = await EXPLODER(rt.container).run(input={}, throw_on_error=False)
    assert (done.status, failed.status) == (RunStatus.COMPLETED, RunStatus.FAILED)
    return done.run_id, failed.run_id


async def test_the_service_prunes_ended_runs_past_retention_on_its_clock(db_url: str) -> None:
    clock = ManualClock()
    with anyio.fail_after(10), capture_logs() as logs:
        async with Runtime(db_url, clock=clock, workflows=workflows(), retention="1d") as rt:
            completed, failed = await finished_runs(rt)
            assert rt.pruner is not None
            clock.advance(PRUNE_INTERVAL)  # a round: nothing is a day old yet
            await rt.pruner.wait_rounds(1)
            await rt.workflows.get_run(completed)

            clock.advance(2 * DAY)
            await rt.pruner.wait_rounds(2)

            with pytest.raises(RunNotFoundError):
                await rt.workflows.get_run(completed)
            assert (await rt.workflows.get_run(failed)).status is RunStatus.FAILED
            assert rt.pruner.removed.runs == 1 and rt.pruner.removed.steps == 1
    pruned = [line for line in logs if line["event"] == "pruned"]
    assert len(pruned) == 1 and pruned[0]["runs"] == 1 and pruned[0]["batches"] == 1


async def test_failed_retention_removes_failed_runs_too(db_url: str) -> None:
    clock = ManualClock()
    with anyio.fail_after(10):
        async with Runtime(
            db_url, clock=clock, workflows=workflows(), retention=0, failed_retention="7d"
        ) as rt:
            completed, failed = await finished_runs(rt)
            assert rt.pruner is not None
            clock.advance(8 * DAY)
            await rt.pruner.wait_rounds(1)
            with pytest.raises(RunNotFoundError):
                await rt.workflows.get_run(failed)
            await rt.workflows.get_run(completed)  # retention 0 keeps it


async def test_with_retention_off_there_is_no_pruner(db_url: str) -> None:
    async with Runtime(db_url, retention=0, failed_retention=timedelta(0)) as rt:
        assert rt.pruner is None
        assert not rt.retention.enabled
    async with Runtime(db_url, background=False) as rt:  # a one-shot tool prunes nothing
        assert rt.pruner is None


async def test_a_store_error_is_logged_and_the_next_round_tries_again(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    with anyio.fail_after(10), capture_logs() as logs:
        async with Runtime(db_url, clock=clock, workflows=workflows(), retention="1d") as rt:
            completed, _ = await finished_runs(rt)
            real = rt.store.prune
            calls: list[object] = []

            async def refuse_once(*args: Any, **kwargs: Any) -> Any:
                calls.append(args)
                if len(calls) == 1:
                    raise StoreError("SQLite database: disk I/O error")
                return await real(*args, **kwargs)

            monkeypatch.setattr(rt.store, "prune", refuse_once)
            assert rt.pruner is not None
            clock.advance(2 * DAY)
            await rt.pruner.wait_rounds(1)
            assert rt.pruner.failures == 1
            await rt.workflows.get_run(completed)  # still there; the service goes on

            clock.advance(PRUNE_INTERVAL)
            await rt.pruner.wait_rounds(2)
            with pytest.raises(RunNotFoundError):
                await rt.workflows.get_run(completed)
            assert (await DOUBLER(rt.container).run(input={"n": 4})).result == 8
    failed = [line for line in logs if line["event"] == "prune_failed"]
    assert len(failed) == 1 and "disk I/O error" in failed[0]["error"]


async def test_a_drain_stops_the_pruner_before_its_next_round(db_url: str) -> None:
    clock = ManualClock()
    with anyio.fail_after(10):
        async with Runtime(db_url, clock=clock, workflows=workflows(), retention="1d") as rt:
            completed, _ = await finished_runs(rt)
            assert rt.pruner is not None
            assert await rt.drain(grace=1)
            clock.advance(2 * DAY)
            await rt.pruner.wait_stopped()
            assert rt.pruner.rounds == 0
            await rt.workflows.get_run(completed)


def test_retention_comes_from_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runtime.toml").write_text('[runtime]\nretention = "12h"\n')
    monkeypatch.setenv("RUNTIME_FAILED_RETENTION", "2w")
    rt = Runtime.from_project(tmp_path)
    assert rt.retention == Retention(12 * 3600, 14 * DAY)
    assert Runtime.from_project(tmp_path, retention=0).retention.completed == 0
    assert Runtime().retention == Retention(30 * DAY, 0)  # the defaults
