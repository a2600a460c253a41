"""The store's catalogue: products, the brands of the Brand Module, and a third-party CMS."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.journal import DemoService, Ids, Journal


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
        product = self._get(id)
        if select is None:
            return dict(product)
        return {field: product[field] for field in select}

    async def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Apply ``data`` to a product and return the updated copy."""
        product = self._get(id)
        product.update(data)
        self._record("update", id)
        return dict(product)

    async def list_and_count(self) -> tuple[list[dict[str, Any]], int]:
        """Every product and how many there are (Medusa's ``listAndCount``)."""
        products = [dict(p) for p in self.products.values()]
        return products, len(products)

    async def list_product_variants(self, take: int = 1000) -> list[dict[str, Any]]:
        """Copies of at most ``take`` variants (Medusa's ``listProductVariants``)."""
        return [dict(v) for v in list(self.variants.values())[:take]]

    def _get(self, id: str) -> dict[str, Any]:
        try:
            return self.products[id]
        except KeyError:
            raise KeyError(f"product {id!r} not found") from None


class BrandService(DemoService):
    """The store's own brands (the Brand Module of seed 004)."""

    name = "brands"

    def __init__(
        self, brands: Iterable[dict[str, Any]] = (), journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self.brands: dict[str, dict[str, Any]] = {b["id"]: dict(b) for b in brands}
        self._ids = Ids("brand")

    async def create_brands(self, brands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create brands from ``{"name": ...}`` dicts; returns them with their new ids."""
        created = []
        for data in brands:
            brand = {"id": self._new_id(), "name": data["name"]}
            self.brands[brand["id"]] = brand
            self._record("create_brands", brand["id"])
            created.append(dict(brand))
        return created

    async def list_brands(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Copies of the brands with these ids (every brand when ``ids`` is ``None``)."""
        if ids is None:
            return [dict(b) for b in self.brands.values()]
        return [dict(self.brands[i]) for i in ids if i in self.brands]

    async def update_brands(self, brands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``{"id": ..., "name": ...}`` updates, all or nothing.

        Raises:
            KeyError: one of the ids is not a brand; nothing was changed.
        """
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
        for id in ids:
            if self.brands.pop(id, None) is not None:
                self._record("delete_brands", id)

    def _new_id(self) -> str:
        id = self._ids.next()
        # Seeded brands use the same id scheme: skip the ones already taken.
        while id in self.brands:
            id = self._ids.next()
        return id


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
        entry = self.products.get(id)
        return dict(entry) if entry is not None else None

    async def upsert_product(self, product: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the CMS's copy of ``product`` (keyed by its ``id``)."""
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
        self.products.pop(id, None)
        self._record("delete_product", id)

    async def retrieve_brands(self) -> list[dict[str, Any]]:
        """Every brand the CMS has."""
        return [dict(b) for b in self.brands]
