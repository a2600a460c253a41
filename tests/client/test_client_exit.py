"""A script that uses a client and never closes it exits cleanly, its writes kept.

Real processes: what is tested is the interpreter's exit (threads it waits for,
finalizers that run after the event loop closed).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SYNC = """
    from runtime import SyncClient

    c = SyncClient("sqlite:///l.db")
    print(c.list_runs(limit=1).runs)
    c.emit("a.b", {"n": 1})


    def view():  # a client made per request and dropped, never closed
        return SyncClient("sqlite:///l.db").emit("a.b", {"n": 2})


    view()
"""

ASYNC_LOCAL = """
    import asyncio
    from runtime import Client

    async def main():
        client = Client("sqlite:///l.db")  # as the README shows, no close()
        await client.emit("a.b", {"n": 1})
        await client.emit("a.b", {"n": 2})

    asyncio.run(main())
"""

ASYNC_GLOBAL = """
    import asyncio
    from runtime import Client

    client = Client("sqlite:///l.db")

    async def main():
        await client.emit("a.b", {"n": 1})
        await client.emit("a.b", {"n": 2})

    asyncio.run(main())
"""


@pytest.mark.parametrize(
    "script", [SYNC, ASYNC_LOCAL, ASYNC_GLOBAL], ids=["sync", "async", "global"]
)
def test_a_client_never_closed_lets_the_script_exit_cleanly(tmp_path: Path, script: str) -> None:
    (tmp_path / "x.py").write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, "x.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stderr) == (0, "")
    with sqlite3.connect(tmp_path / "l.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (2,)
