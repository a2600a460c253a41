"""Subscriber configs and event patterns: what is accepted, what is refused, what matches."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime.errors import DefinitionError
from runtime.sdk.specs import SubscriberConfig, check_event_name, pattern_matches


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("order.placed", True),
        ("order.placed.v2", False),
        ("order", False),
        ("orders.placed", False),
        ("customer.created", False),
    ],
)
def test_a_star_segment_matches_exactly_one_segment(name: str, expected: bool) -> None:
    assert SubscriberConfig(event="order.*").matches(name) is expected
    assert pattern_matches("order.*", name) is expected


def test_a_star_in_the_middle_matches_one_segment_there() -> None:
    config = SubscriberConfig(event="order.*.failed")
    assert config.matches("order.payment.failed")
    assert not config.matches("order.failed")
    assert not config.matches("order.payment.card.failed")
    assert not config.matches("order.payment.succeeded")


def test_star_alone_matches_every_event() -> None:
    config = SubscriberConfig(event="*")
    assert config.patterns == ("*",)
    for name in ("order", "order.placed", "a.b.c.d", "job.failed"):
        assert config.matches(name)


def test_a_plain_name_matches_only_itself() -> None:
    config = SubscriberConfig(event="customer.created")
    assert config.matches("customer.created")
    assert not config.matches("customer.created.v2")
    assert not config.matches("customer")
    assert not config.matches("customer.updated")


def test_a_list_of_names_matches_any_of_them() -> None:
    config = SubscriberConfig(event=["customer.created", "order.*"])
    assert config.patterns == ("customer.created", "order.*")
    assert config.event == ("customer.created", "order.*")
    assert config.matches("customer.created")
    assert config.matches("order.canceled")
    assert not config.matches("customer.deleted")


def test_defaults_and_durations() -> None:
    config = SubscriberConfig(event="order.placed")
    assert config.subscriber_id is None
    assert config.max_attempts == 3
    assert config.timeout == 60.0
    assert SubscriberConfig(event="a", timeout=timedelta(seconds=2)).timeout == 2.0
    assert SubscriberConfig(event="a", timeout=1).timeout == 1.0


def test_a_config_is_frozen() -> None:
    config = SubscriberConfig(event="order.placed")
    with pytest.raises(AttributeError):
        config.max_attempts = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "pattern",
    [
        "order.**",
        "order*",
        "order.pla*ced",
        "order..placed",
        ".order",
        "order.",
        "order placed",
        "**",
        "order/placed",
    ],
)
def test_a_bad_pattern_is_refused_with_the_reason(pattern: str) -> None:
    with pytest.raises(DefinitionError) as info:
        SubscriberConfig(event=pattern)
    message = str(info.value)
    assert repr(pattern) in message
    assert "'*'" in message  # says what a segment may be


@pytest.mark.parametrize("event", ["", [], None, 3, ["order.placed", ""], ["order.placed", 7]])
def test_an_empty_or_non_string_event_is_refused(event: object) -> None:
    with pytest.raises(DefinitionError, match="event"):
        SubscriberConfig(event=event)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_attempts", [0, -1, 1.5, True, "3"])
def test_max_attempts_must_be_a_positive_int(max_attempts: object) -> None:
    with pytest.raises(DefinitionError, match="max_attempts"):
        SubscriberConfig(event="a", max_attempts=max_attempts)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, "60", None, timedelta(0)])
def test_timeout_must_be_positive_seconds(timeout: object) -> None:
    with pytest.raises(DefinitionError, match="timeout"):
        SubscriberConfig(event="a", timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("subscriber_id", ["", 5])
def test_subscriber_id_must_be_a_non_empty_string(subscriber_id: object) -> None:
    with pytest.raises(DefinitionError, match="subscriber_id"):
        SubscriberConfig(event="a", subscriber_id=subscriber_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["order.placed", "order", "job.failed", "a-b.c_d", "tenant:1.order.placed", "v2.X"]
)
def test_check_event_name_accepts_dot_separated_segments(name: str) -> None:
    assert check_event_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "order.*", "*", "order..placed", ".order", "order.", "order placed", None, 3]
)
def test_check_event_name_refuses_patterns_and_malformed_names(name: object) -> None:
    with pytest.raises(DefinitionError) as info:
        check_event_name(name)
    assert repr(name) in str(info.value)


def test_check_event_name_names_where_the_name_came_from() -> None:
    with pytest.raises(DefinitionError, match=r"^emit\(\) name 'order\.\*'"):
        check_event_name("order.*", "emit() name")
