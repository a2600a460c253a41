"""Update product CMS: change a product in the store and in an external CMS, or in neither.

Medusa's "More Advanced Example": ``update-product`` changes the product and keeps
its previous data for the compensation; ``send-product-data-to-cms`` pushes the
result to the CMS. When the CMS stays down after its retries, the run rolls back
and the product gets its previous title, description and images again::

    result = await update_product_cms(container).run(
        input={"id": "prod_1", "title": "New title", "description": "...", "images": []}
    )
    result.result  # the updated product
"""

from __future__ import annotations

from typing import Any, TypedDict

from runtime import StepContext, StepResponse, WorkflowResponse, create_step, create_workflow


class WorkflowInput(TypedDict):
    """The product's id and its new CMS details."""

    id: str
    title: str
    description: str
    images: list[str]


class ProductRollback(TypedDict):
    """What ``update-product``'s compensation needs to put the product back."""

    id: str
    previous_product_data: dict[str, Any]


@create_step("update-product")
async def update_product(input: WorkflowInput, ctx: StepContext) -> StepResponse:
    """Update the product, remembering what it looked like before."""
    products = ctx.container.resolve("products")
    id = input["id"]
    update_data = {key: value for key, value in input.items() if key != "id"}
    previous_product_data = await products.retrieve(id, select=["title", "description", "images"])
    product = await products.update(id, update_data)
    # The output goes to the next step; the second argument goes to the compensation.
    rollback: ProductRollback = {"id": id, "previous_product_data": previous_product_data}
    return StepResponse(product, rollback)


@update_product.compensate
async def restore_product(rollback: ProductRollback | None, ctx: StepContext) -> None:
    """Put the product's previous data back."""
    # A step's own compensation also runs when the step itself fails, with None:
    # then there is nothing to undo.
    if rollback is None:
        return
    products = ctx.container.resolve("products")
    await products.update(rollback["id"], rollback["previous_product_data"])


class CmsRollback(TypedDict):
    """What ``send-product-data-to-cms``'s compensation needs to undo the push."""

    id: str
    previous_cms_entry: dict[str, Any] | None


# A CMS is a third-party service that fails now and then: retry it twice. The
# interval is short so the demo stays quick; against a real API use seconds.
@create_step("send-product-data-to-cms", max_retries=2, retry_interval=0.05)
async def send_product_data_to_cms(product: dict[str, Any], ctx: StepContext) -> StepResponse:
    """Push the product's CMS details to the CMS."""
    cms = ctx.container.resolve("cms")
    previous_cms_entry = await cms.retrieve_product(product["id"])
    entry = await cms.upsert_product(product)
    rollback: CmsRollback = {"id": product["id"], "previous_cms_entry": previous_cms_entry}
    return StepResponse(entry, rollback)


@send_product_data_to_cms.compensate
async def restore_cms_entry(rollback: CmsRollback | None, ctx: StepContext) -> None:
    """Give the CMS back what it showed before, or remove a page that is new."""
    if rollback is None:
        return
    cms = ctx.container.resolve("cms")
    previous = rollback["previous_cms_entry"]
    if previous is None:
        await cms.delete_product(rollback["id"])
    else:
        await cms.upsert_product(previous)


def update_product_cms_flow(input: Any) -> WorkflowResponse:
    product = update_product(input)
    send_product_data_to_cms(product)
    return WorkflowResponse(product)


update_product_cms = create_workflow("update-product-cms", update_product_cms_flow)
