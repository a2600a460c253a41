"""The campaign's judge, on hand-written evidence: each check sees its violation, and
re-executions that at-least-once allows (a kill between the work and its checkpoint)
are not counted against the runtime."""

from __future__ import annotations

from typing import Any

from tests.chaos.checks import SAGA, Evidence, judge

RUN = "run_1"
CUTOFF = "2026-11-30T12:00:00+00:00"
BEFORE = "2026-11-30T11:59:00+00:00"
AFTER = "2026-11-30T12:00:01+00:00"
LIVE, KILLED, RESTARTED = 10, 20, 30
"""Pids: a process that was never killed, one killed with SIGKILL, the one after it."""


def step(name: str, nonce: str, pid: int = LIVE) -> dict[str, Any]:
    return {
        "kind": "step",
        "phase": "done",
        "run_id": RUN,
        "step": name,
        "nonce": nonce,
        "pid": pid,
    }


def comp(phase: str, name: str, pid: int = LIVE) -> dict[str, Any]:
    return {"kind": "comp", "phase": phase, "run_id": RUN, "step": name, "pid": pid}


def rollback(*names: str, pid: int = LIVE) -> list[dict[str, Any]]:
    return [line for name in names for line in (comp("start", name, pid), comp("done", name, pid))]


def run_row(workflow: str, status: str, created_at: str, input: Any = None) -> dict[str, Any]:
    return {
        "workflow": workflow,
        "key": "k",
        "status": status,
        "created_at": created_at,
        "input": input,
        "output": None,
    }


def failed_saga(log: list[dict[str, Any]], compensated: tuple[str, ...]) -> Evidence:
    """A saga run whose step ``charge`` (index 2) failed for good; these steps compensated."""
    nonces = {"reserve": "n1", "price": "n2", "charge": None}
    steps = {}
    for name, nonce in nonces.items():
        status = "compensated" if name in compensated else "completed" if nonce else "failed"
        output = {"nonce": nonce} if nonce else None
        steps[(RUN, name)] = {"status": status, "output": output}
    return Evidence(
        ops=[],
        log=log,
        runs={RUN: run_row(SAGA, "failed", BEFORE, {"key": "k", "fail_at": 2})},
        steps=steps,
        events={},
        deliveries={},
        firings={},
        killed={KILLED: 1},
        cutoff=CUTOFF,
    )


def violations(evidence: Evidence) -> dict[str, int]:
    counts, _ = judge(evidence, exit_code=0)
    return {name: n for name, n in counts.items() if n}


STEPS_DONE = [step("reserve", "n1"), step("price", "n2")]
ALL = ("charge", "price", "reserve")


def test_a_rollback_in_design_order_is_clean() -> None:
    assert violations(failed_saga([*STEPS_DONE, *rollback(*ALL)], ALL)) == {}


def test_a_step_run_again_after_its_checkpoint_is_a_repeat() -> None:
    log = [*STEPS_DONE, step("price", "n9", RESTARTED), *rollback(*ALL)]
    assert violations(failed_saga(log, ALL)) == {"steps_repeated": 1}


def test_a_step_run_again_because_its_process_died_before_the_checkpoint_is_allowed() -> None:
    log = [step("reserve", "n1"), step("price", "n0", KILLED), step("price", "n2", RESTARTED)]
    assert violations(failed_saga([*log, *rollback(*ALL)], ALL)) == {}


def test_a_step_run_twice_by_one_process_is_a_repeat() -> None:
    log = [step("reserve", "n1"), step("price", "n0"), step("price", "n2"), *rollback(*ALL)]
    assert violations(failed_saga(log, ALL)) == {"steps_repeated": 1}


def test_the_failing_steps_compensation_run_last_after_a_crash_is_out_of_order() -> None:
    log = [*STEPS_DONE, comp("start", "charge", KILLED), *rollback("price", "reserve", "charge")]
    assert violations(failed_saga(log, ALL)) == {"compensations_out_of_order": 1}


def test_the_failing_steps_compensation_run_last_when_a_kill_came_before_it_is_out_of_order() -> (
    None
):
    failure = {"kind": "step", "phase": "fail", "run_id": RUN, "step": "charge", "pid": KILLED}
    log = [*STEPS_DONE, failure, *rollback("price", "reserve", "charge", pid=RESTARTED)]
    counts, details = judge(failed_saga(log, ALL), exit_code=0)
    assert counts["compensations_out_of_order"] == 1
    # The description names the kill that cut the rollback off.
    assert details[0].startswith(
        "compensations_out_of_order: run_1: expected ['charge', 'price', 'reserve'], "
        "log: fail charge (pid 20, kill 1), start price (pid 30), done price (pid 30)"
    )


def test_a_dropped_compensation_is_missing() -> None:
    log = [*STEPS_DONE, *rollback("charge", "reserve")]
    assert violations(failed_saga(log, ("charge", "reserve"))) == {
        "compensations_missing": 1,
        "compensations_out_of_order": 1,  # reserve's ran before price's was done
    }


def test_a_compensation_the_store_does_not_mark_compensated_is_missing() -> None:
    log = [*STEPS_DONE, *rollback(*ALL)]
    assert violations(failed_saga(log, ("charge", "price"))) == {"compensations_missing": 1}


def test_a_compensation_done_twice_by_one_process_is_a_repeat() -> None:
    log = [*STEPS_DONE, *rollback("charge", "price", "price", "reserve")]
    assert violations(failed_saga(log, ALL)) == {"compensations_repeated": 1}


def test_a_compensation_redone_after_a_kill_before_its_checkpoint_is_allowed() -> None:
    log = [*STEPS_DONE, *rollback("charge", "price", pid=KILLED)]
    log += rollback("price", "reserve", pid=RESTARTED)
    assert violations(failed_saga(log, ALL)) == {}


def test_a_compensation_redone_although_its_process_went_on_is_a_repeat() -> None:
    # The killed process logged the next compensation's start: the first one's
    # checkpoint had committed, so running it again repeats it.
    log = [*STEPS_DONE, *rollback("charge"), *rollback("price", pid=KILLED)]
    log += [comp("start", "reserve", KILLED), *rollback("price", "reserve", pid=RESTARTED)]
    assert violations(failed_saga(log, ALL)) == {"compensations_repeated": 1}


def test_a_compensation_of_a_step_after_the_failure_is_unexpected() -> None:
    log = [*STEPS_DONE, *rollback("pack", *ALL)]
    assert violations(failed_saga(log, ALL)) == {"compensations_unexpected": 1}


def test_lost_events_undelivered_pairs_and_stuck_runs_are_counted() -> None:
    evidence = failed_saga([*STEPS_DONE, *rollback(*ALL)], ALL)
    evidence.ops = [
        {"op": "emit", "name": "user.signed_up", "key": "e1", "id": "evt_1"},
        {"op": "emit", "name": "order.placed", "key": "e2", "id": "evt_2"},
    ]
    evidence.events = {"evt_2": {"name": "order.placed", "key": "e2", "source_run_id": None}}
    evidence.deliveries = {
        ("evt_2", "orders"): {"status": "done", "attempts": 1},
        ("evt_2", "audit"): {"status": "pending", "attempts": 0},
    }
    evidence.log.append(
        {"kind": "handler", "phase": "done", "subscriber": "orders", "event_id": "evt_2", "pid": 1}
    )
    evidence.runs["run_2"] = run_row("job-tick", "running", BEFORE)
    evidence.runs["run_3"] = run_row("job-tick", "pending", AFTER)
    assert violations(evidence) == {
        # evt_1 not stored, and so delivered neither to signups nor to audit.
        "events_lost": 3,
        # evt_2's audit delivery still pending when the campaign gave up waiting.
        "deliveries_stuck": 1,
        # orders is done with evt_2, yet no run of it was stored.
        "runs_lost": 1,
        # run_2 was created before the load stopped; run_3 fired during the stop.
        "runs_stuck": 1,
    }


def test_two_runs_for_one_nominal_time_are_a_cron_duplicate() -> None:
    evidence = failed_saga([*STEPS_DONE, *rollback(*ALL)], ALL)
    at = "2026-11-30T11:58:00+00:00"
    for run_id in ("run_a", "run_b"):
        line = step("beat", run_id) | {"run_id": run_id, "nominal": at}
        evidence.log.append(line)
        evidence.steps[(run_id, "beat")] = {"status": "completed", "output": {"nonce": run_id}}
    assert violations(evidence) == {"cron_duplicates": 1}


def test_a_service_that_does_not_exit_0_on_sigterm_is_counted() -> None:
    counts, details = judge(failed_saga([*STEPS_DONE, *rollback(*ALL)], ALL), exit_code=1)
    assert counts["unclean_exit"] == 1
    assert details == ["unclean_exit: the last service exited with 1 on SIGTERM"]
