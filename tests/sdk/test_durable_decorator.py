"""``@workflow``: names, arguments, refused definitions, schemas and version order."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from runtime import (
    DefinitionError,
    DurableWorkflow,
    InputValidationError,
    Schedule,
    WorkflowContext,
    workflow,
)
from runtime.registry import Registry
from runtime.sdk.durable import snake_case, version_key


class ReportInput(BaseModel):
    date: str


class ReportOutput(BaseModel):
    pages: int


def test_bare_decorator_names_the_workflow_after_the_function_in_snake_case() -> None:
    @workflow
    async def sendWelcomeEmail(ctx: WorkflowContext[Any]) -> None:
        return None

    assert isinstance(sendWelcomeEmail, DurableWorkflow)
    assert sendWelcomeEmail.name == "send_welcome_email"
    assert sendWelcomeEmail.version is None
    assert sendWelcomeEmail.input_type is None
    assert sendWelcomeEmail.schedules == ()
    assert sendWelcomeEmail.kind == "durable"


def test_decorator_with_empty_arguments_also_defaults_the_name() -> None:
    @workflow()
    async def processUserData(ctx: WorkflowContext[Any]) -> None:
        return None

    assert processUserData.name == "process_user_data"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sendWelcomeEmail", "send_welcome_email"),
        ("daily_report", "daily_report"),
        ("cleanupOldData", "cleanup_old_data"),
        ("backup", "backup"),
    ],
)
def test_snake_case(given: str, expected: str) -> None:
    assert snake_case(given) == expected


def test_decorator_with_arguments_keeps_them() -> None:
    nine = Schedule(name="daily_at_9am", cron="0 9 * * *", input=lambda: {"date": "2026-11-21"})

    @workflow(
        name="daily_report", version="v2", input=ReportInput, output=ReportOutput, schedules=[nine]
    )
    async def report(ctx: WorkflowContext[ReportInput]) -> dict[str, int]:
        return {"pages": 3}

    assert report.name == "daily_report"
    assert report.version == "v2"
    assert report.input_type is ReportInput
    assert report.output_type is ReportOutput
    assert report.schedules == (nine,)
    assert report.schedules[0].input_now() == {"date": "2026-11-21"}


def test_a_sync_function_is_refused_bare_and_with_arguments() -> None:
    def plain(ctx: WorkflowContext[Any]) -> None:
        return None

    with pytest.raises(DefinitionError, match="async"):
        workflow(plain)
    with pytest.raises(DefinitionError, match="async"):
        workflow(name="plain", version="v1")(plain)


def test_two_schedules_with_one_name_are_refused() -> None:
    with pytest.raises(DefinitionError, match="backup_hourly") as info:

        @workflow(
            name="backup_data",
            schedules=[
                Schedule(name="backup_hourly", cron="0 * * * *", input={"type": "incremental"}),
                Schedule(name="backup_hourly", cron="0 2 * * *", input={"type": "full"}),
            ],
        )
        async def backup(ctx: WorkflowContext[Any]) -> None:
            return None

    assert "backup_data" in str(info.value)


def test_distinct_schedule_names_are_accepted() -> None:
    @workflow(
        name="backup_data",
        schedules=[
            Schedule(name="hourly_backup", cron="0 * * * *", input={"type": "incremental"}),
            Schedule(name="daily_full_backup", cron="0 2 * * *", input={"type": "full"}),
        ],
    )
    async def backup(ctx: WorkflowContext[Any]) -> None:
        return None

    assert [s.name for s in backup.schedules] == ["hourly_backup", "daily_full_backup"]


def test_something_that_is_not_a_schedule_is_refused() -> None:
    with pytest.raises(DefinitionError, match="Schedule"):

        @workflow(schedules=["0 9 * * *"])  # type: ignore[list-item]
        async def nightly(ctx: WorkflowContext[Any]) -> None:
            return None


def test_an_empty_name_or_version_is_refused() -> None:
    async def flow(ctx: WorkflowContext[Any]) -> None:
        return None

    with pytest.raises(DefinitionError):
        workflow(name="")(flow)
    with pytest.raises(DefinitionError):
        workflow(name="flow", version="")(flow)


def test_input_and_output_models_validate() -> None:
    @workflow(input=ReportInput, output=ReportOutput)
    async def report(ctx: WorkflowContext[ReportInput]) -> dict[str, int]:
        return {"pages": 1}

    validated = report.validate_input({"date": "2026-11-21"})
    assert validated == ReportInput(date="2026-11-21")
    assert report.dump_input(validated) == {"date": "2026-11-21"}
    with pytest.raises(InputValidationError, match="report") as info:
        report.validate_input({"day": "monday"})
    assert isinstance(info.value, ValueError)
    assert info.value.workflow == "report"
    assert "date" in info.value.detail

    assert report.check_output({"pages": "4"}) == {"pages": 4}
    assert report.check_output(ReportOutput(pages=2)) == {"pages": 2}
    with pytest.raises(ValueError, match="report"):
        report.check_output({"pages": "many"})


def test_without_schemas_input_and_output_pass_through() -> None:
    @workflow
    async def free(ctx: WorkflowContext[Any]) -> Any:
        return None

    assert free.validate_input({"anything": [1, 2]}) == {"anything": [1, 2]}
    assert free.check_output({"x": 1}) == {"x": 1}


def test_a_type_pydantic_cannot_validate_is_refused_at_definition() -> None:
    class NotAModel:
        pass

    with pytest.raises(DefinitionError, match="pydantic"):

        @workflow(input=NotAModel)
        async def odd(ctx: WorkflowContext[Any]) -> None:
            return None


def test_versions_compare_in_natural_order_and_unversioned_is_oldest() -> None:
    versions = ["v2", "v10", None, "v1", "v9"]
    assert sorted(versions, key=version_key) == [None, "v1", "v2", "v9", "v10"]
    assert version_key("v10") > version_key("v2") > version_key("v1") > version_key(None)
    assert version_key("2.10") > version_key("2.9")


def test_the_registry_resolves_the_newest_version_in_natural_order() -> None:
    registry = Registry()
    defined: dict[str | None, DurableWorkflow] = {}
    for version in (None, "v2", "v10", "v1"):

        async def flow(ctx: WorkflowContext[Any]) -> str | None:
            return ctx.version

        defined[version] = workflow(name="greet", version=version)(flow)
        registry.register(defined[version])

    assert registry.resolve("greet") is defined["v10"]
    assert registry.resolve("greet", "v2") is defined["v2"]
    assert registry.versions("greet") == [None, "v1", "v2", "v10"]
