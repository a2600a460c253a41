"""The guard that stops a Runtime whose database file was deleted under it."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from runtime import DatabaseReplacedError, Runtime
from runtime import watch as watch_module
from runtime.testing import ManualClock


async def test_the_file_guard_waits_on_the_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: the guard waited with a bare ``anyio.sleep`` (real time) while the service's
    other loops wait on its clock. With a period no test would wait for in real time, only
    the injected clock's advance can make it look: before, this timed out."""
    monkeypatch.setattr(watch_module, "FILE_CHECK_INTERVAL", 3600.0)
    clock = ManualClock()
    path = tmp_path / "app.db"
    with pytest.raises(BaseException) as caught, anyio.fail_after(10):
        async with Runtime(f"sqlite:///{path}", clock=clock, background=False):
            os.remove(path)
            clock.advance(3600)
            await anyio.sleep_forever()
    leaves = [caught.value]
    while isinstance(leaves[0], BaseExceptionGroup):
        leaves = list(leaves[0].exceptions)
    assert [type(leaf) for leaf in leaves] == [DatabaseReplacedError]
