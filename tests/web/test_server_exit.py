"""A runtime left by ``async with`` (cancelled, not drained) shuts its HTTP server down.

Before: uvicorn's task was cancelled in its main loop, so it never shut down; the
socket was closed under the loop's still-registered listener, and the next socket
given the same descriptor (the next ``Runtime(http=...)`` in that loop, on any port)
was never watched: it accepted nothing. A kept-alive connection to the old server
went on being answered, from a closed store (503).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from runtime import Runtime


async def test_the_next_runtime_in_the_loop_serves_and_old_connections_are_closed(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(30):
        async with httpx.AsyncClient(timeout=5) as client:
            for i in range(3):
                async with Runtime(
                    f"sqlite:///{tmp_path / f'app{i}.db'}", http="127.0.0.1:0"
                ) as rt:
                    base = f"http://127.0.0.1:{rt.http_port}"
                    assert (await client.get(f"{base}/api/health")).status_code == 200
                # The kept-alive connection went with the runtime: no answer from its app.
                with pytest.raises(httpx.TransportError):
                    await client.get(f"{base}/api/health")
