"""A real Ctrl-C in an application that embeds a Runtime stops it; it is no step failure.

Without ``runtime start`` (whose SIGINT arrives through a signal receiver), Python
raises SIGINT's ``KeyboardInterrupt`` in whatever the main thread runs: an async
step's code, when it blocks the loop. That one must stop the application, as a
Ctrl-C does; a ``KeyboardInterrupt`` the code raises itself stays a failure
(tests/engine/test_user_exceptions.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from runtime.usercode import from_a_signal, is_failure

APP = """
import asyncio, sys, time
from runtime import Runtime, WorkflowResponse, configure_logging, create_step, create_workflow

async def spin() -> None:
    print("spinning", flush=True)
    while True:
        time.sleep(0.01)  # blocks the loop: SIGINT's KeyboardInterrupt lands in this code

step = create_step("spin", spin, max_retries=0)
wf = create_workflow("spin", lambda: WorkflowResponse(step()))

async def main() -> None:
    async with Runtime(sys.argv[1], workflows=[wf], background=False) as rt:
        result = await wf(rt.container).run(throw_on_error=False)
        print("run ended", result.status.value, flush=True)

configure_logging()  # the application's entry point: log lines to stderr, not stdout
asyncio.new_event_loop().run_until_complete(main())  # no SIGINT handler of asyncio's
"""


def test_a_ctrl_c_during_an_async_step_stops_the_application(tmp_path: Path) -> None:
    """Bug: the KeyboardInterrupt of a real Ctrl-C, raised in an async step's code, was
    counted a step failure: the run failed (or was retried) and the application went on
    as if nothing had been asked of it."""
    (tmp_path / "app.py").write_text(APP)
    database = tmp_path / "app.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    app = subprocess.Popen(
        [sys.executable, str(tmp_path / "app.py"), f"sqlite:///{database}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert app.stdout is not None
        assert app.stdout.readline() == "spinning\n"  # blocks until the step runs
        app.send_signal(signal.SIGINT)
        out, err = app.communicate(timeout=30)
    finally:
        app.kill()
        app.wait()
    assert "run ended" not in out, out
    assert app.returncode != 0
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    with sqlite3.connect(database) as db:
        (status,) = db.execute("SELECT status FROM runs").fetchone()
        attempts = db.execute("SELECT count(*) FROM steps WHERE status = 'failed'").fetchone()
    assert status in ("running", "pending"), status  # resumed on the next start
    assert attempts == (0,)


def _raise_it() -> None:
    raise KeyboardInterrupt


def test_a_keyboard_interrupt_the_code_raises_is_its_failure() -> None:
    try:
        _raise_it()
    except KeyboardInterrupt as exc:
        assert not from_a_signal(exc)
        assert is_failure(exc)


def test_a_keyboard_interrupt_from_sigint_is_not_a_failure() -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            signal.raise_signal(signal.SIGINT)  # the handler raises as the call returns
        except KeyboardInterrupt as exc:
            assert from_a_signal(exc)
            assert not is_failure(exc)
        else:
            raise AssertionError("SIGINT raised nothing")
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_keyboard_interrupt_from_an_applications_own_sigint_handler_is_not_a_failure() -> None:
    """An embedding application's handler that raises KeyboardInterrupt itself stops at
    its ``raise``, like code; it is told apart by being the installed SIGINT handler."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt as exc:
            assert from_a_signal(exc)
            assert not is_failure(exc)
        else:
            raise AssertionError("SIGINT raised nothing")
    finally:
        signal.signal(signal.SIGINT, previous)
