"""In-memory demo services that the example workflows, subscribers and jobs resolve.

Each class stands in for a real system (a database table, a payment or e-mail
provider, a third-party CMS). They are deterministic, hold their state in plain
attributes so tests can look at it, and share one :class:`Journal` that records
every write in order, which is how a test sees that compensations ran in reverse.

Every service can be told to fail on demand::

    inventory = container.resolve("inventory")
    inventory.fail_on("create_reservation")            # every call fails
    cms.fail_on("upsert_product", times=1)             # only the next call fails
    inventory.fail_on("create_reservation", after=1)   # the first call works, then fail

A failing call raises :class:`ServiceError` before it changes anything.

``runtime.toml`` points at :func:`setup`, which registers one instance of each
service in the container.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import anyio

from runtime import Container

__all__ = [
    "AnalyticsService",
    "AuthService",
    "BackupService",
    "BrandService",
    "CartService",
    "CmsService",
    "Console",
    "CustomerService",
    "EmailService",
    "ExternalDataService",
    "ExternalInventoryService",
    "FulfillmentService",
    "InventoryService",
    "Journal",
    "LogService",
    "NotificationService",
    "OrderService",
    "PaymentService",
    "ProductService",
    "ReportService",
    "ServiceError",
    "UserDataService",
    "UserService",
    "setup",
]


ADMINS = "admins@example.com"
"""Where the demo services send what is meant for the store's staff."""

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""When the demo data was "created": a fixed time, so the data is the same on every run."""


class ServiceError(RuntimeError):
    """A demo service call failed because a test asked it to (see ``fail_on``)."""


class Journal:
    """Every write made by any demo service, in the order it happened.

    Entries read ``"<service>.<operation> <detail>"``, e.g.
    ``"inventory.create_reservation res_1"``.
    """

    def __init__(self) -> None:
        self.entries: list[str] = []

    def record(self, entry: str) -> None:
        """Append one entry."""
        self.entries.append(entry)

    def __repr__(self) -> str:
        return f"Journal({self.entries!r})"


class DemoService:
    """Base of the demo services: a shared journal and failures on demand.

    Args:
        journal: where writes are recorded; a private one when omitted.
    """

    name: ClassVar[str] = "service"

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal()
        # operation -> [calls still to let through, calls still to fail (None: all)].
        self._failures: dict[str, list[Any]] = {}

    def fail_on(self, operation: str, times: int | None = None, *, after: int = 0) -> None:
        """Make calls to ``operation`` raise :class:`ServiceError`.

        Args:
            operation: the method name, e.g. ``"create_reservation"``.
            times: how many calls fail; ``None`` fails every call.
            after: let this many calls succeed first (to fail half-way through a loop).
        """
        if not callable(getattr(self, operation, None)):
            raise ValueError(f"{type(self).__name__} has no operation {operation!r}")
        self._failures[operation] = [after, times]

    def heal(self) -> None:
        """Stop every failure set with :meth:`fail_on`."""
        self._failures.clear()

    def _enter(self, operation: str) -> None:
        """Raise if ``operation`` is set to fail; called first by every public method."""
        plan = self._failures.get(operation)
        if plan is None:
            return
        if plan[0] > 0:
            plan[0] -= 1
            return
        if plan[1] is not None:
            plan[1] -= 1
            if plan[1] <= 0:
                del self._failures[operation]
        raise ServiceError(f"{self.name}.{operation} is unavailable")

    def _record(self, operation: str, detail: str) -> None:
        self.journal.record(f"{self.name}.{operation} {detail}")


class _Ids:
    """Readable, deterministic ids: ``brand_1``, ``brand_2``, ..."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._last = 0

    def next(self) -> str:
        self._last += 1
        return f"{self._prefix}_{self._last}"


class Console(DemoService):
    """Stands in for ``console.log`` in the seeds: keeps the lines it was given."""

    name = "console"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        """Print a line (into :attr:`lines`)."""
        self._enter("log")
        self.lines.append(message)


class ProductService(DemoService):
    """Products of the store, as the Product Module would keep them.

    Attributes:
        products: product id -> ``{"id", "title", "description", "images"}``.
        variants: variant id -> ``{"id", "product_id", "sku", "inventory_item_id"}``;
            ``sku`` may be ``None`` (a variant nobody stocks by SKU).
    """

    name = "products"

    def __init__(
        self,
        products: Iterable[dict[str, Any]] = (),
        journal: Journal | None = None,
        *,
        variants: Iterable[dict[str, Any]] = (),
    ) -> None:
        super().__init__(journal)
        self.products: dict[str, dict[str, Any]] = {p["id"]: dict(p) for p in products}
        self.variants: dict[str, dict[str, Any]] = {v["id"]: dict(v) for v in variants}

    async def retrieve(self, id: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """A copy of one product, optionally only the ``select``-ed fields.

        Raises:
            KeyError: no product has this id.
        """
        self._enter("retrieve")
        product = self._get(id)
        if select is None:
            return dict(product)
        return {field: product[field] for field in select}

    async def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Apply ``data`` to a product and return the updated copy."""
        self._enter("update")
        product = self._get(id)
        product.update(data)
        self._record("update", id)
        return dict(product)

    async def list_and_count(self) -> tuple[list[dict[str, Any]], int]:
        """Every product and how many there are (Medusa's ``listAndCount``)."""
        self._enter("list_and_count")
        products = [dict(p) for p in self.products.values()]
        return products, len(products)

    async def list_product_variants(self, take: int = 1000) -> list[dict[str, Any]]:
        """Copies of at most ``take`` variants (Medusa's ``listProductVariants``)."""
        self._enter("list_product_variants")
        return [dict(v) for v in list(self.variants.values())[:take]]

    def _get(self, id: str) -> dict[str, Any]:
        try:
            return self.products[id]
        except KeyError:
            raise KeyError(f"product {id!r} not found") from None


class CmsService(DemoService):
    """A third-party CMS: product pages pushed from the store, and brands to pull in.

    Attributes:
        products: product id -> what the CMS shows for it.
        brands: the CMS's brands; ``external_id`` is the brand's id in the store,
            ``None`` for a brand the store does not have yet (seed 004).
    """

    name = "cms"

    def __init__(
        self, brands: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.products: dict[str, dict[str, Any]] = {}
        self.brands: list[dict[str, Any]] = [dict(b) for b in brands]

    async def retrieve_product(self, id: str) -> dict[str, Any] | None:
        """The CMS's copy of a product, or ``None`` if it was never sent."""
        self._enter("retrieve_product")
        entry = self.products.get(id)
        return dict(entry) if entry is not None else None

    async def upsert_product(self, product: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the CMS's copy of ``product`` (keyed by its ``id``)."""
        self._enter("upsert_product")
        entry = {
            "id": product["id"],
            "title": product["title"],
            "description": product["description"],
            "images": list(product["images"]),
        }
        self.products[product["id"]] = entry
        self._record("upsert_product", product["id"])
        return dict(entry)

    async def delete_product(self, id: str) -> None:
        """Remove the CMS's copy of a product (nothing happens if there is none)."""
        self._enter("delete_product")
        self.products.pop(id, None)
        self._record("delete_product", id)

    async def retrieve_brands(self) -> list[dict[str, Any]]:
        """Every brand the CMS has."""
        self._enter("retrieve_brands")
        return [dict(b) for b in self.brands]


class BrandService(DemoService):
    """The store's own brands (the Brand Module of seed 004)."""

    name = "brands"

    def __init__(
        self, brands: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.brands: dict[str, dict[str, Any]] = {b["id"]: dict(b) for b in brands}
        self._ids = _Ids("brand")

    async def create_brands(self, brands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create brands from ``{"name": ...}`` dicts; returns them with their new ids."""
        self._enter("create_brands")
        created = []
        for data in brands:
            brand = {"id": self._new_id(), "name": data["name"]}
            self.brands[brand["id"]] = brand
            self._record("create_brands", brand["id"])
            created.append(dict(brand))
        return created

    async def list_brands(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Copies of the brands with these ids (every brand when ``ids`` is ``None``)."""
        self._enter("list_brands")
        if ids is None:
            return [dict(b) for b in self.brands.values()]
        return [dict(self.brands[i]) for i in ids if i in self.brands]

    async def update_brands(self, brands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``{"id": ..., "name": ...}`` updates, all or nothing.

        Raises:
            KeyError: one of the ids is not a brand; nothing was changed.
        """
        self._enter("update_brands")
        missing = [b["id"] for b in brands if b["id"] not in self.brands]
        if missing:
            raise KeyError(f"brands not found: {missing}")
        updated = []
        for data in brands:
            brand = self.brands[data["id"]]
            brand.update(data)
            self._record("update_brands", brand["id"])
            updated.append(dict(brand))
        return updated

    async def delete_brands(self, ids: Iterable[str]) -> None:
        """Delete brands by id (unknown ids are ignored)."""
        self._enter("delete_brands")
        for id in ids:
            if self.brands.pop(id, None) is not None:
                self._record("delete_brands", id)

    def _new_id(self) -> str:
        id = self._ids.next()
        # Seeded brands use the same id scheme: skip the ones already taken.
        while id in self.brands:
            id = self._ids.next()
        return id


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
        self._enter("list_carts")
        return [
            dict(cart)
            for cart in self.carts.values()
            if cart["created_at"] < created_before
            and (cart["completed_at"] is not None) == completed
        ]

    async def delete_cart(self, id: str) -> None:
        """Delete a cart (nothing happens if there is none)."""
        self._enter("delete_cart")
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
        self._enter("retrieve_order")
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
        self._enter("list_orders")
        return [
            dict(order)
            for order in self.orders.values()
            if (payment_status is None or order["payment_status"] == payment_status)
            and (created_from is None or order["created_at"] >= created_from)
            and (created_before is None or order["created_at"] < created_before)
        ]


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
        self._ids = _Ids("res")

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
        self._enter("get_inventory_level")
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
        self._enter("create_reservation")
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
        self._enter("delete_reservation")
        if self.reservations.pop(id, None) is not None:
            self._record("delete_reservation", id)

    async def update_inventory_levels(self, updates: list[dict[str, Any]]) -> None:
        """Set stock levels: ``{"inventory_item_id", "location_id", "stocked_quantity"}`` each.

        Setting a level is idempotent: applying the same batch twice changes nothing
        the second time, which is what makes a retried sync safe.
        """
        self._enter("update_inventory_levels")
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
        self._enter("get_inventory_levels")
        return [dict(self.levels[sku]) for sku in skus if sku in self.levels]


class FulfillmentService(DemoService):
    """Fulfillments (shipments) of orders.

    Attributes:
        fulfillments: fulfillment id -> ``{"id", "order_id", "items", "canceled"}``.
    """

    name = "fulfillment"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.fulfillments: dict[str, dict[str, Any]] = {}
        self._ids = _Ids("ful")

    async def create_fulfillment(
        self, order_id: str, *, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Create a fulfillment of ``items`` (``{"id", "quantity"}``) for an order."""
        self._enter("create_fulfillment")
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
        self._enter("cancel_fulfillment")
        self.fulfillments[id]["canceled"] = True
        self._record("cancel_fulfillment", id)

    async def list_fulfillments(self, *, order_id: str | None = None) -> list[dict[str, Any]]:
        """The fulfillments that were not canceled, of one order or of every order."""
        self._enter("list_fulfillments")
        return [
            dict(f)
            for f in self.fulfillments.values()
            if not f["canceled"] and (order_id is None or f["order_id"] == order_id)
        ]


class CustomerService(DemoService):
    """Customers and their customer groups.

    Attributes:
        customers: customer id -> ``{"id", "email", "first_name", "last_name", "groups"}``.
        joined_at: customer id -> when the customer was created (aware UTC); kept
            apart from the customer so the workflows' outputs stay plain JSON.
    """

    name = "customers"

    def __init__(
        self, customers: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.customers: dict[str, dict[str, Any]] = {}
        self.joined_at: dict[str, datetime] = {}
        self._ids = _Ids("cus")
        for data in customers:
            customer = {"groups": [], **data}
            joined_at = customer.pop("joined_at", _EPOCH)
            if "id" not in customer:
                customer["id"] = self._ids.next()
            self.customers[customer["id"]] = customer
            self.joined_at[customer["id"]] = joined_at

    async def list_customers(
        self, *, created_from: datetime | None = None, created_before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Customers who joined in ``[created_from, created_before)`` (either end open)."""
        self._enter("list_customers")
        return [
            dict(customer)
            for id, customer in self.customers.items()
            if (created_from is None or self.joined_at[id] >= created_from)
            and (created_before is None or self.joined_at[id] < created_before)
        ]

    async def retrieve_by_email(self, email: str) -> dict[str, Any] | None:
        """The customer with this e-mail address (case-insensitive), or ``None``."""
        self._enter("retrieve_by_email")
        for customer in self.customers.values():
            if customer["email"].lower() == email.lower():
                return dict(customer)
        return None

    async def create_customer(
        self, *, email: str, first_name: str, last_name: str
    ) -> dict[str, Any]:
        """Create a customer; returns it with its new id."""
        self._enter("create_customer")
        customer: dict[str, Any] = {
            "id": self._ids.next(),
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "groups": [],
        }
        self.customers[customer["id"]] = customer
        self.joined_at[customer["id"]] = datetime.now(UTC)
        self._record("create_customer", customer["id"])
        return dict(customer, groups=[])

    async def delete_customer(self, id: str) -> None:
        """Delete a customer (nothing happens if there is none)."""
        self._enter("delete_customer")
        if self.customers.pop(id, None) is not None:
            self.joined_at.pop(id, None)
            self._record("delete_customer", id)

    async def add_customer_to_group(self, customer_id: str, group: str) -> None:
        """Add a customer to a group (once)."""
        self._enter("add_customer_to_group")
        groups = self.customers[customer_id]["groups"]
        if group not in groups:
            groups.append(group)
        self._record("add_customer_to_group", f"{customer_id} {group}")

    async def remove_customer_from_group(self, customer_id: str, group: str) -> None:
        """Remove a customer from a group (nothing happens if they are not in it)."""
        self._enter("remove_customer_from_group")
        customer = self.customers.get(customer_id)
        if customer is not None and group in customer["groups"]:
            customer["groups"].remove(group)
            self._record("remove_customer_from_group", f"{customer_id} {group}")


class AuthService(DemoService):
    """Log-in identities (Medusa's auth module, ``emailpass`` provider).

    Passwords are kept only as a hash, and never returned.

    Attributes:
        auth_users: auth user id -> ``{"id", "provider_id", "user_metadata",
            "password_hash"}``.
    """

    name = "auth"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.auth_users: dict[str, dict[str, Any]] = {}
        self._ids = _Ids("auth")

    async def create_auth_user(
        self, *, provider_id: str, user_metadata: dict[str, Any], password: str
    ) -> dict[str, Any]:
        """Create an identity; returns it without the password hash."""
        self._enter("create_auth_user")
        auth_user: dict[str, Any] = {
            "id": self._ids.next(),
            "provider_id": provider_id,
            "user_metadata": dict(user_metadata),
        }
        # A real auth module uses a slow, salted hash (scrypt, argon2); this is a demo.
        digest = hashlib.sha256(password.encode()).hexdigest()
        self.auth_users[auth_user["id"]] = {**auth_user, "password_hash": digest}
        self._record("create_auth_user", auth_user["id"])
        return auth_user

    async def delete_auth_user(self, id: str) -> None:
        """Delete an identity (nothing happens if there is none)."""
        self._enter("delete_auth_user")
        if self.auth_users.pop(id, None) is not None:
            self._record("delete_auth_user", id)


class EmailService(DemoService):
    """Outgoing e-mail. Nothing leaves the process: messages land in :attr:`sent`.

    Attributes:
        sent: ``{"template", "to", "data"}`` per message, in order.
    """

    name = "email"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.sent: list[dict[str, Any]] = []

    async def send_fulfillment_notification(
        self, *, order: dict[str, Any], fulfillment: dict[str, Any]
    ) -> None:
        """Tell the customer their order is on its way."""
        self._enter("send_fulfillment_notification")
        self._send(
            "fulfillment-notification",
            order["email"],
            {"order_id": order["id"], "fulfillment_id": fulfillment["id"]},
        )

    async def send_welcome_email(self, *, to: str, customer_name: str) -> None:
        """Welcome a newly registered customer."""
        self._enter("send_welcome_email")
        self._send("welcome", to, {"customer_name": customer_name})

    async def send_daily_report(self, metrics: dict[str, Any], *, to: str = ADMINS) -> None:
        """Mail a day's metrics to the store's admins."""
        self._enter("send_daily_report")
        self._send("daily-report", to, {"date": metrics["date"], "metrics": metrics})

    async def send_email(self, to: str, subject: str, body: str) -> None:
        """Send a plain-text message (the Sonamu examples' ``sendEmail``)."""
        self._enter("send_email")
        self._send("text", to, {"subject": subject, "body": body})

    async def send_html_email(self, to: str, subject: str, html: str) -> None:
        """Send an HTML message (version 2 of the welcome e-mail)."""
        self._enter("send_html_email")
        self._send("html", to, {"subject": subject, "html": html})

    def _send(self, template: str, to: str, data: dict[str, Any]) -> None:
        self.sent.append({"template": template, "to": to, "data": data})
        self._record("send", f"{template} {to}")


class AnalyticsService(DemoService):
    """Where the daily metrics of seed 002's analytics job are kept.

    Attributes:
        daily_metrics: ``"YYYY-MM-DD"`` -> that day's metrics.
    """

    name = "analytics"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.daily_metrics: dict[str, dict[str, Any]] = {}

    async def store_daily_metrics(self, metrics: dict[str, Any]) -> None:
        """Store (or replace) the metrics of ``metrics["date"]``.

        Keyed by day, so storing a day again after a retry replaces it instead of
        counting it twice.
        """
        self._enter("store_daily_metrics")
        self.daily_metrics[metrics["date"]] = dict(metrics)
        self._record("store_daily_metrics", metrics["date"])


class NotificationService(DemoService):
    """Alerts for the people who run the store (a pager, a chat channel, an e-mail).

    Attributes:
        alerts: ``{"type", "message", "severity", "details"}`` per alert sent, in order.
    """

    name = "notifications"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.alerts: list[dict[str, Any]] = []
        self._sent_keys: set[str] = set()

    async def send_alert(
        self,
        type: str,
        message: str,
        *,
        severity: str = "high",
        details: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Send an alert, once per ``idempotency_key``; returns False for a repeat.

        Events are delivered at least once, so a subscriber that alerts passes the
        event id as the key: a redelivered event does not page anyone twice.
        """
        self._enter("send_alert")
        if idempotency_key is not None:
            if idempotency_key in self._sent_keys:
                return False
            self._sent_keys.add(idempotency_key)
        alert = {
            "type": type,
            "message": message,
            "severity": severity,
            "details": dict(details or {}),
        }
        self.alerts.append(alert)
        self._record("send_alert", f"{severity} {type}")
        return True


# -- the services of the Sonamu examples (seed 003) ------------------------------------


class UserService(DemoService):
    """The application's users (Sonamu's ``UserModel``), with integer ids.

    Attributes:
        users: user id -> ``{"id", "email"}``; passwords are kept apart, hashed.
    """

    name = "users"

    def __init__(
        self, users: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.users: dict[int, dict[str, Any]] = {u["id"]: dict(u) for u in users}
        self.password_hashes: dict[int, str] = {}

    async def register(self, email: str, password: str) -> int:
        """Save a new user; returns their id.

        Raises:
            ValueError: the e-mail address is taken.
        """
        self._enter("register")
        if any(u["email"].lower() == email.lower() for u in self.users.values()):
            raise ValueError(f"a user with e-mail {email!r} already exists")
        user_id = max(self.users, default=0) + 1
        self.users[user_id] = {"id": user_id, "email": email}
        # A demo: a real application uses a slow, salted hash.
        self.password_hashes[user_id] = hashlib.sha256(password.encode()).hexdigest()
        self._record("register", str(user_id))
        return user_id

    async def find_many(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """The users with these ids, by increasing id (unknown ids are left out)."""
        self._enter("find_many")
        wanted = set(ids)
        return [dict(self.users[i]) for i in sorted(wanted) if i in self.users]


class PaymentService(DemoService):
    """A payment provider that turns a payment into an order.

    Attributes:
        orders: every order created, in order: ``{"id", "user_id", "amount", "status"}``.
        outcome: the status the provider reports for the next orders; ``"success"``
            unless a test makes it answer something else (``"pending"``, say).
    """

    name = "payments"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.orders: list[dict[str, Any]] = []
        self.outcome = "success"

    async def create_order(self, user_id: int, amount: float) -> dict[str, Any]:
        """Charge ``amount`` to a user; returns the order with the provider's status."""
        self._enter("create_order")
        order = {
            "id": len(self.orders) + 1,
            "user_id": user_id,
            "amount": amount,
            "status": self.outcome,
        }
        self.orders.append(order)
        self._record("create_order", str(order["id"]))
        return dict(order)


class ReportService(DemoService):
    """Builds the daily report from the store's orders.

    Args:
        orders: where the orders are read from.
    """

    name = "reports"

    def __init__(self, orders: OrderService, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self._orders = orders
        self.generated: list[str] = []

    async def generate_report(self, date: str) -> dict[str, Any]:
        """``{"date", "orders", "revenue"}`` of one day (``YYYY-MM-DD``, UTC).

        ``orders`` counts the day's orders, ``revenue`` sums the captured ones
        (in cents).
        """
        self._enter("generate_report")
        day = [
            o for o in self._orders.orders.values() if o["created_at"].date().isoformat() == date
        ]
        revenue = sum(o["total"] for o in day if o["payment_status"] == "captured")
        self.generated.append(date)
        return {"date": date, "orders": len(day), "revenue": revenue}


class BackupService(DemoService):
    """Backups of the application's data.

    Attributes:
        backups: ``{"id", "type"}`` per backup taken, in order (``type`` is
            ``"full"`` or ``"incremental"``).
    """

    name = "backups"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.backups: list[dict[str, Any]] = []
        self._ids = _Ids("backup")

    async def full_backup(self) -> dict[str, Any]:
        """Copy everything."""
        self._enter("full_backup")
        return self._take("full")

    async def incremental_backup(self) -> dict[str, Any]:
        """Copy what changed since the previous backup."""
        self._enter("incremental_backup")
        return self._take("incremental")

    def _take(self, kind: str) -> dict[str, Any]:
        backup = {"id": self._ids.next(), "type": kind}
        self.backups.append(backup)
        self._record(f"{kind}_backup", backup["id"])
        return dict(backup)


class UserDataService(DemoService):
    """The three stages of the data pipeline: an external source, a transform, a table.

    Attributes:
        source: the raw records the external API returns.
        table: the saved (transformed) records, by id.
        calls: how often each operation was called, failed calls included; this is
            how a test sees that a retried pipeline did not collect twice.
    """

    name = "user_data"

    def __init__(
        self, source: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.source: list[dict[str, Any]] = [dict(r) for r in source]
        self.table: dict[int, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()

    async def fetch_raw_data(self) -> list[dict[str, Any]]:
        """Stage 1: the raw records, as the external API sends them."""
        self.calls["fetch_raw_data"] += 1
        self._enter("fetch_raw_data")
        return [dict(r) for r in self.source]

    def transform_data(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stage 2 (plain, synchronous code): tidy names, lower-case e-mail addresses."""
        self.calls["transform_data"] += 1
        self._enter("transform_data")
        return [
            {
                "id": r["id"],
                "name": " ".join(r["name"].split()).title(),
                "email": r["email"].strip().lower(),
            }
            for r in raw
        ]

    async def save_to_database(self, rows: list[dict[str, Any]]) -> int:
        """Stage 3: upsert the rows by id; returns how many were written."""
        self.calls["save_to_database"] += 1
        self._enter("save_to_database")
        for row in rows:
            self.table[row["id"]] = dict(row)
            self._record("save_to_database", str(row["id"]))
        return len(rows)


class LogService(DemoService):
    """An application log table (the cleanup example's ``logs``).

    Attributes:
        records: ``{"id", "message", "created_at"}`` (aware UTC), oldest first.
    """

    name = "logs"

    def __init__(
        self, records: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.records: list[dict[str, Any]] = [dict(r) for r in records]

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete the records created before ``cutoff``; returns how many went."""
        self._enter("delete_older_than")
        kept = [r for r in self.records if r["created_at"] >= cutoff]
        deleted = len(self.records) - len(kept)
        self.records = kept
        self._record("delete_older_than", f"{deleted} before {cutoff.isoformat()}")
        return deleted


class ExternalDataService(DemoService):
    """A third-party API whose changes are synced in (the pause-and-resume example).

    A test can hold calls to :meth:`fetch_changes` open, to catch a run in the
    middle of a step::

        external.hold()        # fetches now wait ...
        external.release()     # ... until this

    Attributes:
        changes: source name -> the changes the API reports for it.
        applied: source name -> every change applied, in order.
        fetches: how many fetches were made; ``fetching`` how many are under way.
    """

    name = "external_data"

    def __init__(
        self,
        changes: dict[str, list[dict[str, Any]]] | None = None,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(journal)
        self.changes: dict[str, list[dict[str, Any]]] = {
            k: [dict(c) for c in v] for k, v in (changes or {}).items()
        }
        self.applied: dict[str, list[dict[str, Any]]] = {}
        self.fetches = 0
        self.fetching = 0
        self._gate: anyio.Event | None = None

    def hold(self) -> None:
        """Make fetches wait until :meth:`release`."""
        if self._gate is None:
            self._gate = anyio.Event()

    def release(self) -> None:
        """Let held fetches go on."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    async def fetch_changes(self, source: str) -> list[dict[str, Any]]:
        """The changes of ``source`` since the last sync (none for an unknown source)."""
        self._enter("fetch_changes")
        self.fetches += 1
        self.fetching += 1
        try:
            if self._gate is not None:
                await self._gate.wait()
        finally:
            self.fetching -= 1
        return [dict(c) for c in self.changes.get(source, [])]

    async def apply_changes(self, source: str, changes: list[dict[str, Any]]) -> int:
        """Apply fetched changes locally; returns how many."""
        self._enter("apply_changes")
        self.applied.setdefault(source, []).extend(dict(c) for c in changes)
        self._record("apply_changes", f"{source} {len(changes)}")
        return len(changes)


def _demo_data(journal: Journal) -> dict[str, DemoService]:
    """Fresh services holding a small, fixed catalogue."""
    services: dict[str, DemoService] = {
        "console": Console(journal),
        "products": ProductService(
            [
                {
                    "id": "prod_1",
                    "title": "Medusa T-Shirt",
                    "description": "Soft cotton tee.",
                    "images": ["tshirt-front.png"],
                },
                {
                    "id": "prod_2",
                    "title": "Medusa Sweatpants",
                    "description": "Comfy sweatpants.",
                    "images": ["sweatpants.png"],
                },
            ],
            journal,
            variants=[
                {
                    "id": "variant_shirt_m",
                    "product_id": "prod_1",
                    "sku": "SHIRT-M",
                    "inventory_item_id": "iitem_shirt_m",
                },
                {
                    "id": "variant_pants_l",
                    "product_id": "prod_2",
                    "sku": "PANTS-L",
                    "inventory_item_id": "iitem_pants_l",
                },
            ],
        ),
        "external_inventory": ExternalInventoryService(
            [
                # The warehouse counted more shirts than the store thinks it has...
                {"sku": "SHIRT-M", "quantity": 25, "location_id": "warehouse_1"},
                # ... and as many sweatpants: nothing to update there.
                {"sku": "PANTS-L", "quantity": 1, "location_id": "warehouse_1"},
            ],
            journal,
        ),
        "cms": CmsService(
            [
                # Already in the store as brand_1: the sync renames it.
                {"id": "cms_brand_1", "name": "Acme Apparel", "external_id": "brand_1"},
                # Not in the store yet: the sync creates it.
                {"id": "cms_brand_2", "name": "Globex Goods", "external_id": None},
            ],
            journal,
        ),
        "brands": BrandService([{"id": "brand_1", "name": "Acme"}], journal),
        "carts": CartService(
            [
                {
                    "id": "cart_1",
                    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "completed_at": None,
                }
            ],
            journal,
        ),
        "orders": OrderService(
            [
                {
                    "id": "order_1",
                    "display_id": 1001,
                    "email": "ada@example.com",
                    "customer_id": "cus_existing",
                    "payment_status": "captured",
                    "total": 5997,
                    "created_at": _EPOCH,
                    "items": [
                        {
                            "id": "item_1",
                            "variant_id": "variant_shirt_m",
                            "quantity": 2,
                            "variant": {
                                "inventory_item_id": "iitem_shirt_m",
                                "manage_inventory": True,
                            },
                        },
                        {
                            "id": "item_2",
                            "variant_id": "variant_pants_l",
                            "quantity": 1,
                            "variant": {
                                "inventory_item_id": "iitem_pants_l",
                                "manage_inventory": True,
                            },
                        },
                    ],
                },
                {
                    "id": "order_2",
                    "display_id": 1002,
                    "email": "grace@example.com",
                    "customer_id": "cus_existing",
                    "payment_status": "awaiting",
                    "total": 0,
                    "created_at": _EPOCH,
                    "items": [],
                },
            ],
            journal,
        ),
        "inventory": InventoryService({"iitem_shirt_m": 10, "iitem_pants_l": 1}, journal),
        "fulfillment": FulfillmentService(journal),
        "customers": CustomerService(
            [
                {
                    "id": "cus_existing",
                    "email": "existing@example.com",
                    "first_name": "Grace",
                    "last_name": "Hopper",
                }
            ],
            journal,
        ),
        "auth": AuthService(journal),
        "email": EmailService(journal),
        "analytics": AnalyticsService(journal),
        "notifications": NotificationService(journal),
    }
    orders = services["orders"]
    assert isinstance(orders, OrderService)
    services.update(_sonamu_demo_data(journal, orders))
    return services


def _sonamu_demo_data(journal: Journal, orders: OrderService) -> dict[str, DemoService]:
    """The services of the Sonamu examples (seed 003), holding small fixed data."""
    return {
        "users": UserService(
            [
                {"id": 1, "email": "ada@example.com"},
                {"id": 2, "email": "grace@example.com"},
                {"id": 3, "email": "alan@example.com"},
            ],
            journal,
        ),
        "payments": PaymentService(journal),
        "reports": ReportService(orders, journal),
        "backups": BackupService(journal),
        "user_data": UserDataService(
            [
                {"id": 1, "name": "  ada   lovelace ", "email": "ADA@Example.com"},
                {"id": 2, "name": "grace hopper", "email": " grace@example.COM"},
            ],
            journal,
        ),
        "logs": LogService(
            [
                {"id": "log_1", "message": "old", "created_at": _EPOCH - timedelta(days=400)},
                {"id": "log_2", "message": "recent", "created_at": _EPOCH},
            ],
            journal,
        ),
        "external_data": ExternalDataService(
            {"crm": [{"id": "c1", "field": "email"}, {"id": "c2", "field": "name"}]}, journal
        ),
    }


def setup(container: Container) -> None:
    """Register the demo services, each under the name the example workflows resolve.

    Names: ``console``, ``products``, ``external_inventory``, ``cms``, ``brands``,
    ``carts``, ``orders``, ``inventory``, ``fulfillment``, ``customers``, ``auth``,
    ``email``, ``analytics``, ``notifications``; for the Sonamu examples ``users``,
    ``payments``, ``reports``, ``backups``, ``user_data``, ``logs``,
    ``external_data``; plus ``journal`` (the shared :class:`Journal`).

    Args:
        container: the runtime's container (``runtime.toml`` names this hook).
    """
    journal = Journal()
    container.register("journal", journal)
    for name, service in _demo_data(journal).items():
        container.register(name, service)
