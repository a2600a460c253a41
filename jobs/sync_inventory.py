"""Every 6 hours, copy the warehouse's stock levels into the store (seed 002).

The job reads every variant, asks the warehouse system for the levels of their
SKUs, and updates the items whose stocked quantity differs, 50 at a time.

Where the seed catches an error and sends an alert itself, this job lets the
error out and leaves the rest to the runtime, as seed 002's ``BaseJob`` does:
``max_retries=2`` with ``retry_interval=5`` gives three attempts, 5 then about
10 seconds apart (with jitter), and a firing that still fails ends ``failed``
and publishes ``job.failed``, which ``subscribers/job_failed.py`` turns into an
alert. Retrying is safe because setting a stock level twice changes nothing
the second time.
"""

from __future__ import annotations

from runtime import Container, JobConfig

BATCH_SIZE = 50
"""Stock levels sent to the inventory service per call."""


async def handler(container: Container) -> None:
    """Update every stock level that differs from the warehouse's."""
    products = container.resolve("products")
    inventory = container.resolve("inventory")
    warehouse = container.resolve("external_inventory")

    variants = await products.list_product_variants(take=1000)
    skus = [variant["sku"] for variant in variants if variant["sku"]]
    external = {level["sku"]: level for level in await warehouse.get_inventory_levels(skus)}

    updates = []
    for variant in variants:
        level = external.get(variant["sku"])
        if level is None:
            continue
        current = await inventory.get_inventory_level(variant["inventory_item_id"])
        if current["stocked_quantity"] != level["quantity"]:
            updates.append(
                {
                    "inventory_item_id": variant["inventory_item_id"],
                    "location_id": level["location_id"],
                    "stocked_quantity": level["quantity"],
                }
            )

    for start in range(0, len(updates), BATCH_SIZE):
        await inventory.update_inventory_levels(updates[start : start + BATCH_SIZE])
    container.resolve("logger").info("inventory_synced", updated=len(updates))


config = JobConfig(
    name="sync-inventory",
    schedule="0 */6 * * *",
    max_retries=2,
    retry_interval=5.0,
)
