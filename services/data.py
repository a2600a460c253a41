"""Data from outside: the three-stage user-data pipeline, and a third-party API synced in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.journal import DemoService, Journal


class UserDataService(DemoService):
    """The three stages of the data pipeline: an external source, a transform, a table.

    Attributes:
        source: the raw records the external API returns.
        table: the saved (transformed) records, by id.
    """

    name = "user_data"

    def __init__(
        self, source: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.source: list[dict[str, Any]] = [dict(r) for r in source]
        self.table: dict[int, dict[str, Any]] = {}

    async def fetch_raw_data(self) -> list[dict[str, Any]]:
        """Stage 1: the raw records, as the external API sends them."""
        return [dict(r) for r in self.source]

    def transform_data(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stage 2 (plain, synchronous code): tidy names, lower-case e-mail addresses."""
        return [
            {
                "id": r["id"],
                "name": " ".join(r["name"].split()).title(),
                "email": r["email"].strip().lower(),
            }
            for r in raw
        ]

    async def save_to_database(self, rows: list[dict[str, Any]]) -> int:
        """Stage 3: upsert the rows by id; returns how many were written."""
        for row in rows:
            self.table[row["id"]] = dict(row)
            self._record("save_to_database", str(row["id"]))
        return len(rows)


class ExternalDataService(DemoService):
    """A third-party API whose changes are synced in (the pause-and-resume example).

    Attributes:
        changes: source name -> the changes the API reports for it.
        applied: source name -> every change applied, in order.
    """

    name = "external_data"

    def __init__(
        self,
        changes: dict[str, list[dict[str, Any]]] | None = None,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(journal)
        self.changes: dict[str, list[dict[str, Any]]] = {
            k: [dict(c) for c in v] for k, v in (changes or {}).items()
        }
        self.applied: dict[str, list[dict[str, Any]]] = {}

    async def fetch_changes(self, source: str) -> list[dict[str, Any]]:
        """The changes of ``source`` since the last sync (none for an unknown source)."""
        return [dict(c) for c in self.changes.get(source, [])]

    async def apply_changes(self, source: str, changes: list[dict[str, Any]]) -> int:
        """Apply fetched changes locally; returns how many."""
        self.applied.setdefault(source, []).extend(dict(c) for c in changes)
        self._record("apply_changes", f"{source} {len(changes)}")
        return len(changes)
