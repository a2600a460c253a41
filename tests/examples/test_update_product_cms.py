"""The update-product-cms workflow: the store and the CMS change together, or neither does."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import RunStatus, Runtime, StepFailed
from tests.examples.faults import fail_on
from workflows.update_product_cms import update_product_cms

NEW_DATA: dict[str, Any] = {
    "id": "prod_1",
    "title": "Medusa T-Shirt, organic",
    "description": "Soft organic cotton tee.",
    "images": ["tshirt-front.png", "tshirt-back.png"],
}
OLD_DATA = {
    "title": "Medusa T-Shirt",
    "description": "Soft cotton tee.",
    "images": ["tshirt-front.png"],
}


async def test_updates_the_product_and_the_cms(rt: Runtime) -> None:
    products = rt.container.resolve("products")
    cms = rt.container.resolve("cms")

    result = await update_product_cms(rt.container).run(input=NEW_DATA)

    assert result.status is RunStatus.COMPLETED
    assert result.result == NEW_DATA
    assert products.products["prod_1"] == NEW_DATA
    assert cms.products == {"prod_1": NEW_DATA}
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status, s.attempts) for s in run.steps] == [
        ("update-product", "completed", 1),
        ("send-product-data-to-cms", "completed", 1),
    ]
    # What each compensation would have received, had a later step failed.
    assert run.steps[0].compensate_input == {"id": "prod_1", "previous_product_data": OLD_DATA}
    assert run.steps[1].compensate_input == {"id": "prod_1", "previous_cms_entry": None}


async def test_a_cms_hiccup_is_retried(rt: Runtime) -> None:
    cms = rt.container.resolve("cms")
    fail_on(cms, "upsert_product", times=1)

    result = await update_product_cms(rt.container).run(input=NEW_DATA)

    assert result.status is RunStatus.COMPLETED
    assert cms.products == {"prod_1": NEW_DATA}
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.attempts) for s in run.steps] == [
        ("update-product", 1),
        ("send-product-data-to-cms", 2),
    ]


async def test_a_cms_that_stays_down_rolls_the_product_back(rt: Runtime) -> None:
    products = rt.container.resolve("products")
    cms = rt.container.resolve("cms")
    journal = rt.container.resolve("journal")
    fail_on(cms, "upsert_product")

    result = await update_product_cms(rt.container).run(input=NEW_DATA, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert products.products["prod_1"] == {"id": "prod_1", **OLD_DATA}
    assert cms.products == {}
    # The update, then the restore: the CMS never recorded a write.
    assert journal.entries == ["products.update prod_1", "products.update prod_1"]
    assert [(e.step, e.type, e.message) for e in result.errors] == [
        ("send-product-data-to-cms", "ServiceError", "cms.upsert_product is unavailable")
    ]
    run = await rt.workflows.get_run(result.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.step == "send-product-data-to-cms"
    # The failing step's own compensation ran too (with None: nothing to undo), so
    # both steps end "compensated"; the failed one keeps its error.
    assert [(s.name, s.status, s.attempts) for s in run.steps] == [
        ("update-product", "compensated", 1),
        ("send-product-data-to-cms", "compensated", 3),
    ]
    assert run.steps[0].error is None
    assert run.steps[1].error is not None
    assert run.steps[1].error.type == "ServiceError"


async def test_a_failed_run_raises_step_failed_by_default(rt: Runtime) -> None:
    fail_on(rt.container.resolve("cms"), "upsert_product")

    with pytest.raises(StepFailed) as caught:
        await update_product_cms(rt.container).run(input=NEW_DATA)

    assert caught.value.step == "send-product-data-to-cms"
    assert caught.value.error_type == "ServiceError"
    assert rt.container.resolve("products").products["prod_1"]["title"] == "Medusa T-Shirt"


async def test_an_unknown_product_changes_nothing(rt: Runtime) -> None:
    journal = rt.container.resolve("journal")

    with pytest.raises(StepFailed) as caught:
        await update_product_cms(rt.container).run(input={**NEW_DATA, "id": "prod_404"})

    assert caught.value.step == "update-product"
    assert caught.value.error_type == "KeyError"
    assert journal.entries == []
    assert rt.container.resolve("cms").products == {}
