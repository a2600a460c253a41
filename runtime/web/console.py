"""The operator's console: what the HTTP API and the dashboard read and do, as JSON.

One place turns records into the JSON the API answers with (the CLI's ``--json``
fields) and applies actions, so the API and the pages cannot drift apart. Errors are
the runtime's own (:mod:`runtime.errors`); :mod:`runtime.web.api` maps them to
status codes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python

from runtime.bus import encode_event
from runtime.clock import Clock
from runtime.engine.executor import pending_run
from runtime.engine.leases import LEASE_TTL
from runtime.errors import (
    DefinitionError,
    InvalidTransitionError,
    UnknownWorkflowError,
)
from runtime.limits import MAX_PAGE, MAX_TEXT, count, shown, text
from runtime.models import (
    Control,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    RunAction,
    RunKind,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepStatus,
)
from runtime.runs import current_step, run_filter
from runtime.scheduling.entries import ScheduleEntry
from runtime.sdk.composition import CompositionWorkflow
from runtime.sdk.definitions import stored_input
from runtime.store.base import Store
from runtime.store.rules.state_table import RunSnapshot, StateChange, decide_action
from runtime.web.project import Project

StoreSource = Callable[[], Awaitable[Store]]
"""Gives the store (opened on first use when the app opens its own)."""

RECENT = 10
"""How many recent firings a schedule, and recent deliveries a subscriber, shows."""

DEFAULT_LIMIT = 50
"""A list's page size when ``limit`` is not given."""


def run_json(record: RunRecord, *, steps: bool) -> dict[str, Any]:
    """A run as ``runtime runs list --json`` (``steps=False``) or ``runs show --json``
    (``steps=True``, with ``current_step``) prints it."""
    if not steps:
        shown_run: dict[str, Any] = record.model_dump(mode="json", exclude={"steps"})
        return shown_run
    shown_run = json.loads(record.model_dump_json())
    shown_run["current_step"] = to_jsonable_python(current_step(record))
    return shown_run


def event_json(record: EventRecord, deliveries: Sequence[DeliveryRecord]) -> dict[str, Any]:
    """An event as ``runtime events list --json`` prints it, with its deliveries."""
    shown_event: dict[str, Any] = record.model_dump(mode="json")
    shown_event["deliveries"] = [delivery_json(d) for d in deliveries]
    return shown_event


def delivery_json(record: DeliveryRecord) -> dict[str, Any]:
    """A delivery as ``runtime events dead --json`` prints it."""
    shown_delivery: dict[str, Any] = record.model_dump(mode="json")
    return shown_delivery


def allowed_actions(run: dict[str, Any], now: datetime) -> list[RunAction]:
    """The actions the state table (DESIGN 2.1) would apply to ``run`` (a run's JSON
    with its steps) at ``now``: neither refused nor already in effect."""
    snapshot = RunSnapshot(
        run_id=run["id"],
        status=RunStatus(run["status"]),
        owner_id=run["owner_id"],
        control=Control(run["control"]) if run["control"] else None,
        wake_at=datetime.fromisoformat(run["wake_at"]) if run["wake_at"] else None,
        has_completed_steps=any(s["status"] == StepStatus.COMPLETED for s in run["steps"]),
    )
    return [
        action
        for action in RunAction
        if isinstance(decision := decide_action(action, snapshot, now), StateChange)
        and not decision.empty
    ]


def limit_arg(value: Any) -> int:
    """A page size from a query string or a body: 1 to 10,000, 50 when absent.

    Raises:
        DefinitionError: not a whole number in range.
    """
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, str):
        # ASCII digits only: int() also takes other scripts' digits, " 5", "+5" and "1_0".
        if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_PAGE)) + 10:
            raise DefinitionError(f"limit must be a whole number, got {shown(value)}")
        value = int(value)
    return count(value, "limit", minimum=1, maximum=MAX_PAGE)


def plain_text(value: Any, what: str) -> str:
    """``value`` checked as non-empty text a database column can hold: no NUL, at most
    :data:`~runtime.limits.MAX_TEXT` characters (an index holds it).

    Raises:
        DefinitionError: naming ``what``.
    """
    checked = text(value, what, maximum=MAX_TEXT)
    if "\x00" in checked:
        raise DefinitionError(f"{what} must not contain a NUL character")
    return checked


def optional_text(value: Any, what: str) -> str | None:
    """``value`` checked as :func:`plain_text`, or ``None`` when absent."""
    return None if value is None else plain_text(value, what)


class Console:
    """Reads and actions over one store, for the project it was given.

    Args:
        store: gives the store (the service's own, or one the app opens on first use).
        project: the workflows, schedules and subscribers the code defines.
        clock: the time actions are stamped with and liveness is judged by.
    """

    def __init__(self, store: StoreSource, project: Project, clock: Clock) -> None:
        self._store = store
        self.project = project
        self._clock = clock

    async def store(self) -> Store:
        """The store (the app's own is opened on first use): ``GET /metrics`` reads it."""
        return await self._store()

    @property
    def clock(self) -> Clock:
        """The time actions are stamped with and liveness is judged by."""
        return self._clock

    # -- the service ----------------------------------------------------------

    async def workers(self) -> list[dict[str, Any]]:
        """The live workers: those whose heartbeat is younger than a lease."""
        store = await self._store()
        now = self._clock.now()
        live = [
            w
            for w in await store.list_workers()
            if now - w.heartbeat_at < timedelta(seconds=LEASE_TTL)
        ]
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "started_at": to_jsonable_python(w.started_at),
                "heartbeat_at": to_jsonable_python(w.heartbeat_at),
            }
            for w in sorted(live, key=lambda w: w.started_at)
        ]

    # -- workflows and runs ---------------------------------------------------

    async def workflows(self) -> list[dict[str, Any]]:
        """Each workflow of the project (not jobs' own): kind, versions, schedules."""
        registry = self.project.registry
        jobs = self.project.job_workflows()
        fire_times = await self._fire_times()
        listed = []
        for name in registry.names():
            if name in jobs:
                continue
            newest = registry.resolve(name)
            listed.append(
                {
                    "name": name,
                    "kind": newest.kind,
                    "versions": registry.versions(name),
                    "steps": len(newest.graph.steps)
                    if isinstance(newest, CompositionWorkflow)
                    else None,
                    "schedules": [
                        {
                            "name": entry.name,
                            "cron": entry.cron.expression,
                            "timezone": entry.cron.tz_name,
                            "next_fire_at": fire_times.get(entry.name),
                        }
                        for entry in self.project.schedules
                        if entry.workflow == name
                    ],
                }
            )
        return listed

    async def start_run(
        self, workflow: Any, input: Any, *, idempotency_key: Any = None, version: Any = None
    ) -> tuple[RunRecord, bool]:
        """Store a pending run of ``workflow`` for a worker; the run, and whether it is new.

        With a project, the workflow (and version) must be one it defines and a
        durable workflow's input must validate; nothing is stored otherwise. A known
        ``idempotency_key`` gives the run it started (``False``).

        Raises:
            DefinitionError: a bad argument.
            UnknownWorkflowError: the project defines no such workflow (or version).
            InputValidationError: the input does not match a durable workflow's schema.
            SerializationError: the input cannot be stored as JSON.
        """
        workflow = plain_text(workflow, "workflow")
        version = optional_text(version, "version")
        idempotency_key = optional_text(idempotency_key, "idempotency_key")
        if self.project.known:
            input = stored_input(self.project.registry.resolve(workflow, version), input)
        new_run = pending_run(
            workflow,
            input,
            version=version,
            kind=RunKind.UNRESOLVED,
            idempotency_key=idempotency_key,
            now=self._clock.now(),
        )
        store = await self._store()
        return await store.create_run(new_run)

    def knows(self, workflow: str) -> None:
        """Raise :class:`UnknownWorkflowError` unless the project defines ``workflow``
        (any version); without a project every name is accepted.

        Raises:
            DefinitionError: ``workflow`` is not a name (:func:`plain_text`).
        """
        workflow = plain_text(workflow, "workflow")
        if self.project.known and workflow not in self.project.registry.names():
            raise UnknownWorkflowError(
                workflow, None, versions=[], workflows=self.project.registry.names()
            )

    async def list_runs(
        self,
        *,
        status: Sequence[str] = (),
        workflow: Any = None,
        limit: Any = None,
        cursor: Any = None,
    ) -> dict[str, Any]:
        """``{"runs", "next_cursor"}``, newest first, filtered by status and workflow.

        Raises:
            DefinitionError: an unknown status, a bad limit, an empty workflow name.
            StoreArgumentError: a cursor that is not a page's ``next_cursor``.
        """
        size = limit_arg(limit)
        workflow = optional_text(workflow, "workflow")
        cursor = optional_text(cursor, "cursor")
        statuses = run_filter(list(status), workflow, size, cursor)
        store = await self._store()
        page = await store.list_runs(status=statuses, workflow=workflow, limit=size, cursor=cursor)
        return {
            "runs": [run_json(r, steps=False) for r in page.runs],
            "next_cursor": page.next_cursor,
        }

    async def get_run(self, run_id: Any) -> RunRecord:
        """A run with its steps.

        Raises:
            RunNotFoundError: no run with that id.
        """
        store = await self._store()
        return await store.get_run(plain_text(run_id, "run_id"))

    async def show_run(self, run_id: Any) -> dict[str, Any]:
        """A run with its steps, as ``GET /api/runs/{id}`` answers, and ``actions``: the
        operator's actions the state table would apply to it now (for the dashboard).

        Raises:
            RunNotFoundError: no run with that id.
        """
        shown_run = run_json(await self.get_run(run_id), steps=True)
        shown_run["actions"] = [a.value for a in allowed_actions(shown_run, self._clock.now())]
        return shown_run

    async def control(self, run_id: Any, action: RunAction) -> RunRecord:
        """Pause, resume, cancel or retry a run; the run after the change, with its steps.

        Raises:
            RunNotFoundError: no run with that id.
            InvalidTransitionError: the state table refuses the action (DESIGN 2.1).
        """
        store = await self._store()
        record = await store.control_run(plain_text(run_id, "run_id"), action, self._clock.now())
        return await store.get_run(record.id)

    # -- events and deliveries ------------------------------------------------

    async def emit(
        self,
        name: Any,
        data: Any,
        *,
        metadata: Any = None,
        delay: Any = None,
        idempotency_key: Any = None,
    ) -> tuple[str, bool]:
        """Store an event for the service to deliver; its id, and whether it is new.

        Raises:
            DefinitionError: a bad name, metadata that is not an object, a bad delay.
            SerializationError: data or metadata that cannot be stored as JSON.
        """
        if isinstance(delay, bool) or (delay is not None and not isinstance(delay, int | float)):
            raise DefinitionError(f"delay must be a number of seconds, got {shown(delay)}")
        idempotency_key = optional_text(idempotency_key, "idempotency_key")
        event = encode_event(
            plain_text(name, "name"),
            data,
            metadata=metadata,
            delay=delay,  # checked there: finite, >= 0, at most MAX_DURATION
            idempotency_key=idempotency_key,
            now=self._clock.now(),
        )
        store = await self._store()
        return await store.emit(event)

    async def list_events(
        self, *, name: Any = None, limit: Any = None, cursor: Any = None
    ) -> dict[str, Any]:
        """``{"events", "next_cursor"}``, newest first, each with its deliveries."""
        size = limit_arg(limit)
        store = await self._store()
        page = await store.list_events(
            name=optional_text(name, "name"), limit=size, cursor=optional_text(cursor, "cursor")
        )
        of_event: dict[str, list[DeliveryRecord]] = {record.id: [] for record in page.items}
        for delivery in await store.deliveries_of_events([r.seq for r in page.items]):
            of_event[delivery.event_id].append(delivery)
        events = [event_json(record, of_event[record.id]) for record in page.items]
        return {"events": events, "next_cursor": page.next_cursor}

    async def list_deliveries(
        self,
        *,
        status: Sequence[str] = (),
        subscriber_id: Any = None,
        limit: Any = None,
        cursor: Any = None,
    ) -> dict[str, Any]:
        """``{"deliveries", "next_cursor"}``, newest event first.

        Raises:
            DefinitionError: an unknown status or a bad limit.
        """
        size = limit_arg(limit)
        statuses = []
        for value in status:
            try:
                statuses.append(DeliveryStatus(value))
            except ValueError:
                known = ", ".join(s.value for s in DeliveryStatus)
                raise DefinitionError(
                    f"status: unknown delivery status {shown(value)}; known: {known}"
                ) from None
        store = await self._store()
        page = await store.list_deliveries(
            status=statuses or None,
            subscriber_id=optional_text(subscriber_id, "subscriber_id"),
            limit=size,
            cursor=optional_text(cursor, "cursor"),
        )
        return {
            "deliveries": [delivery_json(d) for d in page.items],
            "next_cursor": page.next_cursor,
        }

    async def redrive(self, delivery_id: Any) -> DeliveryRecord:
        """A dead delivery back to pending with fresh attempts; the delivery after.

        Raises:
            DeliveryNotFoundError: no delivery with that id.
            InvalidTransitionError: the delivery is not dead.
        """
        delivery_id = plain_text(delivery_id, "delivery_id")
        store = await self._store()
        if not await store.redrive([delivery_id], self._clock.now()):
            record = await store.get_delivery(delivery_id)  # not found: raises
            raise InvalidTransitionError(
                f"delivery {delivery_id} is {record.status.value}, not dead: only a dead "
                "delivery can be redriven"
            )
        return await store.get_delivery(delivery_id)

    # -- schedules and subscribers --------------------------------------------

    async def jobs(self) -> list[dict[str, Any]]:
        """Every schedule, jobs and workflows' own alike, with recent firings."""
        store = await self._store()
        stored = {s.name: s for s in await store.list_schedules()}
        jobs = self.project.job_workflows()
        now = self._clock.now()
        listed = []
        entries = {e.name: e for e in self.project.schedules}
        for name in sorted({*entries, *(n for n, s in stored.items() if s.active)}):
            entry, record = entries.get(name), stored.get(name)
            firings = await store.list_firings(name, RECENT)
            listed.append(
                {
                    **_schedule_fields(entry, record, now, jobs),
                    "recent_firings": [f.model_dump(mode="json") for f in firings],
                }
            )
        return listed

    async def subscribers(self) -> list[dict[str, Any]]:
        """Each subscriber, the code's and the stored ones, with recent deliveries."""
        store = await self._store()
        stored = {s.id: s for s in await store.list_subscribers()}
        code = {s.id: s for s in self.project.subscribers}
        listed = []
        for subscriber_id in sorted({*code, *(i for i, s in stored.items() if s.active)}):
            row, defined = stored.get(subscriber_id), code.get(subscriber_id)
            recent = await store.list_deliveries(subscriber_id=subscriber_id, limit=RECENT)
            listed.append(
                {
                    "subscriber_id": subscriber_id,
                    "events": list(
                        defined.config.patterns if defined else row.patterns if row else ()
                    ),
                    "max_attempts": defined.config.max_attempts
                    if defined
                    else row.max_attempts
                    if row
                    else None,
                    "timeout": defined.config.timeout if defined else None,
                    "active": bool(row and row.active),
                    "file": defined.source if defined else None,
                    "recent_deliveries": [delivery_json(d) for d in recent.items],
                }
            )
        return listed

    async def _fire_times(self) -> dict[str, str | None]:
        """Each schedule's next fire time (the store's when it has one) as JSON text."""
        if not self.project.schedules:
            return {}
        store = await self._store()
        stored = {s.name: s for s in await store.list_schedules()}
        now = self._clock.now()
        return {e.name: _next_fire(e, stored.get(e.name), now) for e in self.project.schedules}


def _next_fire(
    entry: ScheduleEntry | None, record: ScheduleRecord | None, now: datetime
) -> str | None:
    """When a schedule fires next: the store's plan, else the expression's next time.

    ``None`` for a schedule that used up its ``number_of_executions``.
    """
    limit = entry.max_executions if entry else record.max_executions if record else None
    if record is not None and limit is not None and record.executions >= limit:
        return None
    if record is not None and record.next_fire_at is not None:
        moment = record.next_fire_at
    elif entry is not None:
        moment = entry.cron.next_after(now)
    else:
        return None
    stamp: str = to_jsonable_python(moment)
    return stamp


def _schedule_fields(
    entry: ScheduleEntry | None, record: ScheduleRecord | None, now: datetime, jobs: set[str]
) -> dict[str, Any]:
    """A schedule's fields in ``GET /api/jobs``: the code's declaration when there is one,
    else what the store keeps (a schedule a worker on other code declares)."""
    if entry is not None:
        fields: dict[str, Any] = {
            "name": entry.name,
            "workflow": entry.workflow,
            "schedule": entry.cron.expression,
            "timezone": entry.cron.tz_name,
            "number_of_executions": entry.max_executions,
            "overlap": entry.overlap.value,
        }
    elif record is not None:
        fields = {
            "name": record.name,
            "workflow": record.workflow,
            "schedule": record.expression,
            "timezone": record.timezone,
            "number_of_executions": record.max_executions,
            "overlap": record.overlap.value,
        }
    else:
        raise ValueError("a schedule needs its declaration or its record")
    job = fields["workflow"] in jobs or (entry is None and fields["workflow"].startswith("job-"))
    return {
        **fields,
        "kind": "job" if job else "schedule",
        "next_fire_at": _next_fire(entry, record, now),
        "executions": record.executions if record else 0,
        "declared": entry is not None,
    }
