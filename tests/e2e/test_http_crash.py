"""What the HTTP API accepted survives SIGKILL: ``runtime start --http``, killed twice.

A client posts runs (``POST /api/workflows/greet/runs``) and events (``POST
/api/events``), each with an idempotency key, to ``runtime start --http`` while the
service is killed with SIGKILL twice mid-work and started again. Like a real client,
it sends a request again with the same key when it got no answer (the connection
refused or cut by the kill). Afterwards: every key answered 202 or 200 has exactly
one run or event (the answered id), every run completed once with its output, every
event reached both subscribers, and no step whose checkpoint a killed process had
committed ran again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import httpx

from tests.helpers.processes import Project, Service

COUNT = 12
"""Runs started over HTTP, and events emitted over HTTP (each)."""

PAUSE = 0.05
"""Seconds between two requests of the client."""

SUBSCRIBERS = ("welcome", "audit")
STEPS = ("compose", "send", "archive")
DEADLINE = 20.0


def greeted(name: str) -> dict[str, object]:
    return {"sent": f"Hello {name}", "archived": True}


class Poster:
    """The client: sends every request until it gets an answer, to whichever service is up."""

    def __init__(self) -> None:
        self.base: str | None = None
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.retried: set[str] = set()
        self.finished = False

    async def _send(self, key: str, path: str, body: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                base = self.base
                if base is not None:
                    try:
                        answer = await client.post(f"{base}{path}", json=body)
                    except httpx.TransportError:
                        self.retried.add(key)
                    else:
                        assert answer.status_code in (200, 202), (key, answer.text)
                        self.answers[key] = (answer.status_code, answer.json())
                        return
                await anyio.sleep(0.02)

    async def run(self) -> None:
        for i in range(COUNT):
            key = f"http-{i}"
            await self._send(
                key,
                "/api/workflows/greet/runs",
                {"input": {"name": f"run-{i}"}, "idempotency_key": key},
            )
            await anyio.sleep(PAUSE)
            key = f"event-{i}"
            await self._send(
                key,
                "/api/events",
                {"name": "user.signed_up", "data": {"name": f"user-{i}"}, "idempotency_key": key},
            )
            await anyio.sleep(PAUSE)
        self.finished = True


def done_steps(project: Project) -> int:
    return sum(1 for line in project.execution_log() if line.get("phase") == "done")


def committed(project: Project) -> set[tuple[str, str]]:
    return set(project.query("SELECT run_id, name FROM steps WHERE status = 'completed'"))


async def start(project: Project, poster: Poster) -> Service:
    service = project.start_service("--http", "127.0.0.1:0")
    await service.wait_ready()
    poster.base = service.http_url()
    return service


async def test_what_the_api_accepted_survives_two_sigkills(project: Project) -> None:
    poster = Poster()
    services: list[Service] = []
    committed_at_kill: list[set[tuple[str, str]]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(poster.run)
        for _ in range(2):
            service = await start(project, poster)
            services.append(service)
            target = done_steps(project) + 12

            def progressed(target: int = target) -> bool:
                return done_steps(project) >= target

            await service.wait_for(progressed, DEADLINE, "steps")
            service.sigkill()  # the client's next requests meet a closed port
            committed_at_kill.append(committed(project))
        last = await start(project, poster)
        services.append(last)

    # Every request got its answer in the end; some were sent to a killed service.
    assert poster.finished
    assert len(poster.answers) == 2 * COUNT
    assert poster.retried, "no request met a killed service: the kills tested nothing"

    total = COUNT + COUNT * len(SUBSCRIBERS)

    def finished() -> bool:
        runs = project.runs()
        return len(runs) == total and all(r["status"] == "completed" for r in runs.values())

    await last.wait_for(finished, DEADLINE, "every run to complete")

    # One run per idempotency key, the one the API answered with, completed once.
    runs = project.runs()
    keys = project.query("SELECT idempotency_key, COUNT(*) FROM runs GROUP BY idempotency_key")
    assert all(count == 1 for _, count in keys)
    for i in range(COUNT):
        status, body = poster.answers[f"http-{i}"]
        run = runs[f"http-{i}"]
        assert body["run_id"] == run["id"]
        assert body["created"] is (status == 202)
        assert run["output"] == greeted(f"run-{i}")

    # One event per key, the one answered; each reached both subscribers, whose runs completed.
    events = dict(project.query("SELECT idempotency_key, id FROM events"))
    deliveries = project.deliveries()
    for i in range(COUNT):
        status, body = poster.answers[f"event-{i}"]
        event_id = events[f"event-{i}"]
        assert body["event_id"] == event_id
        assert body["created"] is (status == 202)
        for subscriber in SUBSCRIBERS:
            assert deliveries[event_id, subscriber]["status"] == "done"
            run = runs[f"{subscriber}:{event_id}:greet"]
            assert run["output"] == greeted(f"user-{i}")

    # No step finished twice in one process; none committed before a kill ran after it.
    pids = [service.pid for service in services]
    steps = [line for line in project.execution_log() if "step" in line]
    assert {line["pid"] for line in steps} <= set(pids)
    done = Counter(
        (line["run_id"], line["step"], line["pid"]) for line in steps if line["phase"] == "done"
    )
    assert max(done.values()) == 1
    for kill, before in enumerate(committed_at_kill):
        later = set(pids[kill + 1 :])
        for line in steps:
            if line["pid"] in later:
                assert (line["run_id"], line["step"]) not in before, (
                    f"{line['step']} of {line['run_id']} was committed, then ran again"
                )
    for run in runs.values():
        for step in STEPS:
            assert sum(done[run["id"], step, pid] for pid in pids) >= 1, (run["id"], step)

    assert await last.stop(5.0) == 0, last.tail()
