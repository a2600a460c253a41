"""The product-count workflow: a step resolving the product service from the container."""

from __future__ import annotations

from runtime import RunStatus, Runtime
from workflows.product_count import product_count


async def test_counts_the_products_of_the_store(rt: Runtime) -> None:
    result = await product_count(rt.container).run()

    assert result.result == {"count": 2}
    run = await rt.workflows.get_run(result.run_id)
    assert run.status is RunStatus.COMPLETED
    assert [(s.name, s.output) for s in run.steps] == [("count-products", 2)]


async def test_sees_the_container_it_is_run_with(rt: Runtime) -> None:
    products = rt.container.resolve("products")
    products.products["prod_3"] = {"id": "prod_3", "title": "Cap", "description": "", "images": []}

    result = await product_count(rt.container).run()

    assert result.result == {"count": 3}
