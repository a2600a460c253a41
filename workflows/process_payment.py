"""Process a payment: a workflow whose input and output are checked by pydantic schemas.

``input=`` and ``output=`` take pydantic models (Sonamu uses Zod). They make the
workflow's contract explicit and are enforced at both ends:

- **Input, at the start.** ``rt.workflows.run("process_payment", {"user_id": 1,
  "amount": -5})`` raises :class:`~runtime.InputValidationError` right there, in
  the caller, and no run is created: nothing to clean up, nothing to retry.
  Inside the workflow ``ctx.input`` is a ``PaymentInput``, with typed fields.
- **Output, at the end.** What the function returns is validated against
  ``PaymentOutput`` before the run completes. A result that does not match
  (here: the provider reported a status the workflow does not know) fails the
  run with the reason, instead of handing a malformed result to whoever reads it.

Run it::

    handle = await rt.workflows.run("process_payment", {"user_id": 7, "amount": 19.99})
    await handle.result(timeout=30)   # {"order_id": 1, "status": "success"}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, PositiveFloat

from runtime import WorkflowContext, workflow


class PaymentInput(BaseModel):
    """Who pays how much."""

    user_id: int
    amount: PositiveFloat


class PaymentOutput(BaseModel):
    """The order the payment created, and how it went."""

    order_id: int
    status: Literal["success", "failed"]


@workflow(name="process_payment", input=PaymentInput, output=PaymentOutput)
async def process_payment(ctx: WorkflowContext[PaymentInput]) -> dict[str, Any]:
    """Charge the user and return the order; input and output are validated."""
    ctx.logger.info("processing_payment", user_id=ctx.input.user_id)
    payments = ctx.container.resolve("payments")
    order = await ctx.step(
        "create_order", payments.create_order, ctx.input.user_id, ctx.input.amount
    )
    # Returned as a dict; the runtime validates it against PaymentOutput.
    return {"order_id": order["id"], "status": order["status"]}
