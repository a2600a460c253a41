"""The long-lived service: background runs, the worker, drain, projects, and clients."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from runtime import (
    ConfigError,
    RunFailed,
    RunStatus,
    Runtime,
    WorkflowDefinition,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from runtime.client import Client, SyncClient
from runtime.sdk.specs import Subscriber, SubscriberArgs, SubscriberConfig
from tests.helpers.waiting import wait_until


def doubler(calls: list[Any] | None = None) -> WorkflowDefinition:
    @create_step("double")
    async def double(input: dict[str, Any]) -> int:
        if calls is not None:
            calls.append(input)
        return int(input["n"]) * 2

    return create_workflow("double", lambda input: WorkflowResponse(double(input)))


def gated(gate: anyio.Event, entered: list[str]) -> WorkflowDefinition:
    """Two steps; the first waits for ``gate``."""

    @create_step("wait-for-gate")
    async def wait_for_gate(input: dict[str, Any]) -> dict[str, Any]:
        entered.append("wait-for-gate")
        await gate.wait()
        return input

    @create_step("finish")
    async def finish(input: dict[str, Any]) -> str:
        entered.append("finish")
        return f"done {input['id']}"

    return create_workflow("gated", lambda input: WorkflowResponse(finish(wait_for_gate(input))))


# -- background runs -------------------------------------------------------------------


async def test_run_returns_a_handle_at_once_and_the_worker_runs_it(db_url: str) -> None:
    gate = anyio.Event()
    entered: list[str] = []
    async with Runtime(database=db_url, workflows=[gated(gate, entered)]) as rt:
        with anyio.fail_after(1):
            handle = await rt.workflows.run("gated", {"id": "r1"})
        assert await handle.status() in (RunStatus.PENDING, RunStatus.RUNNING)
        record = await rt.workflows.get_run(handle.run_id)
        assert record.workflow == "gated"
        assert record.input == {"id": "r1"}
        assert record.ended_at is None

        async def running() -> bool:
            return await handle.status() is RunStatus.RUNNING and entered == ["wait-for-gate"]

        await wait_until(running)
        gate.set()
        assert await handle.result(timeout=5) == "done r1"
        assert await handle.status() is RunStatus.COMPLETED
    assert entered == ["wait-for-gate", "finish"]


async def test_result_gives_up_after_its_timeout(db_url: str) -> None:
    gate = anyio.Event()
    async with Runtime(database=db_url, workflows=[gated(gate, [])]) as rt:
        handle = await rt.workflows.run("gated", {"id": "t1"})
        # Failed before: a TimeoutError with an empty message.
        expected = rf"run {handle.run_id} did not end within 0.1 s; it is running"
        with anyio.fail_after(5), pytest.raises(TimeoutError, match=expected):
            await handle.result(timeout=0.1)
        gate.set()
        assert await handle.result(timeout=5) == "done t1"


async def test_result_of_a_failing_run_raises_run_failed_with_the_error(db_url: str) -> None:
    @create_step("explode")
    async def explode(input: Any) -> None:
        raise ValueError("no such sku: X-1")

    broken = create_workflow("broken", lambda input: WorkflowResponse(explode(input)))
    async with Runtime(database=db_url, workflows=[broken]) as rt:
        handle = await rt.workflows.run(broken, {"sku": "X-1"})
        with pytest.raises(RunFailed) as info:
            await handle.result(timeout=5)

    failed = info.value
    assert failed.run_id == handle.run_id
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ValueError", "no such sku: X-1")
    assert failed.error.step == "explode"
    assert "no such sku: X-1" in str(failed)


async def test_an_idempotency_key_returns_the_run_it_started(db_url: str) -> None:
    calls: list[Any] = []
    async with Runtime(database=db_url, workflows=[doubler(calls)]) as rt:
        first = await rt.workflows.run("double", {"n": 2}, idempotency_key="order-o1")
        second = await rt.workflows.run("double", {"n": 50}, idempotency_key="order-o1")
        assert second.run_id == first.run_id
        assert await first.result(timeout=5) == 4
        assert await second.result(timeout=5) == 4
        third = await rt.workflows.run("double", {"n": 3}, idempotency_key="order-o1")
        assert third.run_id == first.run_id
        runs = (await rt.workflows.list_runs(workflow="double")).runs
        assert [(r.id, r.idempotency_key) for r in runs] == [(first.run_id, "order-o1")]
    assert calls == [{"n": 2}]


async def test_a_delayed_run_waits_until_it_is_due(db_url: str) -> None:
    started_at: list[Any] = []

    @create_step("stamp")
    async def stamp(input: Any) -> str:
        started_at.append(rt.clock.now())  # due times are on the runtime's clock
        return "ok"

    stamped = create_workflow("stamped", lambda input: WorkflowResponse(stamp(input)))
    async with Runtime(database=db_url, workflows=[stamped]) as rt:
        handle = await rt.workflows.run("stamped", delay=timedelta(milliseconds=300))
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.PENDING
        assert record.available_at - record.created_at == timedelta(milliseconds=300)
        assert await handle.result(timeout=5) == "ok"

    assert len(started_at) == 1
    assert started_at[0] >= record.available_at


async def test_a_delayed_run_starts_when_due_not_at_the_next_scan(db_url: str) -> None:
    # The bus sleeps until its next delivery is due; the worker should do the same for
    # its next due run rather than wait out its scan interval (here 30 s).
    async with Runtime(database=db_url, workflows=[doubler()], interval=30) as rt:
        handle = await rt.workflows.run("double", {"n": 4}, delay=0.2)
        assert await handle.result(timeout=3) == 8


async def test_the_worker_drives_at_most_concurrency_runs_at_once(db_url: str) -> None:
    active = 0
    peak = 0

    @create_step("busy")
    async def busy(input: Any) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await anyio.sleep(0.03)  # holds the slot long enough for the others to pile up
        finally:
            active -= 1
        return int(input)

    crowded = create_workflow("crowded", lambda input: WorkflowResponse(busy(input)))
    async with Runtime(database=db_url, workflows=[crowded], concurrency=2) as rt:
        handles = [await rt.workflows.run("crowded", n) for n in range(6)]
        results = [await h.result(timeout=5) for h in handles]

    assert results == [0, 1, 2, 3, 4, 5]
    assert peak == 2


async def test_an_unknown_workflow_name_stays_pending(db_url: str) -> None:
    async with Runtime(database=db_url, workflows=[doubler()]) as rt, Client(db_url) as client:
        unknown = await client.run("nobody-knows-me", {"x": 1})
        # A run enqueued after it is driven to its end: the worker has scanned since.
        known = await client.run("double", {"n": 1})
        assert await known.result(timeout=5) == 2
        # Its result can be read (on PostgreSQL, woken by the commit) a moment before
        # the worker has counted the run out.
        await wait_until(lambda: rt.worker.statistics().in_flight == 0)
        record = await rt.workflows.get_run(unknown.run_id)
        assert record.status is RunStatus.PENDING
        assert record.owner_id is None
        assert record.steps == []
        assert record.input == {"x": 1}


# -- drain -------------------------------------------------------------------------------


async def test_drain_stops_a_run_before_its_next_step_and_another_runtime_finishes_it(
    db_url: str,
) -> None:
    gate = anyio.Event()
    entered: list[str] = []
    workflow = gated(gate, entered)
    async with Runtime(database=db_url, workflows=[workflow]) as rt:
        handle = await rt.workflows.run("gated", {"id": "d1"})

        async def in_first_step() -> bool:
            return entered == ["wait-for-gate"]

        await wait_until(in_first_step)
        drained: list[bool] = []
        draining = anyio.Event()

        async def drain() -> None:
            draining.set()  # rt.drain stops intake before its first await
            drained.append(await rt.drain(grace=5))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                await draining.wait()
                gate.set()
        assert drained == [True]
        record = await rt.workflows.get_run(handle.run_id)
        assert record.status is RunStatus.PENDING
        assert record.owner_id is None
        assert [(s.name, s.status) for s in record.steps] == [("wait-for-gate", "completed")]
    assert entered == ["wait-for-gate"]

    async with Runtime(database=db_url, workflows=[workflow]) as again:
        record = await again.workflows.wait(handle.run_id, timeout=5)
    assert record.status is RunStatus.COMPLETED
    assert record.output == "done d1"
    assert entered == ["wait-for-gate", "finish"]


# -- projects ------------------------------------------------------------------------------


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Discovery binds ``workflows``/``subscribers``/``jobs``; put the test suite's back."""
    modules = dict(sys.modules)
    path = list(sys.path)
    yield
    for name in [n for n in sys.modules if n not in modules]:
        del sys.modules[name]
    sys.modules.update(modules)
    sys.path[:] = path


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        file = root / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))


PROJECT = {
    "runtime.toml": """
        [runtime]
        database = "sqlite:///app.db"
        setup = "project_services:setup"
    """,
    "project_services.py": """
        class Greeter:
            def greet(self, name):
                return f"hello {name}"

        async def setup(container):
            container.register("greeter", Greeter())
    """,
    "workflows/greet.py": """
        from runtime import WorkflowResponse, create_step, create_workflow

        @create_step("greet")
        async def greet(input, ctx):
            return ctx.container.resolve("greeter").greet(input["name"])

        greeting = create_workflow("greeting", lambda input: WorkflowResponse(greet(input)))
    """,
    "subscribers/welcome.py": """
        from runtime.sdk.specs import SubscriberConfig

        async def handler(args):
            await args.container.resolve("workflows").run("greeting", args.event.data)

        config = SubscriberConfig(event="customer.created")
    """,
    "jobs/.keep": "",
}


async def test_a_project_with_a_broken_subscriber_refuses_to_start(
    tmp_path: Path, isolated_imports: None
) -> None:
    write(tmp_path, PROJECT)
    write(
        tmp_path,
        {
            "subscribers/broken.py": """
                from runtime.sdk.specs import SubscriberConfig

                def handler(args):  # not async
                    pass

                config = SubscriberConfig(event="order.placed")
            """
        },
    )
    with pytest.raises(ConfigError) as info:
        Runtime.from_project(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "subscribers" / "broken.py") in message
    assert "async" in message
    assert "welcome.py" not in message
    assert not (tmp_path / "app.db").exists()


async def test_a_project_subscriber_with_a_bad_pattern_names_its_file(
    tmp_path: Path, isolated_imports: None
) -> None:
    write(tmp_path, PROJECT)
    write(
        tmp_path,
        {
            "subscribers/typo.py": """
                from runtime.sdk.specs import SubscriberConfig

                async def handler(args):
                    pass

                config = SubscriberConfig(event="order.**")
            """
        },
    )
    with pytest.raises(ConfigError) as info:
        Runtime.from_project(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "subscribers" / "typo.py") in message
    assert "order.**" in message


async def test_a_project_runs_with_the_services_its_setup_hook_registers(
    tmp_path: Path, isolated_imports: None
) -> None:
    write(tmp_path, PROJECT)
    async with Runtime.from_project(tmp_path) as rt:
        assert rt.container.resolve("greeter").greet("Ada") == "hello Ada"
        assert "greeting" in rt.workflows.names()
        assert [s.id for s in rt.subscribers] == ["welcome"]
        handle = await rt.workflows.run("greeting", {"name": "Grace"})
        assert await handle.result(timeout=5) == "hello Grace"

        await rt.emit("customer.created", {"name": "Linus"})

        async def greeted() -> bool:
            runs = (await rt.workflows.list_runs(workflow="greeting")).runs
            return any(r.output == "hello Linus" for r in runs)

        await wait_until(greeted)
    assert (tmp_path / "app.db").exists()


# -- clients ------------------------------------------------------------------------------


def welcome_subscriber(got: list[Any]) -> Subscriber:
    async def handler(args: SubscriberArgs) -> None:
        got.append(args.event.data)

    return Subscriber("welcome", handler, SubscriberConfig(event="customer.created"))


async def test_a_client_starts_a_run_and_emits_an_event_the_service_handles(db_url: str) -> None:
    got: list[Any] = []
    # A long scan interval: only the commit watcher can wake the service in time.
    async with Runtime(
        database=db_url, workflows=[doubler()], subscribers=[welcome_subscriber(got)], interval=30
    ) as rt:
        client = Client(db_url)
        try:
            handle = await client.run("double", {"n": 21})
            assert await handle.result(timeout=3) == 42
            assert await handle.status() is RunStatus.COMPLETED
            event_id = await client.emit("customer.created", {"id": "c1"})

            async def delivered() -> bool:
                return got == [{"id": "c1"}]

            await wait_until(delivered, timeout=3)
            (event,) = (await rt.store.list_events()).items
            assert event.id == event_id
            run = await client.get_run(handle.run_id)
            assert (run.workflow, run.output) == ("double", 42)
        finally:
            await client.close()


async def test_a_client_handle_raises_run_failed_for_a_failed_run(db_url: str) -> None:
    @create_step("explode")
    async def explode(input: Any) -> None:
        raise ValueError("boom")

    broken = create_workflow("broken", lambda input: WorkflowResponse(explode(input)))
    async with Runtime(database=db_url, workflows=[broken], interval=30), Client(db_url) as client:
        handle = await client.run("broken")
        with pytest.raises(RunFailed) as info:
            await handle.result(timeout=3)
    assert info.value.status == "failed"
    assert info.value.error is not None
    assert (info.value.error.type, info.value.error.message) == ("ValueError", "boom")


async def test_a_sync_client_in_a_worker_thread_starts_runs_and_emits(db_url: str) -> None:
    got: list[Any] = []

    def from_a_view() -> tuple[Any, str, str]:
        with SyncClient(db_url) as client:
            handle = client.run("double", {"n": 5})
            output = handle.result(timeout=3)
            status = handle.status()
            event_id = client.emit("customer.created", {"id": "c2"})
            return output, status, event_id

    async with Runtime(
        database=db_url, workflows=[doubler()], subscribers=[welcome_subscriber(got)], interval=30
    ) as rt:
        with anyio.fail_after(5):
            output, status, event_id = await anyio.to_thread.run_sync(from_a_view)

        async def delivered() -> bool:
            return got == [{"id": "c2"}]

        await wait_until(delivered, timeout=3)
        assert [e.id for e in (await rt.store.list_events()).items] == [event_id]
    assert (output, status) == (10, RunStatus.COMPLETED)


async def test_a_sync_client_works_without_a_with_block_and_closes(db_url: str) -> None:
    def use() -> tuple[str, list[str]]:
        client = SyncClient(db_url)
        event_id = client.emit("customer.created", {"id": "c3"})
        run_ids = [r.workflow for r in client.list_runs().runs]
        client.close()
        client.close()
        return event_id, run_ids

    with anyio.fail_after(5):
        event_id, run_ids = await anyio.to_thread.run_sync(use)
    assert event_id.startswith("evt")
    assert run_ids == []


async def test_a_client_works_right_after_construction_and_after_close(db_url: str) -> None:
    client = Client(db_url)
    first = await client.emit("customer.created", {"id": "c4"})
    handle = await client.run("double", {"n": 1}, idempotency_key="k1")
    await client.close()
    await client.close()
    again = await client.run("double", {"n": 1}, idempotency_key="k1")
    await client.close()

    assert again.run_id == handle.run_id
    async with Client(db_url) as reader:
        page = await reader.list_runs(workflow="double")
        assert [r.id for r in page.runs] == [handle.run_id]
        assert page.runs[0].status is RunStatus.PENDING
    async with Runtime(database=db_url, background=False) as rt:
        assert [e.id for e in (await rt.store.list_events()).items] == [first]
