# mypy: disable-error-code="arg-type,list-item,call-overload,misc"
"""Bad input to the Python API: constructors, definitions, clients and ctx calls.

The command line and project files are in tests/cli/test_bad_input.py; the rule is
the same: an error of the runtime's tree (runtime/errors.py) with a one-line message
naming the argument, never a raw TypeError/ValueError/UnicodeEncodeError from deep
inside, and nothing stored.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    Client,
    Container,
    JobConfig,
    Runtime,
    Schedule,
    StepResponse,
    SubscriberConfig,
    SyncClient,
    create_step,
    create_workflow,
    workflow,
)
from runtime.errors import RuntimeBaseError, StepFailed
from runtime.store.records import Page
from tests.cli.test_bad_input import BAD_UTF8, DEEP, RUN

# --- the Python API: (call, a piece of the message); each must raise RuntimeBaseError ------


@create_step("greet")
async def greet(input: Any) -> StepResponse:
    return StepResponse("hi")


hello = create_workflow("hello", lambda input: greet(input))


class NotAModel:
    pass


async def nothing(ctx: Any) -> int:
    return 1


SYNC_API: list[tuple[str, Callable[[], Any], str]] = [
    ("Runtime(database=3)", lambda: Runtime(3), "database"),
    ("Runtime(database='')", lambda: Runtime(""), "database"),
    (
        "Runtime(workflows=3)",
        lambda: Runtime(workflows=3),
        "workflows",
    ),
    (
        "Runtime(workflows=['hello'])",
        lambda: Runtime(workflows=["hello"]),
        "'hello' is not a workflow",
    ),
    (
        "Runtime(jobs=['x'])",
        lambda: Runtime(jobs=["x"]),
        "is not a Job",
    ),
    ("Runtime(subscribers='x')", lambda: Runtime(subscribers="x"), "subscribers"),
    (
        "Runtime(container='x')",
        lambda: Runtime(container="x"),
        "must be a Container",
    ),
    ("Runtime(base_dir=3)", lambda: Runtime(base_dir=3), "base_dir"),
    ("Runtime(timezone=3)", lambda: Runtime(timezone=3), "timezone"),
    ("Runtime(concurrency='3')", lambda: Runtime(concurrency="3"), "concurrency"),
    ("Runtime(shutdown_grace=nan)", lambda: Runtime(shutdown_grace=math.nan), "shutdown_grace"),
    ("Runtime(retention='forever')", lambda: Runtime(retention="forever"), "'forever'"),
    ("Runtime(retention=-1)", lambda: Runtime(retention=-1), "retention must be a period"),
    (
        "Runtime(failed_retention=nan)",
        lambda: Runtime(failed_retention=math.nan),
        "failed_retention",
    ),
    (
        "Runtime(failed_retention='99999d')",
        lambda: Runtime(failed_retention="99999d"),
        "failed_retention must be a period from 0 (never) to 3650d",
    ),
    ("Client(3)", lambda: Client(3), "database"),
    ("Client(None)", lambda: Client(None), "database"),
    (
        "Client(base_dir=3)",
        lambda: Client("sqlite:///x.db", base_dir=3),
        "base_dir",
    ),
    ("SyncClient(3)", lambda: SyncClient(3), "database"),
    ("create_step(3)", lambda: create_step(3), "step name"),
    ("create_step('')", lambda: create_step(""), "step name"),
    ("create_step bad UTF-8", lambda: create_step(BAD_UTF8), "not valid UTF-8"),
    ("create_step(timeout=-1)", lambda: create_step("s", timeout=-1), "timeout"),
    ("create_step(max_retries=-1)", lambda: create_step("s", max_retries=-1), "max_retries"),
    ("create_workflow(3, fn)", lambda: create_workflow(3, lambda: None), "workflow name"),
    (
        "create_workflow('w', None)",
        lambda: create_workflow("w", None),
        "constructor must be a function",
    ),
    (
        "create_workflow('w', 3)",
        lambda: create_workflow("w", 3),
        "constructor must be a function",
    ),
    (
        "create_workflow(schedule='')",
        lambda: create_workflow("w", lambda: None, schedule=""),
        "cron expression ''",
    ),
    (
        "@workflow(input=NotAModel)",
        lambda: workflow(input=NotAModel)(nothing),
        "pydantic cannot validate",
    ),
    (
        "@workflow(input=3)",
        lambda: workflow(input=3)(nothing),
        "pydantic cannot validate",
    ),
    ("@workflow(name=3)", lambda: workflow(name=3)(nothing), "workflow name"),
    ("@workflow(name=bad UTF-8)", lambda: workflow(name=BAD_UTF8)(nothing), "UTF-8"),
    (
        "@workflow(schedules=3)",
        lambda: workflow(schedules=3)(nothing),
        "schedules must be a list",
    ),
    (
        "@workflow(schedules=['* * * * *'])",
        lambda: workflow(schedules=["* * * * *"])(nothing),
        "schedules take Schedule(...)",
    ),
    ("@workflow on 3", lambda: workflow(3), "async function"),
    ("JobConfig(schedule='')", lambda: JobConfig(name="x", schedule=""), ""),
    ("JobConfig(schedule=None)", lambda: JobConfig(name="x", schedule=None), ""),
    ("JobConfig(name=None)", lambda: JobConfig(name=None, schedule="* * * * *"), "JobConfig.name"),
    (
        "JobConfig(timezone='')",
        lambda: JobConfig(name="x", schedule="* * * * *", timezone=""),
        "timezone must be an IANA name",
    ),
    (
        "JobConfig(overlap='never')",
        lambda: JobConfig(name="x", schedule="* * * * *", overlap="never"),
        "overlap",
    ),
    (
        "JobConfig(number_of_executions=True)",
        lambda: JobConfig(name="x", schedule="* * * * *", number_of_executions=True),
        "number_of_executions",
    ),
    (
        "JobConfig(retry_interval=nan)",
        lambda: JobConfig(name="x", schedule="* * * * *", retry_interval=math.nan),
        "retry_interval",
    ),
    ("SubscriberConfig(event='')", lambda: SubscriberConfig(event=""), "event pattern"),
    ("SubscriberConfig(event=[''])", lambda: SubscriberConfig(event=[""]), "event pattern"),
    (
        "SubscriberConfig(event=None)",
        lambda: SubscriberConfig(event=None),
        "SubscriberConfig.event",
    ),
    (
        "SubscriberConfig(subscriber_id=3)",
        lambda: SubscriberConfig(event="a", subscriber_id=3),
        "subscriber_id",
    ),
    ("SubscriberConfig(timeout='5')", lambda: SubscriberConfig(event="a", timeout="5"), "timeout"),
    (
        "SubscriberConfig(max_attempts=10**100)",
        lambda: SubscriberConfig(event="a", max_attempts=10**100),
        "max_attempts",
    ),
    ("Schedule(cron='')", lambda: Schedule(cron=""), ""),
    ("Schedule(name='')", lambda: Schedule(cron="* * * * *", name=""), "Schedule.name"),
    (
        "Schedule(input=object())",
        lambda: Schedule(cron="* * * * *", input=object()),
        "cannot be stored",
    ),
    (
        "Schedule(input=nan)",
        lambda: Schedule(cron="* * * * *", input=math.nan),
        "cannot be stored",
    ),
    (
        "Schedule(catchup_window=-1)",
        lambda: Schedule(cron="* * * * *", catchup_window=-1),
        "catchup_window",
    ),
    ("Container().resolve('x')", lambda: Container().resolve("x"), "no service named 'x'"),
]


@pytest.mark.parametrize(
    ("call", "needle"), [c[1:] for c in SYNC_API], ids=[c[0] for c in SYNC_API]
)
def test_a_bad_definition_or_constructor_argument_raises_a_runtime_error(
    call: Callable[[], Any], needle: str
) -> None:
    with pytest.raises(RuntimeBaseError) as raised:
        call()
    assert needle in str(raised.value)
    assert "\n" not in str(raised.value)


CLIENT_API: list[tuple[str, Callable[[Client, str], Any], str]] = [
    ("emit(3)", lambda c, r: c.emit(3), "event name"),
    ("emit('')", lambda c, r: c.emit(""), "event name"),
    ("emit(bad UTF-8)", lambda c, r: c.emit(BAD_UTF8), "event name"),
    ("emit(data=object())", lambda c, r: c.emit("a.b", object()), "cannot be stored"),
    ("emit(data=nan)", lambda c, r: c.emit("a.b", math.nan), "cannot be stored"),
    ("emit(data=deep)", lambda c, r: c.emit("a.b", eval(DEEP)), "nested"),
    ("emit(data=10**5000)", lambda c, r: c.emit("a.b", 10**5000), "cannot be stored"),
    ("emit(metadata=[1])", lambda c, r: c.emit("a.b", metadata=[1]), "metadata must be a dict"),
    ("emit(delay='5')", lambda c, r: c.emit("a.b", delay="5"), "delay"),
    ("emit(delay=nan)", lambda c, r: c.emit("a.b", delay=math.nan), "delay"),
    ("emit(delay=True)", lambda c, r: c.emit("a.b", delay=True), "delay"),
    ("emit(idempotency_key=3)", lambda c, r: c.emit("a.b", idempotency_key=3), "idempotency_key"),
    (
        "emit(idempotency_key=bad UTF-8)",
        lambda c, r: c.emit("a.b", idempotency_key=BAD_UTF8),
        "not valid UTF-8",
    ),
    ("run(3)", lambda c, r: c.run(3), "workflow"),
    ("run('')", lambda c, r: c.run(""), "workflow"),
    ("run(input=object())", lambda c, r: c.run("hello", object()), "cannot be stored"),
    ("run(version=3)", lambda c, r: c.run("hello", version=3), "version"),
    (
        "run(idempotency_key=bad UTF-8)",
        lambda c, r: c.run("hello", idempotency_key=BAD_UTF8),
        "not valid UTF-8",
    ),
    ("run(delay=-1)", lambda c, r: c.run("hello", delay=-1), "delay"),
    ("get_run(3)", lambda c, r: c.get_run(3), "run_id"),
    ("get_run('garbage')", lambda c, r: c.get_run("garbage"), "no run with id 'garbage'"),
    (
        "get_run(bad UTF-8)",
        lambda c, r: c.get_run(BAD_UTF8),
        "run_id is not valid UTF-8",
    ),
    ("pause(bad UTF-8)", lambda c, r: c.pause(BAD_UTF8), "run_id is not valid UTF-8"),
    ("pause(None)", lambda c, r: c.pause(None), "run_id"),
    ("resume(unknown)", lambda c, r: c.resume(RUN), "no run with id"),
    ("cancel(['a'])", lambda c, r: c.cancel(["a"]), "run_id"),
    ("retry(a pending run)", lambda c, r: c.retry(r), "retry"),
    ("list_runs(limit=0)", lambda c, r: c.list_runs(limit=0), "limit"),
    ("list_runs(limit=True)", lambda c, r: c.list_runs(limit=True), "limit"),
    ("list_runs(status='bogus')", lambda c, r: c.list_runs(status="bogus"), "unknown run status"),
    (
        "list_runs(status=3)",
        lambda c, r: c.list_runs(status=3),
        "unknown run status 3",
    ),
    ("list_runs(cursor=3)", lambda c, r: c.list_runs(cursor=3), "cursor"),
    (
        "list_runs(cursor='1|x')",
        lambda c, r: c.list_runs(cursor="1|x"),
        "bad cursor",
    ),
    ("list_runs(cursor=bad UTF-8)", lambda c, r: c.list_runs(cursor=BAD_UTF8), "bad cursor"),
    (
        "list_runs(workflow=bad UTF-8)",
        lambda c, r: c.list_runs(workflow=BAD_UTF8),
        "not valid UTF-8",
    ),
    ("wait(timeout=nan)", lambda c, r: c.wait(r, timeout=math.nan), "timeout"),
    ("wait(timeout=-1)", lambda c, r: c.wait(r, timeout=-1), "timeout"),
    (
        "wait(timeout='1')",
        lambda c, r: c.wait(r, timeout="1"),
        "timeout",
    ),
]


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    async with Client(f"sqlite:///{tmp_path / 'api.db'}") as opened:
        await opened.emit("seed.event")
        run_id = (await opened.run("hello", {"name": "Ada"})).run_id
        yield opened, run_id


@pytest.mark.parametrize(
    ("call", "needle"), [c[1:] for c in CLIENT_API], ids=[c[0] for c in CLIENT_API]
)
async def test_a_bad_client_call_raises_a_runtime_error_and_stores_nothing(
    client: tuple[Client, str], call: Callable[[Client, str], Any], needle: str
) -> None:
    opened, run_id = client
    database = Path(opened.database.removeprefix("sqlite:///"))
    before = _rows_of(database)
    with pytest.raises(RuntimeBaseError) as raised:
        await call(opened, run_id)
    assert needle in str(raised.value) and "\n" not in str(raised.value)
    assert _rows_of(database) == before


def _rows_of(database: Path) -> dict[str, list[Any]]:
    with sqlite3.connect(database) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


@pytest.fixture
def sync_client(tmp_path: Path) -> Iterator[SyncClient]:
    with SyncClient(f"sqlite:///{tmp_path / 'sync.db'}") as opened:
        yield opened


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda c: c.emit(3), "event name"),
        (lambda c: c.get_run(BAD_UTF8), "not valid UTF-8"),
        (lambda c: c.run(""), "workflow"),
        (lambda c: c.list_runs(cursor="1|x"), "bad cursor"),
        (lambda c: c.run("hello").result(timeout=math.nan), "timeout"),
    ],
)
def test_a_bad_sync_client_call_raises_a_runtime_error(
    sync_client: SyncClient, call: Callable[[SyncClient], Any], needle: str
) -> None:
    with pytest.raises(RuntimeBaseError) as raised:
        call(sync_client)
    assert needle in str(raised.value)


# --- inside a durable workflow: ctx.step / ctx.sleep / ctx.emit --------------------------

CTX: list[tuple[str, Callable[[Any], Any], str]] = [
    ("ctx.step(3, fn)", lambda ctx: ctx.step(3, lambda: 1), "DefinitionError"),
    ("ctx.step('', fn)", lambda ctx: ctx.step("", lambda: 1), "DefinitionError"),
    (
        "ctx.step(bad UTF-8, fn)",
        lambda ctx: ctx.step(BAD_UTF8, lambda: 1),
        "DefinitionError",
    ),
    ("ctx.step('s', None)", lambda ctx: ctx.step("s", None), "DefinitionError"),
    ("ctx.step returns object()", lambda ctx: ctx.step("s", object), "SerializationError"),
    ("ctx.step(timeout=-1)", lambda ctx: ctx.step("s", int, timeout=-1), "DefinitionError"),
    ("ctx.step(bogus=1)", lambda ctx: ctx.step("s", int, bogus=1), "DefinitionError"),
    ("ctx.sleep('s', '5')", lambda ctx: ctx.sleep("s", "5"), "DefinitionError"),
    ("ctx.sleep('s', nan)", lambda ctx: ctx.sleep("s", math.nan), "DefinitionError"),
    ("ctx.sleep('s', 1e300)", lambda ctx: ctx.sleep("s", 1e300), "DefinitionError"),
    (
        "ctx.sleep(bad UTF-8, 1)",
        lambda ctx: ctx.sleep(BAD_UTF8, 1),
        "DefinitionError",
    ),
    ("ctx.emit(3)", lambda ctx: ctx.emit(3), "DefinitionError"),
    ("ctx.emit(data=object())", lambda ctx: ctx.emit("a.b", object()), "SerializationError"),
    (
        "ctx.emit(metadata=[1])",
        lambda ctx: ctx.emit("a.b", metadata=[1]),
        "DefinitionError",
    ),
]


@pytest.mark.parametrize(("body", "error_type"), [c[1:] for c in CTX], ids=[c[0] for c in CTX])
async def test_a_bad_context_call_fails_the_run_with_a_runtime_error(
    tmp_path: Path, body: Callable[[Any], Any], error_type: str
) -> None:
    async def misuse(ctx: Any) -> int:
        called = body(ctx)
        if hasattr(called, "__await__"):
            await called
        return 1

    flow = workflow(name="misuse")(misuse)
    async with Runtime(f"sqlite:///{tmp_path / 'ctx.db'}", workflows=[flow]) as rt:
        with pytest.raises(StepFailed) as raised:
            await flow(rt.container).run()
        assert raised.value.error_type == error_type, raised.value
        assert await rt.store.list_events(limit=10) == Page([], None)  # nothing emitted
