"""The bus tests' fixtures."""

from __future__ import annotations

import pytest

import runtime.bus
from tests.helpers.backends import backend as backend


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed delivery is retried after milliseconds, not seconds."""
    monkeypatch.setattr(runtime.bus, "RETRY_INTERVAL", 0.005)
