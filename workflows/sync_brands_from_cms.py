"""Sync brands from CMS: pull the CMS's brands into the store, creating or updating each.

Seed 004 (Medusa's "Schedule Syncing Brands from CMS"): retrieve the CMS's
brands, split them with ``transform`` into brands to create (no ``external_id``)
and brands to update (``external_id`` is the brand's id in the store), then
create and update them. If anything fails, the created brands are deleted and
the updated ones get their previous names back.

The seed runs this workflow from a daily scheduled job
(``jobs/sync_brands_from_cms.py``, ``0 0 * * *``); the job comes with the scheduler.
"""

from __future__ import annotations

from typing import Any, TypedDict

from runtime import (
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
    transform,
)


class CreateBrand(TypedDict):
    """A brand the store does not have yet."""

    name: str


class UpdateBrand(TypedDict):
    """A brand the store has, with its name as the CMS shows it."""

    id: str
    name: str


class BrandChanges(TypedDict):
    """The CMS's brands, split by what the store must do with them."""

    to_create: list[CreateBrand]
    to_update: list[UpdateBrand]


@create_step("retrieve-brands-from-cms")
async def retrieve_brands_from_cms(_: None, ctx: StepContext) -> StepResponse:
    """Read every brand from the CMS. Reading changes nothing, so no compensation."""
    cms = ctx.container.resolve("cms")
    return StepResponse(await cms.retrieve_brands())


@create_step("create-brands-step")
async def create_brands(input: dict[str, list[CreateBrand]], ctx: StepContext) -> StepResponse:
    """Create the brands the store does not have."""
    brands = ctx.container.resolve("brands")
    created = await brands.create_brands(input["brands"])
    # The compensation gets the created brands (the output) to delete them again.
    return StepResponse(created, created)


@create_brands.compensate
async def delete_created_brands(created: list[dict[str, Any]] | None, ctx: StepContext) -> None:
    """Delete the brands this step created."""
    # None when this step itself failed: then it created nothing.
    if not created:
        return
    brands = ctx.container.resolve("brands")
    await brands.delete_brands([brand["id"] for brand in created])


@create_step("update-brands-step")
async def update_brands(input: dict[str, list[UpdateBrand]], ctx: StepContext) -> StepResponse:
    """Update the brands the store has, remembering their previous state."""
    brands = ctx.container.resolve("brands")
    updates = input["brands"]
    previous = await brands.list_brands([brand["id"] for brand in updates])
    updated = await brands.update_brands(updates)
    return StepResponse(updated, previous)


@update_brands.compensate
async def restore_updated_brands(previous: list[dict[str, Any]] | None, ctx: StepContext) -> None:
    """Give the updated brands their previous data back."""
    if not previous:
        return
    brands = ctx.container.resolve("brands")
    await brands.update_brands(previous)


def split_brands(data: dict[str, Any]) -> BrandChanges:
    """Sort the CMS's brands into those to create and those to update.

    Runs at run time, inside ``transform``, on the real list of brands. It must be
    pure: when a run resumes after a crash, it runs again on the same stored input.
    """
    changes: BrandChanges = {"to_create": [], "to_update": []}
    for brand in data["brands"]:
        if brand.get("external_id"):
            changes["to_update"].append({"id": brand["external_id"], "name": brand["name"]})
        else:
            changes["to_create"].append({"name": brand["name"]})
    return changes


def sync_brands_from_cms_flow() -> WorkflowResponse:
    brands = retrieve_brands_from_cms()
    changes = transform({"brands": brands}, split_brands)
    # `changes["to_create"]` is a reference to that field, resolved at run time.
    created = create_brands({"brands": changes["to_create"]})
    updated = update_brands({"brands": changes["to_update"]})
    return WorkflowResponse({"created": created, "updated": updated})


sync_brands_from_cms = create_workflow("sync-brands-from-cms", sync_brands_from_cms_flow)
