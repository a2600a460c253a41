"""The sync-brands-from-cms workflow: create new brands, update known ones, undo both on failure."""

from __future__ import annotations

import pytest

from runtime import (
    RunStatus,
    Runtime,
    StepFailed,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from tests.examples.faults import fail_on
from workflows.sync_brands_from_cms import split_brands, sync_brands_from_cms


def test_split_brands_sorts_by_external_id() -> None:
    changes = split_brands(
        {
            "brands": [
                {"id": "c1", "name": "Known", "external_id": "brand_7"},
                {"id": "c2", "name": "New", "external_id": None},
                {"id": "c3", "name": "Also new"},
            ]
        }
    )

    assert changes == {
        "to_create": [{"name": "New"}, {"name": "Also new"}],
        "to_update": [{"id": "brand_7", "name": "Known"}],
    }


async def test_creates_new_brands_and_updates_known_ones(rt: Runtime) -> None:
    brands = rt.container.resolve("brands")

    result = await sync_brands_from_cms(rt.container).run()

    assert result.status is RunStatus.COMPLETED
    assert result.result == {
        "created": [{"id": "brand_2", "name": "Globex Goods"}],
        "updated": [{"id": "brand_1", "name": "Acme Apparel"}],
    }
    assert brands.brands == {
        "brand_1": {"id": "brand_1", "name": "Acme Apparel"},
        "brand_2": {"id": "brand_2", "name": "Globex Goods"},
    }
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status) for s in run.steps] == [
        ("retrieve-brands-from-cms", "completed"),
        ("create-brands-step", "completed"),
        ("update-brands-step", "completed"),
    ]
    # The update step hands its compensation the brands as they were before.
    assert run.steps[2].compensate_input == [{"id": "brand_1", "name": "Acme"}]


async def test_a_failed_update_deletes_the_created_brands(rt: Runtime) -> None:
    brands = rt.container.resolve("brands")
    journal = rt.container.resolve("journal")
    fail_on(brands, "update_brands")

    result = await sync_brands_from_cms(rt.container).run(throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert brands.brands == {"brand_1": {"id": "brand_1", "name": "Acme"}}
    assert journal.entries == ["brands.create_brands brand_2", "brands.delete_brands brand_2"]
    assert [(e.step, e.type) for e in result.errors] == [("update-brands-step", "ServiceError")]
    run = await rt.workflows.get_run(result.run_id)
    assert run.status is RunStatus.FAILED
    assert [(s.name, s.status) for s in run.steps] == [
        ("retrieve-brands-from-cms", "completed"),
        ("create-brands-step", "compensated"),
        ("update-brands-step", "compensated"),
    ]


async def test_a_cms_brand_pointing_at_a_missing_brand_fails_the_sync(rt: Runtime) -> None:
    cms = rt.container.resolve("cms")
    brands = rt.container.resolve("brands")
    cms.brands.append({"id": "cms_brand_3", "name": "Ghost", "external_id": "brand_99"})

    with pytest.raises(StepFailed) as caught:
        await sync_brands_from_cms(rt.container).run()

    assert caught.value.step == "update-brands-step"
    assert caught.value.error_type == "KeyError"
    assert "brand_99" in caught.value.message
    assert brands.brands == {"brand_1": {"id": "brand_1", "name": "Acme"}}


@create_step("announce-sync")
async def announce_sync(_: None) -> StepResponse:
    raise RuntimeError("announcement service is down")


def _sync_then_announce() -> WorkflowResponse:
    synced = sync_brands_from_cms.run_as_step()
    announce_sync()
    return WorkflowResponse(synced)


# A parent that fails after the sync finished: the whole sync is undone, which is
# the only way to see update-brands-step's compensation run.
sync_then_announce = create_workflow("test-sync-then-announce", _sync_then_announce)


async def test_a_parent_failing_later_restores_the_updated_brands(rt: Runtime) -> None:
    brands = rt.container.resolve("brands")
    journal = rt.container.resolve("journal")

    result = await sync_then_announce(rt.container).run(throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert brands.brands == {"brand_1": {"id": "brand_1", "name": "Acme"}}
    # Compensations run in reverse: the update is undone before the creation.
    assert journal.entries == [
        "brands.create_brands brand_2",
        "brands.update_brands brand_1",
        "brands.update_brands brand_1",
        "brands.delete_brands brand_2",
    ]
    page = await rt.workflows.list_runs(workflow="sync-brands-from-cms")
    assert len(page.runs) == 1
    child = await rt.workflows.get_run(page.runs[0].id)
    assert child.parent_run_id == result.run_id
    assert [(s.name, s.status) for s in child.steps] == [
        ("retrieve-brands-from-cms", "completed"),
        ("create-brands-step", "compensated"),
        ("update-brands-step", "compensated"),
    ]


async def test_the_rolled_back_sync_run_ends_canceled(rt: Runtime) -> None:
    result = await sync_then_announce(rt.container).run(throw_on_error=False)

    page = await rt.workflows.list_runs(workflow="sync-brands-from-cms")
    assert page.runs[0].parent_run_id == result.run_id
    assert page.runs[0].status is RunStatus.CANCELED
