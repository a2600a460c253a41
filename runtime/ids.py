"""Identifiers: time-ordered, random-suffixed, URL-safe."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A new id like ``run_01hx...``: 10 characters of milliseconds, then 80 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def is_id(text: str, prefix: str) -> bool:
    """Whether ``text`` has the shape of an id :func:`new_id` makes with ``prefix``."""
    head, sep, tail = text.partition("_")
    return head == prefix and sep == "_" and len(tail) == 26 and set(tail) <= set(_ALPHABET)
