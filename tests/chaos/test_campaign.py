"""A short chaos campaign in CI: 10 random SIGKILLs of ``runtime start`` under load.

One campaign (:mod:`tests.chaos.campaign`, the same code ``scripts/chaos`` runs with 300
kills) runs once for the module on each backend (a SQLite file, a PostgreSQL schema);
each test asserts one family of promises on its summary, so a failure names the promise
and the campaign's seed and details.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.campaign import Settings, run_campaign
from tests.helpers.databases import BACKENDS, database

KILLS = 10
SEED = 20261130
"""Fixed, so a failure here can be replayed with ``scripts/chaos --kills 10 --seed 20261130``
(the kills land at the same delays; what they cut off depends on timing too)."""


@pytest.fixture(scope="module", params=BACKENDS)
def summary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    folder: Path = tmp_path_factory.mktemp("chaos")
    with database(request.param, folder) as db:
        # On SQLite, the project's own file (in the campaign's copy of the project).
        url = db.url if db.backend == "postgresql" else None
        settings = Settings(
            kills=KILLS, seed=SEED, drain_timeout=30.0, workdir=folder, keep=True, database=url
        )
        yield run_campaign(settings)


def _none(summary: dict[str, Any], *names: str) -> None:
    found = {name: summary["violations"][name] for name in names}
    assert all(n == 0 for n in found.values()), f"seed {summary['seed']}: {found}\n" + "\n".join(
        summary["details"]
    )


def test_the_campaign_killed_the_service_under_load_and_it_stopped_cleanly(
    summary: dict[str, Any],
) -> None:
    assert summary["kills"] == KILLS, json.dumps(summary, indent=1)
    assert summary["last_exit_code"] == 0
    # The load ran across the kills, and both outcomes were exercised.
    assert summary["operations"] >= KILLS
    assert summary["completed"] > 0
    assert summary["failed"] > 0
    assert summary["compensations_run"] > 0
    assert summary["cron_firings"].get("started", 0) > 0
    _none(summary, "unclean_exit")
    campaign = [d for d in summary["details"] if d.startswith("campaign:")]
    assert campaign == []


def test_no_event_or_run_is_lost(summary: dict[str, Any]) -> None:
    _none(summary, "events_lost", "deliveries_dead", "runs_lost")


def test_no_run_or_delivery_is_stuck_and_each_run_ends_as_its_input_says(
    summary: dict[str, Any],
) -> None:
    _none(summary, "runs_stuck", "deliveries_stuck", "runs_wrong_outcome", "staged_events_wrong")


def test_no_finished_step_runs_again(summary: dict[str, Any]) -> None:
    _none(summary, "steps_repeated", "steps_unaccounted")


def test_no_compensation_runs_twice_or_unasked(summary: dict[str, Any]) -> None:
    _none(summary, "compensations_repeated", "compensations_unexpected")


def test_compensations_run_in_design_order_and_none_is_dropped(summary: dict[str, Any]) -> None:
    _none(summary, "compensations_out_of_order", "compensations_missing")


def test_no_cron_firing_is_duplicated(summary: dict[str, Any]) -> None:
    _none(summary, "cron_duplicates")
