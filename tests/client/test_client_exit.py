"""A script that uses a client and never closes it exits cleanly, its writes kept.

Real processes: what is tested is the interpreter's exit (threads it waits for,
finalizers that run after the event loop closed).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from tests.helpers.backends import opened

SYNC = """
    import sys
    from runtime import SyncClient

    DATABASE = sys.argv[1]

    c = SyncClient(DATABASE)
    print(c.list_runs(limit=1).runs)
    c.emit("a.b", {"n": 1})


    def view():  # a client made per request and dropped, never closed
        return SyncClient(DATABASE).emit("a.b", {"n": 2})


    view()
"""

ASYNC_LOCAL = """
    import asyncio
    import sys
    from runtime import Client

    DATABASE = sys.argv[1]

    async def main():
        client = Client(DATABASE)  # as the README shows, no close()
        await client.emit("a.b", {"n": 1})
        await client.emit("a.b", {"n": 2})

    asyncio.run(main())
"""

ASYNC_GLOBAL = """
    import asyncio
    import sys
    from runtime import Client

    DATABASE = sys.argv[1]

    client = Client(DATABASE)

    async def main():
        await client.emit("a.b", {"n": 1})
        await client.emit("a.b", {"n": 2})

    asyncio.run(main())
"""


@pytest.mark.parametrize(
    "script", [SYNC, ASYNC_LOCAL, ASYNC_GLOBAL], ids=["sync", "async", "global"]
)
async def test_a_client_never_closed_lets_the_script_exit_cleanly(
    db_url: str, tmp_path: Path, script: str
) -> None:
    (tmp_path / "x.py").write_text(textwrap.dedent(script))
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "x.py", db_url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    )
    assert (done.returncode, done.stderr) == (0, "")
    async with opened(db_url) as store:
        page = await store.list_events(name="a.b", limit=10)
    assert sorted(e.data["n"] for e in page.items) == [1, 2]
