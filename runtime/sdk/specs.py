"""What users declare in ``subscribers/`` and ``jobs/``: configs, events, handler arguments.

Configs validate when they are constructed, so a bad pattern or cron
expression fails at import time with the reason (discovery adds the file).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from runtime.codec import dumps
from runtime.cron import CronSchedule
from runtime.errors import DefinitionError
from runtime.limits import (
    MAX_ATTEMPTS,
    MAX_EXECUTIONS,
    MAX_RETRIES,
    count,
    duration,
    shown,
    text,
)
from runtime.models import Overlap

if TYPE_CHECKING:
    from runtime.container import Container

_SEGMENT = re.compile(r"[A-Za-z0-9_\-:]+")


class Event(BaseModel):
    """A published event, as a subscriber sees it.

    Attributes:
        id: unique id (``evt_...``).
        name: dot-separated name such as ``order.placed``.
        data: the payload (JSON).
        metadata: free-form JSON metadata given at emit time.
        occurred_at: when it was emitted (aware UTC).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    data: Any = None
    metadata: dict[str, Any] = {}
    occurred_at: datetime


def check_event_name(name: Any, where: str = "event name") -> str:
    """An event name: non-empty dot-separated segments of letters, digits, ``_-:``."""
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{where} must be a non-empty string, got {shown(name)}")
    if not all(_SEGMENT.fullmatch(part) for part in name.split(".")):
        raise DefinitionError(
            f"{where} {name!r} is not a valid event name: use dot-separated segments of "
            "letters, digits, '_', '-' or ':' (e.g. 'order.placed')"
        )
    return name


def check_pattern(pattern: Any) -> str:
    """An event pattern: a name, ``*`` (every event), or a name with ``*`` segments."""
    if pattern == "*":
        return "*"
    if not isinstance(pattern, str) or not pattern:
        raise DefinitionError(f"event pattern must be a non-empty string, got {shown(pattern)}")
    for part in pattern.split("."):
        if part != "*" and not _SEGMENT.fullmatch(part):
            raise DefinitionError(
                f"event pattern {pattern!r} is not valid: each dot-separated segment is a name "
                "or '*' (which matches exactly one segment), or the whole pattern is '*'"
            )
    return pattern


def pattern_matches(pattern: str, name: str) -> bool:
    """``*`` matches every name; otherwise ``*`` matches exactly one segment."""
    if pattern == "*":
        return True
    if "*" not in pattern:
        return pattern == name
    want, have = pattern.split("."), name.split(".")
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriberConfig:
    """A subscriber's configuration (the ``config`` of a module in ``subscribers/``).

    Args:
        event: a name, a list of names, ``"*"``, or a pattern like ``"order.*"``.
        subscriber_id: defaults to the module's name.
        max_attempts: deliveries tried at most this often before ``dead`` (default 3).
        timeout: seconds a handler may run per attempt (default 60).
    """

    event: str | list[str] | tuple[str, ...]
    subscriber_id: str | None = None
    max_attempts: int = 3
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.event, str):
            events = [self.event]
        elif isinstance(self.event, (list, tuple)):
            events = list(self.event)
        else:
            raise DefinitionError(
                "SubscriberConfig.event must be an event name, a list of names, '*' or a "
                f"pattern like 'order.*', got {shown(self.event)}"
            )
        if not events:
            raise DefinitionError("SubscriberConfig.event: give at least one event name")
        object.__setattr__(self, "event", tuple(check_pattern(e) for e in events))
        if self.subscriber_id is not None:
            text(self.subscriber_id, "SubscriberConfig.subscriber_id")
        count(self.max_attempts, "SubscriberConfig.max_attempts", minimum=1, maximum=MAX_ATTEMPTS)
        timeout = duration(self.timeout, "SubscriberConfig.timeout", positive=True)
        object.__setattr__(self, "timeout", timeout)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The event patterns, as a tuple."""
        return tuple(self.event)

    def matches(self, name: str) -> bool:
        """True when an event of this name is for this subscriber."""
        return any(pattern_matches(p, name) for p in self.patterns)


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriberArgs:
    """What a subscriber's handler receives.

    Attributes:
        event: the event.
        container: the runtime's container.
        logger: a structlog logger bound to the event and the subscriber.
    """

    event: Event
    container: Container
    logger: Any


SubscriberHandler = Callable[[SubscriberArgs], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class Subscriber:
    """A discovered (or handed over) subscriber: its id, handler and config."""

    id: str
    handler: SubscriberHandler
    config: SubscriberConfig
    source: str = "(code)"


OverlapName = Literal["skip", "allow"]


@dataclasses.dataclass(frozen=True, slots=True)
class JobConfig:
    """A scheduled job's configuration (the ``config`` of a module in ``jobs/``).

    Args:
        name: unique among jobs; the job's runs are named ``job-<name>``.
        schedule: cron, 5 fields or 6 with seconds first (``*/10 * * * * *``).
        number_of_executions: stop after this many firings (persisted across restarts).
        timezone: IANA name; default the project's ``timezone`` (UTC unless set).
        max_retries: extra attempts of a failing run of the handler.
        retry_interval: seconds before the first retry (exponential backoff after).
        overlap: ``"skip"`` a firing while the previous run is active, or ``"allow"``
            (an :class:`~runtime.models.Overlap`, or its value).
        catchup_window: after downtime, the latest missed firing still runs if it is at
            most this many seconds late; the others are recorded as missed.
    """

    name: str
    schedule: str
    number_of_executions: int | None = None
    timezone: str | None = None
    max_retries: int = 0
    retry_interval: float = 1.0
    overlap: Overlap | OverlapName = Overlap.SKIP
    catchup_window: float = 3600.0

    def __post_init__(self) -> None:
        text(self.name, "JobConfig.name")
        if self.timezone is not None and (
            not isinstance(self.timezone, str) or not self.timezone.strip()
        ):
            raise DefinitionError(f"timezone must be an IANA name, got {shown(self.timezone)}")
        CronSchedule(self.schedule, self.timezone or "UTC")
        if self.number_of_executions is not None:
            executions = self.number_of_executions
            count(executions, "number_of_executions", minimum=1, maximum=MAX_EXECUTIONS)
        count(self.max_retries, "max_retries", minimum=0, maximum=MAX_RETRIES)
        object.__setattr__(self, "retry_interval", duration(self.retry_interval, "retry_interval"))
        if self.overlap not in ("skip", "allow"):
            raise DefinitionError(f"overlap must be 'skip' or 'allow', got {shown(self.overlap)}")
        object.__setattr__(self, "overlap", Overlap(self.overlap))
        object.__setattr__(self, "catchup_window", duration(self.catchup_window, "catchup_window"))


JobHandler = Callable[["Container"], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """A discovered (or handed over) job: its handler and config."""

    handler: JobHandler
    config: JobConfig
    source: str = "(code)"

    @property
    def name(self) -> str:
        return self.config.name


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule declared on a workflow; each firing starts a run of it.

    Args:
        cron: 5 fields, or 6 with seconds first.
        name: unique per workflow (defaults to ``"default"``).
        input: the run's input, or a function called at each firing that returns it
            (with the firing's nominal time when it takes one argument).
        timezone, number_of_executions, overlap, catchup_window: as for :class:`JobConfig`.
    """

    cron: str
    name: str = "default"
    input: Any = None
    timezone: str | None = None
    number_of_executions: int | None = None
    overlap: Overlap | OverlapName = Overlap.SKIP
    catchup_window: float = 3600.0

    def __post_init__(self) -> None:
        text(self.name, "Schedule.name")
        # The same checks as a job's (cron, counts, overlap, window).
        JobConfig(
            name=self.name,
            schedule=self.cron,
            number_of_executions=self.number_of_executions,
            timezone=self.timezone,
            overlap=self.overlap,
            catchup_window=self.catchup_window,
        )
        object.__setattr__(self, "catchup_window", duration(self.catchup_window, "catchup_window"))
        if not callable(self.input):  # stored with each firing's run: refused now, not then
            dumps(self.input, f"the input of schedule {self.name!r}")

    def input_now(self, nominal_at: datetime | None = None) -> Any:
        """The input of a firing: ``input`` itself, or what the function returns.

        A function of one parameter is called with the firing's nominal time (aware
        UTC), so a report fired late after downtime still covers the right day; a
        function of none is called without it.
        """
        if not callable(self.input):
            return self.input
        try:
            takes_time = bool(inspect.signature(self.input).parameters)
        except (TypeError, ValueError):
            takes_time = False
        return self.input(nominal_at) if takes_time else self.input()


# Runs started with no transaction id inside a subscriber's handler (or a job's
# handler) get one derived from where they started, so a redelivery finds them.
_ORIGIN: contextvars.ContextVar[tuple[str, dict[str, int]] | None] = contextvars.ContextVar(
    "runtime_run_origin", default=None
)


@contextlib.contextmanager
def origin_scope(prefix: str) -> Iterator[None]:
    """Derive transaction ids ``"{prefix}:{workflow}"`` for runs started inside."""
    token = _ORIGIN.set((prefix, {}))
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def derived_transaction_id(workflow: str) -> str | None:
    """The transaction id of a run of ``workflow`` started now, if inside an origin scope.

    The second run of one workflow in one scope gets ``:2``, the third ``:3``.
    """
    origin = _ORIGIN.get()
    if origin is None:
        return None
    prefix, counts = origin
    counts[workflow] = count = counts.get(workflow, 0) + 1
    key = f"{prefix}:{workflow}"
    return key if count == 1 else f"{key}:{count}"
