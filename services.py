"""In-memory demo services that the example workflows resolve from the container.

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
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from runtime import Container

__all__ = [
    "AuthService",
    "BrandService",
    "CartService",
    "CmsService",
    "Console",
    "CustomerService",
    "EmailService",
    "FulfillmentService",
    "InventoryService",
    "Journal",
    "OrderService",
    "ProductService",
    "ServiceError",
    "setup",
]


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
    """Products of the store, as the Product Module would keep them."""

    name = "products"

    def __init__(
        self, products: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.products: dict[str, dict[str, Any]] = {p["id"]: dict(p) for p in products}

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
    """Shopping carts, for the cart clean-up job that comes with the scheduler.

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

    An order is ``{"id", "display_id", "email", "payment_status", "items"}``; each
    item is ``{"id", "variant_id", "quantity", "variant": {"inventory_item_id",
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


class CustomerService(DemoService):
    """Customers and their customer groups.

    Attributes:
        customers: customer id -> ``{"id", "email", "first_name", "last_name", "groups"}``.
    """

    name = "customers"

    def __init__(
        self, customers: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.customers: dict[str, dict[str, Any]] = {}
        self._ids = _Ids("cus")
        for data in customers:
            customer = {"groups": [], **data}
            if "id" not in customer:
                customer["id"] = self._ids.next()
            self.customers[customer["id"]] = customer

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
        self._record("create_customer", customer["id"])
        return dict(customer, groups=[])

    async def delete_customer(self, id: str) -> None:
        """Delete a customer (nothing happens if there is none)."""
        self._enter("delete_customer")
        if self.customers.pop(id, None) is not None:
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

    def _send(self, template: str, to: str, data: dict[str, Any]) -> None:
        self.sent.append({"template": template, "to": to, "data": data})
        self._record("send", f"{template} {to}")


def _demo_data(journal: Journal) -> dict[str, DemoService]:
    """Fresh services holding a small, fixed catalogue."""
    return {
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
                    "payment_status": "captured",
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
                    "payment_status": "awaiting",
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
    }


def setup(container: Container) -> None:
    """Register the demo services, each under the name the example workflows resolve.

    Names: ``console``, ``products``, ``cms``, ``brands``, ``carts``, ``orders``,
    ``inventory``, ``fulfillment``, ``customers``, ``auth``, ``email``, plus
    ``journal`` (the shared :class:`Journal`).

    Args:
        container: the runtime's container (``runtime.toml`` names this hook).
    """
    journal = Journal()
    container.register("journal", journal)
    for name, service in _demo_data(journal).items():
        container.register(name, service)
