"""The HTTP API served by the service (``Runtime(http=...)``, ``runtime start --http``) and
by ``runtime dashboard``: it listens, answers, needs its token, and stops with the service."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime import Runtime, create_step, create_workflow
from runtime.errors import ConfigError
from runtime.models import RunStatus
from tests.cli.conftest import FILES, command

TOKEN = "s3cret-token-for-tests"


@create_step("greet")
async def greet(name: str) -> str:
    return f"Hello {name}"


hello = create_workflow("hello", lambda input: greet(input))


async def test_the_service_serves_the_api_from_its_task_group(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    async with Runtime(url, workflows=[hello], http="127.0.0.1:0") as rt:
        port = rt.http_port
        assert port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = (await client.get("/api/health")).json()
            assert health["status"] == "ok"
            assert [w["id"] for w in health["workers"]] == [rt.identity.id]
            started = await client.post("/api/workflows/hello/runs", json={"input": "Ada"})
            assert started.status_code == 202
            run_id = started.json()["run_id"]
            await rt.workflows.wait(run_id, 10)
            shown = (await client.get(f"/api/runs/{run_id}")).json()
            assert shown["output"] == "Hello Ada"
            assert [s["name"] for s in shown["steps"]] == ["greet"]
    # Stopped with the runtime: nothing listens on the port any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_with_a_token_every_call_needs_it_but_health(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    async with Runtime(url, workflows=[hello], http="127.0.0.1:0", http_token=TOKEN) as rt:
        base = f"http://127.0.0.1:{rt.http_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/api/health")).json() == {"status": "ok"}
            refused = await client.get("/api/runs")
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "Unauthorized"
            wrong = await client.get("/api/runs", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "wrong token"
            signed = {"Authorization": f"Bearer {TOKEN}"}
            assert (await client.get("/api/runs", headers=signed)).status_code == 200
            assert "workers" in (await client.get("/api/health", headers=signed)).json()


@pytest.mark.parametrize(
    ("http", "token", "needle"),
    [
        ("0.0.0.0:8000", None, "refusing to serve the HTTP API and dashboard on 0.0.0.0:8000"),
        ("localhost", None, "must be HOST:PORT"),
        ("127.0.0.1:99999", None, "a port from 0 to 65535"),
        ("127.0.0.1:8000", "short", "at least 16 printable characters"),
    ],
)
def test_bad_http_settings_are_refused_when_the_runtime_is_made(
    tmp_path: Path, http: str, token: str | None, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        Runtime(f"sqlite:///{tmp_path / 'a.db'}", http=http, http_token=token)


def test_with_a_token_any_address_may_be_served(tmp_path: Path) -> None:
    rt = Runtime(f"sqlite:///{tmp_path / 'a.db'}", http="0.0.0.0:0", http_token=TOKEN)
    assert rt.http is not None and not rt.http.loopback


async def test_a_port_in_use_fails_the_start_naming_the_address(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        rt = Runtime(f"sqlite:///{tmp_path / 'a.db'}", http=f"127.0.0.1:{port}")
        with pytest.raises(BaseException) as caught:
            async with rt:
                pass
        leaves = _leaves(caught.value)
        assert any(
            isinstance(e, ConfigError) and f"cannot listen on 127.0.0.1:{port}" in str(e)
            for e in leaves
        ), leaves
    finally:
        taken.close()


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


# -- the CLI, as real processes ---------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The CLI tests' project (tests/cli/conftest.py): hello, a subscriber, jobs."""
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return tmp_path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _until(probe: Callable[[], Any], process: subprocess.Popen[str], log: Path) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}:\n{log.read_text()}")
        try:
            value = probe()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out:\n{log.read_text()}")


def _serve(project: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    log = project / "serve.log"
    process = subprocess.Popen(
        command(project, "--log-format", "json", *args),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, log


def test_runtime_start_with_http_serves_and_stops_on_sigterm(project: Path) -> None:
    port = _free_port()
    process, log = _serve(project, "start", "--http", f"127.0.0.1:{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        health = _until(lambda: httpx.get(f"{base}/api/health").json(), process, log)
        assert len(health["workers"]) == 1
        started = httpx.post(f"{base}/api/workflows/hello/runs", json={"input": {"name": "A"}})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        def completed() -> bool:
            return httpx.get(f"{base}/api/runs/{run_id}").json()["status"] == "completed"

        _until(completed, process, log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    listening = [e for e in events if e["event"] == "http_listening"]
    assert listening and listening[0]["address"] == f"127.0.0.1:{port}"


def test_runtime_dashboard_serves_without_a_worker(project: Path) -> None:
    # The database exists (a service made it); the dashboard only reads and manages it.
    made = subprocess.run(
        command(project, "run", "hello", "--input", '{"name": "B"}'),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.strip()
    port = _free_port()
    process, log = _serve(project, "dashboard", "--http", f"127.0.0.1:{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        health = _until(lambda: httpx.get(f"{base}/api/health").json(), process, log)
        assert health["workers"] == []  # no worker: nothing executes here
        shown = httpx.get(f"{base}/api/runs/{run_id}").json()
        assert shown["status"] == RunStatus.PENDING.value
        paused = httpx.post(f"{base}/api/runs/{run_id}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        listed = httpx.get(f"{base}/api/workflows").json()["workflows"]
        assert "hello" in [w["name"] for w in listed]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_runtime_dashboard_refuses_a_database_that_does_not_exist(project: Path) -> None:
    done = subprocess.run(
        command(project, "dashboard", "--http", "127.0.0.1:0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "error: no runtime database at" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "app.db").exists()
