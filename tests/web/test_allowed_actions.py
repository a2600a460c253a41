"""Which of Pause, Resume, Cancel and Retry a run's page offers: the state table's answer
(DESIGN 2.1) for the run as it is, neither refused nor already in effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.models import RunAction
from runtime.web.console import allowed_actions

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
P, R, C, T = RunAction.PAUSE, RunAction.RESUME, RunAction.CANCEL, RunAction.RETRY


def run(status: str, **fields: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": "run_1",
        "status": status,
        "owner_id": None,
        "control": None,
        "wake_at": None,
        "steps": [],
    }
    return {**shown, **fields}


@pytest.mark.parametrize(
    ("shown", "offered"),
    [
        (run("pending"), [P, C]),
        (run("running", owner_id="wrk_1"), [P, C]),
        (run("sleeping", wake_at=(NOW + timedelta(hours=1)).isoformat()), [P, C]),
        (run("paused"), [R, C]),
        # A pause asked of a held run, not yet in effect: it can be withdrawn (Resume).
        (run("running", owner_id="wrk_1", control="pause"), [R, C]),
        # A cancel under way refuses a pause.
        (run("running", owner_id="wrk_1", control="cancel"), [C]),
        (run("compensating"), [C]),
        (run("completed"), []),
        (run("failed"), [T]),
        (run("compensation_failed"), [T]),
        (run("canceled"), [T]),
    ],
)
def test_the_actions_offered_follow_the_state_table(
    shown: dict[str, Any], offered: list[RunAction]
) -> None:
    assert allowed_actions(shown, NOW) == offered
