"""Bad input on the command line: one clear line on stderr, exit 2, no traceback, nothing stored.

Also the payload forms for payloads past the argument limit: ``@file`` and ``-`` (stdin).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.inprocess import invoke, invoke_json

DEEP = "[" * 101 + "]" * 101


def stored(project: Path, table: str) -> int:
    path = project / "app.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["emit", "a.b", "--delay", "nan"], "'nan': must be a finite number of seconds"),
        (["emit", "a.b", "--delay", "inf"], "'inf': must be a finite number of seconds"),
        (["emit", "a.b", "--delay", "-1"], "'-1': must be >= 0 seconds"),
        (["emit", "a.b", "--delay", "1e300"], "'1e300': must be at most 3.16224e+07 seconds"),
        (["emit", "a.b", "--delay", "soon"], "'soon' is not a number of seconds"),
        (["emit", "a.b", "--data", DEEP], "--data cannot be stored: it is nested more than 100"),
        (["emit", "a.b", "--data", "[" * 5000], "--data cannot be stored: it is nested more"),
        (["emit", "a.b", "--data", "NaN"], "--data is not valid JSON: NaN is not JSON"),
        (["emit", "a.b", "--data", "1e999"], "--data is not valid JSON: 1e999 is too large"),
        (["emit", "a.b", "--data", "1" * 5000], "--data is not valid JSON: Exceeds the limit"),
        (["emit", "a.b", "--data", "@missing.json"], "--data @missing.json: no such file"),
        (["emit", "a.b", "--data", "@"], "--data @: give a file after '@'"),
        (["emit", "a.b", "--data", "@\ud800"], "is not a usable file name"),
        (["emit", "a.b", "--metadata", "@."], "--metadata @.: '.' is a directory"),
        (["emit", "a.b", "--data", "-", "--metadata", "-"], "--data - and --metadata -: standard"),
        (["emit", "", "--data", "1"], "event name must be a non-empty string"),
        (["run", "hello", "--input", DEEP], "--input cannot be stored: it is nested more"),
        (["run", "hello", "--input", "@nope.json"], "--input @nope.json: no such file"),
        (["run", "hello", "--wait", "--timeout", "nan"], "'nan': must be a finite number"),
        (["run", "hello", "--wait", "--timeout", "0"], "'0': must be > 0 seconds"),
        (["run", "", "--input", "1"], "unknown workflow ''"),
        (["runs", "list", "--status", "bogus"], "'bogus' is not one of 'pending'"),
        (["runs", "list", "--limit", "0"], "0 is not in the range 1<=x<=10000"),
        (["runs", "list", "--workflow", ""], "workflow must be a non-empty string"),
        (["runs", "list", "--limit", "100001"], "is not in the range 1<=x<=10000"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(
    project: Path, args: list[str], needle: str
) -> None:
    # Failed before (most of them): a Python traceback and exit 1, or a wrong message
    # ("--data is not valid JSON" for a missing @file).
    done = invoke(project, *args)
    assert (done.code, done.escaped) == (2, None), done.stderr
    assert needle in done.stderr
    assert stored(project, "events") == 0 and stored(project, "runs") == 0


def test_payloads_from_a_file_and_from_stdin(project: Path) -> None:
    # Failed before: "@big.json" and "-" were read as JSON text (exit 2, not valid JSON).
    # Past MAX_ARG_STRLEN (128 KiB on Linux): too long for one argument.
    big = {"items": [{"sku": f"sku-{i}", "qty": i} for i in range(8_000)]}  # ~260 KB
    (project / "big.json").write_text(json.dumps(big))
    first = invoke_json(
        project,
        "emit",
        "order.placed",
        "--data",
        f"@{project / 'big.json'}",
        "--metadata",
        '{"source": "file"}',
    )
    second = invoke_json(project, "emit", "order.placed", "--data", "-", stdin='{"id": "o2"}')
    events = {e["id"]: e for e in invoke_json(project, "events", "list")["events"]}
    assert events[first["event_id"]]["data"] == big
    assert events[first["event_id"]]["metadata"] == {"source": "file"}
    assert events[second["event_id"]]["data"] == {"id": "o2"}

    (project / "input.json").write_text('{"name": "Ada"}')
    run = invoke_json(project, "run", "hello", "--input", f"@{project / 'input.json'}")
    piped = invoke_json(project, "run", "hello", "--input", "-", stdin='{"name": "Bo"}')
    assert invoke_json(project, "runs", "show", run["run_id"])["input"] == {"name": "Ada"}
    assert invoke_json(project, "runs", "show", piped["run_id"])["input"] == {"name": "Bo"}


def test_a_payload_file_that_is_not_utf8_exits_2(project: Path) -> None:
    (project / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    done = invoke(project, "emit", "a.b", "--data", f"@{project / 'latin1.json'}")
    assert (done.code, done.escaped) == (2, None)
    assert "latin1.json: not UTF-8 text (line 1: byte 13 is 0xe9)" in done.stderr
    assert stored(project, "events") == 0


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"runtime.toml": "[runtim]\nconcurrency = 2\n"}, "unknown table [runtim]"),
        ({"runtime.toml": b"database = '\xff'\n"}, "not UTF-8 text (line 1: byte 12 is 0xff)"),
        ({"runtime.toml": "concurrency = true\n"}, "'concurrency' must be an int, got True"),
        (
            {
                "jobs/never.py": "from runtime.sdk.specs import JobConfig\n"
                "async def handler(container): pass\n"
                "config = JobConfig(name='never', schedule='0 0 30 2 *')\n"
            },
            "never.py",
        ),
        (
            {
                "workflows/often.py": "from runtime import Schedule, workflow\n"
                "@workflow(schedules=[Schedule(cron='*/61 * * * *')])\n"
                "async def often(ctx): return 1\n"
            },
            "the step /61 of the minute field is out of range",
        ),
    ],
)
def test_a_bad_project_never_crashes_check_start_or_jobs_list(
    project: Path, files: dict[str, str | bytes], needle: str
) -> None:
    # Failed before: top-level and [runtim] settings were ignored, concurrency = true read as
    # 1, a non-UTF-8 file and an expression that never fires crashed with a traceback.
    for name, body in files.items():
        path = project / name
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)
    for args, code in ((["check"], None), (["jobs", "list"], 2), (["start"], 2)):
        done = invoke(project, *args)
        assert needle in done.stderr, (args, done.stderr)
        assert done.escaped is None
        assert done.code == (code or done.code) and done.code in (1, 2)


def test_check_warns_about_a_runtime_variable_that_names_no_setting(project: Path) -> None:
    # Failed before: a misspelt RUNTIME_CONCURENCY was silently ignored.
    done = invoke(project, "check", "--json", env={"RUNTIME_CONCURENCY": "3"})
    assert (done.code, done.escaped) == (0, None)
    warning = (
        "environment variable RUNTIME_CONCURENCY names no setting and is ignored; "
        "did you mean RUNTIME_CONCURRENCY?"
    )
    assert json.loads(done.stdout)["warnings"] == [warning]
    assert done.stderr == f"warning: {warning}\n"
