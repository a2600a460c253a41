"""Shopping carts, placed orders, their fulfillments, and a payment provider."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.journal import DemoService, Ids, Journal


class CartService(DemoService):
    """Shopping carts, for the nightly clean-up job (``jobs/cleanup_expired_carts.py``).

    Each cart is ``{"id", "created_at", "completed_at"}`` with aware UTC datetimes.
    """

    name = "carts"

    def __init__(
        self, carts: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.carts: dict[str, dict[str, Any]] = {c["id"]: dict(c) for c in carts}

    async def list_carts(
        self, *, created_before: datetime, completed: bool = False
    ) -> list[dict[str, Any]]:
        """Carts created before ``created_before``, completed or not."""
        return [
            dict(cart)
            for cart in self.carts.values()
            if cart["created_at"] < created_before
            and (cart["completed_at"] is not None) == completed
        ]

    async def delete_cart(self, id: str) -> None:
        """Delete a cart (nothing happens if there is none)."""
        if self.carts.pop(id, None) is not None:
            self._record("delete_cart", id)


class OrderService(DemoService):
    """Orders as placed by customers.

    An order is ``{"id", "display_id", "email", "customer_id", "payment_status",
    "total", "created_at", "items"}`` (``total`` in cents, ``created_at`` aware UTC);
    each item is ``{"id", "variant_id", "quantity", "variant": {"inventory_item_id",
    "manage_inventory"}}``, the shape seed 002's order workflow reads.
    """

    name = "orders"

    def __init__(
        self, orders: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.orders: dict[str, dict[str, Any]] = {o["id"]: dict(o) for o in orders}

    async def retrieve_order(self, id: str) -> dict[str, Any] | None:
        """The order with this id, or ``None``."""
        order = self.orders.get(id)
        return dict(order) if order is not None else None

    async def list_orders(
        self,
        *,
        payment_status: str | None = None,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Orders matching every filter given, in the order they were placed.

        Args:
            payment_status: only orders in this payment status (e.g. ``"captured"``).
            created_from: only orders created at or after this time.
            created_before: only orders created before this time.
        """
        return [
            dict(order)
            for order in self.orders.values()
            if (payment_status is None or order["payment_status"] == payment_status)
            and (created_from is None or order["created_at"] >= created_from)
            and (created_before is None or order["created_at"] < created_before)
        ]


class FulfillmentService(DemoService):
    """Fulfillments (shipments) of orders.

    Attributes:
        fulfillments: fulfillment id -> ``{"id", "order_id", "items", "canceled"}``.
    """

    name = "fulfillment"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.fulfillments: dict[str, dict[str, Any]] = {}
        self._ids = Ids("ful")

    async def create_fulfillment(
        self, order_id: str, *, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Create a fulfillment of ``items`` (``{"id", "quantity"}``) for an order."""
        fulfillment: dict[str, Any] = {
            "id": self._ids.next(),
            "order_id": order_id,
            "items": [dict(i) for i in items],
            "canceled": False,
        }
        self.fulfillments[fulfillment["id"]] = fulfillment
        self._record("create_fulfillment", fulfillment["id"])
        return dict(fulfillment)

    async def cancel_fulfillment(self, id: str) -> None:
        """Cancel a fulfillment; it stays listed, marked ``canceled``."""
        self.fulfillments[id]["canceled"] = True
        self._record("cancel_fulfillment", id)

    async def list_fulfillments(self, *, order_id: str | None = None) -> list[dict[str, Any]]:
        """The fulfillments that were not canceled, of one order or of every order."""
        return [
            dict(f)
            for f in self.fulfillments.values()
            if not f["canceled"] and (order_id is None or f["order_id"] == order_id)
        ]


class PaymentService(DemoService):
    """A payment provider that turns a payment into an order.

    Attributes:
        orders: every order created, in order: ``{"id", "user_id", "amount", "status"}``.
        outcome: the status the provider reports for the next orders, ``"success"``;
            set it to ``"pending"`` to see ``process_payment``'s output schema refuse
            a status it does not know.
    """

    name = "payments"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.orders: list[dict[str, Any]] = []
        self.outcome = "success"

    async def create_order(self, user_id: int, amount: float) -> dict[str, Any]:
        """Charge ``amount`` to a user; returns the order with the provider's status."""
        order = {
            "id": len(self.orders) + 1,
            "user_id": user_id,
            "amount": amount,
            "status": self.outcome,
        }
        self.orders.append(order)
        self._record("create_order", str(order["id"]))
        return dict(order)
