"""The JSON API under ``/api`` (DESIGN 6): routes, request parsing, status codes.

Each handler reads its arguments, calls :class:`~runtime.web.console.Console`, and
answers JSON. Errors answer ``{"error": {"type", "message"}}``: 400 a request that is
not well formed (a body that is not a JSON object, a missing or unknown field, a bad
query parameter), 401 no or wrong token (:mod:`runtime.web.auth`), 404 an unknown
run, workflow or delivery, 409 an action the state table refuses, 422 input that does
not validate against a durable workflow's schema (no run is created), 503 a database
that cannot be reached. Nothing but JSON is ever decoded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtime.errors import (
    CommitUncertainError,
    DefinitionError,
    DeliveryNotFoundError,
    InputValidationError,
    InvalidTransitionError,
    RunNotFoundError,
    SerializationError,
    StoreArgumentError,
    StoreOperationError,
    UnknownWorkflowError,
)
from runtime.limits import MAX_PAGE, shown
from runtime.models import RunAction
from runtime.web import openapi
from runtime.web.console import Console, delivery_json, run_json

logger = structlog.get_logger("runtime.web")

STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (InputValidationError, 422),
    (RunNotFoundError, 404),
    (UnknownWorkflowError, 404),
    (DeliveryNotFoundError, 404),
    (InvalidTransitionError, 409),
    (DefinitionError, 400),
    (StoreArgumentError, 400),
    (SerializationError, 400),
    (CommitUncertainError, 503),
    (StoreOperationError, 503),
)
"""The runtime's errors and the status each answers with (the first match wins)."""


class BadRequest(Exception):
    """A request the API cannot read: answered 400 with this message."""


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    """``{"error": {"type", "message"}}`` with ``status``."""
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


Handler = Callable[[Request, Console], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` with the console passed in and errors answered as JSON."""

    async def endpoint(request: Request) -> Response:
        console: Console = request.app.state.console
        try:
            return await handler(request, console)
        except BadRequest as exc:
            return error_response(400, "BadRequest", str(exc))
        except Exception as exc:
            for kind, status in STATUS_OF:
                if isinstance(exc, kind):
                    if status >= 500:
                        logger.warning(
                            "api_database_unavailable", path=request.url.path, error=str(exc)
                        )
                    return error_response(status, type(exc).__name__, str(exc))
            # A bug: logged whole in the service's log, answered as JSON without details.
            logger.exception("api_failed", method=request.method, path=request.url.path)
            return error_response(
                500, "InternalError", "the server failed on this request; its log says why"
            )

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- reading requests --------------------------------------------------------


def _query(request: Request, known: Mapping[str, bool]) -> dict[str, list[str]]:
    """The query parameters, each known; ``known`` says which may repeat.

    Raises:
        BadRequest: an unknown parameter, or one given twice that may not repeat.
    """
    found: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise BadRequest(f"unknown query parameter {name!r}; this path takes: {listed}")
        found.setdefault(name, []).append(value)
    for name, values in found.items():
        if len(values) > 1 and not known[name]:
            raise BadRequest(f"query parameter {name!r} is given {len(values)} times; give it once")
    return found


def _one(found: dict[str, list[str]], name: str) -> str | None:
    values = found.get(name)
    return values[0] if values else None


def _limit(found: dict[str, list[str]]) -> int | None:
    """The ``limit`` parameter: ASCII digits, 1 to :data:`MAX_PAGE`; ``None`` when absent.

    Raises:
        BadRequest: anything else (a sign, spaces, other digits, ``1e3``).
    """
    value = _one(found, "limit")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BadRequest(f"limit must be a whole number in ASCII digits, got {shown(value)}")
    digits = value.lstrip("0") or "0"
    # int() refuses thousands of digits; a number that long is out of range anyway.
    size = int(digits) if len(digits) <= len(str(MAX_PAGE)) else MAX_PAGE + 1
    if not 1 <= size <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}, got {shown(value)}")
    return size


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"the body is not JSON: {name} is not a JSON number")


async def _body(
    request: Request, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Any]:
    """The request's JSON object, with every ``required`` field and no unknown one.

    Raises:
        BadRequest: not JSON (``NaN`` included), not an object, a field missing or unknown.
    """
    raw = await request.body()
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    missing = [name for name in required if name not in body]
    if missing:
        raise BadRequest(f"the body lacks the required field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - {*required, *optional})
    if unknown:
        known = ", ".join((*required, *optional))
        raise BadRequest(f"the body has unknown field(s): {', '.join(unknown)}; known: {known}")
    return body


# -- handlers ----------------------------------------------------------------


async def health(request: Request, console: Console) -> Response:
    """The service is up; with the token, the live workers too."""
    _query(request, {})
    if not request.scope.get("runtime.authorized", True):
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "ok", "workers": await console.workers()})


async def list_workflows(request: Request, console: Console) -> Response:
    _query(request, {})
    return JSONResponse({"workflows": await console.workflows()})


async def start_run(request: Request, console: Console) -> Response:
    _query(request, {})
    name = request.path_params["name"]
    body = await _body(request, ("input",), ("idempotency_key", "version"))
    console.knows(name)
    record, created = await console.start_run(
        name,
        body["input"],
        idempotency_key=body.get("idempotency_key"),
        version=body.get("version"),
    )
    answer = {"run_id": record.id, "status": record.status.value, "created": created}
    return JSONResponse(answer, status_code=202 if created else 200)


async def list_runs(request: Request, console: Console) -> Response:
    found = _query(request, {"status": True, "workflow": False, "limit": False, "cursor": False})
    page = await console.list_runs(
        status=found.get("status", []),
        workflow=_one(found, "workflow"),
        limit=_limit(found),
        cursor=_one(found, "cursor"),
    )
    return JSONResponse(page)


async def get_run(request: Request, console: Console) -> Response:
    _query(request, {})
    record = await console.get_run(request.path_params["run_id"])
    return JSONResponse(run_json(record, steps=True))


def _control(action: RunAction) -> Handler:
    async def control(request: Request, console: Console) -> Response:
        _query(request, {})
        record = await console.control(request.path_params["run_id"], action)
        return JSONResponse(run_json(record, steps=True))

    control.__name__ = f"{action.value}_run"
    return control


async def emit(request: Request, console: Console) -> Response:
    _query(request, {})
    body = await _body(request, ("name", "data"), ("metadata", "delay", "idempotency_key"))
    event_id, created = await console.emit(
        body["name"],
        body["data"],
        metadata=body.get("metadata"),
        delay=body.get("delay"),
        idempotency_key=body.get("idempotency_key"),
    )
    return JSONResponse(
        {"event_id": event_id, "created": created}, status_code=202 if created else 200
    )


async def list_events(request: Request, console: Console) -> Response:
    found = _query(request, {"name": False, "limit": False, "cursor": False})
    page = await console.list_events(
        name=_one(found, "name"), limit=_limit(found), cursor=_one(found, "cursor")
    )
    return JSONResponse(page)


async def list_deliveries(request: Request, console: Console) -> Response:
    found = _query(
        request, {"status": True, "subscriber_id": False, "limit": False, "cursor": False}
    )
    page = await console.list_deliveries(
        status=found.get("status", []),
        subscriber_id=_one(found, "subscriber_id"),
        limit=_limit(found),
        cursor=_one(found, "cursor"),
    )
    return JSONResponse(page)


async def redrive(request: Request, console: Console) -> Response:
    _query(request, {})
    record = await console.redrive(request.path_params["delivery_id"])
    return JSONResponse(delivery_json(record))


async def list_jobs(request: Request, console: Console) -> Response:
    _query(request, {})
    return JSONResponse({"jobs": await console.jobs()})


async def openapi_document(request: Request, console: Console) -> Response:
    """This API's OpenAPI document (:mod:`runtime.web.openapi`), for where it is mounted."""
    _query(request, {})
    document = openapi.document(secured=request.app.state.token is not None)
    root = str(request.scope.get("root_path", "")) or "/"
    return JSONResponse({**document, "servers": [{"url": root}]})


async def list_subscribers(request: Request, console: Console) -> Response:
    _query(request, {})
    return JSONResponse({"subscribers": await console.subscribers()})


def _by_method(handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for a path: the handler of the request's method (HEAD is GET's)."""
    endpoints = {method: _endpoint(handler) for method, handler in handlers.items()}

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return endpoint


def routes() -> list[BaseRoute]:
    """The API's routes, as DESIGN 6's table lists them: one per path, with every method
    the path takes, so another method answers 405 with an ``Allow`` header naming them."""
    table: dict[str, dict[str, Handler]] = {
        "/api/health": {"GET": health},
        "/api/workflows": {"GET": list_workflows},
        "/api/workflows/{name}/runs": {"POST": start_run},
        "/api/runs": {"GET": list_runs},
        "/api/runs/{run_id}": {"GET": get_run},
        **{f"/api/runs/{{run_id}}/{a.value}": {"POST": _control(a)} for a in RunAction},
        "/api/events": {"GET": list_events, "POST": emit},
        "/api/deliveries": {"GET": list_deliveries},
        "/api/deliveries/{delivery_id}/redrive": {"POST": redrive},
        "/api/jobs": {"GET": list_jobs},
        "/api/subscribers": {"GET": list_subscribers},
        "/openapi.json": {"GET": openapi_document},
    }
    return [
        Route(path, _by_method(handlers), methods=list(handlers))
        for path, handlers in table.items()
    ]
