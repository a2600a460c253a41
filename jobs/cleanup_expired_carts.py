"""Every night at 2 AM, delete the carts nobody completed within a week (seed 002).

For each expired cart the job emits ``cart.expired`` and deletes the cart. The
order matters when the process can die between the two (a deploy, a crash):

- the event goes first, with an idempotency key made from the cart's id, so a
  second attempt that emits it again stores nothing new;
- the delete comes second, and deleting a cart that is already gone does nothing.

So a firing that is cut off and run again never loses an event nor sends one
twice. The seed logs a cart it could not delete and goes on; here the job goes
on too, then fails at the end, so the run shows it and ``job.failed`` alerts
someone (``subscribers/job_failed.py``). The carts already deleted stay deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtime import Container, JobConfig

EXPIRE_AFTER = timedelta(days=7)
"""A cart not completed this long after it was created is abandoned."""


async def handler(container: Container) -> None:
    """Delete the expired carts, emitting ``cart.expired`` for each."""
    logger = container.resolve("logger")
    carts = container.resolve("carts")
    event_bus = container.resolve("event_bus")

    cutoff = datetime.now(UTC) - EXPIRE_AFTER
    expired = await carts.list_carts(created_before=cutoff, completed=False)
    deleted, failed = 0, []
    for cart in expired:
        await event_bus.emit(
            "cart.expired",
            {"cart_id": cart["id"], "created_at": cart["created_at"]},
            idempotency_key=f"cart.expired:{cart['id']}",
        )
        try:
            await carts.delete_cart(cart["id"])
        except Exception as exc:
            logger.warning("cart_delete_failed", cart_id=cart["id"], error=str(exc))
            failed.append(cart["id"])
            continue
        deleted += 1

    logger.info("expired_carts_cleaned_up", deleted=deleted, failed=len(failed))
    if failed:
        raise RuntimeError(f"could not delete {len(failed)} expired cart(s): {failed}")


config = JobConfig(name="cleanup-expired-carts", schedule="0 2 * * *")
