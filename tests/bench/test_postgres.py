"""``runtime bench --database postgresql://...``: scratch schemas only, always dropped, no password.

Every measurement is cut to a few runs (the module's sizes patched): the test proves
the plumbing (the figures come out positive, the schemas go away, the password never
shows), not the speed.
"""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from click.testing import CliRunner

from runtime.bench import figures, scaling
from runtime.bench.scratch import Scratch, baseline_commit_us, leftover_schemas, scratch
from runtime.cli import main
from tests.helpers.postgres import SERVER, require_server

PASSWORD = "s3cret-bench-pw"

FIGURES = (
    "steps_per_s_sequential",
    "steps_per_s_concurrent",
    "latency_ms_p50",
    "queue_latency_ms_p50",
    "baseline_commit_us",
    "step_overhead_vs_commit",
    "durable_fn_steps_per_s",
    "events_per_s",
    "emit_latency_ms_p50",
    "cron_lag_ms_p50",
    "one_process_steps_per_s",
    "two_process_steps_per_s",
    "two_process_ratio",
)


def _with_password(url: str) -> str:
    """The test server's URL with a password (trust auth: the server never asks for it)."""
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    user, _, host = authority.rpartition("@")
    return f"{scheme}://{user}:{PASSWORD}@{host}{slash}{tail}"


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every measurement cut to a few runs."""
    require_server()
    for name, value in {
        "RUNS": 6,
        "STEPS": 3,
        "LATENCY_RUNS": 5,
        "QUEUE_RUNS": 5,
        "EMIT_LATENCY_EVENTS": 5,
        "THROUGHPUT_EVENTS": 20,
        "EMITTERS": 4,
        "CRON_FIRINGS": 1,
    }.items():
        monkeypatch.setattr(figures, name, value)
    monkeypatch.setattr(scaling, "RUNS", 8)
    monkeypatch.setattr(scaling, "STEPS", 3)
    monkeypatch.setattr(scaling, "CONCURRENCY", 2)


def test_bench_database_measures_in_scratch_schemas_and_drops_them(tiny: None) -> None:
    user_schema = "runtime"
    before = _schemas()
    url = _with_password(SERVER) + f"?schema={user_schema}"
    result = CliRunner().invoke(main, ["bench", "--database", url, "--runs", "1", "--json"])
    output = result.output  # stdout and stderr, as a terminal shows them
    assert result.exit_code == 0, output
    assert PASSWORD not in output
    assert "***" in output  # the URL was shown, redacted
    [prefix] = set(re.findall(r"scratch schemas (runtime_bench_[0-9a-f]+)_\*", output))
    assert leftover_schemas(SERVER, prefix) == []
    # The user's schema was neither made nor dropped.
    assert (user_schema in _schemas()) == (user_schema in before)
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    for name in FIGURES:
        assert shown[name] > 0, name


def test_the_schemas_are_dropped_when_the_benchmark_is_interrupted(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle (after the first measurement made its schema) drops them all."""

    async def interrupted(url: str, http: str | None = None) -> dict[str, float]:
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "_bus", interrupted)
    with pytest.raises(KeyboardInterrupt), scratch(SERVER) as area:
        from runtime.bench.scaling import measure_postgres

        try:
            measure_postgres(area, with_cron=False, with_processes=False)
        finally:
            made = [s for s in area.schemas if s in _schemas()]
            assert made, "the first measurement made no schema"
    assert leftover_schemas(SERVER, area.prefix) == []


def test_a_failed_benchmark_drops_its_schemas_and_never_shows_the_password(tiny: None) -> None:
    url = _with_password(SERVER)
    with pytest.raises(RuntimeError, match="failed"), scratch(url) as area:
        with psycopg.connect(SERVER, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {area.schema('made')}")
        assert PASSWORD not in area.shown
        raise RuntimeError("failed")
    assert leftover_schemas(SERVER, area.prefix) == []


async def test_baseline_is_one_commit_over_the_stores_connection(tiny: None) -> None:
    area = Scratch(SERVER)
    try:
        cost = await baseline_commit_us(area, count=20)
    finally:
        area.drop()
    # One transaction over loopback: more than nothing, far less than a second.
    assert 0 < cost < 1e6
    assert leftover_schemas(SERVER, area.prefix) == []


def test_bench_database_refuses_a_sqlite_url_and_history() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "--database", "sqlite:///x.db"])
    assert result.exit_code == 2 and "only a postgresql:// URL" in result.output
    result = runner.invoke(main, ["bench", "--database", SERVER, "--history", "10"])
    assert result.exit_code == 2 and "not with --history" in result.output


def _schemas() -> set[str]:
    with psycopg.connect(SERVER, autocommit=True) as db:
        return {row[0] for row in db.execute("SELECT nspname FROM pg_namespace").fetchall()}
