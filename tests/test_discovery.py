"""Discovery: every kind of bad file gets one clear message that names the file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import DefinitionError, Job, JobConfig, Runtime, create_step, create_workflow
from runtime.config import load_project_config
from runtime.discovery import Discovered, discover

GOOD_WORKFLOW = (
    "from runtime import create_step, create_workflow\n"
    "s = create_step('s', lambda: 1)\n"
    "w = create_workflow('w', lambda: s())\n"
)
GOOD_SUBSCRIBER = (
    "from runtime import SubscriberConfig\n"
    "async def handler(args): pass\n"
    "config = SubscriberConfig(event='order.placed')\n"
)
GOOD_JOB = (
    "from runtime import JobConfig\n"
    "async def handler(container): pass\n"
    "config = JobConfig(name='nightly', schedule='0 2 * * *')\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project folder; the packages discovery binds are taken back out afterwards."""
    for folder in ("workflows", "subscribers", "jobs"):
        (tmp_path / folder).mkdir()
    saved_modules = dict(sys.modules)
    saved_path = list(sys.path)
    yield tmp_path
    for name in [n for n in sys.modules if n.split(".")[0] in ("workflows", "subscribers", "jobs")]:
        del sys.modules[name]
    sys.modules.update(
        {
            k: v
            for k, v in saved_modules.items()
            if k.split(".")[0] in ("workflows", "subscribers", "jobs")
        }
    )
    sys.path[:] = saved_path


def found_in(project: Path) -> Discovered:
    return discover(load_project_config(project, environ={}))


def test_a_good_project_has_no_problems(project: Path) -> None:
    (project / "workflows" / "w.py").write_text(GOOD_WORKFLOW)
    (project / "subscribers" / "orders.py").write_text(GOOD_SUBSCRIBER)
    (project / "jobs" / "nightly.py").write_text(GOOD_JOB)
    (project / "jobs" / "_helpers.py").write_text("raise RuntimeError('never imported')\n")
    found = found_in(project)
    assert found.problems == []
    assert [w.name for w in found.workflows] == ["w"]
    assert [(s.id, s.config.patterns) for s in found.subscribers] == [("orders", ("order.placed",))]
    assert [j.name for j in found.jobs] == ["nightly"]


def test_files_that_are_not_python_are_left_alone_and_a_folder_is_a_problem(
    project: Path,
) -> None:
    """A README or an editor's backup next to the modules must not stop the service; a
    folder would hide the workflows in it, so it is named (issue 7: nothing skipped
    silently)."""
    (project / "workflows" / "w.py").write_text(GOOD_WORKFLOW)
    for name in ("README.md", "w.py~", "#w.py#", "notes.txt"):
        (project / "workflows" / name).write_text("not python (")
    assert found_in(project).problems == []
    (project / "workflows" / "billing").mkdir()
    (problem,) = found_in(project).problems
    assert "billing: a folder, so discovery would skip it" in problem


BAD_FILES = {
    "syntax error": ("subscribers", "broken.py", "def handler(:\n", "SyntaxError"),
    "import error": ("workflows", "missing.py", "import nowhere_at_all\n", "nowhere_at_all"),
    "no handler": (
        "subscribers",
        "nohandler.py",
        "from runtime import SubscriberConfig\nconfig = SubscriberConfig(event='a.b')\n",
        "no 'handler' defined",
    ),
    "sync handler": (
        "subscribers",
        "synchandler.py",
        "from runtime import SubscriberConfig\ndef handler(args): pass\n"
        "config = SubscriberConfig(event='a.b')\n",
        "'handler' must be an async function",
    ),
    "handler of two arguments": (
        "jobs",
        "twoargs.py",
        "from runtime import JobConfig\nasync def handler(container, extra): pass\n"
        "config = JobConfig(name='j', schedule='0 * * * *')\n",
        "must take exactly one argument",
    ),
    "no config": (
        "jobs",
        "noconfig.py",
        "async def handler(container): pass\n",
        "no 'config' defined",
    ),
    "config of the wrong type": (
        "subscribers",
        "dictconfig.py",
        "async def handler(args): pass\nconfig = {'event': 'a.b'}\n",
        "'config' must be a SubscriberConfig, got dict",
    ),
    "bad event pattern": (
        "subscribers",
        "badpattern.py",
        "from runtime import SubscriberConfig\nasync def handler(args): pass\n"
        "config = SubscriberConfig(event='order.**')\n",
        "event pattern 'order.**' is not valid",
    ),
    "bad cron expression": (
        "jobs",
        "badcron.py",
        "from runtime import JobConfig\nasync def handler(container): pass\n"
        "config = JobConfig(name='j', schedule='61 * * * *')\n",
        "cron expression '61 * * * *' is not valid",
    ),
    "bad timezone": (
        "jobs",
        "badzone.py",
        "from runtime import JobConfig\nasync def handler(container): pass\n"
        "config = JobConfig(name='j', schedule='0 * * * *', timezone='Mars/Olympus')\n",
        "unknown timezone 'Mars/Olympus'",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_each_kind_of_bad_file_gets_one_message_naming_it(project: Path, kind: str) -> None:
    folder, name, body, needle = BAD_FILES[kind]
    (project / folder / name).write_text(body)
    problems = found_in(project).problems
    assert len(problems) == 1, problems
    assert str(project / folder / name) in problems[0]
    assert needle in problems[0]


def test_a_duplicate_subscriber_id_names_both_files(project: Path) -> None:
    (project / "subscribers" / "first.py").write_text(
        GOOD_SUBSCRIBER.replace("event='order.placed')", "event='a.b', subscriber_id='mailer')")
    )
    (project / "subscribers" / "second.py").write_text(
        GOOD_SUBSCRIBER.replace("event='order.placed')", "event='c.d', subscriber_id='mailer')")
    )
    (problem,) = found_in(project).problems
    assert "second.py" in problem and "first.py" in problem and "'mailer'" in problem


def test_a_duplicate_job_name_names_both_files(project: Path) -> None:
    (project / "jobs" / "a.py").write_text(GOOD_JOB)
    (project / "jobs" / "b.py").write_text(GOOD_JOB)
    (problem,) = found_in(project).problems
    assert "b.py" in problem and "a.py" in problem and "'nightly'" in problem


def test_a_duplicate_workflow_name_names_both_files(project: Path) -> None:
    (project / "workflows" / "one.py").write_text(GOOD_WORKFLOW)
    (project / "workflows" / "two.py").write_text(GOOD_WORKFLOW)
    (problem,) = found_in(project).problems
    assert "two.py" in problem and "one.py" in problem and "'w'" in problem


def test_a_workflow_named_as_a_jobs_workflow_names_both_files(project: Path) -> None:
    # Failed before: "runtime.toml: two different workflows are named 'job-nightly'",
    # naming neither file (found only when the Runtime registered them).
    (project / "workflows" / "clash.py").write_text(GOOD_WORKFLOW.replace("'w'", "'job-nightly'"))
    (project / "jobs" / "nightly.py").write_text(GOOD_JOB)
    (problem,) = found_in(project).problems
    assert problem == (
        f"{project / 'jobs' / 'nightly.py'}: job 'nightly' runs as the workflow 'job-nightly', "
        f"which {project / 'workflows' / 'clash.py'} also defines; rename the job or the workflow"
    )


def test_a_runtime_given_a_workflow_named_as_a_jobs_workflow_names_the_job() -> None:
    step = create_step("s", lambda: 1)
    clash = create_workflow("job-nightly", lambda: step())

    async def handler(container: object) -> None: ...

    job = Job(handler, JobConfig(name="nightly", schedule="0 2 * * *"), "jobs/nightly.py")
    with pytest.raises(DefinitionError, match=r"job 'nightly' \(jobs/nightly.py\) runs as "):
        Runtime("sqlite:///:memory:", workflows=[clash], jobs=[job])


def test_every_problem_is_reported_at_once(project: Path) -> None:
    for kind in ("import error", "no handler", "bad cron expression"):
        folder, name, body, _ = BAD_FILES[kind]
        (project / folder / name).write_text(body)
    assert len(found_in(project).problems) == 3
