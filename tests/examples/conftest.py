"""Fixtures for the examples: the demo services in a container, and a runtime around them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import services
from runtime import Container, Runtime


@pytest.fixture
def container() -> Container:
    """A container holding fresh demo services (as ``runtime.toml``'s setup hook does)."""
    container = Container()
    services.setup(container)
    return container


@pytest.fixture
async def rt(db_url: str, container: Container) -> AsyncIterator[Runtime]:
    """A runtime on a fresh SQLite file, resolving the demo services."""
    async with Runtime(database=db_url, container=container) as runtime:
        yield runtime
