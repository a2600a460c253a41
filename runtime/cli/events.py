"""``runtime emit`` and ``runtime events list|dead|redrive``: the durable event bus."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from runtime.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Context,
    echo_json,
    fail,
    json_option,
    pass_context,
    run_async,
    short,
    table,
    when,
    with_store,
)
from runtime.cli.payloads import Seconds, Text, payloads
from runtime.models import DeliveryRecord, DeliveryStatus, EventRecord
from runtime.store.base import Store
from runtime.store.records import Page


@click.command()
@click.argument("name")
@click.option(
    "--data",
    "data_json",
    default="null",
    help="The payload, as JSON; @FILE reads it from a file, - from standard input.",
)
@click.option(
    "--metadata",
    "metadata_json",
    help="A JSON object of metadata; @FILE reads it from a file, - from standard input.",
)
@click.option(
    "--delay",
    type=Seconds(),
    help="Deliver after this many seconds (0 to 31622400, i.e. 366 days).",
)
@click.option(
    "--idempotency-key",
    "key",
    type=Text(non_empty=True),
    help="Emitting again with this key returns the first event's id (no new event).",
)
@json_option
@pass_context
def emit(
    ctx: Context,
    name: str,
    data_json: str,
    metadata_json: str | None,
    delay: float | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Store event NAME durably and print its id; the service delivers it to subscribers."""
    given = payloads(data=data_json, metadata=metadata_json)
    data, metadata = given["data"], given["metadata"]
    if metadata_json is not None and not isinstance(metadata, dict):
        fail(f"--metadata must be a JSON object, got {json.dumps(metadata)[:60]}", EXIT_USAGE)
    config = ctx.config()
    database = ctx.database_url(config)

    async def go() -> str:
        from runtime.client import Client

        async with Client(database, base_dir=config.root) as client:
            return await client.emit(
                name, data, metadata=metadata, delay=delay, idempotency_key=key
            )

    event_id = run_async(go)
    if as_json:
        echo_json({"event_id": event_id, "name": name})
    else:
        click.echo(event_id)


@click.group()
def events() -> None:
    """Read events and dead deliveries; redrive them (works while the service runs)."""


@events.command("list")
@click.option("--name", type=Text(non_empty=True), help="Only events with this name.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", type=Text(), help="next_cursor from a previous page.")
@json_option
@pass_context
def events_list(
    ctx: Context, name: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List events, newest first."""

    async def read(store: Store) -> Page:
        return await store.list_events(name=name, limit=limit, cursor=cursor)

    page = run_async(lambda: with_store(ctx, read))
    records: list[EventRecord] = page.items
    if as_json:
        echo_json(
            {
                "events": [e.model_dump(mode="json") for e in records],
                "next_cursor": page.next_cursor,
            }
        )
        return
    rows = [(e.id, e.name, when(e.occurred_at), short(e.data)) for e in records]
    click.echo(table(("EVENT", "NAME", "OCCURRED", "DATA"), rows))
    if page.next_cursor:
        click.echo(f"more: --cursor '{page.next_cursor}'")


@events.command("dead")
@click.option("--subscriber", type=Text(non_empty=True), help="Only deliveries to this subscriber.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", type=Text(), help="next_cursor from a previous page.")
@json_option
@pass_context
def events_dead(
    ctx: Context, subscriber: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List dead deliveries (a subscriber failed every attempt), newest event first."""

    async def read(store: Store) -> Page:
        return await store.list_deliveries(
            status=[DeliveryStatus.DEAD], subscriber_id=subscriber, limit=limit, cursor=cursor
        )

    page = run_async(lambda: with_store(ctx, read))
    records: list[DeliveryRecord] = page.items
    if as_json:
        echo_json(
            {
                "deliveries": [d.model_dump(mode="json") for d in records],
                "next_cursor": page.next_cursor,
            }
        )
        return
    rows = [
        (
            d.id,
            d.event_name,
            d.event_id,
            d.subscriber_id,
            f"{d.attempts}/{d.max_attempts}",
            when(d.finished_at or d.updated_at),
            f"{d.error.type}: {d.error.message}" if d.error else "",
        )
        for d in records
    ]
    headers = ("DELIVERY", "EVENT", "EVENT ID", "SUBSCRIBER", "ATTEMPTS", "DIED", "LAST ERROR")
    click.echo(table(headers, rows))
    if page.next_cursor:
        click.echo(f"more: --cursor '{page.next_cursor}'")


@events.command("redrive")
@click.argument("delivery_ids", nargs=-1, type=Text())
@click.option("--all", "every", is_flag=True, help="Redrive every dead delivery.")
@json_option
@pass_context
def events_redrive(ctx: Context, delivery_ids: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Put dead deliveries back to pending, with fresh attempts; print how many.

    Give DELIVERY_IDs, or --all. An id that is not a dead delivery (unknown, or not
    dead) is named on stderr and makes the command exit 3; the others are redriven.
    """
    if every == bool(delivery_ids):
        fail("give DELIVERY_IDs or --all (not both)", EXIT_USAGE)

    async def write(store: Store) -> tuple[int, list[str]]:
        now = datetime.now(UTC)
        if every:
            return await store.redrive(None, now), []
        missing = [i for i in dict.fromkeys(delivery_ids) if not await store.redrive([i], now)]
        return len(set(delivery_ids)) - len(missing), missing

    count, missing = run_async(lambda: with_store(ctx, write))
    if as_json:
        echo_json({"redriven": count, "not_dead": missing})
    else:
        click.echo(f"redriven: {count}")
    for delivery_id in missing:
        click.echo(
            f"error: {delivery_id!r} is not a dead delivery (unknown, or not dead)", err=True
        )
    if missing:
        sys.exit(EXIT_NOT_FOUND)
