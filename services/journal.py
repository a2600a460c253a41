"""What the demo services share: a journal of their writes, a base class, readable ids."""

from __future__ import annotations

from typing import ClassVar


class Journal:
    """Every write made by any demo service, in the order it happened.

    One journal is shared by all the services, so it shows the order of writes across
    them: a saga's compensations, for instance, undo the writes in reverse.
    Entries read ``"<service>.<operation> <detail>"``, e.g.
    ``"inventory.create_reservation res_1"``.
    """

    def __init__(self) -> None:
        self.entries: list[str] = []

    def record(self, entry: str) -> None:
        """Append one entry."""
        self.entries.append(entry)

    def __repr__(self) -> str:
        return f"Journal({self.entries!r})"


class DemoService:
    """Base of the demo services: a name, and a journal its writes are recorded in.

    Args:
        journal: where writes are recorded; a private one when omitted.
    """

    name: ClassVar[str] = "service"
    """The name the service is registered under in the container."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal()

    def _record(self, operation: str, detail: str) -> None:
        self.journal.record(f"{self.name}.{operation} {detail}")


class Ids:
    """Readable, deterministic ids: ``brand_1``, ``brand_2``, ..."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._last = 0

    def next(self) -> str:
        """The next id."""
        self._last += 1
        return f"{self._prefix}_{self._last}"
