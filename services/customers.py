"""Customers and their groups, their log-in identities, and the Sonamu examples' users."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from services.journal import DemoService, Ids, Journal


class CustomerService(DemoService):
    """Customers and their customer groups.

    Each customer given to the constructor says when it joined (``"joined_at"``).

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
        self._ids = Ids("cus")
        for data in customers:
            customer = {"groups": [], **data}
            self.joined_at[customer["id"]] = customer.pop("joined_at")
            self.customers[customer["id"]] = customer

    async def list_customers(
        self, *, created_from: datetime | None = None, created_before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Customers who joined in ``[created_from, created_before)`` (either end open)."""
        return [
            dict(customer)
            for id, customer in self.customers.items()
            if (created_from is None or self.joined_at[id] >= created_from)
            and (created_before is None or self.joined_at[id] < created_before)
        ]

    async def retrieve_by_email(self, email: str) -> dict[str, Any] | None:
        """The customer with this e-mail address (case-insensitive), or ``None``."""
        for customer in self.customers.values():
            if customer["email"].lower() == email.lower():
                return dict(customer)
        return None

    async def create_customer(
        self, *, email: str, first_name: str, last_name: str
    ) -> dict[str, Any]:
        """Create a customer; returns it with its new id."""
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
        if self.customers.pop(id, None) is not None:
            self.joined_at.pop(id, None)
            self._record("delete_customer", id)

    async def add_customer_to_group(self, customer_id: str, group: str) -> None:
        """Add a customer to a group (once)."""
        groups = self.customers[customer_id]["groups"]
        if group not in groups:
            groups.append(group)
        self._record("add_customer_to_group", f"{customer_id} {group}")

    async def remove_customer_from_group(self, customer_id: str, group: str) -> None:
        """Remove a customer from a group (nothing happens if they are not in it)."""
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
        self._ids = Ids("auth")

    async def create_auth_user(
        self, *, provider_id: str, user_metadata: dict[str, Any], password: str
    ) -> dict[str, Any]:
        """Create an identity; returns it without the password hash."""
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
        if self.auth_users.pop(id, None) is not None:
            self._record("delete_auth_user", id)


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
        wanted = set(ids)
        return [dict(self.users[i]) for i in sorted(wanted) if i in self.users]
