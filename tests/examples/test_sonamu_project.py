"""The Sonamu examples are part of the project: discovery finds them, with their schedules."""

from __future__ import annotations

from pathlib import Path

from runtime.config import load_project_config
from runtime.discovery import discover
from runtime.scheduling.entries import schedules_for
from tests.examples.sonamu import SONAMU_WORKFLOWS

ROOT = Path(__file__).resolve().parents[2]


def test_discovery_finds_every_sonamu_example_and_its_schedules() -> None:
    found = discover(load_project_config(ROOT, environ={}))

    assert found.problems == []
    discovered = {(w.name, w.version) for w in found.workflows}
    assert {(w.name, w.version) for w in SONAMU_WORKFLOWS} <= discovered
    assert ("send_welcome_email", "v1") in discovered
    assert ("send_welcome_email", "v2") in discovered
    schedules = {s.name for s in schedules_for(found.jobs, found.workflows)}
    assert {
        "daily_report:daily_at_9am",
        "backup_data:hourly_backup",
        "backup_data:daily_full_backup",
        "cleanup_old_data:daily_cleanup",
    } <= schedules
