"""The e2e tests' project: a copy of ``tests/e2e/project`` whose processes are killed after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import Project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path / "app")
    try:
        yield project
    finally:
        project.kill_all()
