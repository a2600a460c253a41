"""Stock levels and reservations in the store, and the warehouse that holds the true counts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.journal import DemoService, Ids, Journal


class InventoryService(DemoService):
    """Stock levels and reservations per inventory item.

    Attributes:
        stocked: inventory item id -> units on the shelf.
        reservations: reservation id -> ``{"id", "inventory_item_id", "quantity",
            "location_id"}``; reserved units are promised to an order.
    """

    name = "inventory"

    def __init__(
        self, stocked: dict[str, int] | None = None, journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.stocked: dict[str, int] = dict(stocked or {})
        self.reservations: dict[str, dict[str, Any]] = {}
        self._ids = Ids("res")

    def reserved_quantity(self, inventory_item_id: str) -> int:
        """How many units of an item are reserved."""
        return sum(
            r["quantity"]
            for r in self.reservations.values()
            if r["inventory_item_id"] == inventory_item_id
        )

    async def get_inventory_level(self, inventory_item_id: str) -> dict[str, Any]:
        """``{"inventory_item_id", "stocked_quantity", "reserved_quantity",
        "available_quantity"}`` for one item (zero for an unknown item)."""
        stocked = self.stocked.get(inventory_item_id, 0)
        reserved = self.reserved_quantity(inventory_item_id)
        return {
            "inventory_item_id": inventory_item_id,
            "stocked_quantity": stocked,
            "reserved_quantity": reserved,
            "available_quantity": stocked - reserved,
        }

    async def create_reservation(
        self, *, inventory_item_id: str, quantity: int, location_id: str | None = None
    ) -> dict[str, Any]:
        """Reserve ``quantity`` units of an item.

        Raises:
            ValueError: fewer units are available than asked for.
        """
        available = self.stocked.get(inventory_item_id, 0) - self.reserved_quantity(
            inventory_item_id
        )
        if quantity > available:
            raise ValueError(
                f"cannot reserve {quantity} of {inventory_item_id!r}: {available} available"
            )
        reservation: dict[str, Any] = {
            "id": self._ids.next(),
            "inventory_item_id": inventory_item_id,
            "quantity": quantity,
            "location_id": location_id,
        }
        self.reservations[reservation["id"]] = reservation
        self._record("create_reservation", reservation["id"])
        return dict(reservation)

    async def delete_reservation(self, id: str) -> None:
        """Release a reservation (nothing happens if it is already gone)."""
        if self.reservations.pop(id, None) is not None:
            self._record("delete_reservation", id)

    async def update_inventory_levels(self, updates: list[dict[str, Any]]) -> None:
        """Set stock levels: ``{"inventory_item_id", "location_id", "stocked_quantity"}`` each.

        Setting a level is idempotent: applying the same batch twice changes nothing
        the second time, which is what makes a retried sync safe.
        """
        for update in updates:
            self.stocked[update["inventory_item_id"]] = update["stocked_quantity"]
            self._record(
                "update_inventory_levels",
                f"{update['inventory_item_id']}={update['stocked_quantity']}",
            )


class ExternalInventoryService(DemoService):
    """A warehouse system that holds the true stock levels, by SKU (seed 002's sync job).

    Attributes:
        levels: SKU -> ``{"sku", "quantity", "location_id"}``.
    """

    name = "external_inventory"

    def __init__(
        self, levels: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.levels: dict[str, dict[str, Any]] = {level["sku"]: dict(level) for level in levels}

    async def get_inventory_levels(self, skus: Iterable[str]) -> list[dict[str, Any]]:
        """The levels of the SKUs the warehouse knows (unknown SKUs are left out)."""
        return [dict(self.levels[sku]) for sku in skus if sku in self.levels]
