"""A Runtime's life cycle: what it wires on entry, and what is gone after exit."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest

from runtime import (
    ConfigError,
    Container,
    NotConfiguredError,
    Runtime,
    StepContext,
    WorkflowDefinition,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from runtime.engine.worker import Worker
from runtime.sdk.running import WORKFLOWS_KEY
from runtime.service import BUS_KEY
from tests.helpers.waiting import wait_until

PARTS = ("store", "workflows", "bus", "worker", "scheduler", "pruner")


def doubler() -> WorkflowDefinition:
    @create_step("double")
    async def double(input: dict[str, int]) -> int:
        return input["n"] * 2

    return create_workflow("double", lambda input: WorkflowResponse(double(input)))


async def test_the_parts_are_gone_after_exit(db_url: str) -> None:
    """Bug: the store, bus, scheduler, worker and pruner of a runtime that had exited
    stayed reachable (closed, or no longer running), and were used without a word."""
    runtime = Runtime(db_url, retention="1d")
    with pytest.raises(ConfigError, match="not started"):
        runtime.bus  # noqa: B018 - the property raises
    async with runtime as rt:
        for name in PARTS:
            assert getattr(rt, name) is not None
    for name in PARTS:
        with pytest.raises(ConfigError, match="not started"):
            getattr(rt, name)
    assert rt.active_runs == []


async def test_a_runtime_entered_again_is_refused_while_it_runs(db_url: str) -> None:
    async with Runtime(db_url) as rt:
        with pytest.raises(ConfigError, match="already started"):
            await rt.__aenter__()
        await rt.workflows.list_runs()  # the first entry goes on undisturbed


async def test_a_new_workflow_pokes_only_the_worker_of_the_current_entry(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: every entry added a registry listener, so the workers of past entries were
    poked too (and kept alive by the registry) for as long as the runtime lived."""
    poked: list[Worker] = []
    poke = Worker.poke

    def counting(self: Worker) -> None:
        poked.append(self)
        poke(self)

    monkeypatch.setattr(Worker, "poke", counting)
    runtime = Runtime(db_url)
    async with runtime:
        pass
    async with runtime as rt:
        poked.clear()
        rt.registry.register(create_workflow("late", lambda: WorkflowResponse(None)))
        assert rt.worker in poked
        assert {id(worker) for worker in poked} == {id(rt.worker)}


async def test_the_runtime_s_services_keep_out_of_the_application_s_names(db_url: str) -> None:
    """Bug: the runtime registered its services under plain names, replacing an
    application service named ``workflows`` (or ``event_bus``) with its own."""
    container = Container()
    mine = object()
    container.register("workflows", mine)
    workflow = doubler()
    async with Runtime(db_url, container=container, workflows=[workflow]) as rt:
        assert container.resolve("workflows") is mine  # the application's own stays
        assert container.resolve(WORKFLOWS_KEY) is rt.workflows
        assert container.resolve("event_bus") is container.resolve(BUS_KEY) is rt.bus
        assert container.resolve("logger") is container.resolve("runtime.logger")
        # wf(container).run() finds the runtime under its own name.
        assert (await workflow(container).run(input={"n": 2})).result == 4
    assert container.names() == ["workflows"]  # nothing of the runtime's stays behind
    with pytest.raises(NotConfiguredError):
        await workflow(container).run(input={"n": 2})


async def test_a_step_resolves_the_documented_plain_names(db_url: str) -> None:
    seen: dict[str, Any] = {}

    @create_step("look")
    async def look(input: Any, ctx: StepContext) -> None:
        for name in ("workflows", "event_bus", "logger"):
            seen[name] = ctx.container.resolve(name)

    workflow = create_workflow("look", lambda: look())
    async with Runtime(db_url, workflows=[workflow]) as rt:
        await workflow(rt.container).run()
        assert seen["workflows"] is rt.workflows
        assert seen["event_bus"] is rt.bus
        assert hasattr(seen["logger"], "info")


async def test_every_part_reports_statistics_as_a_frozen_dataclass(db_url: str) -> None:
    """Bug: the worker and the bus returned dicts, the scheduler a dataclass."""
    async with Runtime(db_url, workflows=[doubler()]) as rt:
        await rt.workflows.run("double", {"n": 1})
        for part in (rt.worker, rt.bus, rt.scheduler):
            stats = part.statistics()
            assert dataclasses.is_dataclass(stats)
            first = dataclasses.fields(stats)[0].name
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(stats, first, 0)
        assert rt.worker.statistics().concurrency == rt.concurrency
        assert rt.bus.statistics().dead == 0


async def test_two_tasks_entering_one_runtime_at_once_start_it_once(db_url: str) -> None:
    """Bug: a second task entering while the first was still opening the store passed
    the check (the parts were set only after that await) and started it twice."""
    runtime = Runtime(db_url)
    outcomes: list[str] = []
    done = anyio.Event()

    async def enter() -> None:
        try:
            async with runtime:
                outcomes.append("entered")
                await done.wait()
        except ConfigError as exc:
            outcomes.append(f"refused: {exc}")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(enter)
            tg.start_soon(enter)
            await wait_until(lambda: len(outcomes) == 2)
            done.set()
    assert sorted(outcomes) == [
        "entered",
        "refused: the runtime is already started; enter it once at a time",
    ]
