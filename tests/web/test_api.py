"""The JSON API, row by row of DESIGN 6's table, on SQLite and PostgreSQL: status codes,
bodies, and every answer validated against the OpenAPI document the app serves.

The app is :func:`runtime.web.create_app` over a project folder (tests/web/apiproject.py)
with a token, its lifespan run around each test as a server runs it; requests go through
httpx in process. The reads share one seeded database per backend; the actions, which
change it, get a database of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema_rs
import pytest
from pydantic import BaseModel
from starlette.routing import Route

from runtime.models import DeliveryRecord, EventRecord, FiringRecord, RunRecord, StepRecord
from runtime.models import StepError as StepErrorModel
from runtime.web import create_app, metrics
from runtime.web.api import routes
from runtime.web.openapi import document
from tests.helpers.backends import BACKENDS
from tests.web.apiproject import SIGNED, TOKEN, Seeded, database, seed, write_project
from tests.web.conftest import lifespan


@dataclass
class Api:
    """A client of the app, the ids seeded, and the document the app serves."""

    client: httpx.AsyncClient
    ids: Seeded
    document: dict[str, Any]

    async def call(
        self, method: str, path: str, expected: int, template: str | None = None, **kwargs: Any
    ) -> Any:
        """``method path`` answers ``expected`` and conforms to the document; its JSON.

        ``template`` is the document's path (``/api/runs/{run_id}``) when ``path`` is not.
        """
        answer = await self.client.request(method, path, **kwargs)
        assert answer.status_code == expected, (method, path, answer.status_code, answer.text)
        conforms(self.document, method, template or path.split("?")[0], answer)
        return answer.json()


def conforms(doc: dict[str, Any], method: str, template: str, answer: httpx.Response) -> None:
    """``answer`` is one the document gives for ``method template``: a status it lists,
    JSON, a body its schema accepts and the headers it names."""
    assert answer.headers["content-type"] == "application/json", answer.headers
    operation = doc["paths"].get(template, {}).get(method.lower())
    if operation is None:  # no such path or method: the app's own 404 and 405
        assert answer.status_code in (404, 405), (method, template, answer.status_code)
        schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
    else:
        documented = operation["responses"].get(str(answer.status_code))
        assert documented is not None, f"{method} {template}: {answer.status_code} undocumented"
        schema = documented["content"]["application/json"]["schema"]
        for header in documented.get("headers", {}):
            assert header in answer.headers, (method, template, header)
    validator = jsonschema_rs.Draft202012Validator(
        {**schema, "components": doc["components"]}, validate_formats=True
    )
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(answer.json())]
    assert not errors, (method, template, answer.status_code, errors[:5])


async def serve(folder: Path, url: str, ids: Seeded) -> AsyncIterator[Api]:
    app = create_app(url, TOKEN, project=folder)
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=SIGNED) as client,
    ):
        served = (await client.get("/openapi.json")).json()
        yield Api(client, ids, served)


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, Seeded]]:
    """One seeded database per backend, for the tests that only read."""
    folder = write_project(tmp_path_factory.mktemp("api"))
    with database(request.param, folder) as url:
        yield folder, url, anyio.run(seed, folder, url)


@pytest.fixture
async def api(seeded: tuple[Path, str, Seeded]) -> AsyncIterator[Api]:
    """The app over the shared seeded database (read, never changed)."""
    async for served in serve(*seeded):
        yield served


@pytest.fixture(params=BACKENDS)
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """The app over a database seeded for this test alone (the actions change it)."""
    folder = write_project(tmp_path)
    with database(request.param, folder) as url:
        ids = await seed(folder, url)
        async for served in serve(folder, url, ids):
            yield served


# -- the document ------------------------------------------------------------------------


def test_the_document_lists_every_route_the_api_serves() -> None:
    served = {
        route.path: (route.methods or set()) - {"HEAD"}
        for route in [*routes(), *metrics.routes()]
        if isinstance(route, Route)
    }
    doc = document(secured=True)
    assert {p: {m.upper() for m in ops} for p, ops in doc["paths"].items()} == served


@pytest.mark.parametrize(
    ("schema", "model", "extra"),
    [
        ("Run", RunRecord, {"steps"}),
        ("RunWithSteps", RunRecord, {"current_step"}),
        ("Step", StepRecord, set()),
        ("StepError", StepErrorModel, set()),
        ("Event", EventRecord, {"deliveries"}),
        ("Delivery", DeliveryRecord, set()),
        ("Firing", FiringRecord, set()),
    ],
)
def test_record_schemas_have_exactly_their_models_fields(
    schema: str, model: type[BaseModel], extra: set[str]
) -> None:
    properties = set(document(secured=True)["components"]["schemas"][schema]["properties"])
    assert properties ^ set(model.model_fields) == extra


def test_without_a_token_the_document_asks_for_none() -> None:
    doc = document(secured=False)
    assert "security" not in doc and "securitySchemes" not in doc["components"]
    assert all("401" not in op["responses"] for ops in doc["paths"].values() for op in ops.values())


async def test_the_document_is_served_behind_the_token_for_where_the_app_is_mounted(
    api: Api,
) -> None:
    assert api.document["openapi"] == "3.1.0"
    assert api.document["paths"] == document(secured=True)["paths"]
    assert api.document["servers"] == [{"url": "/"}]
    assert api.document["paths"]["/api/health"]["get"]["security"] == [{}, {"bearer": []}]
    refused = await api.client.get("/openapi.json", headers={"Authorization": ""})
    assert refused.status_code == 401
    conforms(api.document, "GET", "/api/runs", refused)


# -- reads, row by row -------------------------------------------------------------------


async def test_health_names_the_live_workers_only_to_the_token(api: Api) -> None:
    assert await api.call("GET", "/api/health", 200) == {"status": "ok", "workers": []}
    bare = await api.call("GET", "/api/health", 200, headers={"Authorization": ""})
    assert bare == {"status": "ok"}


async def test_workflows_lists_the_projects_with_kinds_and_schedules(api: Api) -> None:
    listed = (await api.call("GET", "/api/workflows", 200))["workflows"]
    assert [(w["name"], w["kind"], w["versions"]) for w in listed] == [
        ("onboard", "durable", [None]),
        ("order", "composition", [None]),
    ]
    assert [w["steps"] for w in listed] == [None, 2]


async def test_runs_lists_newest_first_with_filters_and_pages(api: Api) -> None:
    ids = api.ids
    runs = (await api.call("GET", "/api/runs", 200))["runs"]
    assert [r["id"] for r in runs] == [ids.queued, ids.sleeping, ids.failed, ids.completed]
    both = await api.call("GET", "/api/runs?status=failed&status=completed", 200)
    assert [r["id"] for r in both["runs"]] == [ids.failed, ids.completed]
    onboard = await api.call("GET", "/api/runs?workflow=onboard", 200)
    assert [r["id"] for r in onboard["runs"]] == [ids.sleeping]
    first = await api.call("GET", "/api/runs?limit=3", 200)
    assert len(first["runs"]) == 3 and first["next_cursor"]
    rest = await api.call("GET", "/api/runs", 200, params={"cursor": first["next_cursor"]})
    assert [r["id"] for r in rest["runs"]] == [ids.completed] and rest["next_cursor"] is None
    assert len((await api.call("GET", "/api/runs?limit=0004", 200))["runs"]) == 4


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "status=",
        "workflow=",
        "workflow=%20%20",
        "workflow=a%00b",
        "limit=0",
        "limit=10001",
        "limit=-1",
        "limit=%2B5",  # +5
        "limit=%205",  # ' 5'
        "limit=5.0",
        "limit=1e3",
        "limit=",
        "limit=%D9%A5",  # an Arabic-Indic five
        "limit=" + "9" * 5000,
        "limit=2&limit=3",
        "workflow=a&workflow=b",
        "cursor=nonsense",
        "cursor=",
        "sort=id",
    ],
)
async def test_a_bad_query_answers_400_naming_what_was_wrong(api: Api, query: str) -> None:
    answer = await api.call("GET", f"/api/runs?{query}", 400)
    name = query.split("=")[0]
    assert answer["error"]["type"] in ("BadRequest", "DefinitionError", "StoreArgumentError")
    assert name in answer["error"]["message"] or "cursor" in answer["error"]["message"]


async def test_a_run_shows_with_its_steps_and_an_unknown_one_is_404(api: Api) -> None:
    failed = await api.call("GET", f"/api/runs/{api.ids.failed}", 200, "/api/runs/{run_id}")
    assert failed["status"] == "failed" and failed["error"]["type"] == "ValueError"
    assert [(s["name"], s["status"]) for s in failed["steps"]] == [
        ("reserve", "compensated"),
        ("ship", "failed"),
    ]
    sleeping = await api.call("GET", f"/api/runs/{api.ids.sleeping}", 200, "/api/runs/{run_id}")
    assert sleeping["current_step"]["state"] == "sleeping"
    missing = await api.call("GET", "/api/runs/run_nope", 404, "/api/runs/{run_id}")
    assert missing["error"]["type"] == "RunNotFoundError"
    assert "run_nope" in missing["error"]["message"]


async def test_events_list_with_their_deliveries(api: Api) -> None:
    events = (await api.call("GET", "/api/events", 200))["events"]
    assert [e["id"] for e in events] == [api.ids.event]
    assert {(d["subscriber_id"], d["status"]) for d in events[0]["deliveries"]} == {
        ("welcome", "done"),
        ("sync-crm", "dead"),
    }
    named = await api.call("GET", "/api/events?name=customer.created&limit=1", 200)
    assert len(named["events"]) == 1
    assert (await api.call("GET", "/api/events?name=order.placed", 200))["events"] == []
    await api.call("GET", "/api/events?limit=x", 400)
    await api.call("GET", "/api/events?status=dead", 400)


async def test_deliveries_filter_by_status_and_subscriber(api: Api) -> None:
    everything = (await api.call("GET", "/api/deliveries", 200))["deliveries"]
    assert len(everything) == 2
    dead = (await api.call("GET", "/api/deliveries?status=dead", 200))["deliveries"]
    assert [d["id"] for d in dead] == [api.ids.dead_delivery]
    assert dead[0]["error"]["message"] == "crm.example.com refused the connection"
    either = await api.call("GET", "/api/deliveries?status=dead&status=done", 200)
    assert len(either["deliveries"]) == 2
    welcome = await api.call("GET", "/api/deliveries?subscriber_id=welcome", 200)
    assert [d["status"] for d in welcome["deliveries"]] == ["done"]
    wrong = await api.call("GET", "/api/deliveries?status=gone", 400)
    assert "pending, running, done, dead" in wrong["error"]["message"]


async def test_jobs_and_subscribers(api: Api) -> None:
    jobs = (await api.call("GET", "/api/jobs", 200))["jobs"]
    cleanup = next(j for j in jobs if j["name"] == "cleanup")
    assert (cleanup["kind"], cleanup["schedule"], cleanup["declared"]) == ("job", "0 2 * * *", True)
    assert cleanup["next_fire_at"] is not None
    subscribers = (await api.call("GET", "/api/subscribers", 200))["subscribers"]
    assert [(s["subscriber_id"], s["events"]) for s in subscribers] == [
        ("sync-crm", ["customer.*"]),
        ("welcome", ["customer.created"]),
    ]
    assert [d["status"] for d in subscribers[0]["recent_deliveries"]] == ["dead"]


# -- what every path answers alike -------------------------------------------------------


GETS = [
    "/api/workflows",
    "/api/runs",
    "/api/events",
    "/api/deliveries",
    "/api/jobs",
    "/api/subscribers",
]


@pytest.mark.parametrize("path", GETS)
async def test_without_the_token_every_path_but_health_answers_401(api: Api, path: str) -> None:
    bare = await api.call("GET", path, 401, headers={"Authorization": ""})
    assert bare["error"]["type"] == "Unauthorized"
    wrong = await api.call("GET", path, 401, headers={"Authorization": "Bearer nope"})
    assert wrong["error"]["message"] == "wrong token"
    unknown = await api.call("GET", f"{path}?bogus=1", 400)
    assert "unknown query parameter 'bogus'" in unknown["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/events", {"GET", "HEAD", "POST"}),
        ("DELETE", "/api/runs/run_x", {"GET", "HEAD"}),
        ("GET", "/api/runs/run_x/pause", {"POST"}),
        ("PATCH", "/api/workflows/order/runs", {"POST"}),
        ("POST", "/api/health", {"GET", "HEAD"}),
        ("DELETE", "/openapi.json", {"GET", "HEAD"}),
    ],
)
async def test_a_method_a_path_does_not_take_answers_405_with_allow(
    api: Api, method: str, path: str, allowed: set[str]
) -> None:
    answer = await api.client.request(method, path)
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == allowed
    assert answer.json()["error"]["type"] == "MethodNotAllowed"
    conforms(api.document, method, "/nowhere", answer)


async def test_an_unknown_path_answers_404_as_json(api: Api) -> None:
    answer = await api.call("GET", "/api/nowhere", 404)
    assert answer["error"] == {"type": "NotFound", "message": "no such path: /api/nowhere"}


async def test_a_change_from_another_origin_answers_403(api: Api) -> None:
    answer = await api.call(
        "POST",
        f"/api/runs/{api.ids.sleeping}/pause",
        403,
        "/api/runs/{run_id}/pause",
        headers={"Origin": "https://evil.example"},
    )
    assert answer["error"]["type"] == "Forbidden"


async def test_a_body_past_the_cap_answers_413_as_the_document_says(api: Api) -> None:
    too_big = b'{"name": "a.b", "data": "' + b"x" * (1 << 20) + b'"}'
    answer = await api.call(
        "POST", "/api/events", 413, content=too_big, headers={"Content-Type": "application/json"}
    )
    assert answer["error"]["type"] == "PayloadTooLarge"


async def test_without_a_token_a_host_that_is_not_loopback_answers_403_as_documented(
    seeded: tuple[Path, str, Seeded],
) -> None:
    folder, url, _ = seeded
    app = create_app(url, None, project=folder)
    transport = httpx.ASGITransport(app=app)
    doc = document(secured=False)
    async with lifespan(app), httpx.AsyncClient(transport=transport) as client:
        for method, path in (("GET", "/api/runs"), ("POST", "/api/events")):
            answer = await client.request(method, f"http://evil.example{path}", json={})
            assert answer.status_code == 403, answer.text
            assert answer.json()["error"]["type"] == "ForbiddenHost"
            conforms(doc, method, path, answer)
        served = await client.get("http://localhost/api/runs")
        assert served.status_code == 200
        conforms(doc, "GET", "/api/runs", served)


# -- actions, each on its own database ---------------------------------------------------


BAD_STARTS: list[Any] = [
    [],
    "text",
    {},
    {"input": 1, "color": "red"},
    {"input": 1, "version": " "},
    {"input": 1, "idempotency_key": ""},
    {"input": 1, "idempotency_key": 5},
]
BAD_EVENTS: list[Any] = [
    [],
    {"name": "order.placed"},
    {"data": 1},
    {"name": "bad name", "data": 1},
    {"name": "a\n", "data": 1},
    {"name": "a", "data": 1, "delay": -1},
    {"name": "a", "data": 1, "delay": 1e300},
    {"name": "a", "data": 1, "delay": "5"},
    {"name": "a", "data": 1, "delay": True},
    {"name": "a", "data": 1, "metadata": []},
    {"name": "a", "data": 1, "idempotency_key": "a\u0000"},
]


async def test_starting_runs(fresh: Api) -> None:
    path, template = "/api/workflows/onboard/runs", "/api/workflows/{name}/runs"

    async def start(expected: int, body: Any, name: str = "onboard") -> Any:
        where = f"/api/workflows/{name}/runs"
        return await fresh.call("POST", where, expected, template, json=body)

    new = await start(202, {"input": {"email": "bo@example.com"}})
    assert new["status"] == "pending" and new["created"] is True
    shown = await fresh.call("GET", f"/api/runs/{new['run_id']}", 200, "/api/runs/{run_id}")
    assert shown["input"] == {"email": "bo@example.com", "plan": "free"}  # as validated
    keyed = {"input": {"email": "cy@example.com"}, "idempotency_key": "signup-cy"}
    first, again = await start(202, keyed), await start(200, keyed)
    assert again == {**first, "created": False}
    before = len((await fresh.call("GET", "/api/runs", 200))["runs"])
    invalid = await start(422, {"input": {"email": 3}})
    assert (
        invalid["error"]["type"] == "InputValidationError"
        and "email" in invalid["error"]["message"]
    )
    assert (await start(404, {"input": {}}, name="nope"))["error"]["type"] == "UnknownWorkflowError"
    await start(404, {"input": {"email": "d@x.io"}, "version": "v9"})
    for body in BAD_STARTS:
        assert (await start(400, body, name="order"))["error"]["message"]
    not_json = await fresh.client.post(path, content=b"{nope")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]["message"]
    conforms(fresh.document, "POST", template, not_json)
    nan = await fresh.client.post(path, content=b'{"input": NaN}')
    assert nan.status_code == 400
    assert len((await fresh.call("GET", "/api/runs", 200))["runs"]) == before  # none created
    any_input = await start(202, {"input": [1, "two", None], "version": None}, name="order")
    assert any_input["created"]


async def test_pause_resume_cancel_retry_follow_the_state_table(fresh: Api) -> None:
    ids = fresh.ids

    async def act(action: str, run_id: str, expected: int) -> Any:
        template = f"/api/runs/{{run_id}}/{action}"
        return await fresh.call("POST", f"/api/runs/{run_id}/{action}", expected, template)

    assert (await act("pause", ids.sleeping, 200))["status"] == "paused"
    resumed = await act("resume", ids.sleeping, 200)
    assert resumed["status"] == "pending" and resumed["wake_at"]  # its sleep still holds
    # A run with completed steps is canceled by compensating them first.
    assert (await act("cancel", ids.sleeping, 200))["status"] == "compensating"
    canceled = await act("cancel", ids.queued, 200)
    assert canceled["status"] == "canceled" and canceled["error"]["type"] == "Canceled"
    refused = await act("pause", ids.queued, 409)
    assert refused["error"]["type"] == "InvalidTransitionError"
    await act("resume", ids.completed, 409)
    await act("retry", ids.completed, 409)
    assert (await act("retry", ids.failed, 200))["status"] == "pending"
    for action in ("pause", "resume", "cancel", "retry"):
        assert (await act(action, "run_nope", 404))["error"]["type"] == "RunNotFoundError"


async def test_emitting_events(fresh: Api) -> None:
    async def emit(expected: int, body: Any) -> Any:
        return await fresh.call("POST", "/api/events", expected, json=body)

    new = await emit(202, {"name": "order.placed", "data": {"id": 1}})
    assert new["created"] is True
    keyed = {
        "name": "order.placed",
        "data": None,
        "idempotency_key": "o-1",
        "delay": 60,
        "metadata": {"source": "test"},
    }
    first, again = await emit(202, keyed), await emit(200, keyed)
    assert again == {**first, "created": False}
    listed = await fresh.call("GET", "/api/events?name=order.placed", 200)
    assert [e["id"] for e in listed["events"]] == [first["event_id"], new["event_id"]]
    for body in BAD_EVENTS:
        assert (await emit(400, body))["error"]["message"], body


async def test_redriving_a_dead_delivery(fresh: Api) -> None:
    template = "/api/deliveries/{delivery_id}/redrive"
    dead = f"/api/deliveries/{fresh.ids.dead_delivery}/redrive"
    again = await fresh.call("POST", dead, 200, template)
    assert again["id"] == fresh.ids.dead_delivery and again["status"] == "pending"
    refused = await fresh.call("POST", dead, 409, template)
    assert "not dead" in refused["error"]["message"]
    missing = await fresh.call("POST", "/api/deliveries/dlv_nope/redrive", 404, template)
    assert missing["error"]["type"] == "DeliveryNotFoundError"
