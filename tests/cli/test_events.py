"""``runtime emit`` and ``runtime events list|dead|redrive``."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from runtime.models import DeliveryStatus
from runtime.sdk.specs import Subscriber, SubscriberArgs, SubscriberConfig
from runtime.service import Runtime
from tests.cli.conftest import cli, cli_json


def test_emit_stores_an_event_that_events_list_shows(project: Path) -> None:
    done = cli(
        project,
        "emit",
        "order.placed",
        "--data",
        '{"id": "o1"}',
        "--metadata",
        '{"source": "test"}',
    )
    assert done.returncode == 0, done.stderr
    event_id = done.stdout.strip()
    assert event_id.startswith("evt_")
    second = cli_json(
        project,
        "emit",
        "customer.created",
        "--data",
        '{"first_name": "Ada"}',
        "--idempotency-key",
        "signup-1",
        "--delay",
        "60",
    )
    again = cli_json(project, "emit", "customer.created", "--idempotency-key", "signup-1")
    assert again["event_id"] == second["event_id"]

    listed = cli_json(project, "events", "list")
    assert [(e["id"], e["name"]) for e in listed["events"]] == [
        (second["event_id"], "customer.created"),
        (event_id, "order.placed"),
    ]
    placed = listed["events"][1]
    assert (placed["data"], placed["metadata"]) == ({"id": "o1"}, {"source": "test"})
    assert listed["next_cursor"] is None

    only = cli_json(project, "events", "list", "--name", "order.placed")
    assert [e["id"] for e in only["events"]] == [event_id]
    page = cli_json(project, "events", "list", "--limit", "1")
    assert len(page["events"]) == 1 and page["next_cursor"]
    rest = cli_json(project, "events", "list", "--limit", "1", "--cursor", page["next_cursor"])
    assert [e["id"] for e in rest["events"]] == [event_id]

    table = cli(project, "events", "list").stdout.splitlines()
    assert table[0].split() == ["EVENT", "NAME", "OCCURRED", "DATA"]
    assert table[2].startswith(event_id) and '{"id": "o1"}' in table[2]


def test_emit_refuses_bad_input_with_exit_2(project: Path) -> None:
    for args, message in (
        (["--data", "{nope"], "--data is not valid JSON"),
        (["--metadata", "[1]"], "--metadata must be a JSON object, got [1]"),
    ):
        done = cli(project, "emit", "order.placed", *args)
        assert done.returncode == 2, args
        assert message in done.stderr
    done = cli(project, "emit", "not a name")
    assert done.returncode == 2 and "not a valid event name" in done.stderr


async def _deliver_to_a_failing_subscriber(project: Path, count: int) -> None:
    """Run a runtime whose only subscriber always fails once, until ``count`` are dead."""

    async def handler(args: SubscriberArgs) -> None:
        raise RuntimeError(f"cannot handle {args.event.data['id']}")

    boom = Subscriber(
        "boom", handler, SubscriberConfig(event="order.placed", max_attempts=1), "test"
    )
    async with Runtime("sqlite:///app.db", base_dir=project, subscribers=[boom]) as rt:
        with anyio.fail_after(10):
            while True:
                page = await rt.store.list_deliveries(status=[DeliveryStatus.DEAD])
                if len(page.items) == count:
                    return
                await anyio.sleep(0.02)


def test_a_dead_delivery_is_listed_and_redriven(project: Path) -> None:
    first = cli(project, "emit", "order.placed", "--data", '{"id": "o1"}').stdout.strip()
    second = cli(project, "emit", "order.placed", "--data", '{"id": "o2"}').stdout.strip()
    anyio.run(_deliver_to_a_failing_subscriber, project, 2)

    dead = cli_json(project, "events", "dead")["deliveries"]
    assert [(d["event_id"], d["event_name"], d["subscriber_id"], d["attempts"]) for d in dead] == [
        (second, "order.placed", "boom", 1),
        (first, "order.placed", "boom", 1),
    ]
    assert dead[1]["error"]["type"] == "RuntimeError"
    assert dead[1]["error"]["message"] == "cannot handle o1"
    assert cli_json(project, "events", "dead", "--subscriber", "other")["deliveries"] == []
    table = cli(project, "events", "dead").stdout.splitlines()
    assert table[0].split()[:2] == ["DELIVERY", "EVENT"]
    assert "boom" in table[2] and "1/1" in table[2]
    assert "RuntimeError: cannot handle o1" in table[2]

    done = cli(project, "events", "redrive", dead[1]["id"], "dlv_nope")
    assert done.returncode == 3
    assert done.stdout.strip() == "redriven: 1"
    assert "'dlv_nope' is not a dead delivery" in done.stderr
    assert [d["id"] for d in cli_json(project, "events", "dead")["deliveries"]] == [dead[0]["id"]]

    assert cli_json(project, "events", "redrive", "--all") == {"redriven": 1, "not_dead": []}
    assert cli_json(project, "events", "dead")["deliveries"] == []
    again = cli(project, "events", "redrive", dead[0]["id"])
    assert again.returncode == 3  # no longer dead
    assert cli(project, "events", "redrive", "--all").stdout.strip() == "redriven: 0"


def test_redrive_needs_ids_or_all(project: Path) -> None:
    for args in ([], ["--all", "dlv_1"]):
        done = cli(project, "events", "redrive", *args)
        assert done.returncode == 2, args
        assert "give DELIVERY_IDs or --all" in done.stderr


def test_events_dead_json_is_one_document(project: Path) -> None:
    assert cli(project, "emit", "nothing.special").returncode == 0  # creates the database
    done = cli(project, "events", "dead", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"deliveries": [], "next_cursor": None}
