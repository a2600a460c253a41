"""The PostgreSQL store's hot questions seek: their plans read no history (STYLE 14).

The worker asks the queue (``next_run_due``, ``recoverable_runs``,
``unclaimed_unknown``) and claims deliveries every time it wakes, in every process.
Here a database holds a little live work and years of history (20,000 ended runs,
events and done deliveries), analyzed; the statements those calls run are captured
and each is explained (``EXPLAIN (FORMAT JSON)``) both as the store first runs it
(a plan for its parameters) and as it runs once prepared (psycopg prepares a
statement after its fifth use, and PostgreSQL may then keep one generic plan). No
plan may scan a history table, and the runs and deliveries are reached through the
live partial indexes, a key, or an index seek that pins the status to live work
(the planner may rightly prefer ``runs_by_workflow_status`` on running runs of a few
workflows to every held run of ``runs_held``), so the cost follows the work in hand.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from runtime.models import DeliveryStatus, RunStatus
from runtime.store import open_store
from runtime.store.base import Store
from runtime.store.postgres.connection import connection_kwargs
from runtime.store.pruning import PruneCutoffs
from runtime.store.records import SubscriberRow, WorkerRow
from tests.helpers.postgres import SERVER, fresh_schema
from tests.helpers.records import T0, new_run
from tests.store.bus import event

LIVE = WorkerRow("wrk_live", "host", 1, T0, T0, None)
GONE = WorkerRow("wrk_gone", "host", 2, T0, T0, None)
WORKFLOWS = ["wf-0", "wf-1", "wf-2"]
LATER = T0 + timedelta(minutes=5)

HISTORY = ("runs", "steps", "events", "deliveries", "run_events", "schedule_firings")
"""Tables that grow with history: no plan may scan them."""

SEEKS = {
    "runs": {"runs_queue", "runs_held"},
    "deliveries": {"deliveries_due", "deliveries_running", "deliveries_pkey"},
    "events": {"events_id_key", "events_pkey"},
}
"""The indexes each hot question may reach a table through: live partial ones, or a key."""

HISTORY_SQL = """
INSERT INTO runs (id, workflow, version, kind, status, input, output, available_at,
    created_at, updated_at, ended_at)
SELECT 'run_old' || lpad(i::text, 19, '0'), 'wf-' || (i %% 7), '1', 'composition',
    CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'completed' END, '{}', '1',
    timestamptz '2020-01-01 00:00:00+00',
    timestamptz '2020-01-01 00:00:00+00' + i * interval '1 ms',
    timestamptz '2020-01-02 00:00:00+00', timestamptz '2020-01-02 00:00:00+00'
FROM generate_series(1, %(count)s) AS i;
INSERT INTO steps (run_id, seq, name, status, attempts, output, started_at, ended_at)
SELECT id, s.seq, 'step', 'completed', 1, '1', created_at, created_at
FROM runs, generate_series(1, 3) AS s (seq) WHERE id LIKE 'run_old%%';
INSERT INTO run_events (run_id, step_seq, idx, name, data, metadata)
SELECT id, 1, 0, 'staged', '{}', '{}' FROM runs WHERE id LIKE 'run_old%%';
INSERT INTO schedule_firings (schedule, nominal_at, outcome, run_id, recorded_at)
SELECT 'job-' || (i %% 20), timestamptz '2020-01-01 00:00:00+00' + i * interval '1 min',
    'started', NULL, timestamptz '2020-01-01 00:00:00+00'
FROM generate_series(1, %(count)s) AS i;
INSERT INTO events (id, name, data, metadata, occurred_at, available_at, fanned_out)
SELECT 'evt_old' || lpad(i::text, 19, '0'), 'order.' || (i %% 5), '{}', '{}',
    timestamptz '2020-01-01 00:00:00+00', timestamptz '2020-01-01 00:00:00+00', true
FROM generate_series(1, %(count)s) AS i;
INSERT INTO deliveries (id, event_id, event_seq, subscriber_id, status, attempts,
    max_attempts, available_at, created_at, updated_at, finished_at)
SELECT 'dlv_old' || s.id || lpad(e.seq::text, 19, '0'), e.id, e.seq, s.id, 'done', 1, 3,
    e.occurred_at, e.occurred_at, e.occurred_at, e.occurred_at
FROM events e, (VALUES ('audit'), ('email')) AS s (id) WHERE e.id LIKE 'evt_old%%';
"""
"""Years of service: ended runs of many workflows (their steps, staged events), events,
their done deliveries, schedule firings."""


@dataclass
class Database:
    """The test schema: a store on it and a connection to read plans with."""

    store: Store
    conn: psycopg.Connection[Any]


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    async with fresh_schema() as url:
        store = await open_store(url)
        schema = url.rsplit("schema=", 1)[1]
        try:
            with psycopg.connect(SERVER, **connection_kwargs(schema)) as conn:
                await live_work(store)
                for statement in HISTORY_SQL.split(";")[:-1]:
                    conn.execute(statement, {"count": 20_000})
                conn.execute("ANALYZE")
                yield Database(store, conn)
        finally:
            await store.close()


async def live_work(store: Store) -> None:
    """The work in hand: queued runs, a dead worker's runs and deliveries, due deliveries."""
    await store.upsert_worker(LIVE)
    await store.upsert_worker(GONE)
    for i, workflow in enumerate([*WORKFLOWS, "unknown-wf"]):
        await store.create_run(new_run(workflow=workflow, available_at=T0 + timedelta(seconds=i)))
    await store.create_run(new_run(workflow="wf-0", status=RunStatus.RUNNING, owner=GONE.id))
    await store.create_run(new_run(workflow="wf-1", status=RunStatus.RUNNING, owner=LIVE.id))
    subscribers = [SubscriberRow("audit", ("order.*",), 3), SubscriberRow("email", ("*",), 3)]
    await store.sync_subscribers(subscribers, T0)
    for _ in range(3):
        await store.emit(event("order.placed"))
    await store.fan_out(T0, 100)
    assert await store.claim_deliveries(GONE.id, ["audit"], T0, T0, 1)


@contextmanager
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) a psycopg async cursor executes inside the block."""
    seen: list[tuple[str, Any]] = []
    execute = psycopg.AsyncCursor.execute

    async def traced(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        seen.append((str(query), params))
        return await execute(self, query, params, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(psycopg.AsyncCursor, "execute", traced)
        yield seen


async def questions(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The statements of the worker's periodic questions, with the parameters they ran with."""
    with capture(monkeypatch) as seen:
        for names in (["wf-0"], WORKFLOWS):
            assert await store.next_run_due(names) == T0
            assert await store.recoverable_runs(names, LATER, T0 + timedelta(seconds=1), 10)
        assert [run.workflow for run in await store.unclaimed_unknown(WORKFLOWS, LATER, 20)] == [
            "unknown-wf"
        ]
        claimed = await store.claim_deliveries(LIVE.id, ["audit", "email"], LATER, LATER, 10)
        assert len(claimed) == 6  # five due, one retaken from the dead worker
    return [(query, params) for query, params in seen if _QUERY.match(query)]


_QUERY = re.compile(r"^\s*(SELECT|WITH|UPDATE|DELETE|INSERT)\b(?!.*pg_notify)", re.IGNORECASE)
"""A statement with a plan (not transaction control, not a wake-up)."""


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan tree, init plans and subplans included."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def problems(plan: dict[str, Any]) -> list[str]:
    """What in ``plan`` reads history: a scan of a history table, or a seek through an index
    that is neither live nor a key (empty when it only seeks)."""
    found = []
    for node in nodes(plan):
        table, index = node.get("Relation Name"), node.get("Index Name")
        if table not in HISTORY:
            continue
        kind = node["Node Type"]
        if kind == "Seq Scan":
            found.append(f"scans {table}")
        elif kind in ("Index Scan", "Index Only Scan") and index not in SEEKS.get(table, ()):
            if not live_statuses_only(node.get("Index Cond", "")):
                found.append(f"walks {table} by {index}")
        elif kind == "Bitmap Heap Scan":
            found.append(f"gathers {table} in a bitmap")
    return found


LIVE_STATUSES = {"pending", "sleeping", "running", "compensating"}
"""Statuses of work in hand (runs' and deliveries'): the ended rows are never these."""

_STATUS = re.compile(r"\bstatus = (?:'(\w+)'|ANY \('\{([\w,]+)\}')")


def live_statuses_only(condition: str) -> bool:
    """Whether an index condition pins ``status`` to statuses of live work only: such a
    seek (``runs_by_workflow_status`` on running runs) reads no ended row either."""
    found = _STATUS.findall(condition)
    statuses = {name for one, many in found for name in (one or many).split(",")}
    return bool(statuses) and statuses <= LIVE_STATUSES


def seeks(plan: dict[str, Any]) -> set[str]:
    """The indexes ``plan`` walks."""
    return {node["Index Name"] for node in nodes(plan) if "Index Name" in node}


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")


def positional(query: str, params: Any) -> tuple[str, list[Any]]:
    """``query`` with ``$n`` placeholders (as PREPARE takes them), and its values in order."""
    names: dict[str, int] = {}
    values: list[Any] = []
    plain = iter(params if isinstance(params, (list, tuple)) else ())

    def number(match: re.Match[str]) -> str:
        if match[1] is None:
            values.append(next(plain))
            return f"${len(values)}"
        if match[1] not in names:
            values.append(params[match[1]])
            names[match[1]] = len(values)
        return f"${names[match[1]]}"

    return _PLACEHOLDER.sub(number, query), values


def custom_plan(conn: psycopg.Connection[Any], query: str, params: Any) -> dict[str, Any]:
    """The plan PostgreSQL makes for ``query`` with these parameters."""
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
    assert row is not None
    plan: dict[str, Any] = row["QUERY PLAN"][0]["Plan"]
    return plan


def generic_plan(conn: psycopg.Connection[Any], query: str, params: Any) -> dict[str, Any]:
    """The one plan PostgreSQL may keep for ``query`` once prepared, whatever its parameters."""
    text, values = positional(query, params)
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute(f"PREPARE hot AS {text}")
    try:
        literals = sql.SQL(", ").join(sql.Literal(value) for value in values)
        explain = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE hot ({})").format(literals)
        row = conn.execute(explain).fetchone()
    finally:
        conn.execute("DEALLOCATE hot")
        conn.execute("RESET plan_cache_mode")
    assert row is not None
    plan: dict[str, Any] = row["QUERY PLAN"][0]["Plan"]
    return plan


async def test_the_worker_questions_reach_every_hot_statement(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # So that a store change that stops running one of them cannot pass here unchecked.
    statements = "\n".join(query for query, _ in await questions(database.store, monkeypatch))
    expected = ["CROSS JOIN LATERAL", "WITH RECURSIVE", "FOR UPDATE SKIP LOCKED", "runs r"]
    assert [marker for marker in expected if marker not in statements] == []


@pytest.mark.parametrize("planned", [custom_plan, generic_plan], ids=["custom", "generic"])
async def test_no_worker_question_reads_the_history(
    database: Database, monkeypatch: pytest.MonkeyPatch, planned: Any
) -> None:
    statements = await questions(database.store, monkeypatch)
    assert len(statements) >= 6
    found = []
    for query, params in statements:
        plan = planned(database.conn, query, params)
        found += [f"{problem} <- {query}" for problem in problems(plan)]
        touched = {node.get("Relation Name") for node in nodes(plan)}
        if "runs" in touched:
            assert seeks(plan) & SEEKS["runs"], query
        if "deliveries" in touched:
            assert seeks(plan) & {"deliveries_due", "deliveries_running"}, query
    assert found == [], "\n".join(found)


async def test_the_check_fails_on_a_scan_and_on_a_walk_of_history(database: Database) -> None:
    # The guard itself: each of these reads every ended run (or delivery) there is.
    bad = [
        # The live statuses joined by OR to a due time: no index can pin the status.
        "SELECT id FROM runs WHERE workflow = ANY(%s) AND (status IN ('running', "
        "'compensating') OR (status = 'pending' AND available_at <= now())) LIMIT 5",
        # A seek that pins the status, but to one with history behind it.
        "SELECT id FROM runs WHERE workflow = ANY(%s) AND status IN ('pending', 'failed')",
        # A seek, but through an index over the history (every run of the workflow).
        "SELECT id FROM runs WHERE workflow = ANY(%s) ORDER BY created_at, id LIMIT 5",
        "SELECT id FROM deliveries WHERE subscriber_id = 'audit' AND error IS NULL",
    ]
    for query in bad:
        params = [WORKFLOWS] if "%s" in query else None
        assert problems(custom_plan(database.conn, query, params)), query
    fine = "SELECT id FROM runs WHERE status IN ('pending', 'sleeping') AND workflow = 'wf-0'"
    assert problems(custom_plan(database.conn, fine, None)) == []


async def prune_statements(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The statements of two batches of a prune (the second resumes after a cursor), dry
    and for real, over the history (20,000 runs that ended at one same instant)."""
    cutoffs = PruneCutoffs(completed=T0, failed=T0)
    with capture(monkeypatch) as seen:
        for dry_run in (True, False):
            first = await store.prune(cutoffs, dry_run=dry_run)
            assert first.more and first.counts.runs > 0
            second = await store.prune(cutoffs, after=first.cursor, dry_run=dry_run)
            assert second.counts.runs > 0
            assert second.cursor != first.cursor
    return [(query, params) for query, params in seen if _QUERY.match(query)]


@pytest.mark.parametrize("planned", [custom_plan, generic_plan], ids=["custom", "generic"])
async def test_a_prune_batch_seeks_from_its_cursor(
    database: Database, monkeypatch: pytest.MonkeyPatch, planned: Any
) -> None:
    # Retention reads history by design, but each walk seeks its index from the cursor
    # in index order (no sort), and each delete seeks by key.
    statements = await prune_statements(database.store, monkeypatch)
    assert any("> (%(after_at)s, %(after_key)s)" in query for query, _ in statements)
    found = []
    for query, params in statements:
        plan = planned(database.conn, query, params)
        for node in nodes(plan):
            table = node.get("Relation Name")
            if table in HISTORY and node["Node Type"] in ("Seq Scan", "Bitmap Heap Scan"):
                found.append(f"scans {table} <- {query}")
            if "LIMIT" in query and node["Node Type"] in ("Sort", "Incremental Sort"):
                found.append(f"sorts <- {query}")
    assert found == [], "\n".join(found)


BULK = ("completed", "done")
"""The ended statuses nearly every row is in. Counting one reads all its rows whichever
way; the planner may rightly read the table (a parallel scan) rather than the index."""

_LOOSE_SCAN = {"runs_idempotency", "runs_by_workflow", "runs_by_workflow_status"}
"""Indexes led by ``workflow``: the next workflow after the last one found, ``LIMIT 1``."""

_COUNTED_BY = {
    "runs_by_workflow_status",
    "deliveries_by_status",
    "runs_queue",
    "runs_held",
    "deliveries_due",
    "deliveries_running",
}
"""The indexes a count may read whole ranges of: one (workflow,) status each, or live work."""


def count_problems(plan: dict[str, Any]) -> list[str]:
    """What in a count's plan reads more than the rows of the status it counts."""
    found = []
    for node in nodes(plan):
        table, index, kind = node.get("Relation Name"), node.get("Index Name"), node["Node Type"]
        if table not in HISTORY:
            continue
        if kind in ("Seq Scan", "Bitmap Heap Scan"):
            condition = node.get("Filter", "") + node.get("Recheck Cond", "")
            if not any(f"status = '{bulk}'" in condition for bulk in BULK):
                found.append(f"scans {table} for {condition or 'every row'}")
            continue
        condition = node.get("Index Cond", "")
        if index in _COUNTED_BY and ("status = '" in condition or "status" not in index):
            continue
        if index in _LOOSE_SCAN and (not condition or condition.startswith("(workflow > ")):
            continue
        found.append(f"walks {table} by {index} ({condition})")
    return found


async def test_the_metrics_counts_read_only_the_rows_of_each_status(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GET /metrics counts runs by workflow and status, deliveries by status. Each count
    # seeks its own (workflow, status), so a status of few rows (failed, dead, the live
    # ones) costs what it holds, never the history; the runs are counted on the index
    # alone. VACUUM sets the visibility map index-only scans need, as autovacuum does.
    database.conn.execute("VACUUM ANALYZE")
    with capture(monkeypatch) as seen:
        runs = await database.store.count_runs()
        deliveries = await database.store.count_deliveries()
    failed = sum(1 for i in range(1, 20_001) if i % 50 == 0 and i % 7 == 0)
    assert runs["wf-0", RunStatus.FAILED] == failed
    assert runs["wf-0", RunStatus.RUNNING] == 1  # the dead worker's
    assert sum(runs.values()) == 20_000 + 6
    assert deliveries == {
        DeliveryStatus.PENDING: 5,
        DeliveryStatus.RUNNING: 1,
        DeliveryStatus.DONE: 40_000,
        DeliveryStatus.DEAD: 0,
    }
    statements = [query for query, _ in seen if _QUERY.match(query)]
    assert len(statements) == 2
    found = []
    for query in statements:
        plan = custom_plan(database.conn, query, None)
        assert seeks(plan) & {"runs_by_workflow_status", "deliveries_by_status"}, query
        found += [f"{problem} <- {query[:60]}" for problem in count_problems(plan)]
    assert found == [], "\n".join(found)
    # The check itself: a count grouped over the table reads every run.
    grouped = "SELECT workflow, status, COUNT(*) FROM runs GROUP BY workflow, status"
    assert count_problems(custom_plan(database.conn, grouped, None))


LIMIT = 50


def analyzed(conn: psycopg.Connection[Any], query: str, params: Any, generic: bool) -> Any:
    """The plan PostgreSQL runs ``query`` with (its custom plan for these parameters, or
    with ``generic`` the one it may keep once prepared), run, with the rows each node read."""
    text, values = positional(query, params)
    conn.execute(f"SET plan_cache_mode = {'force_generic_plan' if generic else 'auto'}")
    conn.execute(f"PREPARE listing AS {text}")
    try:
        literals = sql.SQL(", ").join(sql.Literal(value) for value in values)
        explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listing ({})").format(literals)
        row = conn.execute(explain).fetchone()
    finally:
        conn.execute("DEALLOCATE listing")
        conn.execute("RESET plan_cache_mode")
    assert row is not None
    return row["QUERY PLAN"][0]["Plan"]


LISTING_SHAPES: list[dict[str, Any]] = [
    {"status": status, "workflow": workflow}
    for status in (
        None,
        [RunStatus.COMPLETED],
        [RunStatus.FAILED],  # one run in 50: most rows of the listing fail the filter
        [RunStatus.COMPENSATION_FAILED],  # none in the history: a walk would read it all
        [RunStatus.FAILED, RunStatus.CANCELED],
        [RunStatus.COMPLETED, RunStatus.COMPENSATION_FAILED, RunStatus.PAUSED],
    )
    for workflow in (None, "wf-3")
]
"""``list_runs`` as the dashboard and ``GET /api/runs`` call it: each filter, one status,
a rare one, several (the Console and the CLI pass any number)."""


async def listing_statements(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, Any]]:
    """The statements of each listing shape, first page and the page after a cursor."""
    cursor = "2020-01-01T00:00:15+00:00|run_00000000000000000000000000"
    with capture(monkeypatch) as seen:
        for shape in LISTING_SHAPES:
            await store.list_runs(**shape, limit=LIMIT)
            await store.list_runs(**shape, limit=LIMIT, cursor=cursor)
    return [(query, params) for query, params in seen if "FROM runs" in query]


READ_MAX = 10 * (LIMIT + 1)
"""Runs a listing may read for one page of ``LIMIT``, whichever way (kept or dropped by a
filter, sorted): a filter that one run in ten passes, walked along the listing index,
costs a few pages, and so does sorting a small match; a rare status or workflow walked
along it costs every run there is, and so does sorting a common one."""


def listing_problems(plan: dict[str, Any], table: str = "runs") -> list[str]:
    """What in a listing's plan (run) reads more than a few pages of ``table``: a scan,
    or any node that read more than :data:`READ_MAX` rows (kept or dropped)."""
    found = []
    for node in nodes(plan):
        if node.get("Relation Name") != table:
            continue
        kind = node["Node Type"]
        if kind == "Seq Scan":
            found.append(f"scans {table}")
            continue
        read = node["Actual Rows"] * node["Actual Loops"]
        read += node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
        if read > READ_MAX:
            found.append(f"reads {read} {table} ({kind} {node.get('Index Name', '')})".strip())
    return found


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_every_listing_shape_seeks_its_page(
    database: Database, monkeypatch: pytest.MonkeyPatch, generic: bool
) -> None:
    # GET /api/runs must answer a page from index walks that stop at the page, for any
    # filter: psycopg prepares a statement on its fifth run, and a generic plan that
    # walked runs_listing filtering on status read every run for a status that is rare.
    statements = await listing_statements(database.store, monkeypatch)
    assert len(statements) == 2 * len(LISTING_SHAPES)
    found = []
    for query, params in statements:
        plan = analyzed(database.conn, query, params, generic)
        found += [f"{problem} <- {query[-160:]} {params}" for problem in listing_problems(plan)]
    assert found == [], "\n".join(found)


async def test_the_listing_check_fails_on_a_filtered_walk(database: Database) -> None:
    # The guard itself: the one-statement form (before the fix), planned generically,
    # walks the listing index and drops every run of another status.
    query = "SELECT id FROM runs WHERE status = ANY(%s) ORDER BY created_at DESC, id DESC LIMIT %s"
    plan = analyzed(database.conn, query, [["compensation_failed"], LIMIT + 1], True)
    [problem] = listing_problems(plan)
    assert re.fullmatch(r"reads 200\d\d runs \(Index Scan runs_listing\)", problem), problem


DELIVERY_SHAPES: list[dict[str, Any]] = [
    {"status": status, "subscriber_id": subscriber}
    for status in (
        None,
        [DeliveryStatus.DONE],
        [DeliveryStatus.DEAD],  # none in the history: a walk would read it all
        [DeliveryStatus.DEAD, DeliveryStatus.PENDING],
    )
    for subscriber in (None, "audit", "sync-crm")  # "sync-crm": no delivery in the history
]
"""``list_deliveries`` as ``GET /api/deliveries``, the dead deliveries page and the
subscribers page (a subscriber's recent deliveries) call it."""


async def test_every_delivery_listing_shape_seeks_its_page(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GET /api/deliveries?status=dead and the subscribers page on a long history: each
    # shape reads its page from ordered index walks (a single status = ANY(...)
    # statement walked deliveries_by_event, dropping every delivery of another status
    # or subscriber). Never prepared (below), so its custom plan is the one it runs.
    cursor = "20001|dlv_00000000000000000000000000"
    with capture(monkeypatch) as seen:
        for shape in DELIVERY_SHAPES:
            await database.store.list_deliveries(**shape, limit=LIMIT)
            await database.store.list_deliveries(**shape, limit=LIMIT, cursor=cursor)
    statements = [(q, p) for q, p in seen if "FROM deliveries" in q]
    assert len(statements) == 2 * len(DELIVERY_SHAPES)
    found = []
    for query, params in statements:
        plan = analyzed(database.conn, query, params, generic=False)
        problems = listing_problems(plan, table="deliveries")
        found += [f"{problem} <- {query[-160:]} {params}" for problem in problems]
    assert found == [], "\n".join(found)


async def test_the_delivery_listing_is_never_prepared(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A generic plan cannot know whether a subscriber or a status holds a few
    # deliveries or nearly all: psycopg must not prepare the listing on its fifth run.
    asked: list[Any] = []
    execute = psycopg.AsyncCursor.execute

    async def traced(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if "FROM deliveries" in str(query):
            asked.append(kwargs.get("prepare"))
        return await execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", traced)
    for _ in range(8):
        await database.store.list_deliveries(subscriber_id="audit", limit=LIMIT)
    assert asked == [False] * 8


async def test_the_delivery_listing_check_fails_on_a_filtered_walk(database: Database) -> None:
    # The guard itself: the one-statement form (before the fix), planned generically.
    query = (
        "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id "
        "WHERE d.status = ANY(%s) ORDER BY d.event_seq DESC, d.id DESC LIMIT %s"
    )
    plan = analyzed(database.conn, query, [["dead"], LIMIT + 1], True)
    [problem] = listing_problems(plan, table="deliveries")
    assert re.fullmatch(r"reads 400\d\d deliveries \(Index Scan \w+\)", problem), problem
