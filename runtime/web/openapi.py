"""The OpenAPI 3.1 document of the JSON API (DESIGN 6), served at ``GET /openapi.json``.

Written by hand from the handlers of :mod:`runtime.web.api` and the JSON of
:mod:`runtime.web.console`, and held to them by tests: every answer of the API's tests
validates against it (tests/web/test_api.py), schemathesis fuzzes the app against it
(tests/web/test_openapi_fuzz.py), and the schemas of records list exactly the fields of
their models. Objects the API answers with are closed (``additionalProperties: false``)
with every field required: a field added to a record without the document fails the
tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from runtime.limits import MAX_DURATION, MAX_PAGE, MAX_TEXT
from runtime.models import (
    Control,
    DeliveryStatus,
    FiringOutcome,
    Overlap,
    RunKind,
    RunStatus,
    StepStatus,
)
from runtime.web.console import DEFAULT_LIMIT

Schema = dict[str, Any]

TEXT: Schema = {
    "type": "string",
    "maxLength": MAX_TEXT,
    "pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$",
    "description": "Text with a character other than white space, and no NUL.",
}
EVENT_NAME: Schema = {
    "type": "string",
    "maxLength": MAX_TEXT,
    "pattern": r"^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$",
    "description": "Dot-separated segments of letters, digits, '_', '-' or ':'.",
    "examples": ["order.placed"],
}
TIME: Schema = {"type": "string", "format": "date-time", "description": "UTC, RFC 3339."}
ANY: Schema = {"description": "Any JSON value."}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _or_null(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    if set(schema) <= {"type", "format", "description", "enum"} and "type" in schema:
        return {**schema, "type": [schema["type"], "null"]}
    if set(schema) == {"enum"}:
        return {"enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def _enum(kind: type[StrEnum]) -> Schema:
    return {"enum": [member.value for member in kind]}


def _closed(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly ``properties``, each required but ``optional``."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _list(item: Schema) -> Schema:
    return {"type": "array", "items": item}


INT: Schema = {"type": "integer"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}

STEP_ERROR = _closed(
    {"step": _or_null(STR), "type": STR, "message": STR, "traceback": _or_null(STR)}
)
RUN_FIELDS: dict[str, Schema] = {
    "id": STR,
    "workflow": STR,
    "version": _or_null(STR),
    "kind": _enum(RunKind),
    "status": _enum(RunStatus),
    "idempotency_key": _or_null(STR),
    "input": ANY,
    "output": ANY,
    "error": _or_null(_ref("StepError")),
    "rollback_status": _or_null(_enum(RunStatus)),
    "control": _or_null(_enum(Control)),
    "wake_at": _or_null(TIME),
    "owner_id": _or_null(STR),
    "parent_run_id": _or_null(STR),
    "available_at": TIME,
    "created_at": TIME,
    "updated_at": TIME,
    "ended_at": _or_null(TIME),
}
STEP = _closed(
    {
        "run_id": STR,
        "seq": INT,
        "name": STR,
        "status": _enum(StepStatus),
        "attempts": INT,
        "output": ANY,
        "compensate_input": ANY,
        "error": _or_null(_ref("StepError")),
        "started_at": _or_null(TIME),
        "ended_at": _or_null(TIME),
        "completed_order": _or_null(INT),
        "compensable": BOOL,
    }
)
CURRENT_STEP = _closed(
    {
        "seq": INT,
        "name": _or_null(STR),
        "state": {"enum": ["running", "sleeping", "retrying", "compensating"]},
        "attempts": INT,
        "since": _or_null(TIME),
        "wakes_at": _or_null(TIME),
    }
)
DELIVERY = _closed(
    {
        "id": STR,
        "event_id": STR,
        "event_seq": INT,
        "event_name": STR,
        "subscriber_id": STR,
        "status": _enum(DeliveryStatus),
        "attempts": INT,
        "max_attempts": INT,
        "available_at": TIME,
        "error": _or_null(_ref("StepError")),
        "created_at": TIME,
        "updated_at": TIME,
        "finished_at": _or_null(TIME),
    }
)
EVENT_FIELDS: dict[str, Schema] = {
    "seq": INT,
    "id": STR,
    "name": STR,
    "data": ANY,
    "metadata": {"type": "object"},
    "idempotency_key": _or_null(STR),
    "source_run_id": _or_null(STR),
    "occurred_at": TIME,
    "available_at": TIME,
}
FIRING = _closed(
    {
        "schedule": STR,
        "nominal_at": TIME,
        "outcome": _enum(FiringOutcome),
        "run_id": _or_null(STR),
        "recorded_at": TIME,
    }
)
WORKER = _closed({"id": STR, "host": STR, "pid": INT, "started_at": TIME, "heartbeat_at": TIME})
WORKFLOW = _closed(
    {
        "name": STR,
        "kind": {"enum": [RunKind.COMPOSITION.value, RunKind.DURABLE.value]},
        "versions": _list(_or_null(STR)),
        "steps": {**_or_null(INT), "description": "A composition's steps; null: durable."},
        "schedules": _list(
            _closed({"name": STR, "cron": STR, "timezone": STR, "next_fire_at": _or_null(TIME)})
        ),
    }
)
JOB = _closed(
    {
        "name": STR,
        "workflow": STR,
        "schedule": {**STR, "description": "The cron expression."},
        "timezone": STR,
        "number_of_executions": _or_null(INT),
        "overlap": _enum(Overlap),
        "kind": {"enum": ["job", "schedule"]},
        "next_fire_at": _or_null(TIME),
        "executions": INT,
        "declared": {**BOOL, "description": "Whether this code declares it."},
        "recent_firings": _list(_ref("Firing")),
    }
)
SUBSCRIBER = _closed(
    {
        "subscriber_id": STR,
        "events": _list(STR),
        "max_attempts": _or_null(INT),
        "timeout": _or_null({"type": "number"}),
        "active": BOOL,
        "file": _or_null(STR),
        "recent_deliveries": _list(_ref("Delivery")),
    }
)
ERROR = _closed({"error": _closed({"type": STR, "message": STR})})


def _page(key: str, item: str) -> Schema:
    return _closed({key: _list(_ref(item)), "next_cursor": _or_null(STR)})


SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "StepError": STEP_ERROR,
    "Run": _closed(RUN_FIELDS),
    "RunWithSteps": _closed(
        {**RUN_FIELDS, "steps": _list(_ref("Step")), "current_step": _or_null(_ref("CurrentStep"))}
    ),
    "Step": STEP,
    "CurrentStep": CURRENT_STEP,
    "Event": _closed({**EVENT_FIELDS, "deliveries": _list(_ref("Delivery"))}),
    "Delivery": DELIVERY,
    "Firing": FIRING,
    "Worker": WORKER,
    "Workflow": WORKFLOW,
    "Job": JOB,
    "Subscriber": SUBSCRIBER,
    "Health": _closed(
        {"status": {"const": "ok"}, "workers": _list(_ref("Worker"))}, optional=("workers",)
    ),
    "Workflows": _closed({"workflows": _list(_ref("Workflow"))}),
    "Jobs": _closed({"jobs": _list(_ref("Job"))}),
    "Subscribers": _closed({"subscribers": _list(_ref("Subscriber"))}),
    "RunPage": _page("runs", "Run"),
    "EventPage": _page("events", "Event"),
    "DeliveryPage": _page("deliveries", "Delivery"),
    "Started": _closed({"run_id": STR, "status": _enum(RunStatus), "created": BOOL}),
    "Emitted": _closed({"event_id": STR, "created": BOOL}),
    "StartRun": _closed(
        {
            "input": {
                "description": "The run's input: validated against a durable "
                "workflow's input schema (422 when it does not match)."
            },
            "idempotency_key": {
                **_or_null(TEXT),
                "description": "A key already used answers 200 with the run it started.",
            },
            "version": {**_or_null(TEXT), "description": "Default: the newest version."},
        },
        optional=("idempotency_key", "version"),
    ),
    "Emit": _closed(
        {
            "name": EVENT_NAME,
            "data": ANY,
            "metadata": {"type": ["object", "null"]},
            "delay": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": MAX_DURATION,
                "description": "Seconds before the event is delivered.",
            },
            "idempotency_key": {
                **_or_null(TEXT),
                "description": "A key already used answers 200 with the event it stored.",
            },
        },
        optional=("metadata", "delay", "idempotency_key"),
    ),
}

ERRORS: dict[str, str] = {
    "400": "A request that is not well formed: a body that is not a JSON object, a field "
    "missing or unknown, a bad or unknown query parameter.",
    "401": "No token, or a wrong one (only when the server has a token).",
    "403": "A request that changes something, from a page of another origin; without a "
    "token, a request whose Host is not a loopback name (DNS rebinding).",
    "404": "No such run, workflow (or version) or delivery.",
    "413": "A body past the limit (1 MiB).",
    "409": "An action the run state table refuses (DESIGN 2.1), or a delivery not dead.",
    "422": "Input that does not validate against the durable workflow's schema; no run is created.",
    "503": "The database cannot be reached.",
}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(status: str) -> dict[str, Any]:
    answer = _json(_ref("Error"), ERRORS[status])
    if status == "401":
        answer["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
        }
    return answer


def _query(name: str, schema: Schema, description: str, *, repeat: bool = False) -> Schema:
    parameter: Schema = {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": _list(schema) if repeat else schema,
    }
    if repeat:
        parameter.update(style="form", explode=True)
    return parameter


def _path(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": TEXT,
    }


LIMIT = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_LIMIT},
    "The page's size, in ASCII digits.",
)
CURSOR = _query("cursor", TEXT, "A page's `next_cursor`: the next (older) page.")


def _operation(
    summary: str,
    answers: dict[str, dict[str, Any]],
    errors: tuple[str, ...],
    *,
    parameters: Sequence[Schema] = (),
    body: str | None = None,
    secured: bool,
) -> dict[str, Any]:
    # Without a token, any request whose Host is not a loopback name answers 403.
    statuses = {"400", *(("401",) if secured else ("403",)), *errors, "503"}
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": summary.split(":")[0].lower().replace(" ", "_").replace("'", ""),
        "parameters": list(parameters),
        "responses": {**answers, **{s: _error(s) for s in sorted(statuses)}},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _paths(secured: bool) -> dict[str, Any]:
    """Every path of DESIGN 6's table, as :func:`runtime.web.api.routes` serves it."""

    def op(summary: str, answers: dict[str, Any], *errors: str, **more: Any) -> Any:
        return _operation(summary, answers, errors, secured=secured, **more)

    run_id = _path("run_id", "The run's id.")
    control = {
        action: {
            "post": op(
                f"{action.capitalize()} run: the state table's {action} (DESIGN 2.1)",
                {"200": _json(_ref("RunWithSteps"), "The run after the change.")},
                "403",
                "413",
                "404",
                "409",
                parameters=[run_id],
            )
        }
        for action in ("pause", "resume", "cancel", "retry")
    }
    health = op("Health", {"200": _json(_ref("Health"), "Up; with the token, the workers.")})
    if secured:
        health["security"] = [{}, {"bearer": []}]
        health["responses"].pop("401")
        health["description"] = 'Answers without the token too, then only `{"status": "ok"}`.'
    return {
        "/api/health": {"get": health},
        "/api/workflows": {
            "get": op(
                "List workflows: the project's, with versions and schedules",
                {"200": _json(_ref("Workflows"), "Each workflow the project defines.")},
            )
        },
        "/api/workflows/{name}/runs": {
            "post": op(
                "Start run: of a workflow, for a worker to drive",
                {
                    "202": _json(_ref("Started"), "A new run, pending."),
                    "200": _json(_ref("Started"), "The run its idempotency_key started."),
                },
                "403",
                "413",
                "404",
                "422",
                parameters=[_path("name", "The workflow's name.")],
                body="StartRun",
            )
        },
        "/api/runs": {
            "get": op(
                "List runs: newest first",
                {"200": _json(_ref("RunPage"), "A page of runs.")},
                parameters=[
                    _query("status", _enum(RunStatus), "Any of these statuses.", repeat=True),
                    _query("workflow", TEXT, "Runs of this workflow."),
                    LIMIT,
                    CURSOR,
                ],
            )
        },
        "/api/runs/{run_id}": {
            "get": op(
                "Get run: with its steps",
                {"200": _json(_ref("RunWithSteps"), "The run.")},
                "404",
                parameters=[run_id],
            )
        },
        **{f"/api/runs/{{run_id}}/{action}": item for action, item in control.items()},
        "/api/events": {
            "get": op(
                "List events: newest first, each with its deliveries",
                {"200": _json(_ref("EventPage"), "A page of events.")},
                parameters=[_query("name", TEXT, "Events of this name."), LIMIT, CURSOR],
            ),
            "post": op(
                "Emit: an event for the service to deliver",
                {
                    "202": _json(_ref("Emitted"), "A new event, stored."),
                    "200": _json(_ref("Emitted"), "The event its idempotency_key stored."),
                },
                "403",
                "413",
                body="Emit",
            ),
        },
        "/api/deliveries": {
            "get": op(
                "List deliveries: newest event first",
                {"200": _json(_ref("DeliveryPage"), "A page of deliveries.")},
                parameters=[
                    _query("status", _enum(DeliveryStatus), "Any of these statuses.", repeat=True),
                    _query("subscriber_id", TEXT, "Deliveries to this subscriber."),
                    LIMIT,
                    CURSOR,
                ],
            )
        },
        "/api/deliveries/{delivery_id}/redrive": {
            "post": op(
                "Redrive: a dead delivery, pending again with fresh attempts",
                {"200": _json(_ref("Delivery"), "The delivery, pending.")},
                "403",
                "413",
                "404",
                "409",
                parameters=[_path("delivery_id", "The delivery's id.")],
            )
        },
        "/api/jobs": {
            "get": op(
                "List jobs: jobs and workflows' schedules, with recent firings",
                {"200": _json(_ref("Jobs"), "Every schedule.")},
            )
        },
        "/api/subscribers": {
            "get": op(
                "List subscribers: with recent deliveries",
                {"200": _json(_ref("Subscribers"), "Every subscriber.")},
            )
        },
        "/metrics": {
            "get": op(
                "Metrics: Prometheus text (docs/metrics.md)",
                {
                    "200": {
                        "description": "The metrics, named runtime_*; runtime_store_up is 0 "
                        "when the database cannot be read (the answer is still 200).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/openapi.json": {
            "get": op(
                "OpenAPI: this document",
                {
                    "200": {
                        "description": "This document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            )
        },
    }


def _version() -> str:
    try:
        return version("runtime")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "0.0.0"


@cache
def document(secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``secured``: the server asks for a token (every path
    then needs it but health)."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "runtime",
            "version": _version(),
            "description": "The JSON API of runtime's operator surface (docs/http.md). "
            'Errors are `{"error": {"type", "message"}}`; lists are newest first.',
        },
        "paths": _paths(secured),
        "components": {"schemas": SCHEMAS},
    }
    if secured:
        doc["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's `http_token` (or `RUNTIME_HTTP_TOKEN`).",
            }
        }
        doc["security"] = [{"bearer": []}]
    return doc
