"""Event routing: which subscribers an event fans out to (DESIGN 2.4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runtime.sdk.specs import pattern_matches


@dataclass(frozen=True, slots=True)
class Route:
    """An active subscriber as routing sees it.

    Attributes:
        subscriber_id: the subscriber's id.
        patterns: the event names and patterns it listens to (``*``, ``order.*``).
        max_attempts: the attempts each of its deliveries gets.
    """

    subscriber_id: str
    patterns: tuple[str, ...]
    max_attempts: int


def route(event_name: str, subscribers: Iterable[Route]) -> list[Route]:
    """The subscribers an event named ``event_name`` is delivered to, in the order given.

    A subscriber gets one delivery however many of its patterns match.
    """
    return [s for s in subscribers if any(pattern_matches(p, event_name) for p in s.patterns)]
