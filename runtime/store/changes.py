"""What a checkpoint does to its run: one named change each, which a backend writes as one
statement (with the checkpoint's step records, in the same transaction).

The engine names what happens to the run; the backend decides how to write it. A
backend implements :data:`RunChange` with a ``match`` over these classes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TypeAlias

from runtime.models import RunStatus
from runtime.store.records import NewEvent


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    """Only the steps are written: the run's row is read (its owner checked, an operator's
    request returned), not rewritten, so it costs no write of its own."""


@dataclasses.dataclass(frozen=True, slots=True)
class Complete:
    """The run ends ``completed`` with ``output``, released; the events its steps staged are
    published, with ``events``.

    Only when no operator's request is pending: with one pending, the steps are written,
    the run is left as it was, and the request is returned for the driver to obey.
    """

    output: str
    ended_at: datetime
    events: tuple[NewEvent, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Park:
    """A long retry wait: ``sleeping``, released, due again at ``until``."""

    until: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """A durable sleep: ``sleeping``, released, due (and waking) at ``until``."""

    until: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Woke:
    """A durable sleep is over: its wake-up time is cleared."""


@dataclasses.dataclass(frozen=True, slots=True)
class Pause:
    """An operator's pause, obeyed: ``paused`` and released."""


@dataclasses.dataclass(frozen=True, slots=True)
class Release:
    """Handed back to the queue (a shutdown): ``pending``, released, due at ``available_at``."""

    available_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class StartRollback:
    """The run turns ``compensating`` with ``error`` (JSON of a ``StepError``), when given.

    ``cancel``: an operator's cancel, so the rollback ends ``canceled``.
    """

    error: str | None = None
    cancel: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EndRollback:
    """The rollback is over: the run ends ``status``, released, its staged events dropped,
    ``events`` (its failure event) published.

    An operator's cancel that landed during the rollback wins over ``failed`` (the run
    ends ``canceled``), never over ``compensation_failed``.
    """

    status: RunStatus
    ended_at: datetime
    events: tuple[NewEvent, ...] = ()

    @property
    def cancel_wins(self) -> bool:
        """Whether a cancel recorded on the run replaces ``status``."""
        return self.status is not RunStatus.COMPENSATION_FAILED


RunChange: TypeAlias = (
    Progress | Complete | Park | Sleep | Woke | Pause | Release | StartRollback | EndRollback
)
"""Everything a checkpoint can do to its run."""

PROGRESS = Progress()
