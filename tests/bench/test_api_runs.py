"""``runtime bench --api-runs N``: the seeded runs read right, and the report has every shape.

The timings are the benchmark's business, not these tests': here the seeded database
must be one the real store and console read correctly (each status at its count of
the mix, each run's steps, events and deliveries), a reused one must be grown by what
it lacks, and the report must hold every request shape.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runtime.bench.api_runs import PAGES, SHAPES, api_runs
from runtime.bench.mix import BLOCK, RARE_STATUS, STATUS_MIX, WORKFLOWS, expected_statuses
from runtime.bench.seed import count_sqlite, seed_postgres, seed_sqlite
from runtime.cli import main
from runtime.clock import SystemClock
from runtime.errors import ConfigError
from runtime.models import DeliveryStatus, RunStatus, StepStatus
from runtime.store import open_store
from runtime.store.base import Store
from runtime.web.app import store_source
from runtime.web.console import Console
from runtime.web.project import Project
from tests.helpers.postgres import SERVER, fresh_schema, new_schema
from tests.helpers.records import new_run


def quiet(line: str) -> None:
    return None


async def every_run(store: Store, **filters: Any) -> list[Any]:
    """Every run the listing gives, page by page (the cursor followed to the end)."""
    runs: list[Any] = []
    cursor = None
    while True:
        page = await store.list_runs(limit=700, cursor=cursor, **filters)
        runs += page.runs
        if page.next_cursor is None:
            return runs
        cursor = page.next_cursor


async def check_seeded(url: str, runs: int) -> None:
    """What the store and the console read back from ``runs`` seeded runs."""
    store = await open_store(url)
    try:
        listed = await every_run(store)
        assert len(listed) == runs == len({run.id for run in listed})
        assert [r.created_at for r in listed] == sorted(
            (r.created_at for r in listed), reverse=True
        )
        assert Counter(run.status for run in listed) == expected_statuses(runs)
        assert {run.workflow for run in listed} == set(WORKFLOWS)
        for status, count in expected_statuses(runs).items():
            only = await every_run(store, status=[status])
            assert len(only) == count and {run.status for run in only} == {status}
        two = await every_run(store, status=[RunStatus.FAILED, RunStatus.CANCELED])
        assert len(two) == STATUS_MIX[RunStatus.FAILED] + STATUS_MIX[RunStatus.CANCELED]

        # Each run's steps, as far as its status got.
        for run in listed[:300]:
            steps = (await store.get_run(run.id)).steps
            total = WORKFLOWS[run.workflow][1]
            kinds = {step.status for step in steps}
            if run.status == RunStatus.COMPLETED:
                assert len(steps) == total and kinds == {StepStatus.COMPLETED}
                assert run.output is not None and run.ended_at is not None
            elif run.status == RunStatus.FAILED:
                assert StepStatus.FAILED in kinds and run.error is not None
            elif run.status == RunStatus.PENDING:
                assert steps == []
        rare = await every_run(store, status=[RARE_STATUS])
        rare_steps = (await store.get_run(rare[0].id)).steps
        assert StepStatus.FAILED in {step.status for step in rare_steps}

        # The console answers as GET /api/runs and the run page do.
        console = Console(store_source(store), Project.unknown(), SystemClock())
        page = await console.list_runs(status=["failed"], workflow="order-processing")
        assert page["runs"] and {r["status"] for r in page["runs"]} == {"failed"}
        assert page["runs"][0]["error"]["type"] == "ReadTimeout"
        shown = await console.show_run(page["runs"][0]["id"])
        assert shown["steps"][-1]["status"] == "failed"
        events = await console.list_events(limit=10)
        assert len(events["events"]) == 10
        assert all(len(e["deliveries"]) == 2 for e in events["events"])
        dead = await store.list_deliveries(status=[DeliveryStatus.DEAD])
        assert dead.items and {d.subscriber_id for d in dead.items} == {"notify"}
    finally:
        await store.close()


async def test_seeded_sqlite_runs_read_right_and_a_reused_file_grows_by_what_it_lacks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    await (await open_store(f"sqlite:///{path}")).close()
    first = seed_sqlite(str(path), BLOCK, quiet)
    assert (first.runs, first.seeded) == (BLOCK, BLOCK)
    await check_seeded(f"sqlite:///{path}", BLOCK)
    again = seed_sqlite(str(path), BLOCK, quiet)
    assert again.seeded == 0
    more = seed_sqlite(str(path), BLOCK + 500, quiet)
    assert (more.runs, more.seeded, count_sqlite(str(path))) == (BLOCK + 500, 500, BLOCK + 500)
    store = await open_store(f"sqlite:///{path}")
    try:
        assert Counter(r.status for r in await every_run(store)) == expected_statuses(BLOCK + 500)
    finally:
        await store.close()


async def test_seeded_postgres_runs_read_right() -> None:
    async with fresh_schema() as url:
        schema = url.rsplit("schema=", 1)[1]
        await (await open_store(url)).close()
        assert seed_postgres(SERVER, schema, BLOCK, quiet).seeded == BLOCK
        await check_seeded(url, BLOCK)
        assert seed_postgres(SERVER, schema, BLOCK, quiet).seeded == 0


def test_the_report_holds_every_shape_each_checked(tmp_path: Path) -> None:
    result = api_runs(BLOCK, tmp_path / "runs.db", None, rounds=1, progress=quiet)
    assert result["runs"] == BLOCK and result["seeding"]["seeded_runs"] == BLOCK
    assert [s["shape"] for s in result["shapes"]] == [s.name for s in (*SHAPES, *PAGES)]
    by_name = {s["shape"]: s for s in result["shapes"]}
    for shape in result["shapes"]:
        assert shape["samples"] == 20
        assert 0 < shape["p50_ms"] <= shape["p95_ms"] <= shape["max_ms"]
        if shape["path"] == "/metrics":
            assert shape["pass"] is None  # no bar
        else:
            assert shape["pass"] == (shape["p50_ms"] <= 50)
    # The pages asked for the newest run: the first of the unfiltered listing.
    run_page = by_name["page /runs/{id}"]["path"]
    assert run_page.startswith("/runs/run_") and by_name["GET /api/runs/{id}"]["path"] == (
        f"/api{run_page}"
    )
    assert by_name["limit=100"]["rows"] == 100
    assert by_name["page 2 (cursor)"]["query"].startswith("cursor=")
    assert by_name[f"status={RARE_STATUS.value} (rare)"]["rows"] == 1


def test_the_cli_reports_each_shape_and_reuses_the_file(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    args = ["bench", "--api-runs", "2000", "--api-runs-db", str(db), "--runs", "1"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    for shape in (*SHAPES, *PAGES):
        assert shape.name in done.stdout
    assert "seeded now: 2,000" in done.stdout
    again = CliRunner().invoke(main, [*args, "--json"])
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)
    assert (result["runs"], result["seeding"]["seeded_runs"]) == (2000, 0)


def test_postgres_cli_seeds_the_schema_the_url_names() -> None:
    with new_schema() as url:
        args = ["bench", "--api-runs", "2000", "--database", url, "--runs", "1", "--json"]
        done = CliRunner().invoke(main, args)
        assert done.exit_code == 0, done.output
        result = json.loads(done.stdout)
        assert result["runs"] == 2000
        assert url.rsplit("schema=", 1)[1] in result["database"]
        assert [s["shape"] for s in result["shapes"]] == [s.name for s in (*SHAPES, *PAGES)]


async def test_a_database_with_runs_not_seeded_is_refused(tmp_path: Path) -> None:
    # A project's database (or schema) is never filled with 100,000 made-up runs.
    path = tmp_path / "app.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_run(new_run())
    finally:
        await store.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="holds runs the benchmark did not seed"):
        api_runs(10, path, None, rounds=1, progress=quiet)
    assert path.read_bytes() == before
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(ConfigError, match="not a runtime database"):
        api_runs(10, other, None, rounds=1, progress=quiet)
    async with fresh_schema() as url:
        store = await open_store(url)
        try:
            await store.create_run(new_run())
        finally:
            await store.close()
        with pytest.raises(ConfigError, match="holds runs the benchmark did not seed"):
            api_runs(10, None, url, rounds=1, progress=quiet)
