"""``runtime bench --http``: the server starts, is polled, and stops; every figure is compared.

Every workload is cut to a few runs (the figures module's sizes patched): these tests
prove the plumbing (the measured runtimes serve the API on the port the poller asks,
the poller's requests are answered, the server and the poller are gone afterwards, the
report holds each figure's ratio and bar), not the speed.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from click.testing import CliRunner

from runtime.bench import figures, http_load
from runtime.bench.http_load import (
    BARS,
    CONTROL,
    LOADS,
    MODES,
    compare,
    measure_mode,
    polling,
    render,
)
from runtime.bench.scratch import leftover_schemas
from runtime.cli import main
from tests.helpers.postgres import SERVER, require_server


@pytest.fixture(autouse=True)
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "RUNS": 20,
        "LATENCY_RUNS": 10,
        "QUEUE_RUNS": 10,
        "EMIT_LATENCY_EVENTS": 20,
        "THROUGHPUT_EVENTS": 200,
        "EMITTERS": 5,
        "CRON_FIRINGS": 2,
    }.items():
        monkeypatch.setattr(figures, name, value)


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_poller_counts_requests_no_server_answered() -> None:
    port = http_load.free_port()
    tally: dict[str, int] = {}
    with polling(f"http://127.0.0.1:{port}", 50.0, tally):
        time.sleep(1.0)
    assert tally["requests"] == tally["refused"] > 0
    assert (tally["answered"], tally["failed"]) == (0, 0)


def test_a_polled_measurement_serves_the_api_and_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports: list[int] = []
    free_port = http_load.free_port

    def chosen() -> int:
        ports.append(free_port())
        return ports[-1]

    monkeypatch.setattr(http_load, "free_port", chosen)
    result = measure_mode("busy", fast_path=True, database=None)
    # The poller's requests (/api/runs, /api/health, the runs page) were answered. A
    # request in flight when a measured runtime exits is answered 503 (its store closes
    # under it): one per runtime (four) at most.
    assert result["http_requests"] > 0
    assert result["http_failed"] <= 4
    for figure, _ in BARS:
        assert result[figure] > 0, figure
    # Every runtime that served is gone, and its port with it.
    assert len(ports) == 1 and refused(ports[0])
    off = measure_mode("off", fast_path=True, database=None)
    assert "http_requests" not in off


def test_compare_reports_each_figure_with_its_ratio_and_bar() -> None:
    lines: list[str] = []
    result = compare(1, lines.append)
    assert [line.rsplit(" ", 1)[1] for line in lines] == list(MODES)
    assert set(result["ratio"]) == {CONTROL, *LOADS}
    assert "http_requests" not in result[CONTROL]
    for mode in LOADS:
        assert set(result["ratio"][mode]) == set(result["off"])
        assert result[mode]["http_requests"] > 0
    assert len(result["bars"]) == len(BARS) * len(LOADS)
    assert result["pass"] == all(bar["pass"] for bar in result["bars"])
    rows = render(result)
    assert [row[0] for row in rows] == list(result["off"])
    assert {row[-1] for row in rows if row[0] in dict(BARS)} <= {
        "pass/pass",
        "pass/FAIL",
        "FAIL/pass",
        "FAIL/FAIL",
    }


def test_the_cli_prints_the_table_or_json() -> None:
    done = CliRunner().invoke(main, ["bench", "--http", "--runs", "1", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert set(MODES) <= set(result) and result["repeats"] == 1


def test_on_postgres_each_mode_gets_scratch_schemas_dropped_after() -> None:
    require_server()
    before = set(leftover_schemas(SERVER))
    result = measure_mode("dashboard", fast_path=True, database=SERVER)
    assert result["http_requests"] > 0 and result["http_failed"] <= 4
    assert set(leftover_schemas(SERVER)) <= before
