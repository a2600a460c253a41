"""What every backend's listings check the same way: the statuses asked for, the page size."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from runtime.errors import StoreArgumentError


def status_values(kind: type[StrEnum], given: Sequence[Any] | None) -> list[str]:
    """The values of the statuses a listing asks for.

    Raises:
        StoreArgumentError: one of them is not a ``kind``.
    """
    try:
        return [kind(status).value for status in given or ()]
    except ValueError:
        known = ", ".join(status.value for status in kind)
        raise StoreArgumentError(
            f"unknown status in {list(given or ())!r}; known: {known}"
        ) from None


def page_limit(limit: int) -> int:
    """``limit``, a listing's page size, checked.

    Raises:
        StoreArgumentError: it is less than 1.
    """
    if limit < 1:
        raise StoreArgumentError(f"limit must be >= 1, got {limit}")
    return limit
