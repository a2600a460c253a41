"""A service whose database file is deleted or replaced under it stops, naming the file.

Its connections would go on writing to the old file (an unlinked inode, or the
file that was moved away), which no client, CLI or later start can see; so the
service stops with an error instead of losing every commit from then on.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.processes import Project
from tests.helpers.waiting import wait_until

EXIT_DEADLINE = 10.0
"""Seconds for the service to notice (it looks every second) and to stop."""


def delete(db: Path) -> str:
    db.unlink()
    return "was deleted"


def replace(db: Path) -> str:
    other = db.with_name("restored.db")
    sqlite3.connect(other).close()
    os.replace(other, db)
    return "was replaced by another file"


@pytest.mark.parametrize("change", [delete, replace], ids=["deleted", "replaced"])
async def test_the_service_stops_when_its_database_file_goes_away(
    project: Project, change: Callable[[Path], str]
) -> None:
    service = project.start_service()
    await service.wait_ready()
    what = change(project.db)

    await wait_until(lambda: service.process.poll() is not None, EXIT_DEADLINE, what="it to stop")
    assert service.process.returncode == 2, service.tail()
    output = service.output.read_text()
    assert "Traceback" not in output, output
    assert f"error: the database file {project.db} {what} while this process had it open" in (
        output
    )
    lost = [line for line in service.log() if line.get("event") == "database_file_lost"]
    assert lost and lost[0]["path"] == str(project.db) and lost[0]["level"] == "error"
