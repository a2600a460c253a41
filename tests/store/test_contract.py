"""The Store contract: every backend must pass this suite (parametrize ``store`` to add one)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

from runtime import LeaseLostError, RunNotFoundError, RunStatus, StepStatus, StoreError
from runtime.ids import new_id
from runtime.store.base import NewRun, RunUpdate, StepWrite, Store, WorkerRow
from runtime.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WORKFLOW = "order-processing"


async def _open(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return await SqliteStore.open(str(tmp_path / "contract.db"))
    raise AssertionError(f"no fixture for backend {backend!r}")  # e.g. add "postgresql" here


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await _open(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


def new_run(
    *,
    workflow: str = WORKFLOW,
    key: str | None = None,
    status: RunStatus = RunStatus.PENDING,
    owner: str | None = None,
    available_at: datetime = T0,
    created_at: datetime = T0,
    input: object = None,
    run_id: str | None = None,
) -> NewRun:
    return NewRun(
        id=run_id or new_id("run"),
        workflow=workflow,
        version=None,
        kind="composition",
        idempotency_key=key,
        status=status,
        input=json.dumps(input),
        owner_id=owner,
        parent_run_id=None,
        available_at=available_at,
        created_at=created_at,
    )


async def create(store: Store, **kwargs: object) -> str:
    record, created = await store.create_run(new_run(**kwargs))  # type: ignore[arg-type]
    assert created
    return record.id


def step(seq: int, name: str, status: StepStatus = StepStatus.COMPLETED, **kw: object) -> StepWrite:
    return StepWrite(seq=seq, name=name, status=status, attempts=1, **kw)  # type: ignore[arg-type]


async def add_worker(store: Store, worker_id: str, heartbeat: datetime) -> None:
    await store.upsert_worker(WorkerRow(worker_id, "host-a", 4242, T0, heartbeat))


# -- create_run ------------------------------------------------------------------


async def test_create_run_without_a_key_inserts_every_time(store: Store) -> None:
    first, created_first = await store.create_run(new_run(input={"order_id": "o1"}))
    second, created_second = await store.create_run(new_run(input={"order_id": "o1"}))

    assert created_first and created_second
    assert first.id != second.id
    assert first.workflow == WORKFLOW
    assert first.status is RunStatus.PENDING
    assert first.input == {"order_id": "o1"}
    assert first.idempotency_key is None
    assert first.output is None and first.error is None and first.ended_at is None
    assert first.created_at == T0 and first.available_at == T0
    stored = await store.get_run(first.id)
    assert stored.input == {"order_id": "o1"}
    assert stored.status is RunStatus.PENDING


async def test_create_run_with_a_used_key_returns_the_existing_run(store: Store) -> None:
    first, created_first = await store.create_run(new_run(key="tx-1", input={"n": 1}))
    again, created_again = await store.create_run(new_run(key="tx-1", input={"n": 2}))

    assert created_first is True
    assert created_again is False
    assert again.id == first.id
    assert again.input == {"n": 1}  # the first run, not the second request
    assert again.idempotency_key == "tx-1"
    page = await store.list_runs(workflow=WORKFLOW)
    assert [run.id for run in page.runs] == [first.id]


async def test_the_same_key_in_another_workflow_is_another_run(store: Store) -> None:
    first, _ = await store.create_run(new_run(key="tx-1"))
    other, created = await store.create_run(new_run(key="tx-1", workflow="refund"))

    assert created is True
    assert other.id != first.id
    assert await store.find_run("refund", "tx-1") == other
    assert (await store.find_run(WORKFLOW, "tx-1")).id == first.id  # type: ignore[union-attr]
    assert await store.find_run(WORKFLOW, "tx-unknown") is None


async def test_concurrent_creates_with_one_key_make_one_run(store: Store) -> None:
    outcomes: list[tuple[str, bool]] = []

    async def start(n: int) -> None:
        record, created = await store.create_run(new_run(key="tx-race", input={"n": n}))
        outcomes.append((record.id, created))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(start, n)

    assert sorted(created for _, created in outcomes) == [False] * 7 + [True]
    assert len({run_id for run_id, _ in outcomes}) == 1
    assert len((await store.list_runs(workflow=WORKFLOW)).runs) == 1


async def test_the_created_record_is_what_a_read_returns(store: Store) -> None:
    record, _ = await store.create_run(
        new_run(key="k", status=RunStatus.RUNNING, owner="wrk_a", input={"deep": [1, {"x": None}]})
    )

    assert record == await store.get_run(record.id)
    assert record == await store.find_run(WORKFLOW, "k")


async def test_times_come_back_as_aware_utc(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    moment = datetime(2026, 3, 1, 21, 30, tzinfo=tokyo)

    record, _ = await store.create_run(new_run(created_at=moment, available_at=moment))
    stored = await store.get_run(record.id)

    for value in (record.created_at, stored.created_at, stored.available_at, stored.updated_at):
        assert value == moment
        assert value.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create_run(new_run(created_at=datetime(2026, 1, 1)))


# -- claim_run ---------------------------------------------------------------------


async def test_claim_run_is_compare_and_set_on_the_owner(store: Store) -> None:
    run_id = await create(store)

    claimed = await store.claim_run(run_id, "wrk_a", None, T0)
    assert claimed is not None
    assert (claimed.owner_id, claimed.status) == ("wrk_a", RunStatus.RUNNING)

    assert await store.claim_run(run_id, "wrk_b", None, T0) is None  # someone was faster
    assert await store.claim_run(run_id, "wrk_b", "wrk_c", T0) is None  # wrong expectation
    assert (await store.get_run(run_id)).owner_id == "wrk_a"

    taken = await store.claim_run(run_id, "wrk_b", "wrk_a", T0 + timedelta(seconds=1))
    assert taken is not None
    assert (taken.owner_id, taken.status) == ("wrk_b", RunStatus.RUNNING)
    assert taken.updated_at == T0 + timedelta(seconds=1)


async def test_claim_run_wakes_a_sleeping_run_and_keeps_a_compensating_one(store: Store) -> None:
    sleeping = await create(store, status=RunStatus.SLEEPING)
    compensating = await create(store, status=RunStatus.COMPENSATING)

    woke = await store.claim_run(sleeping, "wrk_a", None, T0)
    kept = await store.claim_run(compensating, "wrk_a", None, T0)

    assert woke is not None and woke.status is RunStatus.RUNNING
    assert kept is not None and kept.status is RunStatus.COMPENSATING


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.PAUSED,
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.COMPENSATION_FAILED,
    ],
)
async def test_claim_run_refuses_paused_and_terminal_runs(store: Store, status: RunStatus) -> None:
    run_id = await create(store, status=status)

    assert await store.claim_run(run_id, "wrk_a", None, T0) is None
    record = await store.get_run(run_id)
    assert (record.status, record.owner_id) == (status, None)


async def test_claim_run_of_an_unknown_run_is_none(store: Store) -> None:
    assert await store.claim_run("run_missing", "wrk_a", None, T0) is None


# -- checkpoint --------------------------------------------------------------------


async def test_checkpoint_writes_steps_and_the_run_update_together(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    later = T0 + timedelta(seconds=5)

    await store.checkpoint(
        run_id,
        "wrk_a",
        [
            step(
                1,
                "validate",
                output='{"ok": true}',
                started_at=T0,
                ended_at=later,
                completed_order=1,
            ),
            step(
                2,
                "reserve",
                StepStatus.FAILED,
                compensate_input='["r1"]',
                error='{"step": "reserve", "type": "ValueError", "message": "no stock"}',
            ),
        ],
        RunUpdate(
            status=RunStatus.COMPENSATING,
            error='{"step": "reserve", "type": "ValueError", "message": "no stock"}',
        ),
        later,
    )

    record = await store.get_run(run_id)
    assert record.status is RunStatus.COMPENSATING
    assert record.owner_id == "wrk_a"
    assert record.updated_at == later
    assert record.error is not None
    assert (record.error.step, record.error.type, record.error.message) == (
        "reserve",
        "ValueError",
        "no stock",
    )
    assert [(s.seq, s.name, s.status) for s in record.steps] == [
        (1, "validate", StepStatus.COMPLETED),
        (2, "reserve", StepStatus.FAILED),
    ]
    first, second = record.steps
    assert first.output == {"ok": True}
    assert (first.started_at, first.ended_at, first.completed_order) == (T0, later, 1)
    assert second.compensate_input == ["r1"]
    assert second.error is not None and second.error.message == "no stock"


async def test_checkpoint_overwrites_a_step_at_the_same_seq(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")

    await store.checkpoint(run_id, "wrk_a", [step(1, "pay", StepStatus.RUNNING)], RunUpdate(), T0)
    await store.checkpoint(
        run_id,
        "wrk_a",
        [StepWrite(seq=1, name="pay", status=StepStatus.COMPLETED, attempts=3, output="7")],
        RunUpdate(),
        T0,
    )

    steps = await store.load_steps(run_id)
    assert [(s.seq, s.status, s.attempts, s.output) for s in steps] == [
        (1, StepStatus.COMPLETED, 3, 7)
    ]


async def test_checkpoint_ends_and_releases_a_run(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    end = T0 + timedelta(minutes=1)

    await store.checkpoint(
        run_id,
        "wrk_a",
        [],
        RunUpdate(status=RunStatus.COMPLETED, output='{"id": "o1"}', ended_at=end, release=True),
        end,
    )

    record = await store.get_run(run_id)
    assert (record.status, record.owner_id, record.output, record.ended_at) == (
        RunStatus.COMPLETED,
        None,
        {"id": "o1"},
        end,
    )


async def test_checkpoint_by_a_non_owner_raises_and_writes_nothing(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(1, "first")], RunUpdate(), T0)

    with pytest.raises(LeaseLostError) as caught:
        await store.checkpoint(
            run_id,
            "wrk_b",
            [step(2, "second"), step(1, "first", StepStatus.FAILED)],
            RunUpdate(status=RunStatus.COMPLETED, output='"stolen"'),
            T0 + timedelta(seconds=9),
        )

    assert (caught.value.run_id, caught.value.owner_id) == (run_id, "wrk_b")
    record = await store.get_run(run_id)
    assert (record.status, record.output, record.owner_id) == (RunStatus.RUNNING, None, "wrk_a")
    assert record.updated_at == T0
    assert [(s.seq, s.status) for s in record.steps] == [(1, StepStatus.COMPLETED)]


async def test_checkpoint_of_a_released_run_raises_lease_lost(store: Store) -> None:
    run_id = await create(store, status=RunStatus.PENDING)

    with pytest.raises(LeaseLostError):
        await store.checkpoint(run_id, "wrk_a", [step(1, "first")], RunUpdate(), T0)
    assert await store.load_steps(run_id) == []


async def test_checkpoint_of_an_unknown_run_raises_lease_lost(store: Store) -> None:
    with pytest.raises(LeaseLostError):
        await store.checkpoint("run_missing", "wrk_a", [step(1, "x")], RunUpdate(), T0)


# -- transition --------------------------------------------------------------------


async def test_transition_applies_only_from_an_expected_status(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    later = T0 + timedelta(seconds=3)

    refused = await store.transition(run_id, [RunStatus.COMPLETED], RunStatus.COMPENSATING, later)
    assert refused is None
    assert (await store.get_run(run_id)).status is RunStatus.RUNNING

    moved = await store.transition(
        run_id,
        [RunStatus.PENDING, RunStatus.RUNNING],
        RunStatus.PAUSED,
        later,
        error='{"step": null, "type": "Paused", "message": "by operator"}',
    )
    assert moved is not None
    assert (moved.status, moved.owner_id, moved.updated_at) == (RunStatus.PAUSED, None, later)
    assert moved.error is not None and moved.error.message == "by operator"


async def test_transition_sets_the_owner_and_keeps_an_existing_error(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(
        run_id,
        "wrk_a",
        [],
        RunUpdate(
            status=RunStatus.COMPLETED,
            error='{"step": "s", "type": "E", "message": "kept"}',
            release=True,
        ),
        T0,
    )

    moved = await store.transition(
        run_id, [RunStatus.COMPLETED], RunStatus.COMPENSATING, T0, owner_id="wrk_b"
    )

    assert moved is not None
    assert (moved.status, moved.owner_id) == (RunStatus.COMPENSATING, "wrk_b")
    assert moved.error is not None and moved.error.message == "kept"


async def test_transition_of_an_unknown_run_is_none(store: Store) -> None:
    assert await store.transition("run_nope", [RunStatus.PENDING], RunStatus.PAUSED, T0) is None


# -- reads -------------------------------------------------------------------------


async def test_get_run_of_an_unknown_run_raises(store: Store) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        await store.get_run("run_missing")
    assert caught.value.run_id == "run_missing"
    assert isinstance(caught.value, LookupError)


async def test_steps_are_read_in_sequence_order(store: Store) -> None:
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(run_id, "wrk_a", [step(3, "c"), step(1, "a")], RunUpdate(), T0)
    await store.checkpoint(run_id, "wrk_a", [step(10, "j"), step(2, "b")], RunUpdate(), T0)

    expected = [(1, "a"), (2, "b"), (3, "c"), (10, "j")]
    assert [(s.seq, s.name) for s in await store.load_steps(run_id)] == expected
    assert [(s.seq, s.name) for s in (await store.get_run(run_id)).steps] == expected
    assert (await store.get_run(run_id, steps=False)).steps == []
    assert all(s.run_id == run_id for s in await store.load_steps(run_id))


async def test_steps_of_one_run_do_not_leak_into_another(store: Store) -> None:
    one = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    two = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    await store.checkpoint(one, "wrk_a", [step(1, "one")], RunUpdate(), T0)

    assert await store.load_steps(two) == []
    assert [s.name for s in await store.load_steps(one)] == ["one"]


# -- list_runs -----------------------------------------------------------------------


async def test_list_runs_is_newest_first_and_filters(store: Store) -> None:
    a = await create(store, created_at=T0, status=RunStatus.COMPLETED)
    b = await create(store, created_at=T0 + timedelta(seconds=1), status=RunStatus.FAILED)
    c = await create(store, created_at=T0 + timedelta(seconds=2), workflow="refund")
    d = await create(
        store, created_at=T0 + timedelta(seconds=3), status=RunStatus.FAILED, workflow="refund"
    )

    def ids(page: object) -> list[str]:
        return [run.id for run in page.runs]  # type: ignore[attr-defined]

    assert ids(await store.list_runs()) == [d, c, b, a]
    assert ids(await store.list_runs(workflow=WORKFLOW)) == [b, a]
    assert ids(await store.list_runs(status=[RunStatus.FAILED])) == [d, b]
    assert ids(await store.list_runs(status=[RunStatus.FAILED, RunStatus.COMPLETED])) == [d, b, a]
    assert ids(await store.list_runs(status=[RunStatus.FAILED], workflow="refund")) == [d]
    assert ids(await store.list_runs(status=[RunStatus.CANCELED])) == []
    assert (await store.list_runs()).next_cursor is None


async def test_list_runs_pages_without_duplicates_or_gaps(store: Store) -> None:
    # Several runs share a created_at, so the cursor must break ties.
    created = [T0 + timedelta(seconds=i // 3) for i in range(11)]
    expected = []
    for moment in created:
        expected.append(await create(store, created_at=moment))
    await create(store, workflow="other", created_at=T0 + timedelta(seconds=1))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_runs(workflow=WORKFLOW, limit=4, cursor=cursor)
        pages += 1
        assert len(page.runs) <= 4
        seen += [run.id for run in page.runs]
        cursor = page.next_cursor
        if cursor is None:
            break
        assert pages < 10, "paging does not end"

    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == set(expected)
    moments = [(await store.get_run(run_id, steps=False)).created_at for run_id in seen]
    assert moments == sorted(moments, reverse=True)


async def test_list_runs_with_an_exact_page_has_no_next_cursor(store: Store) -> None:
    for i in range(3):
        await create(store, created_at=T0 + timedelta(seconds=i))

    first = await store.list_runs(limit=3)

    assert len(first.runs) == 3
    assert first.next_cursor is None


async def test_list_runs_refuses_a_bad_limit_or_cursor(store: Store) -> None:
    with pytest.raises(StoreError, match="limit"):
        await store.list_runs(limit=0)
    with pytest.raises(StoreError, match="cursor"):
        await store.list_runs(cursor="not-a-cursor")


# -- recoverable_runs -----------------------------------------------------------------


async def test_recoverable_runs_are_the_due_runs_nobody_live_holds(store: Store) -> None:
    now = T0 + timedelta(minutes=10)
    stale_before = now - timedelta(seconds=30)
    await add_worker(store, "wrk_live", now - timedelta(seconds=5))
    await add_worker(store, "wrk_stale", now - timedelta(seconds=120))

    past, future = now - timedelta(seconds=1), now + timedelta(seconds=60)
    included = {
        "unowned pending due": await create(store, available_at=past),
        "pending due exactly now": await create(store, available_at=now),
        "sleeping due": await create(store, status=RunStatus.SLEEPING, available_at=past),
        "running, owner gone": await create(
            store, status=RunStatus.RUNNING, owner="wrk_gone", available_at=future
        ),
        "running, stale heartbeat": await create(
            store, status=RunStatus.RUNNING, owner="wrk_stale"
        ),
        "compensating, stale": await create(
            store, status=RunStatus.COMPENSATING, owner="wrk_stale"
        ),
        "running, unowned": await create(store, status=RunStatus.RUNNING),
    }
    excluded = {
        "pending not due": await create(store, available_at=future),
        "sleeping not due": await create(store, status=RunStatus.SLEEPING, available_at=future),
        "running, live owner": await create(store, status=RunStatus.RUNNING, owner="wrk_live"),
        "compensating, live owner": await create(
            store, status=RunStatus.COMPENSATING, owner="wrk_live"
        ),
        "unknown workflow": await create(store, workflow="not-known", available_at=past),
        "paused": await create(store, status=RunStatus.PAUSED, available_at=past),
        "completed": await create(store, status=RunStatus.COMPLETED, available_at=past),
        "failed": await create(store, status=RunStatus.FAILED, available_at=past),
        "canceled": await create(store, status=RunStatus.CANCELED, available_at=past),
        "compensation_failed": await create(
            store, status=RunStatus.COMPENSATION_FAILED, available_at=past
        ),
    }

    found = await store.recoverable_runs([WORKFLOW, "refund"], now, stale_before, 100)

    found_ids = {run.id for run in found}
    names = {run_id: name for name, run_id in {**included, **excluded}.items()}
    assert sorted(names[i] for i in found_ids) == sorted(included)
    assert len(found) == len(found_ids)


async def test_recoverable_runs_of_no_workflow_is_empty(store: Store) -> None:
    await create(store)
    assert await store.recoverable_runs([], T0, T0, 10) == []


async def test_recoverable_runs_respects_the_limit_and_takes_the_earliest_due(
    store: Store,
) -> None:
    runs = [await create(store, available_at=T0 - timedelta(seconds=i)) for i in range(5)]

    found = await store.recoverable_runs([WORKFLOW], T0, T0, 2)

    assert [run.id for run in found] == [runs[4], runs[3]]


# -- workers ---------------------------------------------------------------------------


async def test_workers_upsert_and_heartbeat(store: Store) -> None:
    await store.upsert_worker(WorkerRow("wrk_b", "host-b", 2, T0, T0))
    await store.upsert_worker(WorkerRow("wrk_a", "host-a", 1, T0, T0))
    later = T0 + timedelta(seconds=10)
    # A second upsert refreshes the heartbeat but keeps when it started.
    await store.upsert_worker(WorkerRow("wrk_a", "host-a", 1, later, later))
    assert await store.heartbeat("wrk_b", later + timedelta(seconds=1))
    assert not await store.heartbeat("wrk_unknown", later)  # taken for dead: not registered

    workers = await store.list_workers()

    assert [(w.id, w.host, w.pid) for w in workers] == [
        ("wrk_a", "host-a", 1),
        ("wrk_b", "host-b", 2),
    ]
    assert [(w.started_at, w.heartbeat_at) for w in workers] == [
        (T0, later),
        (T0, later + timedelta(seconds=1)),
    ]


async def test_heartbeat_renews_the_leases_of_the_worker(store: Store) -> None:
    now = T0 + timedelta(minutes=5)
    await add_worker(store, "wrk_a", T0)
    run_id = await create(store, status=RunStatus.RUNNING, owner="wrk_a")
    stale_before = now - timedelta(seconds=30)
    assert [r.id for r in await store.recoverable_runs([WORKFLOW], now, stale_before, 10)] == [
        run_id
    ]

    await store.heartbeat("wrk_a", now)

    assert await store.recoverable_runs([WORKFLOW], now, stale_before, 10) == []


async def test_remove_workers_releases_their_runs(store: Store) -> None:
    await add_worker(store, "wrk_dead", T0)
    await add_worker(store, "wrk_other", T0)
    running = await create(store, status=RunStatus.RUNNING, owner="wrk_dead")
    sleeping = await create(store, status=RunStatus.SLEEPING, owner="wrk_dead")
    compensating = await create(store, status=RunStatus.COMPENSATING, owner="wrk_dead")
    others = await create(store, status=RunStatus.RUNNING, owner="wrk_other")
    later = T0 + timedelta(seconds=40)

    released = await store.remove_workers(["wrk_dead"], later)

    assert released == 3
    assert [w.id for w in await store.list_workers()] == ["wrk_other"]
    states = {
        run_id: ((r := await store.get_run(run_id)).status, r.owner_id)
        for run_id in (running, sleeping, compensating, others)
    }
    assert states == {
        running: (RunStatus.PENDING, None),
        sleeping: (RunStatus.SLEEPING, None),
        compensating: (RunStatus.COMPENSATING, None),
        others: (RunStatus.RUNNING, "wrk_other"),
    }
    assert (await store.get_run(running)).updated_at == later


async def test_remove_no_workers_releases_nothing(store: Store) -> None:
    await add_worker(store, "wrk_a", T0)
    await create(store, status=RunStatus.RUNNING, owner="wrk_a")

    assert await store.remove_workers([], T0) == 0
    assert [w.id for w in await store.list_workers()] == ["wrk_a"]


async def test_check_file_passes_while_the_database_is_the_one_opened(store: Store) -> None:
    await store.create_run(new_run())
    await store.check_file()  # raises DatabaseReplacedError once it is not
