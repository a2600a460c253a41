"""What every backend's listings check the same way: the statuses asked for, the page size."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from runtime.clock import from_text
from runtime.errors import StoreArgumentError
from runtime.ids import is_id


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


def run_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) of the last run of a page, from its ``RunPage.next_cursor``
    (``<created_at as UTC text>|<run id>``, the same text on every backend).

    Raises:
        StoreArgumentError: ``cursor`` is not one a listing returned.
    """
    created, _, run_id = cursor.partition("|")
    try:
        moment = from_text(created)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not is_id(run_id, "run"):
        raise StoreArgumentError(f"bad cursor {cursor!r}: pass back a RunPage.next_cursor")
    return moment, run_id
