"""``runtime check`` and the project listings: workflows, subscribers, jobs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.cli.conftest import cli, cli_json


def test_check_lists_everything_found(project: Path) -> None:
    done = cli(project, "check")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"config: {project / 'runtime.toml'}" in out
    assert "database: sqlite:///app.db" in out
    assert "workflows: 3" in out and "always-fails" in out
    assert "nightly" in out and "15 3 * * * (Asia/Tokyo)" in out
    assert "greeter  events: customer.created" in out
    assert "audit  events: order.*, customer.deleted" in out
    assert "morning-report  0 9 * * * (America/New_York)" in out
    assert "cleanup  30 7 * * * (Asia/Tokyo)" in out
    assert "problems: 0" in out and done.stderr == ""


def test_check_json(project: Path) -> None:
    report = cli_json(project, "check")
    assert sorted(w["name"] for w in report["workflows"]) == ["always-fails", "hello", "nightly"]
    assert [s["id"] for s in report["subscribers"]] == ["audit", "greeter"]
    assert [j["name"] for j in report["jobs"]] == ["cleanup", "morning-report"]
    assert report["problems"] == []


def test_check_reports_every_problem_on_stderr_naming_the_file(project: Path) -> None:
    (project / "workflows" / "bad.py").write_text("import nowhere_to_be_found\n")
    (project / "subscribers" / "nohandler.py").write_text(
        "from runtime.sdk.specs import SubscriberConfig\nconfig = SubscriberConfig(event='a.b')\n"
    )
    (project / "jobs" / "badcron.py").write_text(
        "from runtime.sdk.specs import JobConfig\n"
        "async def handler(container): pass\n"
        "config = JobConfig(name='x', schedule='61 * * * *')\n"
    )
    done = cli(project, "check")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 3, done.stderr
    assert any("bad.py" in line and "nowhere_to_be_found" in line for line in lines)
    assert any("nohandler.py" in line and "handler" in line for line in lines)
    assert any("badcron.py" in line and "61 * * * *" in line for line in lines)
    assert all(line.startswith("problem: ") for line in lines)
    assert "problems: 3" in done.stdout


def test_check_reports_a_setup_hook_that_does_not_import(project: Path) -> None:
    toml = project / "runtime.toml"
    toml.write_text(toml.read_text() + 'setup = "services_missing:setup"\n')
    done = cli(project, "check")
    assert done.returncode == 1
    assert "services_missing" in done.stderr


def test_bad_config_exits_2_naming_the_key(project: Path) -> None:
    (project / "runtime.toml").write_text('[runtime]\ndatabse = "x"\n')
    for args in (["check"], ["run", "hello"], ["runs", "list"], ["jobs", "list"]):
        done = cli(project, *args)
        assert done.returncode == 2, args
        assert "unknown key 'databse'" in done.stderr


def test_workflows_list(project: Path) -> None:
    listed = cli_json(project, "workflows", "list")
    assert [(w["name"], w["steps"]) for w in listed] == [
        ("always-fails", 1),
        ("hello", 1),
        ("nightly", 1),
    ]
    nightly = listed[2]
    assert nightly["schedules"] == [
        {"name": "default", "cron": "15 3 * * *", "timezone": "Asia/Tokyo"}
    ]
    assert nightly["file"] == str(project / "workflows" / "nightly.py")
    table = cli(project, "workflows", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "STEPS", "SCHEDULES", "FILE"]
    assert "15 3 * * * (Asia/Tokyo)" in table[3]


def test_subscribers_list(project: Path) -> None:
    listed = cli_json(project, "subscribers", "list")
    assert listed == [
        {
            "id": "audit",
            "events": ["order.*", "customer.deleted"],
            "max_attempts": 3,
            "timeout": 5.0,
            "file": str(project / "subscribers" / "audit.py"),
        },
        {
            "id": "greeter",
            "events": ["customer.created"],
            "max_attempts": 2,
            "timeout": 60.0,
            "file": str(project / "subscribers" / "greeter.py"),
        },
    ]
    table = cli(project, "subscribers", "list").stdout.splitlines()
    assert table[0].split()[:2] == ["SUBSCRIBER", "EVENTS"]
    assert table[1].startswith("audit") and "order.*, customer.deleted" in table[1]


def test_jobs_list_shows_next_fire_times_in_the_jobs_timezone(project: Path) -> None:
    before = datetime.now(UTC)
    listed = {j["name"]: j for j in cli_json(project, "jobs", "list")}
    assert set(listed) == {"cleanup", "morning-report"}
    for name, tz, hour, minute in (
        ("morning-report", "America/New_York", 9, 0),
        ("cleanup", "Asia/Tokyo", 7, 30),
    ):
        job = listed[name]
        assert job["timezone"] == tz
        assert job["file"].endswith(".py")
        assert job["executions"] is None and job["stored_next_fire_at"] is None  # never ran
        times = [datetime.fromisoformat(t) for t in job["next"]]
        assert len(times) == 3
        for moment in times:
            assert (moment.hour, moment.minute) == (hour, minute)
            assert moment.utcoffset() == moment.astimezone(ZoneInfo(tz)).utcoffset()
        assert before < times[0] <= before + timedelta(days=1, hours=1)
        assert [b.date() - a.date() for a, b in itertools.pairwise(times)] == [
            timedelta(days=1)
        ] * 2
    table = cli(project, "jobs", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["JOB", "SCHEDULE", "TIMEZONE"]
    assert "09:00:00 E" in table[2]  # EST or EDT
    assert "07:30:00 JST" in table[1]


def test_a_project_with_problems_refuses_listings_with_exit_2(project: Path) -> None:
    (project / "workflows" / "bad.py").write_text("import nowhere_to_be_found\n")
    listings = (["workflows", "list"], ["subscribers", "list"], ["jobs", "list"], ["schedules"])
    for args in listings:
        done = cli(project, *args)
        assert done.returncode == 2, args
        assert "bad.py" in done.stderr


def test_schedules_lists_jobs_and_workflow_schedules_with_next_fire_times(project: Path) -> None:
    before = datetime.now(UTC)
    listed = {s["name"]: s for s in cli_json(project, "schedules")}
    # The names the store keeps them under: a job's name, `<workflow>:<schedule>`.
    (nightly,) = [name for name in listed if name.startswith("nightly:")]
    assert set(listed) == {"cleanup", "morning-report", nightly}
    assert listed["morning-report"]["workflow"] == "job-morning-report"
    schedule = listed[nightly]
    assert (schedule["workflow"], schedule["schedule"], schedule["timezone"]) == (
        "nightly",
        "15 3 * * *",
        "Asia/Tokyo",  # the project's timezone
    )
    assert schedule["file"].endswith("nightly.py")
    assert schedule["executions"] is None  # never ran under a service
    times = [datetime.fromisoformat(t) for t in schedule["next"]]
    assert len(times) == 3 and before < times[0] <= before + timedelta(days=1, hours=1)
    assert all((t.hour, t.minute, t.utcoffset()) == (3, 15, timedelta(hours=9)) for t in times)
    table = cli(project, "schedules").stdout.splitlines()
    assert table[0].split()[:4] == ["SCHEDULE", "WORKFLOW", "CRON", "TIMEZONE"]
    (line,) = [line for line in table if line.startswith(nightly)]
    assert "03:15:00 JST" in line
