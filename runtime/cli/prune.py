"""``runtime prune``: remove old history now, as the service's pruner does every few minutes."""

from __future__ import annotations

from typing import Any

import click

from runtime.cli.common import (
    Context,
    echo_json,
    json_option,
    pass_context,
    run_async,
    table,
    with_store,
)
from runtime.cli.payloads import Period
from runtime.clock import SystemClock
from runtime.pruner import PruneRound, Retention, prune
from runtime.store.base import Store

_KINDS = (
    ("runs", "runs"),
    ("steps", "steps"),
    ("staged_events", "staged events"),
    ("events", "events"),
    ("deliveries", "deliveries"),
    ("firings", "schedule firings"),
)


@click.command("prune")
@click.option(
    "--older-than",
    type=Period(),
    help="Remove completed runs, delivered events and firings older than this (30d, 12h, "
    "seconds; 0 keeps them). Default: the project's 'retention'.",
)
@click.option(
    "--failed-older-than",
    type=Period(),
    help="Remove failed/canceled runs and events with a dead delivery older than this "
    "(0 keeps them). Default: the project's 'failed_retention'.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@json_option
@pass_context
def prune_command(
    ctx: Context,
    older_than: float | None,
    failed_older_than: float | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove ended runs (with their steps), events and schedule firings past retention.

    Live runs, pending deliveries, and failed runs or dead deliveries inside
    failed_retention are never removed (docs/retention.md). Safe while the service runs.
    """
    config = ctx.config()
    retention = Retention(
        config.retention if older_than is None else older_than,
        config.failed_retention if failed_older_than is None else failed_older_than,
    )

    async def go(store: Store) -> PruneRound:
        return await prune(store, retention.cutoffs(SystemClock().now()), dry_run=dry_run)

    done = run_async(lambda: with_store(ctx, go)) if retention.enabled else None
    counts = done.counts.as_dict() if done is not None else {}
    if as_json:
        said: dict[str, Any] = {"dry_run": dry_run, "retention_s": retention.completed}
        said["failed_retention_s"] = retention.failed
        said["would_remove" if dry_run else "removed"] = counts
        echo_json(said)
        return
    if done is None:
        click.echo("nothing to prune: retention and failed_retention are both 0 (keep forever)")
        return
    verb = "would remove" if dry_run else "removed"
    rows = [(label, counts[kind]) for kind, label in _KINDS]
    click.echo(table(("KIND", verb.upper()), rows))
