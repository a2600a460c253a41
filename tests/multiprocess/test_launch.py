"""The short-lease launcher reaches every module that reads the lease, or the multi-process
tests would mix two lease lengths without a word."""

from __future__ import annotations

import re
from pathlib import Path

import runtime
from tests.multiprocess.launch import READERS

PACKAGE = Path(runtime.__file__).resolve().parent


def test_every_module_that_reads_the_lease_is_shortened() -> None:
    readers = set()
    for path in PACKAGE.rglob("*.py"):
        if re.search(r"\bLEASE_TTL\b", path.read_text(encoding="utf-8")):
            module = path.relative_to(PACKAGE.parent).with_suffix("").as_posix()
            readers.add(module.replace("/", "."))
    assert readers == {module.__name__ for module in READERS}
