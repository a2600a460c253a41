"""The example project's in-memory services, and the ``setup`` hook that registers them.

Each service stands in for a real system (a database table, a payment or e-mail
provider, a third-party CMS), holds its state in plain attributes, and records every
write in one shared :class:`~services.journal.Journal`. One module per domain:

- ``catalog``: products, brands, the CMS;
- ``orders``: carts, orders, fulfillments, payments;
- ``inventory``: stock and reservations, the warehouse;
- ``customers``: customers, log-in identities, users;
- ``messaging``: e-mail, alerts, the console;
- ``reporting``: analytics, reports, backups, logs;
- ``data``: the user-data pipeline, an external API.

``runtime.toml`` names :func:`setup`, which registers one of each, holding the small
fixed data below, under the name the workflows, subscribers and jobs resolve.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime import Container
from services.catalog import BrandService, CmsService, ProductService
from services.customers import AuthService, CustomerService, UserService
from services.data import ExternalDataService, UserDataService
from services.inventory import ExternalInventoryService, InventoryService
from services.journal import DemoService, Journal
from services.messaging import Console, EmailService, NotificationService
from services.orders import CartService, FulfillmentService, OrderService, PaymentService
from services.reporting import AnalyticsService, BackupService, LogService, ReportService

__all__ = ["setup"]

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""When the demo data was "created": a fixed time, so the data is the same on every run."""


def _product(id: str, title: str, description: str, image: str) -> dict[str, Any]:
    return {"id": id, "title": title, "description": description, "images": [image]}


def _variant(id: str, product_id: str, sku: str, item: str) -> dict[str, Any]:
    return {"id": id, "product_id": product_id, "sku": sku, "inventory_item_id": item}


def _item(id: str, variant_id: str, quantity: int, inventory_item_id: str) -> dict[str, Any]:
    """An order line, in the shape seed 002's order workflow reads."""
    variant = {"inventory_item_id": inventory_item_id, "manage_inventory": True}
    return {"id": id, "variant_id": variant_id, "quantity": quantity, "variant": variant}


def _order(
    id: str, display_id: int, email: str, status: str, total: int, *items: dict[str, Any]
) -> dict[str, Any]:
    """An order of the existing customer, placed at :data:`EPOCH` (``total`` in cents)."""
    return {
        "id": id,
        "display_id": display_id,
        "email": email,
        "customer_id": "cus_existing",
        "payment_status": status,
        "total": total,
        "created_at": EPOCH,
        "items": list(items),
    }


PRODUCTS = [
    _product("prod_1", "Medusa T-Shirt", "Soft cotton tee.", "tshirt-front.png"),
    _product("prod_2", "Medusa Sweatpants", "Comfy sweatpants.", "sweatpants.png"),
]
VARIANTS = [
    _variant("variant_shirt_m", "prod_1", "SHIRT-M", "iitem_shirt_m"),
    _variant("variant_pants_l", "prod_2", "PANTS-L", "iitem_pants_l"),
]
STOCK = {"iitem_shirt_m": 10, "iitem_pants_l": 1}
WAREHOUSE = [
    # The warehouse counted more shirts than the store thinks it has...
    {"sku": "SHIRT-M", "quantity": 25, "location_id": "warehouse_1"},
    # ... and as many sweatpants: nothing to update there.
    {"sku": "PANTS-L", "quantity": 1, "location_id": "warehouse_1"},
]
BRANDS = [{"id": "brand_1", "name": "Acme"}]
CMS_BRANDS: list[dict[str, Any]] = [
    # Already in the store as brand_1: the sync renames it.
    {"id": "cms_brand_1", "name": "Acme Apparel", "external_id": "brand_1"},
    # Not in the store yet: the sync creates it.
    {"id": "cms_brand_2", "name": "Globex Goods", "external_id": None},
]
CARTS = [{"id": "cart_1", "created_at": EPOCH, "completed_at": None}]
ORDERS = [
    _order(
        "order_1",
        1001,
        "ada@example.com",
        "captured",
        5997,
        _item("item_1", "variant_shirt_m", 2, "iitem_shirt_m"),
        _item("item_2", "variant_pants_l", 1, "iitem_pants_l"),
    ),
    _order("order_2", 1002, "grace@example.com", "awaiting", 0),
]
CUSTOMERS = [
    {
        "id": "cus_existing",
        "email": "existing@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "joined_at": EPOCH,
    }
]

# The Sonamu examples' data (seed 003).
USERS = [
    {"id": 1, "email": "ada@example.com"},
    {"id": 2, "email": "grace@example.com"},
    {"id": 3, "email": "alan@example.com"},
]
RAW_USER_DATA = [  # untidy on purpose: the pipeline's transform tidies it
    {"id": 1, "name": "  ada   lovelace ", "email": "ADA@Example.com"},
    {"id": 2, "name": "grace hopper", "email": " grace@example.COM"},
]
LOGS = [
    {"id": "log_1", "message": "old", "created_at": EPOCH - timedelta(days=400)},
    {"id": "log_2", "message": "recent", "created_at": EPOCH},
]
EXTERNAL_CHANGES = {"crm": [{"id": "c1", "field": "email"}, {"id": "c2", "field": "name"}]}


def demo_services(journal: Journal) -> list[DemoService]:
    """Fresh services holding the data above, all recording into ``journal``.

    Each gets a deep copy, as the services change their data.
    """
    orders = OrderService(deepcopy(ORDERS), journal)
    return [
        Console(journal),
        ProductService(deepcopy(PRODUCTS), journal, variants=deepcopy(VARIANTS)),
        ExternalInventoryService(deepcopy(WAREHOUSE), journal),
        CmsService(deepcopy(CMS_BRANDS), journal),
        BrandService(deepcopy(BRANDS), journal),
        CartService(deepcopy(CARTS), journal),
        orders,
        InventoryService(deepcopy(STOCK), journal),
        FulfillmentService(journal),
        CustomerService(deepcopy(CUSTOMERS), journal),
        AuthService(journal),
        EmailService(journal),
        AnalyticsService(journal),
        NotificationService(journal),
        UserService(deepcopy(USERS), journal),
        PaymentService(journal),
        ReportService(orders, journal),
        BackupService(journal),
        UserDataService(deepcopy(RAW_USER_DATA), journal),
        LogService(deepcopy(LOGS), journal),
        ExternalDataService(deepcopy(EXTERNAL_CHANGES), journal),
    ]


def setup(container: Container) -> None:
    """Register the demo services, each under its ``name``, and ``journal``, their journal.

    Names: ``console``, ``products``, ``external_inventory``, ``cms``, ``brands``,
    ``carts``, ``orders``, ``inventory``, ``fulfillment``, ``customers``, ``auth``,
    ``email``, ``analytics``, ``notifications``; for the Sonamu examples ``users``,
    ``payments``, ``reports``, ``backups``, ``user_data``, ``logs``,
    ``external_data``.

    Args:
        container: the runtime's container (``runtime.toml`` names this hook).
    """
    journal = Journal()
    container.register("journal", journal)
    for service in demo_services(journal):
        container.register(service.name, service)
