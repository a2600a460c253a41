"""Random arguments to ``emit``, ``run`` and ``runs list``: exit 0, or exit 2 with one
``error:`` line; never a traceback, and nothing stored on an error."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.models import RunStatus
from tests.cli.conftest import FILES
from tests.cli.inprocess import Outcome, invoke
from tests.properties.strategies import FAST, json_ish

arguments = st.text(st.characters(exclude_characters="\x00"), max_size=12)
seconds = st.one_of(
    arguments,
    st.floats().map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


def payload_text(value: Any) -> str:
    try:
        return json.dumps(value)  # NaN and Infinity come out as such; too deep raises
    except (RecursionError, ValueError):
        return "[" * 2000


payloads = st.one_of(json_ish.map(payload_text), arguments)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return root


def rows(project: Path) -> tuple[int, int]:
    path = project / "app.db"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(path) as db:
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    return events, runs


def check(done: Outcome) -> None:
    assert done.escaped is None, repr(done.escaped)
    assert done.code in (0, 2), (done.code, done.stderr)
    if done.code == 2:
        assert done.stderr.startswith(("error: ", "Usage: ")), done.stderr
        assert "Traceback" not in done.stderr


@FAST
@given(
    name=st.one_of(st.just("order.placed"), arguments),
    data=payloads,
    metadata=st.none() | payloads,
    delay=st.none() | seconds,
)
def test_emit(project: Path, name: str, data: str, metadata: str | None, delay: str | None) -> None:
    args = ["emit", name, "--data", data]
    args += [] if metadata is None else ["--metadata", metadata]
    args += [] if delay is None else ["--delay", delay]
    before = rows(project)
    done = invoke(project, *args)
    check(done)
    events, runs = rows(project)
    assert (events, runs) == (before[0] + (done.code == 0), before[1])


@FAST
@given(workflow=st.one_of(st.sampled_from(["hello", "nightly"]), arguments), data=payloads)
def test_run(project: Path, workflow: str, data: str) -> None:
    before = rows(project)
    done = invoke(project, "run", workflow, "--input", data)
    check(done)
    assert rows(project) == (before[0], before[1] + (done.code == 0))


@FAST
@given(
    statuses=st.lists(
        st.one_of(st.sampled_from([s.value for s in RunStatus]), arguments), max_size=2
    ),
    limit=st.none() | seconds,
    workflow=st.none() | arguments,
)
def test_runs_list(
    project: Path, statuses: list[str], limit: str | None, workflow: str | None
) -> None:
    args = ["runs", "list", *(a for s in statuses for a in ("--status", s))]
    args += [] if limit is None else ["--limit", limit]
    args += [] if workflow is None else ["--workflow", workflow]
    check(invoke(project, *args, "--json"))
