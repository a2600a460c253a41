"""Bad input to the command line: every command, option and project file given bad input.

The Python API's half is tests/test_bad_input_api.py.

The rule each row checks: one clear message naming what is wrong and where, exit 2 from
the CLI (3 for an unknown run or delivery), no traceback, no stray "Event loop is closed"
or "Exception ignored", and nothing stored (the database is byte-for-byte the same
rows). From Python, an error of the runtime's tree (runtime/errors.py), never a raw
TypeError/ValueError/UnicodeEncodeError from deep inside.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import FILES
from tests.cli.inprocess import Outcome, invoke

RUN = "run_00000000000000000000000000"
BAD_UTF8 = "\udcff"  # what Python makes of a byte that is not UTF-8 in argv
HUGE = "9" * 40
DEEP = "[" * 101 + "]" * 101


def write_project(root: Path, extra: dict[str, Any] | None = None) -> Path:
    """The CLI tests' project with ``extra`` files (``None``: a folder); an extra file
    named like a folder of the project replaces that folder."""
    extra = extra or {}
    base = {n: b for n, b in FILES.items() if not any(n.startswith(f"{e}/") for e in extra)}
    for name, body in {**base, **extra}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        elif body is None:
            path.mkdir(exist_ok=True)
        else:
            path.write_text(body)
    return root


def rows(project: Path) -> dict[str, list[Any]]:
    with sqlite3.connect(project / "app.db") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


def message_lines(stderr: str) -> list[str]:
    """The lines of a message, without click's usage preamble."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("Usage: ", "Try '"))
    ]


def assert_one_clear_message(done: Outcome, code: int, needle: str) -> None:
    assert done.escaped is None, repr(done.escaped)
    assert done.code == code, (done.code, done.stdout, done.stderr)
    text = done.stdout + done.stderr
    for stray in ("Traceback", "Event loop is closed", "Exception ignored"):
        assert stray not in text
    lines = message_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].lower().startswith("error"), lines
    assert needle in lines[0], (needle, lines[0])


# --- the command line: (args, exit code, a piece of the message) -------------------------

CLI: list[tuple[list[str], int, str]] = []
for action in ("show", "pause", "resume", "cancel", "retry"):
    CLI += [
        (["runs", action, "garbage"], 3, "no run with id 'garbage'"),
        (["runs", action, RUN], 3, f"no run with id '{RUN}'"),
        (["runs", action, HUGE], 3, "no run with id"),
        (["runs", action, "--", "-1"], 3, "no run with id '-1'"),
        (["runs", action, "run_%"], 3, "no run with id 'run_%'"),
        (["runs", action, "' OR 1=1 --"], 3, "no run with id"),
        (["runs", action, "é" * 3000], 3, "no run with id"),
        (["runs", action, BAD_UTF8], 2, "'RUN_ID"),
        (["runs", action, "--bogus"], 2, "No such option '--bogus'"),
    ]
for action in ("pause", "resume", "cancel", "retry"):
    CLI.append((["runs", action], 2, "Missing argument 'RUN_ID...'"))
CLI.append((["runs", "show"], 2, "Missing argument 'RUN_ID'"))
for listing in (["runs", "list"], ["events", "list"], ["events", "dead"]):
    # Failed before: runs list took 'x|y' and '|1', events dead took '1|' (an empty page).
    for cursor in ("garbage", "", "MQ==", "[1,2]", "x|y", "1|", "|1", "\x00"):
        CLI.append(([*listing, "--cursor", cursor], 2, "bad cursor"))
    CLI += [
        ([*listing, "--cursor", "1|x"], 2, "bad cursor '1|x'"),
        ([*listing, "--cursor", BAD_UTF8], 2, "not valid UTF-8"),
        ([*listing, "--limit", "-1"], 2, "-1 is not in the range 1<=x<=10000"),
        ([*listing, "--limit", "0"], 2, "0 is not in the range"),
        ([*listing, "--limit", HUGE], 2, "is not in the range"),
        ([*listing, "--limit", "nan"], 2, "'nan' is not a valid integer range"),
        ([*listing, "--limit", "1.5"], 2, "'1.5' is not a valid integer range"),
        ([*listing, "--limit", ""], 2, "'' is not a valid integer range"),
        ([*listing, "--json", "extra"], 2, "unexpected extra argument"),
    ]
CLI += [
    (["runs", "list", "--cursor", "2020-01-01T00:00:00|x"], 2, "bad cursor"),
    (["events", "dead", "--cursor", "12|dlv_x"], 2, "bad cursor"),
    (["runs", "list", "--status", ""], 2, "'' is not one of 'pending'"),
    (["runs", "list", "--status", "done"], 2, "'done' is not one of"),
    (["runs", "list", "--workflow", ""], 2, "workflow must be a non-empty string"),
    (["runs", "list", "--workflow", BAD_UTF8], 2, "not valid UTF-8"),
    (["events", "list", "--name", ""], 2, "'--name': must be a non-empty string"),
    (["events", "list", "--name", BAD_UTF8], 2, "not valid UTF-8"),
    (["events", "dead", "--subscriber", ""], 2, "'--subscriber': must be a non-empty"),
    (["events", "dead", "--subscriber", BAD_UTF8], 2, "not valid UTF-8"),
    (["events", "redrive"], 2, "give DELIVERY_IDs or --all"),
    (["events", "redrive", "--all", "dlv_x"], 2, "give DELIVERY_IDs or --all (not both)"),
    (["events", "redrive", "garbage"], 3, "garbage"),
    (["events", "redrive", ""], 3, "''"),
    (["events", "redrive", "--", HUGE], 3, HUGE),
    (["events", "redrive", BAD_UTF8], 2, "not valid UTF-8"),
]
for payload in ("data", "metadata"):
    CLI += [
        (["emit", "a.b", f"--{payload}", "{"], 2, f"--{payload} is not valid JSON"),
        (["emit", "a.b", f"--{payload}", ""], 2, f"--{payload} is not valid JSON"),
        (["emit", "a.b", f"--{payload}", "{'a': 1}"], 2, f"--{payload} is not valid JSON"),
        (["emit", "a.b", f"--{payload}", '{"a":1}{"b":2}'], 2, f"--{payload} is not valid JSON"),
        (["emit", "a.b", f"--{payload}", '{"a": NaN}'], 2, "NaN is not JSON"),
        (["emit", "a.b", f"--{payload}", "Infinity"], 2, "is not JSON"),
        (["emit", "a.b", f"--{payload}", DEEP], 2, "nested more than 100"),
        (["emit", "a.b", f"--{payload}", "@nope.json"], 2, f"--{payload} @nope.json: no such"),
    ]
# Failed before: null was taken as no metadata; the others' message named no option.
# Failed before: stored escaped, then every listing of the event failed to encode it.
for payload in ("data", "metadata"):
    lone = '"\\ud800"' if payload == "data" else '{"k": "\\udfff"}'
    CLI.append((["emit", "a.b", f"--{payload}", lone], 2, "lone surrogate"))
for not_an_object in ("[1]", "1", '"s"', "true", "null"):
    CLI.append((["emit", "a.b", "--metadata", not_an_object], 2, "must be a JSON object"))
for name in ("", " ", "a b", "a..b", "*", "a.*", ".", "\x00", BAD_UTF8, "a/b"):
    CLI.append((["emit", "--", name], 2, "event name"))
for delay, needle in (
    ("nan", "finite"),
    ("-1", ">= 0"),
    ("1e400", "finite"),
    ("x", "not a number"),
    ("", "not a number"),
    ("0x10", "not a number"),
    (HUGE, "at most"),
    ("-inf", "finite"),
):
    CLI.append((["emit", "a.b", "--delay", delay], 2, needle))
for command in (["emit", "a.b"], ["run", "hello"]):
    CLI += [
        ([*command, "--idempotency-key", ""], 2, "must be a non-empty string"),
        ([*command, "--idempotency-key", "  "], 2, "must be a non-empty string"),
        ([*command, "--idempotency-key", BAD_UTF8], 2, "not valid UTF-8"),
    ]
CLI += [
    (["run", "nope"], 2, "unknown workflow 'nope'"),
    (["run", " hello"], 2, "unknown workflow ' hello'"),
    (["run", "--", BAD_UTF8], 2, "unknown workflow"),
    (["run", "x" * 5000], 2, "unknown workflow"),
    (["run", "hello", "--input", "{"], 2, "--input is not valid JSON"),
    (["run", "hello", "--input", DEEP], 2, "nested more than 100"),
    (["run", "hello", "--input", "NaN"], 2, "NaN is not JSON"),
    (["run", "hello", "--version", ""], 2, "'--version': must be a non-empty string"),
    (["run", "hello", "--version", "v9"], 2, "v9"),
    (["run", "hello", "--version", BAD_UTF8], 2, "'--version'"),
    (["run", "hello", "--wait", "--timeout", "nan"], 2, "finite"),
    (["run", "hello", "--wait", "--timeout", "-1"], 2, "> 0"),
    (["run", "hello", "--wait", "--timeout", "0"], 2, "> 0"),
    (["run", "hello", "--wait", "--timeout", ""], 2, "not a number"),
    (["run", "hello", "--wait", "--timeout", HUGE], 2, "at most"),
    (["run"], 2, "Missing argument 'WORKFLOW'"),
    (["emit"], 2, "Missing argument 'NAME'"),
    (["bench", "--runs", "0"], 2, "0 is not in the range 1<=x<=20"),
    (["bench", "--runs", "-1"], 2, "is not in the range"),
    (["bench", "--runs", "21"], 2, "is not in the range"),
    (["bench", "--runs", HUGE], 2, "is not in the range"),
    (["bench", "--runs", "x"], 2, "'x' is not a valid integer range"),
    (["bench", "--runs", "nan"], 2, "not a valid integer range"),
    (["bench", "extra"], 2, "unexpected extra argument (extra)"),
    (["bench", "--history", "0"], 2, "0 is not in the range 1<=x<=100000000"),
    (["bench", "--history", "x"], 2, "'x' is not a valid integer range"),
    (["bench", "--history", "10", "--idle-seconds", "0"], 2, "0.0 is not in the range"),
    (["bench", "--history", "10", "--history-db", "."], 2, "File '.' is a directory"),
    # runtime bench --api-runs N and --http (issue 11's bars).
    (["bench", "--api-runs", "0"], 2, "0 is not in the range 1<=x<=10000000"),
    (["bench", "--api-runs", "x"], 2, "'x' is not a valid integer range"),
    (["bench", "--api-runs", HUGE], 2, "is not in the range"),
    (["bench", "--api-runs"], 2, "Option '--api-runs' requires an argument"),
    (["bench", "--api-runs-db", "x.db"], 2, "--api-runs-db: only with --api-runs N"),
    (["bench", "--api-runs", "10", "--api-runs-db", "."], 2, "File '.' is a directory"),
    (["bench", "--api-runs", "10", "--api-runs-db", "nope/x.db"], 2, "the folder nope does not"),
    (["bench", "--api-runs", "10", "--history", "10"], 2, "--history and --api-runs: one at a"),
    (["bench", "--http", "--history", "10"], 2, "--history and --http: one at a time"),
    (["bench", "--http", "--api-runs", "10"], 2, "--http and --api-runs: one at a time"),
    (["bench", "--api-runs", "10", "--no-fast-path"], 2, "--no-fast-path: not with --api-runs"),
    (["bench", "--api-runs", "10", "--idle-seconds", "1"], 2, "--idle-seconds: only with"),
    (
        ["bench", "--api-runs", "1", "--api-runs-db", "x.db", "--database", "postgresql://p@h/d"],
        2,
        "--api-runs-db: a SQLite file; with --database",
    ),
    (["bench", "--api-runs", "10", "--database", "sqlite:///x.db"], 2, "only a postgresql:// URL"),
    (["bench", "--api-runs", "10", "--database", "garbage"], 2, "is not a URL"),
    (
        ["bench", "--api-runs", "10", "--database", "postgresql://p@127.0.0.1/test?schema=runtime"],
        2,
        "schema=runtime is a project's own",
    ),
    (["bench", "--http", "--database", "sqlite:///x.db"], 2, "only a postgresql:// URL"),
    (["bench", "--http", "--database", "garbage"], 2, "is not a URL"),
    (["bench", "--http", "--idle-seconds", "1"], 2, "--idle-seconds, --history-db: only with"),
    (["bench", "--http", "--history-db", "x.db"], 2, "--idle-seconds, --history-db: only with"),
    (["bench", "--http=yes"], 2, "Option '--http' does not take a value"),
    (["bogus"], 2, "No such command 'bogus'"),
    ([""], 2, "No such command ''"),
    (["runs", "bogus"], 2, "No such command 'bogus'"),
    (["--log-level", "loud", "check"], 2, "'loud' is not one of"),
    (["--log-format", "xml", "check"], 2, "'xml' is not one of"),
    (["--database", "", "runs", "list"], 2, "'--database': must be a non-empty"),
    (["--database", "", "emit", "a.b"], 2, "'--database': must be a non-empty"),
    (["--database", BAD_UTF8, "runs", "list"], 2, "not valid UTF-8"),
    # PostgreSQL URLs: the password never shows; a host that does not resolve, a schema
    # name runtime does not use, an option libpq does not know, each said.
    (["--database", "postgres://u:sekret@x/y", "runs", "list"], 2, "postgresql://u:***@x/y"),
    (["--database", "postgresql://u:sekret@x/y", "emit", "a.b"], 2, "failed to resolve host"),
    (["--database", "postgresql://p@127.0.0.1/test?schema=A", "runs", "list"], 2, "schema='A'"),
    (["--database", "postgresql://p@h/d?schema=a&schema=b", "runs", "list"], 2, "given twice"),
    (["--database", "postgresql://p:sekret@127.0.0.1/test?foo=1", "runs", "list"], 2, '"foo"'),
    # libpq quotes a badly escaped password in its message: scrubbed.
    (["--database", "postgresql://p:sekret%zz@127.0.0.1/test", "runs", "list"], 2, "***"),
    (["--database", "garbage", "events", "list"], 2, "garbage"),
    (["--database", "sqlite:///.", "runs", "list"], 2, "is a folder, not a file"),
]
# The HTTP API: an address that is not HOST:PORT, and one beyond loopback without a token.
for serving in (["start"], ["dashboard"]):
    for address in ("nope", "8000", ":8000", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000"):
        CLI.append(([*serving, "--http", address], 2, "--http: must be HOST:PORT"))
    # Failed before: int() read other scripts' digits as a port (the first two served on
    # 8000); a superscript digit or 5000 nines escaped as a traceback.
    for port in ("\uff18\uff10\uff10\uff10", "\u0668\u0660\u0660\u0660", "\u00b2", "9" * 5000):
        CLI.append(([*serving, "--http", f"127.0.0.1:{port}"], 2, "--http: must be HOST:PORT"))
    for exposed in ("0.0.0.0:8000", "[::]:8000", "192.0.2.1:8000", "example.com:80"):
        CLI.append(([*serving, "--http", exposed], 2, "refusing to serve the HTTP API"))
    CLI.append(([*serving, "--http", ""], 2, "'--http': must be a non-empty string"))
for option in ("--older-than", "--failed-older-than"):
    for period in ("x", "", "-1", "-1d", "nan", "inf", "1y", "3651d", HUGE, "d", BAD_UTF8):
        CLI.append((["prune", option, period], 2, f"Invalid value for '{option}'"))
    CLI.append((["prune", option], 2, f"Option '{option}' requires an argument"))
CLI.append((["prune", "--older-than", "1e400"], 2, "must be a period from 0 (never)"))
for command in (
    ["check"],
    ["schedules"],
    ["start"],
    ["workflows", "list"],
    ["subscribers", "list"],
    ["jobs", "list"],
    ["emit", "a.b"],
    ["run", "hello"],
    ["runs", "show", RUN],
    ["events", "list"],
    ["bench"],
    ["prune"],
    ["dashboard"],
):
    CLI += [
        ([*command, "--bogus"], 2, "No such option '--bogus'"),
        ([*command, "extra", "args"], 2, "unexpected extra argument"),
    ]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a database holding an event and a run."""
    project = write_project(tmp_path_factory.mktemp("bad_input"))
    assert invoke(project, "emit", "customer.created", "--data", '{"first_name": "A"}').code == 0
    assert invoke(project, "run", "hello", "--input", '{"name": "Ada"}').code == 0
    return project


@pytest.mark.parametrize(("args", "code", "needle"), CLI, ids=[repr(c[0])[:60] for c in CLI])
def test_a_bad_argument_exits_with_one_clear_message_and_stores_nothing(
    seeded: Path, args: list[str], code: int, needle: str
) -> None:
    before = rows(seeded)
    done = invoke(seeded, *args)
    assert_one_clear_message(done, code, needle)
    assert "sekret" not in done.stdout + done.stderr
    assert rows(seeded) == before


# --- project files: (files, a piece of the problem line) ---------------------------------

SUB = "from runtime.sdk.specs import SubscriberConfig\nasync def handler(args): pass\n"
JOB = "from runtime.sdk.specs import JobConfig\nasync def handler(container): pass\n"
WF = "from runtime import Schedule, workflow\n"

PROJECTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "sync subscriber handler",
        {
            "subscribers/x.py": "from runtime.sdk.specs import "
            "SubscriberConfig\ndef handler(args): pass\nconfig = SubscriberConfig(event='a.b')\n"
        },
        "x.py: 'handler' must be an async function",
    ),
    (
        "no handler",
        {
            "subscribers/x.py": "from runtime.sdk.specs import SubscriberConfig\n"
            "config = SubscriberConfig(event='a.b')\n"
        },
        "x.py: no 'handler' defined",
    ),
    ("config a dict", {"subscribers/x.py": "async def handler(args): pass\nconfig = {}\n"}, "x.py"),
    ("no config", {"subscribers/x.py": "async def handler(args): pass\n"}, "x.py"),
    (
        "SubscriberConfig(event='')",
        {"subscribers/x.py": SUB + "config = SubscriberConfig(event='')\n"},
        "x.py: import failed: DefinitionError",
    ),
    (
        "SubscriberConfig(event=[])",
        {"subscribers/x.py": SUB + "config = SubscriberConfig(event=[])\n"},
        "give at least one event name",
    ),
    (
        "SubscriberConfig(event=3)",
        {"subscribers/x.py": SUB + "config = SubscriberConfig(event=3)\n"},
        "SubscriberConfig.event must be",
    ),
    (
        "SubscriberConfig timeout nan",
        {
            "subscribers/x.py": SUB + "config = SubscriberConfig("
            "event='a.b', timeout=float('nan'))\n"
        },
        "SubscriberConfig.timeout",
    ),
    (
        "SubscriberConfig max_attempts 0",
        {"subscribers/x.py": SUB + "config = SubscriberConfig(event='a.b', max_attempts=0)\n"},
        "max_attempts",
    ),
    (
        "SubscriberConfig subscriber_id ''",
        {"subscribers/x.py": SUB + "config = SubscriberConfig(event='a.b', subscriber_id='')\n"},
        "subscriber_id must be a non-empty string",
    ),
    (
        "SubscriberConfig bad-UTF-8 id",
        {
            "subscribers/x.py": SUB + "config = SubscriberConfig("
            "event='a.b', subscriber_id='\\udcff')\n"
        },
        "not valid UTF-8",
    ),
    (
        "duplicate subscriber id",
        {
            "subscribers/x.py": SUB + "config = SubscriberConfig("
            "event='a.b', subscriber_id='greeter')\n"
        },
        "greeter",
    ),
    (
        "JobConfig(schedule='')",
        {"jobs/x.py": JOB + "config = JobConfig(name='x', schedule='')\n"},
        "x.py: import failed",
    ),
    (
        "JobConfig(schedule=5)",
        {"jobs/x.py": JOB + "config = JobConfig(name='x', schedule=5)\n"},
        "x.py: import failed",
    ),
    (
        "JobConfig(name='')",
        {"jobs/x.py": JOB + "config = JobConfig(name='', schedule='* * * * *')\n"},
        "JobConfig.name must be a non-empty string",
    ),
    (
        "JobConfig bad-UTF-8 name",
        {"jobs/x.py": JOB + "config = JobConfig(name='\\udcff', schedule='* * * * *')\n"},
        "not valid UTF-8",
    ),
    (
        "JobConfig(timezone='')",
        {"jobs/x.py": JOB + "config = JobConfig(name='x', schedule='* * * * *', timezone='')\n"},
        "timezone must be an IANA name",
    ),
    (
        "JobConfig unknown timezone",
        {
            "jobs/x.py": JOB + "config = JobConfig(name='x', "
            "schedule='* * * * *', timezone='Mars/Base')\n"
        },
        "Mars/Base",
    ),
    (
        "JobConfig schedule never fires",
        {"jobs/x.py": JOB + "config = JobConfig(name='x', schedule='0 0 31 2 *')\n"},
        "x.py",
    ),
    (
        "duplicate job name",
        {"jobs/x.py": JOB + "config = JobConfig(name='cleanup', schedule='* * * * *')\n"},
        "cleanup",
    ),
    (
        "job config a string",
        {"jobs/x.py": "async def handler(c): pass\nconfig = 'daily'\n"},
        "x.py",
    ),
    (
        "@workflow(input=NotAModel)",
        {
            "workflows/x.py": WF + "class NotAModel: pass\n"
            "@workflow(input=NotAModel)\nasync def x(ctx): return 1\n"
        },
        "pydantic cannot validate",
    ),
    (
        "@workflow on a sync function",
        {"workflows/x.py": WF + "@workflow\ndef x(ctx): return 1\n"},
        "@workflow expects an async function",
    ),
    (
        "@workflow(schedules='* * * * *')",
        {"workflows/x.py": WF + "@workflow(schedules='* * * * *')\nasync def x(ctx): return 1\n"},
        "schedules must be a list of Schedule(...), got '* * * * *'",
    ),
    (
        "@workflow(schedules=3)",
        {"workflows/x.py": WF + "@workflow(schedules=3)\nasync def x(ctx): return 1\n"},
        "schedules must be a list",
    ),
    (
        "Schedule input not JSON",
        {
            "workflows/x.py": WF + "@workflow(schedules=[Schedule("
            "cron='* * * * *', input=object())])\nasync def x(ctx): return 1\n"
        },
        "the input of schedule 'default' cannot be stored",
    ),
    (
        "Schedule(cron='')",
        {
            "workflows/x.py": WF + "@workflow(schedules=[Schedule(cron='')])\n"
            "async def x(ctx): return 1\n"
        },
        "x.py: import failed",
    ),
    (
        "two schedules one name",
        {
            "workflows/x.py": WF + "@workflow(schedules=[Schedule(cron="
            "'* * * * *', name='a'), Schedule(cron='0 * * * *', name='a')])\n"
            "async def x(ctx): return 1\n"
        },
        "two schedules named 'a'",
    ),
    (
        "duplicate workflow name",
        {"workflows/x.py": WF + "@workflow(name='hello')\nasync def x(ctx): return 1\n"},
        "hello",
    ),
    (
        "create_workflow(name, None)",
        {"workflows/x.py": "from runtime import create_workflow\nw = create_workflow('w', None)\n"},
        "the constructor must be a function",
    ),
    (
        "create_step('')",
        {
            "workflows/x.py": "from runtime import create_step\n"
            "@create_step('')\nasync def s(): return 1\n"
        },
        "a step name must be a non-empty string",
    ),
    ("syntax error", {"workflows/x.py": "def (:\n"}, "x.py: import failed: SyntaxError"),
    ("import error", {"workflows/x.py": "import no_such_module_xyz\n"}, "no_such_module_xyz"),
    ("SystemExit at import", {"workflows/x.py": "raise SystemExit(5)\n"}, "SystemExit"),
    (
        "a package in workflows/",
        {"workflows/pkg/__init__.py": WF + "@workflow\nasync def pkg(ctx): return 1\n"},
        "pkg: a folder",
    ),
    ("a folder in jobs/", {"jobs/old": None}, "old: a folder"),
    ("workflows is a file", {"workflows": "x"}, "not a folder"),
    (
        "a file with a BOM and a bad line",
        {"workflows/x.py": "\ufeffdef (:\n".encode()},
        "x.py: import failed: SyntaxError",
    ),
    (
        "a module named like the stdlib",
        {"workflows/json.py": "raise ValueError('mine')\n"},
        "json.py: import failed: ValueError: mine",
    ),
    ("runtime.toml not TOML", {"runtime.toml": "[runtime\n"}, "runtime.toml"),
    ("concurrency a string", {"runtime.toml": "[runtime]\nconcurrency = 'many'\n"}, "concurrency"),
    ("concurrency negative", {"runtime.toml": "[runtime]\nconcurrency = -1\n"}, "concurrency"),
    ("shutdown_grace nan", {"runtime.toml": "[runtime]\nshutdown_grace = nan\n"}, "shutdown_grace"),
    (
        "timezone unknown",
        {"runtime.toml": "[runtime]\ntimezone = 'Nowhere/Land'\n"},
        "Nowhere/Land",
    ),
    ("database an int", {"runtime.toml": "[runtime]\ndatabase = 3\n"}, "database"),
    ("unknown key", {"runtime.toml": "[runtime]\nconcurency = 3\n"}, "concurency"),
    (
        "retention a word",
        {"runtime.toml": "[runtime]\nretention = 'forever'\n"},
        "'retention' must be a period",
    ),
    (
        "failed_retention negative",
        {"runtime.toml": "[runtime]\nfailed_retention = -3\n"},
        "'failed_retention' must be a period",
    ),
    ("http not an address", {"runtime.toml": "[runtime]\nhttp = 'localhost'\n"}, "'http'"),
    ("http a number", {"runtime.toml": "[runtime]\nhttp = 8000\n"}, "'http'"),
    ("http_token short", {"runtime.toml": "[runtime]\nhttp_token = 'abc'\n"}, "'http_token'"),
    (
        "http_token with a space",
        {"runtime.toml": "[runtime]\nhttp_token = 'a b c d e f g h i j k'\n"},
        "'http_token'",
    ),
    (
        "http_token not ascii",
        {"runtime.toml": "[runtime]\nhttp_token = 's3cret-t\u00f6ken-for-tests'\n"},
        "'http_token': must be ASCII",
    ),
    (
        "http port in other digits",
        {"runtime.toml": "[runtime]\nhttp = '127.0.0.1:\uff18\uff10\uff10\uff10'\n"},
        "'http'",
    ),
]


@pytest.mark.parametrize(
    ("files", "needle"), [p[1:] for p in PROJECTS], ids=[p[0] for p in PROJECTS]
)
def test_a_broken_project_is_named_by_check_and_start_refuses_it(
    tmp_path: Path, files: dict[str, Any], needle: str
) -> None:
    project = write_project(tmp_path, files)
    checked = invoke(project, "check")
    assert checked.escaped is None and checked.code in (1, 2), checked.stdout
    assert needle in checked.stderr, checked.stderr
    assert "Traceback" not in checked.stdout + checked.stderr
    for command in (
        ["start"],
        ["workflows", "list"],
        ["subscribers", "list"],
        ["jobs", "list"],
        ["schedules"],
    ):
        refused = invoke(project, *command)
        assert refused.escaped is None and refused.code == 2, (command, refused.stderr)
        assert needle in refused.stderr and "Traceback" not in refused.stderr, command
    assert not (project / "app.db").exists()  # nothing created before the refusal


def test_serving_beyond_loopback_without_a_token_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path, {"runtime.toml": "[runtime]\nhttp = '0.0.0.0:8000'\n"})
    checked = invoke(project, "check")
    assert checked.code == 1 and "refusing to serve the HTTP API" in checked.stderr
    for command in (["start"], ["dashboard"]):
        refused = invoke(project, *command)
        assert_one_clear_message(refused, 2, "runtime.toml: 'http': refusing to serve")
    # Commands that serve nothing are not concerned.
    assert invoke(project, "workflows", "list").code == 0
    assert not (project / "app.db").exists()
