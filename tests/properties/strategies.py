"""Hypothesis strategies for the public inputs: JSON-ish values (with what JSON cannot hold),
TOML documents, and the settings every property test shares."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from runtime.codec import MAX_DEPTH

FAST = settings(
    max_examples=40,
    database=None,  # no .hypothesis/ folder in the repository
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""Modest and untimed: the whole property suite stays within a few seconds."""

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.builds(lambda: 10**4301),  # past Python's int-to-str limit (4300 digits)
    st.floats(),  # NaN and infinities included
    st.text(max_size=20),
)


def deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": [value]}
    return value


json_ish = st.one_of(
    st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    ),
    st.integers(min_value=MAX_DEPTH // 2 - 2, max_value=MAX_DEPTH // 2 + 3).map(deep),
    st.integers(min_value=500, max_value=3000).map(deep),
)
"""Values a caller might pass: mostly JSON, plus NaN, huge ints and deep nesting."""


def storable(value: Any) -> bool:
    """True when JSON can hold ``value`` (what the runtime should accept)."""
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, RecursionError):
        return False
    return _depth(value) <= MAX_DEPTH


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def toml_value(value: Any) -> str:
    """``value`` written as TOML (an inline table for a dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


toml_leaves = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["sqlite:///a.db", "UTC", "Mars/Base", "json", "debug", "x:y", "jobs"]),
)
toml_values = st.recursive(
    toml_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
