"""Schemathesis against the app's own OpenAPI document: no 500s, no answer the document
does not describe, bad input refused, good input accepted.

Schemathesis's engine runs its phases as its command line does (the document's examples,
coverage of each parameter's edges, methods a path does not take, random requests valid
and invalid, and stateful sequences along the document's links): it sends them to the ASGI
app of :func:`runtime.web.create_app` in process and runs every check it has on each
answer. (Its pytest plugin is not used: 4.32.5 reads a node attribute pytest 9 dropped.)
The app serves a project folder (tests/web/apiproject.py) with a token, over a database
its service seeded: runs of every kind, an event and a dead delivery, so the paths reach
their 200s as well as their errors. Schemathesis starts the app's lifespan on its
first request; the test ends it (the app closes its store) before the database goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import schemathesis
from schemathesis.engine import Status, events
from schemathesis.python import asgi

from runtime.web import create_app
from tests.helpers.backends import BACKENDS
from tests.web.apiproject import SIGNED, TOKEN, database, seed, write_project

CONFIG: dict[str, Any] = {
    "headers": SIGNED,
    "workers": 1,
    "seed": 11,
    # Bounded: the whole test takes seconds per backend (`pytest --durations` shows them).
    "generation": {"max-examples": 25, "mode": "all"},
    "phases": {"stateful": {"max-steps": 25}},
    "checks": {
        # Valid by the document is not always accepted, by design: a `cursor` is any text
        # to the document but only a `next_cursor` the server gave is one (else 400), and
        # a durable workflow's input has its own schema, chosen by the {name} in the path
        # (422), which one document for every project cannot state. Every other check
        # runs, negative data rejection among them.
        "positive_data_acceptance": {"enabled": False},
    },
}


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The app over a seeded project database; its lifespan ended after the test."""
    folder = write_project(tmp_path)
    with database(request.param, folder) as url:
        anyio.run(seed, folder, url)
        app = create_app(url, TOKEN, project=folder)
        try:
            yield app
        finally:
            asgi.shutdown_lifespans()  # the app's lifespan, started by schemathesis


def test_the_api_keeps_to_its_document(served: Any) -> None:
    config = schemathesis.Config.from_dict(CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", served, config=config, headers=SIGNED)
    problems: list[str] = []
    tested: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {event.value!r}")
        if isinstance(event, events.ScenarioFinished):
            tested.add(event.recorder.label)
            if event.status in (Status.FAILURE, Status.ERROR):
                problems.extend(_failures(event.recorder))
    assert not problems, "\n\n".join(problems)
    # Every operation was sent requests (schemathesis leaves out the document's own
    # path, GET /openapi.json: tests/web/test_api.py reads it).
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert len(operations) == 16 and operations <= tested


def _failures(recorder: Any) -> list[str]:
    found = []
    for checks in recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                found.append(
                    f"{recorder.label} [{check.name}] {failure.title}: {failure.message}\n"
                    f"{check.failure_info.code_sample}"
                )
    return found
