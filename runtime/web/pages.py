"""The dashboard (DESIGN 6): server-rendered pages over :class:`~runtime.web.console.Console`.

Every page reads the JSON the API answers (through the console, never the store), so
the pages and the API cannot drift apart. Actions are plain HTML forms posting to page
routes that call the console and redirect back (303); a refused action is shown on the
page it was asked from. Links and form actions start with the request's ``root_path``,
so the app works mounted under a prefix in a user's app.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from runtime.errors import (
    DefinitionError,
    DeliveryNotFoundError,
    InvalidTransitionError,
    RunNotFoundError,
    StoreArgumentError,
    StoreOperationError,
)
from runtime.models import DeliveryStatus, RunAction, RunStatus, StepStatus
from runtime.web.console import Console

logger = structlog.get_logger("runtime.web")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

PAGE_SIZE = 50
"""Rows a list page shows (one query of this size; nothing counts all rows)."""

NAVIGATION = (
    ("runs", "/", "Runs"),
    ("events", "/events", "Events"),
    ("deliveries", "/deliveries", "Dead deliveries"),
    ("jobs", "/jobs", "Jobs"),
    ("workflows", "/workflows", "Workflows"),
    ("subscribers", "/subscribers", "Subscribers"),
)
"""The navigation on every page: (key, path, label)."""

SHOWN_JSON = 20_000
"""Characters of an input, output or event payload a page shows before cutting it."""


class PageError(Exception):
    """A request a page cannot answer: shown as an error page with ``status``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


# -- rendering -----------------------------------------------------------------


def _utc_text(value: str | None) -> str:
    """An ISO time as ``2025-06-01 09:00:00 UTC`` (the JavaScript shows it local)."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(start: str | None, end: str | None) -> str:
    """The time from ``start`` to ``end``: ``850 ms``, ``12.3 s``, ``4 min 5 s``, ``2 h 3 min``."""
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _pretty(value: Any) -> str:
    """``value`` as indented JSON, cut at :data:`SHOWN_JSON` characters."""
    shown = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    if len(shown) > SHOWN_JSON:
        cut = len(shown) - SHOWN_JSON
        return f"{shown[:SHOWN_JSON]}\n… ({cut:,} more characters: GET the API for all of it)"
    return shown


def _static_version() -> str:
    """A digest of the static files, appended to their URLs so a new release is fetched."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = _utc_text
    env.filters["duration"] = _duration
    env.filters["pretty"] = _pretty
    env.globals["navigation"] = NAVIGATION
    env.globals["static_version"] = _static_version()
    env.globals["run_statuses"] = [s.value for s in RunStatus]
    return env


_ENV = _environment()


def root(request: Request) -> str:
    """The prefix the app is mounted at (``""`` when it is not)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def link(request: Request, path: str, **params: Any) -> str:
    """``path`` inside the app, with the query ``params`` that are set (lists repeat)."""
    pairs = [
        (name, item)
        for name, value in params.items()
        for item in (value if isinstance(value, list | tuple) else [value])
        if item not in (None, "")
    ]
    query = f"?{urlencode(pairs)}" if pairs else ""
    return f"{root(request)}{path}{query}"


def render(
    request: Request, template: str, page: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """``template`` rendered with the base's context: the page's key, links, sign-out."""
    html = _ENV.get_template(template).render(
        request=request,
        root=root(request),
        page=page,
        signed_in=request.app.state.token is not None,
        link=lambda path, **params: link(request, path, **params),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


Page = Callable[[Request, Console], Awaitable[Response]]


def _page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` with the console passed in and the runtime's errors shown as pages."""

    async def endpoint(request: Request) -> Response:
        console: Console = request.app.state.console
        try:
            return await handler(request, console)
        except PageError as exc:
            return _error_page(request, exc.status, exc.title, exc.message)
        except (RunNotFoundError, DeliveryNotFoundError) as exc:
            return _error_page(request, 404, "Not found", str(exc))
        except (DefinitionError, StoreArgumentError) as exc:
            return _error_page(request, 400, "Bad request", str(exc))
        except StoreOperationError as exc:
            logger.warning("page_database_unavailable", path=request.url.path, error=str(exc))
            return _error_page(request, 503, "Database unavailable", str(exc))
        except Exception:
            # A bug: logged whole in the service's log, shown as a page without details.
            logger.exception("page_failed", method=request.method, path=request.url.path)
            return _error_page(
                request, 500, "Server error", "The server failed on this page; its log says why."
            )

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _error_page(
    request: Request, status: int, title: str, message: str, **back: str
) -> HTMLResponse:
    """The error page; ``back_url`` and ``back_label`` replace its link back to the runs."""
    return render(request, "error.html", "", status, title=title, message=message, **back)


def wants_page(request: Request) -> bool:
    """The request is a browser's for a page: not under ``/api``, and it accepts HTML."""
    path = request.url.path[len(root(request)) :]
    api = path == "/api" or path.startswith("/api/")
    return not api and "text/html" in request.headers.get("accept", "")


def not_found(request: Request) -> HTMLResponse:
    """The 404 page for a path the dashboard does not have."""
    path = request.url.path
    return _error_page(request, 404, "Not found", f"There is no page at {path}.")


def method_not_allowed(request: Request) -> HTMLResponse:
    """The 405 page for a browser opening an action's address (it takes a form's POST),
    with a link to the run or the dead deliveries it belongs to."""
    parts = request.url.path[len(root(request)) :].split("/")
    back = {}
    if len(parts) == 4 and parts[1] == "runs":
        run_page = f"/runs/{quote(parts[2], safe='')}"
        back = {"back_url": link(request, run_page), "back_label": "Back to the run"}
    elif len(parts) == 4 and parts[1] == "deliveries":
        back = {"back_url": link(request, "/deliveries"), "back_label": "Back to dead deliveries"}
    message = f"{request.url.path} is an action: its button on the page posts to it."
    return _error_page(request, 405, "Not a page", message, **back)


def _redirect(request: Request, path: str, **params: Any) -> RedirectResponse:
    return RedirectResponse(link(request, path, **params), status_code=303)


# -- runs ----------------------------------------------------------------------


async def runs_page(request: Request, console: Console) -> Response:
    """``/``: runs newest first, filtered by status and workflow, a page at a time."""
    params = request.query_params
    statuses = [s for s in params.getlist("status") if s]
    workflow = params.get("workflow") or None
    cursor = params.get("cursor") or None
    listed = await console.list_runs(
        status=statuses, workflow=workflow, limit=PAGE_SIZE, cursor=cursor
    )
    older = listed["next_cursor"]
    return render(
        request,
        "runs.html",
        "runs",
        runs=listed["runs"],
        statuses=statuses,
        workflow=workflow or "",
        workflows=console.project.registry.names(),
        first_page=cursor is None,
        newest_url=link(request, "/", status=statuses, workflow=workflow),
        older_url=link(request, "/", status=statuses, workflow=workflow, cursor=older)
        if older
        else None,
    )


_TITLES = {
    "pause": "Nothing runs until it is resumed (a running step finishes first).",
    "resume": "Due again now; a durable sleep keeps its wake-up time.",
    "cancel": "Roll it back: its completed steps are compensated. Retry runs it again.",
    "retry": "Run it again from its first step without a valid checkpoint "
    "(after a failed rollback: the compensations that failed).",
}
"""What each action's button says on hover (DESIGN 2.1)."""

_DONE = {
    "pause": "Paused.",
    "resume": "Resumed: the run is due again.",
    "cancel": "Canceled.",
    "retry": "Retried: the run is due again.",
}


_DUE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SLEEPING)


def _done_message(action: str | None, run: Mapping[str, Any]) -> str | None:
    """What the action the page was redirected from did, told from the run as it is now;
    nothing once the run no longer shows it (the page reloads itself from its address,
    and another operator or the worker may have moved the run on)."""
    status, control = run["status"], run["control"]
    if action == "pause":
        if control == "pause":
            return "Pause asked: the run pauses once the step it is running finishes."
        return _DONE[action] if status == RunStatus.PAUSED else None
    if action == "resume":
        return _DONE[action] if status in _DUE and control is None else None
    if action == "cancel":
        if control == "cancel":
            return "Cancel asked: the run rolls back once the step it is running finishes."
        if status == RunStatus.COMPENSATING:
            return "Canceled: its compensations run, then the run ends canceled."
        return _DONE[action] if status == RunStatus.CANCELED else None
    if action == "retry":
        if status == RunStatus.COMPENSATING:
            return "Retried: the compensations that failed run again."
        return _DONE[action] if status in _DUE else None
    return None


_UNDOING = (StepStatus.COMPENSATING, StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED)


def compensations(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's compensations in the order they run (DESIGN 2.3).

    A step that failed itself is undone first (steps in order), then the completed
    steps, the last completed first. Listed: the compensations that began (compensating,
    compensated, compensation_failed), and while the run rolls back, the completed
    compensable steps still to undo.
    """
    rolling_back = run["status"] == RunStatus.COMPENSATING
    chosen = [
        s
        for s in run["steps"]
        if s["status"] in _UNDOING
        or (rolling_back and s["compensable"] and s["status"] == StepStatus.COMPLETED)
    ]
    own = sorted((s for s in chosen if s["completed_order"] is None), key=lambda s: s["seq"])
    done = sorted(
        (s for s in chosen if s["completed_order"] is not None),
        key=lambda s: s["completed_order"],
        reverse=True,
    )
    return own + done


async def _run_page(
    request: Request, console: Console, *, status: int = 200, refused: str | None = None
) -> Response:
    run_id = request.path_params["run_id"]
    try:
        run = await console.show_run(run_id)
    except RunNotFoundError:
        raise PageError(404, "Run not found", f"There is no run {run_id}.") from None
    return render(
        request,
        "run.html",
        "runs",
        status,
        run=run,
        steps=sorted(run["steps"], key=lambda s: s["seq"]),
        compensations=compensations(run),
        done=None if refused else _done_message(request.query_params.get("done"), run),
        refused=refused,
        base=f"/runs/{quote(run['id'], safe='')}",
        action_titles=_TITLES,
        ended=RunStatus(run["status"]).terminal,
    )


async def run_page(request: Request, console: Console) -> Response:
    """``/runs/{id}``: a run, its steps and compensations, and the actions it allows."""
    return await _run_page(request, console)


async def control_run(request: Request, console: Console) -> Response:
    """``POST /runs/{id}/{action}``: the action, then back to the run page (303)."""
    run_id = request.path_params["run_id"]
    try:
        action = RunAction(request.path_params["action"])
    except ValueError:
        raise PageError(404, "Not found", "No such action.") from None
    try:
        await console.control(run_id, action)
    except RunNotFoundError:
        raise PageError(404, "Run not found", f"There is no run {run_id}.") from None
    except InvalidTransitionError as exc:
        return await _run_page(request, console, status=409, refused=str(exc))
    return _redirect(request, f"/runs/{quote(run_id, safe='')}", done=action.value)


# -- events and deliveries -----------------------------------------------------


async def events_page(request: Request, console: Console) -> Response:
    """``/events``: events newest first with their deliveries, filtered by name."""
    name = request.query_params.get("name") or None
    cursor = request.query_params.get("cursor") or None
    listed = await console.list_events(name=name, limit=PAGE_SIZE, cursor=cursor)
    older = listed["next_cursor"]
    return render(
        request,
        "events.html",
        "events",
        events=listed["events"],
        name=name or "",
        first_page=cursor is None,
        newest_url=link(request, "/events", name=name),
        older_url=link(request, "/events", name=name, cursor=older) if older else None,
    )


async def _deliveries_page(
    request: Request, console: Console, *, status: int = 200, refused: str | None = None
) -> Response:
    cursor = request.query_params.get("cursor") or None
    listed = await console.list_deliveries(
        status=[DeliveryStatus.DEAD.value], limit=PAGE_SIZE, cursor=cursor
    )
    older = listed["next_cursor"]
    redriven = None if refused else request.query_params.get("redriven")
    return render(
        request,
        "deliveries.html",
        "deliveries",
        status,
        deliveries=listed["deliveries"],
        first_page=cursor is None,
        newest_url=link(request, "/deliveries"),
        older_url=link(request, "/deliveries", cursor=older) if older else None,
        redriven=redriven,
        refused=refused,
    )


async def deliveries_page(request: Request, console: Console) -> Response:
    """``/deliveries``: the dead deliveries, each with its last error and a Redrive button."""
    return await _deliveries_page(request, console)


async def redrive(request: Request, console: Console) -> Response:
    """``POST /deliveries/{id}/redrive``: pending again, then back to the list (303)."""
    delivery_id = request.path_params["delivery_id"]
    try:
        await console.redrive(delivery_id)
    except InvalidTransitionError as exc:
        return await _deliveries_page(request, console, status=409, refused=str(exc))
    return _redirect(request, "/deliveries", redriven=delivery_id)


# -- definitions ---------------------------------------------------------------


async def jobs_page(request: Request, console: Console) -> Response:
    """``/jobs``: jobs and schedules, next fire times, executions and recent firings."""
    return render(request, "jobs.html", "jobs", jobs=await console.jobs())


async def workflows_page(request: Request, console: Console) -> Response:
    """``/workflows``: each workflow's kind, versions and schedules."""
    return render(request, "workflows.html", "workflows", workflows=await console.workflows())


async def subscribers_page(request: Request, console: Console) -> Response:
    """``/subscribers``: each subscriber's patterns and recent deliveries."""
    return render(
        request, "subscribers.html", "subscribers", subscribers=await console.subscribers()
    )


def routes() -> list[BaseRoute]:
    """The dashboard's pages, its two kinds of action, and ``/static``."""
    table: list[tuple[str, str, Page]] = [
        ("GET", "/", runs_page),
        ("GET", "/runs/{run_id}", run_page),
        ("POST", "/runs/{run_id}/{action}", control_run),
        ("GET", "/events", events_page),
        ("GET", "/deliveries", deliveries_page),
        ("POST", "/deliveries/{delivery_id}/redrive", redrive),
        ("GET", "/jobs", jobs_page),
        ("GET", "/workflows", workflows_page),
        ("GET", "/subscribers", subscribers_page),
    ]
    pages: list[BaseRoute] = [
        Route(path, _page(handler), methods=[method]) for method, path, handler in table
    ]
    return [*pages, Mount("/static", StaticFiles(directory=STATIC), name="static")]
