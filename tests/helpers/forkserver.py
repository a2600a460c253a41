"""A fork server for the crash tests: import a child app once, then fork a real process per start.

A crash scenario starts its child app two to four times (killed, restarted, killed
again); started with ``python -m``, each start spends most of its ~0.4 s importing.
This process imports the app once and forks a child per request, so a start costs a
fork and the app's own start-up. Each child is a real process: SIGKILL ends it with
no cleanup and no final write, exactly as for a freshly exec'd one.

The server is single-threaded and has never run an event loop when it forks, so a
child starts from a clean state. Protocol, one JSON line each way:

- in (stdin): ``{"argv": [...], "err": PATH, "status": PATH}``: fork a child that
  runs ``anyio.run(app.main, app.parse(argv))`` with stdout and stderr going to
  ``err``; the server answers with the child's pid;
- ``status``: written (atomically) by the server when the child ended, as
  ``{"pid", "exit", "signal"}`` (``exit`` is ``None`` when a signal ended it);
- end of stdin: the server SIGKILLs the children still running, reaps them, and exits.

Usage: ``python -m tests.helpers.forkserver MODULE`` (``tests.engine.rollback_app``).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

REAP_EVERY = 0.01
"""Seconds between two looks for ended children while no request comes."""


def _child(app: Any, request: dict[str, Any]) -> None:
    """In the forked child: run the app, then leave without the server's cleanup."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(err, 1)
        os.dup2(err, 2)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import anyio  # imported by the app already: free

        anyio.run(app.main, app.parse(request["argv"]))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _write_status(path: str, pid: int, wait_status: int) -> None:
    status = {
        "pid": pid,
        "exit": os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else None,
        "signal": os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None,
    }
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, path)


def serve(module: str) -> None:
    """Answer fork requests on stdin until it closes."""
    app = importlib.import_module(module)
    children: dict[int, str] = {}  # pid -> its status file
    pending = b""

    def reap(block: bool = False) -> None:
        while children:
            pid, wait_status = os.waitpid(-1, 0 if block else os.WNOHANG)
            if pid == 0:
                return
            path = children.pop(pid, None)
            if path is not None:
                _write_status(path, pid, wait_status)

    while True:
        ready, _, _ = select.select([0], [], [], REAP_EVERY)
        reap()
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(app, request)
            children[pid] = request["status"]
            os.write(1, f"{pid}\n".encode())
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    reap(block=True)


if __name__ == "__main__":
    serve(sys.argv[1])
