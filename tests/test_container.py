"""The container: steps resolve services from it; unknown names and a bare container fail."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    Container,
    NotConfiguredError,
    RunStatus,
    Runtime,
    StepContext,
    UnknownServiceError,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from tests.helpers.definitions import run_inline

# -- the container ------------------------------------------------------------------------------


async def test_running_through_a_bare_container_raises_not_configured() -> None:
    @create_step("noop")
    async def noop(input: Any) -> None:
        return None

    workflow = create_workflow("no-runtime", lambda i: noop(i))

    with pytest.raises(NotConfiguredError, match="Runtime"):
        await workflow(Container()).run(input={})


def test_resolve_of_an_unknown_name_lists_the_registered_names() -> None:
    container = Container()
    container.register("inventory", object())
    container.register_factory("carts", lambda: {"c1": []})

    with pytest.raises(UnknownServiceError) as caught:
        container.resolve("orders")

    assert isinstance(caught.value, LookupError)
    assert caught.value.name == "orders"
    assert sorted(caught.value.known) == ["carts", "inventory"]
    assert "'orders'" in str(caught.value)
    assert "carts, inventory" in str(caught.value)


def test_an_empty_container_says_nothing_is_registered() -> None:
    with pytest.raises(UnknownServiceError, match="nothing registered"):
        Container().resolve("anything")


async def test_a_step_resolving_an_unknown_service_fails_with_the_names(rt: Runtime) -> None:
    rt.container.register("inventory", {"sku": 3})

    @create_step("lookup")
    async def lookup(input: Any, ctx: StepContext) -> Any:
        return ctx.container.resolve("inventroy")

    result = await run_inline(
        create_workflow("typo", lambda i: lookup(i)), rt, throw_on_error=False
    )

    assert result.status is RunStatus.FAILED
    (error,) = result.errors
    assert error.type == "UnknownServiceError"
    assert "inventory" in error.message
    assert "workflows" in error.message  # the runtime's own services are listed too


async def test_steps_resolve_services_from_the_runtime_container(rt: Runtime) -> None:
    calls = 0

    def make_inventory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"sku-1": 5}

    rt.container.register_factory("inventory", make_inventory)

    @create_step("stock")
    async def stock(input: Any, ctx: StepContext) -> int:
        return int(ctx.container.resolve("inventory")[input])

    def flow(input: Any) -> WorkflowResponse:
        return WorkflowResponse([stock(input), stock.with_options(name="stock-again")(input)])

    result = await run_inline(create_workflow("stocked", flow), rt, "sku-1")

    assert result.result == [5, 5]
    assert calls == 1  # the factory ran once
