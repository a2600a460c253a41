"""Review finding: a prune decides a child run's removal on its parent as the walk read it.

The walk keeps a child whose parent lives on and is not removable; the ``DELETE`` that
follows re-checks only the child's own row. An operator retrying the parent between the
two (another process) leaves a live parent whose child run was deleted.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from runtime.models import RunStatus
from runtime.store.changes import Complete
from runtime.store.pruning import PruneCutoffs
from tests.helpers.records import T0, new_run, step
from tests.store.test_contract_retention import CUTOFF, NOW, OLD, ended, exists
from tests.store.test_postgres_retention import DELETING_RUNS, before_statement, two_stores


async def test_a_child_whose_parent_is_retried_after_the_walk_is_not_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with two_stores() as (pruner, operator):
        parent = await ended(pruner, RunStatus.FAILED, OLD, steps=1)
        child_run = replace(
            new_run(status=RunStatus.RUNNING, owner="wrk_a", created_at=T0), parent_run_id=parent
        )
        child, _ = await pruner.create_run(child_run)
        await pruner.checkpoint(
            child.id, "wrk_a", [step(0, "s0")], Complete(output="null", ended_at=OLD), OLD
        )

        async def retry() -> None:
            await operator.control_run(parent, "retry", NOW)

        with before_statement(monkeypatch, DELETING_RUNS, retry) as acted:
            await pruner.prune(PruneCutoffs(completed=CUTOFF, failed=CUTOFF))

        assert acted
        assert (await pruner.get_run(parent, steps=False)).status is RunStatus.PENDING
        assert await exists(pruner, child.id), "the retried parent's child run was deleted"
