"""Event routing as a table: which subscribers an event fans out to; no database."""

from __future__ import annotations

import pytest

from runtime.store.rules.routing import Route, route

EVERYTHING = Route("audit", ("*",), 5)
ORDERS = Route("orders", ("order.*",), 3)
PLACED = Route("placed", ("order.placed",), 3)
MANY = Route("many", ("order.placed", "order.*", "cart.updated"), 2)
DEEP = Route("deep", ("order.*.done",), 1)
SUBSCRIBERS = (EVERYTHING, ORDERS, PLACED, MANY, DEEP)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("order.placed", [EVERYTHING, ORDERS, PLACED, MANY]),
        ("order.canceled", [EVERYTHING, ORDERS, MANY]),
        ("cart.updated", [EVERYTHING, MANY]),
        # ``*`` in a pattern is exactly one segment.
        ("order", [EVERYTHING]),
        ("order.placed.late", [EVERYTHING]),
        ("order.ship.done", [EVERYTHING, DEEP]),
        # Names match whole, by case.
        ("Order.placed", [EVERYTHING]),
        ("order.placedx", [EVERYTHING, ORDERS, MANY]),
        ("xorder.placed", [EVERYTHING]),
        ("user.created", [EVERYTHING]),
    ],
)
def test_an_event_fans_out_to_the_subscribers_whose_patterns_match(
    event: str, expected: list[Route]
) -> None:
    assert route(event, SUBSCRIBERS) == expected


def test_a_subscriber_with_several_matching_patterns_gets_one_delivery() -> None:
    assert route("order.placed", [MANY]) == [MANY]


def test_no_subscriber_no_route() -> None:
    assert route("order.placed", []) == []
    assert route("order.placed", [Route("quiet", (), 3)]) == []


def test_the_order_given_is_kept() -> None:
    assert route("order.placed", [PLACED, EVERYTHING]) == [PLACED, EVERYTHING]
