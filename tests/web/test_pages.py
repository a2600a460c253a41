"""The dashboard's pages in process: what they show, their filters and paging, the buttons
the state table allows, actions and their refusals, and links that keep a mount prefix."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from runtime.models import DeliveryStatus
from runtime.web import create_app
from tests.web.conftest import Demo, client_of, dashboard_app, lifespan

NAVIGATION = ["Runs", "Events", "Dead deliveries", "Jobs", "Workflows", "Subscribers"]
BUTTONS = ("Pause", "Resume", "Cancel", "Retry")


def buttons(html: str) -> list[str]:
    """The action buttons a page shows, by name."""
    return [b for b in re.findall(r"<button[^>]*>([^<]*)</button>", html) if b in BUTTONS]


def run_links(html: str) -> list[str]:
    return re.findall(r'href="(/[^"]*runs/run_[^"]+)"', html)


async def test_every_page_has_the_navigation(demo: Demo) -> None:
    for path in ("/", f"/runs/{demo.ids.failed}", "/events", "/deliveries", "/jobs"):
        page = await demo.client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        nav = page.text[page.text.index("<nav") : page.text.index("</nav>")]
        assert re.findall(r"<a [^>]*>([^<]+)</a>", nav) == NAVIGATION
    for path in ("/workflows", "/subscribers"):
        assert (await demo.client.get(path)).status_code == 200


async def test_the_runs_page_lists_runs_newest_first_each_linking_to_its_page(
    demo: Demo,
) -> None:
    page = (await demo.client.get("/")).text
    ids = demo.ids
    newest_first = (ids.queued, ids.sleeping, ids.failed, ids.completed)
    assert run_links(page) == [f"/runs/{i}" for i in newest_first]
    for status in ("pending", "sleeping", "failed", "completed"):
        assert f'<span class="badge b-{status}">{status}</span>' in page
    assert "ValueError: order o-1002 has no shipping address" in page
    assert 'id="auto-refresh"' in page and "Auto-refresh" in page
    assert '<script src="/static/dashboard.js' in page


async def test_the_runs_page_filters_by_status_and_workflow(demo: Demo) -> None:
    failed = (await demo.client.get("/", params={"status": "failed"})).text
    assert run_links(failed) == [f"/runs/{demo.ids.failed}"]
    assert 'value="failed" checked' in failed
    either = (await demo.client.get("/?status=failed&status=sleeping")).text
    assert sorted(run_links(either)) == sorted(
        [f"/runs/{demo.ids.failed}", f"/runs/{demo.ids.sleeping}"]
    )
    report = (await demo.client.get("/", params={"workflow": "daily_report"})).text
    assert run_links(report) == [f"/runs/{demo.ids.sleeping}"]
    assert 'value="daily_report"' in report
    none = (await demo.client.get("/", params={"workflow": "nope"})).text
    assert run_links(none) == [] and "No runs match these filters." in none
    bad = await demo.client.get("/", params={"status": "asleep"})
    assert bad.status_code == 400 and "asleep" in bad.text


async def test_the_runs_page_pages_with_next_cursor_keeping_the_filters(demo: Demo) -> None:
    for n in range(52):
        started = await demo.client.post(
            "/api/workflows/place_order/runs", json={"input": {"id": f"p-{n}"}}
        )
        assert started.status_code == 202
    first = (await demo.client.get("/", params={"status": "pending"})).text
    assert len(run_links(first)) == 50
    older = re.search(r'<a href="([^"]+)">Older →</a>', first)
    assert older is not None
    url = older.group(1).replace("&amp;", "&")
    assert "status=pending" in url and "cursor=" in url
    second = (await demo.client.get(url)).text
    assert len(run_links(second)) == 3  # 52 started and the queued one
    assert not set(run_links(first)) & set(run_links(second))
    assert "Older →" not in second and "← Newest" in second


async def test_an_unknown_run_is_a_404_page(demo: Demo) -> None:
    page = await demo.client.get("/runs/run_nope")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no run run_nope." in page.text and "Dead deliveries" in page.text
    post = await demo.client.post("/runs/run_nope/pause")
    assert post.status_code == 404


async def test_a_run_page_shows_its_steps_error_and_compensations_in_order(demo: Demo) -> None:
    page = (await demo.client.get(f"/runs/{demo.ids.failed}")).text
    assert '<span class="badge b-failed">failed</span>' in page
    assert "place_order" in page and "&#34;o-1002&#34;" in page  # the input, escaped JSON
    assert "order o-1002 has no shipping address" in page
    assert "No output: the run ended failed." in page and "No output yet" not in page
    assert "No output yet." in (await demo.client.get(f"/runs/{demo.ids.sleeping}")).text
    assert "<summary>Traceback</summary>" in page and "Traceback (most recent call last)" in page
    timeline = page[page.index("<h2>Steps</h2>") : page.index("Compensations")]
    assert re.findall(r'<td class="nowrap step-name">(\w+)', timeline) == [
        "reserve_inventory",
        "charge_card",
        "ship_order",
    ]
    undone = page[page.index("Compensations") :]
    assert re.findall(r"<strong>(\w+)</strong>", undone) == ["charge_card", "reserve_inventory"]
    assert re.search(r'<time datetime="[0-9T:.Z+-]+" title="[0-9: -]+ UTC">', page)


async def test_the_buttons_are_those_the_state_table_allows(demo: Demo) -> None:
    ids = demo.ids
    assert buttons((await demo.client.get(f"/runs/{ids.sleeping}")).text) == ["Pause", "Cancel"]
    assert buttons((await demo.client.get(f"/runs/{ids.queued}")).text) == ["Pause", "Cancel"]
    assert buttons((await demo.client.get(f"/runs/{ids.failed}")).text) == ["Retry"]
    assert buttons((await demo.client.get(f"/runs/{ids.completed}")).text) == []
    await demo.client.post(f"/runs/{ids.sleeping}/pause")
    assert buttons((await demo.client.get(f"/runs/{ids.sleeping}")).text) == ["Resume", "Cancel"]


async def test_pause_and_resume_redirect_back_to_the_run_with_a_message(demo: Demo) -> None:
    run_id = demo.ids.sleeping
    paused = await demo.client.post(f"/runs/{run_id}/pause")
    assert paused.status_code == 303
    assert paused.headers["location"] == f"/runs/{run_id}?done=pause"
    page = (await demo.client.get(paused.headers["location"])).text
    assert '<span class="badge b-paused">paused</span>' in page
    assert 'role="status">Paused.</p>' in page
    resumed = await demo.client.post(f"/runs/{run_id}/resume")
    assert resumed.status_code == 303
    page = (await demo.client.get(resumed.headers["location"])).text
    assert '<span class="badge b-pending">pending</span>' in page
    assert "Resumed" in page
    assert (await demo.client.get(f"/api/runs/{run_id}")).json()["status"] == "pending"


async def test_what_an_action_did_is_said_only_while_the_run_still_shows_it(
    demo: Demo,
) -> None:
    # The run page reloads itself from its address, ?done=... included: once another
    # operator has undone the action, the page must not still say it was done.
    ids = demo.ids
    status = re.compile(r'role="status">([^<]+)</p>')
    await demo.client.post(f"/runs/{ids.sleeping}/pause")
    page = (await demo.client.get(f"/runs/{ids.sleeping}?done=pause")).text
    assert status.findall(page) == ["Paused."]
    await demo.client.post(f"/api/runs/{ids.sleeping}/resume")
    assert status.findall((await demo.client.get(f"/runs/{ids.sleeping}?done=pause")).text) == []
    await demo.client.post(f"/api/runs/{ids.sleeping}/pause")
    assert status.findall((await demo.client.get(f"/runs/{ids.sleeping}?done=resume")).text) == []
    await demo.client.post(f"/api/runs/{ids.failed}/retry")
    assert status.findall((await demo.client.get(f"/runs/{ids.failed}?done=cancel")).text) == []
    assert status.findall((await demo.client.get(f"/runs/{ids.completed}?done=retry")).text) == []


async def test_a_refused_action_shows_the_refusal_on_the_run_page(demo: Demo) -> None:
    refused = await demo.client.post(f"/runs/{demo.ids.completed}/pause")
    assert refused.status_code == 409
    alert = re.search(r'<p class="message refused" role="alert">([^<]+)</p>', refused.text)
    assert alert is not None
    assert alert.group(1) == (
        f"cannot pause run {demo.ids.completed}, which is completed: "
        "only retry applies to an ended run"
    )
    assert '<span class="badge b-completed">completed</span>' in refused.text
    assert (await demo.client.post(f"/runs/{demo.ids.failed}/jump")).status_code == 404


async def test_a_form_posted_from_another_origin_is_refused(demo: Demo) -> None:
    forged = await demo.client.post(
        f"/runs/{demo.ids.sleeping}/cancel", headers={"Origin": "http://evil.example"}
    )
    assert forged.status_code == 403
    run = (await demo.client.get(f"/api/runs/{demo.ids.sleeping}")).json()
    assert run["status"] == "sleeping"


async def test_dead_deliveries_show_their_last_error_and_redrive(demo: Demo) -> None:
    dead_id = demo.ids.dead_delivery
    page = (await demo.client.get("/deliveries")).text
    assert dead_id in page and "sync-crm" in page
    assert "crm.example.com refused the connection" in page
    assert f'action="/deliveries/{dead_id}/redrive"' in page and ">Redrive</button>" in page
    redriven = await demo.client.post(f"/deliveries/{dead_id}/redrive")
    assert redriven.status_code == 303
    assert redriven.headers["location"] == f"/deliveries?redriven={dead_id}"
    after = (await demo.client.get(redriven.headers["location"])).text
    assert "is pending again" in after and ">Redrive</button>" not in after
    assert (await demo.store.get_delivery(dead_id)).status == DeliveryStatus.PENDING
    again = await demo.client.post(f"/deliveries/{dead_id}/redrive")
    assert again.status_code == 409
    assert re.search(r'role="alert">delivery [^<]* is pending, not dead', again.text)
    assert (await demo.client.post("/deliveries/dlv_nope/redrive")).status_code == 404


async def test_events_are_listed_with_their_deliveries_and_filtered_by_name(demo: Demo) -> None:
    await demo.client.post("/api/events", json={"name": "order.placed", "data": {"id": 1}})
    page = (await demo.client.get("/events")).text
    assert page.index("order.placed") < page.index("customer.created")  # newest first
    assert "send-welcome" in page and '<span class="badge b-dead">dead</span>' in page
    only = (await demo.client.get("/events", params={"name": "order.placed"})).text
    assert "order.placed" in only and "customer.created" not in only


async def test_jobs_workflows_and_subscribers_pages(demo: Demo) -> None:
    jobs = (await demo.client.get("/jobs")).text
    assert "cleanup-carts" in jobs and "<code>0 2 * * *</code>" in jobs
    assert "Not fired yet." in jobs and "<time datetime=" in jobs
    workflows = (await demo.client.get("/workflows")).text
    assert "place_order" in workflows and "daily_report" in workflows and ">v2<" in workflows
    assert "job-cleanup-carts" not in workflows
    subscribers = (await demo.client.get("/subscribers")).text
    assert "<code>customer.*</code>" in subscribers and "send-welcome" in subscribers
    assert '<span class="badge b-done">done</span>' in subscribers


async def test_what_the_code_gives_is_escaped(demo: Demo) -> None:
    started = await demo.client.post(
        "/api/workflows/place_order/runs", json={"input": {"id": "<script>alert(1)</script>"}}
    )
    page = (await demo.client.get(f"/runs/{started.json()['run_id']}")).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


async def test_the_static_files_are_served(demo: Demo) -> None:
    page = (await demo.client.get("/")).text
    css = re.search(r'href="(/static/dashboard\.css\?v=\w+)"', page)
    assert css is not None
    assert "text/css" in (await demo.client.get(css.group(1))).headers["content-type"]
    script = await demo.client.get("/static/dashboard.js")
    assert script.status_code == 200 and "localTimes" in script.text


async def test_mounted_under_a_prefix_links_and_redirects_keep_it(demo: Demo) -> None:
    parent = Starlette(routes=[Mount("/runtime", app=demo.app)])
    async with client_of(parent) as client:
        page = (await client.get("/runtime/")).text
        assert f'href="/runtime/runs/{demo.ids.failed}"' in page
        assert 'href="/runtime/static/dashboard.css' in page
        assert 'href="/runtime/events"' in page and 'action="/runtime/"' in page
        assert (await client.get("/runtime/static/dashboard.js")).status_code == 200
        run = (await client.get(f"/runtime/runs/{demo.ids.sleeping}")).text
        assert f'action="/runtime/runs/{demo.ids.sleeping}/pause"' in run
        paused = await client.post(f"/runtime/runs/{demo.ids.sleeping}/pause")
        assert paused.headers["location"] == f"/runtime/runs/{demo.ids.sleeping}?done=pause"
        dead = (await client.get("/runtime/deliveries")).text
        assert f'action="/runtime/deliveries/{demo.ids.dead_delivery}/redrive"' in dead
        redriven = await client.post(f"/runtime/deliveries/{demo.ids.dead_delivery}/redrive")
        assert redriven.headers["location"].startswith("/runtime/deliveries?redriven=")


async def test_with_a_token_pages_ask_for_it_and_offer_to_sign_out(demo: Demo) -> None:
    token = "a-token-of-sixteen-chars"
    app = dashboard_app(demo.store, demo.project, token=token)
    parent = Starlette(routes=[Mount("/runtime", app=app)])
    async with client_of(parent) as client:
        asked = await client.get("/runtime/jobs")
        assert asked.status_code == 303
        assert asked.headers["location"] == "/runtime/login?next=/jobs"
        signed = await client.post(
            "/runtime/login", data={"token": token, "next": "/jobs"}, follow_redirects=False
        )
        assert signed.headers["location"] == "/runtime/jobs"
        page = await client.get("/runtime/jobs")
        assert page.status_code == 200
        assert '<form class="signout" method="post" action="/runtime/logout">' in page.text
    unsigned = (await demo.client.get("/jobs")).text
    assert "Sign out" not in unsigned


async def test_the_runs_page_reads_one_page_of_runs(demo: Demo) -> None:
    calls: list[dict[str, object]] = []
    list_runs = demo.store.list_runs

    async def counted(**kwargs: object) -> object:
        calls.append(kwargs)
        return await list_runs(**kwargs)  # type: ignore[arg-type]

    demo.store.list_runs = counted  # type: ignore[method-assign]
    assert (await demo.client.get("/?status=failed")).status_code == 200
    assert len(calls) == 1 and calls[0]["limit"] == 50


async def test_pages_answer_head_and_refuse_other_methods(demo: Demo) -> None:
    assert (await demo.client.head("/")).status_code == 200
    assert (await demo.client.post("/events")).status_code == 405
    assert isinstance(demo.client, httpx.AsyncClient)


async def test_a_browser_opening_an_action_url_gets_a_page_leading_to_the_run(demo: Demo) -> None:
    # After an action, the address bar may hold /runs/{id}/pause; opening it is a GET.
    html = {"accept": "text/html"}
    opened = await demo.client.get(f"/runs/{demo.ids.sleeping}/pause", headers=html)
    assert opened.status_code == 405 and opened.headers["allow"] == "POST"
    assert "text/html" in opened.headers["content-type"]
    assert f'href="/runs/{demo.ids.sleeping}"' in opened.text
    assert 'aria-label="Dashboard"' in opened.text
    # A client that does not ask for HTML still gets the API's JSON error.
    plain = await demo.client.get(f"/runs/{demo.ids.sleeping}/pause")
    assert plain.status_code == 405 and plain.json()["error"]["type"] == "MethodNotAllowed"


async def test_create_app_in_a_folder_that_defines_no_workflow_starts_runs_by_name(
    tmp_path: Path,
) -> None:
    # A web app whose workflows are defined in code (Runtime(workflows=[...])) mounts
    # create_app as the README shows, from its own folder: no runtime.toml, no workflows/.
    folder = tmp_path / "webapp"
    folder.mkdir()
    app = create_app(f"sqlite:///{tmp_path / 'app.db'}", project=folder)
    async with lifespan(app), client_of(app) as client:
        started = await client.post("/api/workflows/daily_report/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        page = (await client.get("/workflows")).text
        assert "defines none, so runs are started by name" in page
