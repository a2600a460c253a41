"""Product count: a step that resolves a service from the container ("Resolve Resources")."""

from __future__ import annotations

from runtime import StepContext, StepResponse, WorkflowResponse, create_step, create_workflow


@create_step("count-products")
async def count_products(_: None, ctx: StepContext) -> StepResponse:
    """Count the store's products.

    ``ctx.container`` holds the services ``services.setup`` registered; resolving
    them inside the step, not at import time, keeps the workflow independent of
    which container runs it (a test's, the service's, another process's).
    """
    products = ctx.container.resolve("products")
    _, count = await products.list_and_count()
    return StepResponse(count)


def product_count_flow() -> WorkflowResponse:
    count = count_products()
    return WorkflowResponse({"count": count})


product_count = create_workflow("product-count", product_count_flow)
