"""Numbers and arguments at every public door: refused with an error naming them, before
anything is stored (runtime/limits.py has the bounds)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from runtime import (
    Client,
    ConfigError,
    DefinitionError,
    JobConfig,
    Runtime,
    Schedule,
    SubscriberConfig,
    SyncClient,
    WorkflowContext,
    create_step,
    workflow,
)
from runtime.limits import MAX_DURATION, period

BAD_SECONDS = [math.nan, math.inf, -math.inf, -1, MAX_DURATION + 1, 10**400, True, "5", None]
"""Each is refused wherever a duration is taken (``None`` where one is required)."""


def _noop(*_: Any) -> None:
    return None


DEFINITIONS: dict[str, Callable[[Any], Any]] = {
    "JobConfig.retry_interval": lambda v: JobConfig("j", "* * * * *", retry_interval=v),
    "JobConfig.catchup_window": lambda v: JobConfig("j", "* * * * *", catchup_window=v),
    "Schedule.catchup_window": lambda v: Schedule("* * * * *", catchup_window=v),
    "SubscriberConfig.timeout": lambda v: SubscriberConfig("a.b", timeout=v),
    "create_step timeout": lambda v: create_step("s", _noop, timeout=v),
    "create_step retry_interval": lambda v: create_step("s", _noop, retry_interval=v),
}

COUNTS: dict[str, Callable[[Any], Any]] = {
    "max_retries": lambda v: JobConfig("j", "* * * * *", max_retries=v),
    "number_of_executions": lambda v: Schedule("* * * * *", number_of_executions=v),
    "SubscriberConfig.max_attempts": lambda v: SubscriberConfig("a.b", max_attempts=v),
    "create_step max_retries": lambda v: create_step("s", _noop, max_retries=v),
}


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (where, value)
        for where in sorted(DEFINITIONS)
        for value in BAD_SECONDS
        if not (value is None and where == "create_step timeout")  # None: no timeout
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_definitions_refuse_bad_seconds(where: str, value: Any) -> None:
    # Failed before: NaN, infinities, 1e400-ish ints and absurd values were accepted
    # (and then broke datetime arithmetic, or waited forever).
    with pytest.raises(DefinitionError, match=r"must be|seconds"):
        DEFINITIONS[where](value)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (where, value)
        for where in sorted(COUNTS)
        for value in (-1, 1001, 10**12, 2.0, True, "3", math.nan)
        if not (where == "number_of_executions" and value == 1001)  # up to a billion
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v),
)
def test_definitions_refuse_bad_counts(where: str, value: Any) -> None:
    # Failed before: 10**12 retries or attempts were accepted (and then overflowed the
    # backoff computation or SQLite's integers); NaN counts raised TypeError.
    with pytest.raises(DefinitionError, match=r"must be"):
        COUNTS[where](value)


def test_bounds_are_inclusive_and_timedelta_works() -> None:
    assert JobConfig("j", "* * * * *", retry_interval=timedelta(days=366)).retry_interval == (
        MAX_DURATION
    )
    assert SubscriberConfig("a.b", max_attempts=1000, timeout=0.5).timeout == 0.5
    with pytest.raises(DefinitionError, match=r"timeout must be > 0 seconds"):
        SubscriberConfig("a.b", timeout=0)
    with pytest.raises(DefinitionError, match="number_of_executions must be between"):
        JobConfig("j", "* * * * *", number_of_executions=10**10)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"concurrency": 0}, "concurrency must be between 1 and 10000"),
        ({"concurrency": True}, "concurrency must be an int"),
        ({"concurrency": 10**6}, "concurrency must be between"),
        ({"shutdown_grace": math.nan}, "shutdown_grace must be a finite number"),
        ({"shutdown_grace": 7200}, "shutdown_grace must be at most 3600 seconds"),
        ({"interval": 0}, "interval must be > 0 seconds"),
        ({"timezone": 5}, r"Runtime\(timezone=...\): a timezone must be an IANA name"),
        ({"timezone": "Mars/Base"}, "unknown timezone 'Mars/Base'"),
    ],
)
def test_runtime_refuses_bad_settings(db_url: str, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Runtime(db_url, **options)


def rows(db_path: Path, table: str) -> int:
    if not db_path.exists():
        return 0
    with sqlite3.connect(db_path) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


DEEP: Any = 1
for _ in range(101):
    DEEP = [DEEP]


BAD_EMITS: list[tuple[dict[str, Any], str]] = [
    *[({"delay": v}, "delay must") for v in (math.nan, math.inf, -1, MAX_DURATION * 2, "1")],
    ({"data": DEEP}, "nested more than 100 levels deep"),
    ({"data": math.nan}, "cannot be stored"),
    ({"data": 10**5000}, "cannot be stored"),
    ({"metadata": {"deep": DEEP}}, "nested more than 100 levels deep"),
    ({"name": ""}, "event name must be a non-empty string"),
    # The message itself must not fail: repr() of a 5001-digit int raises ValueError.
    ({"metadata": 10**5000}, "metadata must be a dict, got an int of 16610 bits"),
    ({"idempotency_key": ""}, "idempotency_key must be a non-empty string"),
]

BAD_RUNS: list[tuple[dict[str, Any], str]] = [
    ({"workflow": 5}, "workflow must be a non-empty string, got 5"),
    ({"workflow": ""}, "workflow must be a non-empty string"),
    ({"workflow": None}, "workflow must be a non-empty string"),
    ({"workflow": 10**5000}, "workflow must be a non-empty string, got an int of 16610 bits"),
    ({"version": 2}, "version must be a non-empty string"),
    ({"version": ""}, "version must be a non-empty string, got ''"),
    ({"version": "  "}, "version must be a non-empty string, got '  '"),
    ({"workflow": " \t"}, "workflow must be a non-empty string"),
    ({"idempotency_key": 7}, "idempotency_key must be a non-empty string"),
    *[({"delay": v}, "delay must") for v in (math.nan, -math.inf, -0.5, 10**400, True)],
    ({"input": DEEP}, "nested more than 100 levels deep"),
    ({"input": {"x": math.inf}}, "cannot be stored"),
]


def _ident(value: Any) -> str | None:
    """A test id: the argument names (a value such as 10**5000 has no repr)."""
    return ",".join(value) if isinstance(value, dict) else None


def _emit_args(given: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    options = dict(given)
    return (options.pop("name", "a.b"), options.pop("data", None)), options


def _run_args(given: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    options = dict(given)
    return (options.pop("workflow", "hello"), options.pop("input", None)), options


@pytest.mark.parametrize(("given", "needle"), BAD_EMITS, ids=_ident)
def test_sync_client_emit_refuses_bad_arguments_and_stores_nothing(
    db_path: Path, db_url: str, given: dict[str, Any], needle: str
) -> None:
    args, options = _emit_args(given)
    with SyncClient(db_url) as client, pytest.raises((DefinitionError, TypeError), match=needle):
        client.emit(*args, **options)
    assert rows(db_path, "events") == 0


@pytest.mark.parametrize(("given", "needle"), BAD_RUNS, ids=_ident)
def test_sync_client_run_refuses_before_committing(
    db_path: Path, db_url: str, given: dict[str, Any], needle: str
) -> None:
    # Failed before: SyncClient.run(workflow=5) stored the run, then raised a raw pydantic
    # error, so a retry stored a second one; a NaN delay raised a bare ValueError.
    args, options = _run_args(given)
    with SyncClient(db_url) as client, pytest.raises((DefinitionError, TypeError), match=needle):
        client.run(*args, **options)
    assert rows(db_path, "runs") == 0


@pytest.mark.parametrize(("given", "needle"), BAD_RUNS[:8], ids=_ident)
async def test_client_run_refuses_before_committing(
    db_path: Path, db_url: str, given: dict[str, Any], needle: str
) -> None:
    args, options = _run_args(given)
    async with Client(db_url) as client:
        with pytest.raises(DefinitionError, match=needle):
            await client.run(*args, **options)
    assert rows(db_path, "runs") == 0


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"status": ["bogus"]}, "status: unknown run status 'bogus'; known: pending, running"),
        ({"status": [3]}, "unknown run status 3"),
        ({"workflow": ""}, "workflow must be a non-empty string"),
        ({"limit": 0}, "limit must be between 1 and 10000"),
        ({"limit": 10**6}, "limit must be between 1 and 10000"),
        ({"limit": "5"}, "limit must be an int"),
        ({"cursor": 5}, "cursor must be a next_cursor string"),
    ],
)
def test_list_runs_refuses_bad_filters(db_url: str, options: dict[str, Any], needle: str) -> None:
    # Failed before: list_runs(status=["bogus"]) raised a bare ValueError from the enum.
    with SyncClient(db_url) as client, pytest.raises(DefinitionError, match=needle):
        client.list_runs(**options)


def test_list_runs_takes_one_status_as_well_as_a_list(db_url: str) -> None:
    with SyncClient(db_url) as client:
        run_id = client.run("hello").run_id
        assert [r.id for r in client.list_runs(status="pending").runs] == [run_id]
        assert [r.id for r in client.list_runs(status=["pending", "failed"]).runs] == [run_id]


@workflow
async def sleepy(ctx: WorkflowContext[Any]) -> str:
    await ctx.sleep("nap", ctx.input["seconds"])
    return "rested"


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1, MAX_DURATION + 1])
async def test_runtime_refuses_bad_numbers_in_emit_run_and_sleep(
    db_path: Path, db_url: str, seconds: float
) -> None:
    async with Runtime(db_url, workflows=[sleepy], background=False) as rt:
        with pytest.raises(DefinitionError, match="delay must"):
            await rt.emit("a.b", delay=seconds)
        with pytest.raises(DefinitionError, match="delay must"):
            await rt.workflows.run("sleepy", delay=seconds)
        with pytest.raises(DefinitionError, match="workflow must be a non-empty string"):
            await rt.workflows.run("")
        assert (rows(db_path, "events"), rows(db_path, "runs")) == (0, 0)
        handle = await rt.workflows.run("sleepy", {"seconds": 1})
        with pytest.raises(DefinitionError, match="timeout must"):
            await handle.result(timeout=seconds)
    if math.isfinite(seconds):
        async with Runtime(db_url, workflows=[sleepy], background=False) as rt:
            result = await sleepy(rt.container).run(
                input={"seconds": seconds}, throw_on_error=False
            )
        assert result.status.value == "failed"
        assert "ctx.sleep duration must" in result.errors[0].message


def test_start_logs_a_warning_for_an_unknown_runtime_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Failed before: nothing said that RUNTIME_CONCURENCY was ignored.
    monkeypatch.setenv("RUNTIME_CONCURENCY", "3")
    with capture_logs() as logs:
        Runtime.from_project(tmp_path)
    assert {
        "event": "unknown_environment_variable",
        "log_level": "warning",
        "variable": "RUNTIME_CONCURENCY",
        "problem": "environment variable RUNTIME_CONCURENCY names no setting and is ignored; "
        "did you mean RUNTIME_CONCURRENCY?",
    } in logs


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        ("0", 0.0),
        (3600, 3600.0),
        ("3600", 3600.0),
        ("45s", 45.0),
        ("90m", 5400.0),
        (" 12H ", 43200.0),
        ("1.5d", 129600.0),
        ("2w", 1209600.0),
        (timedelta(days=30), 2592000.0),
        ("3650d", 3650 * 86400.0),
    ],
)
def test_a_period_is_seconds_or_a_number_with_a_unit(value: Any, seconds: float) -> None:
    assert period(value, "retention") == seconds


@pytest.mark.parametrize(
    "value",
    ["", "d", "30 days", "1y", "-1d", "nan", "infd", "3651d", -1, math.nan, True, None, [30]],
)
def test_a_bad_period_is_refused_naming_the_setting_and_the_value(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^retention must be a period from 0 \(never\)"):
        period(value, "retention", error=ConfigError)
