"""JSON in and out of the store: the only serialization runtime does (no pickle)."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from runtime.errors import SerializationError

_SIMPLE = (str, int, float, bool, type(None))


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, what: str) -> str:
    """Serialize ``value`` to JSON text.

    Pydantic models are dumped in JSON mode; datetimes become ISO text; tuples
    and sets become lists. Anything else unknown is refused.

    Raises:
        SerializationError: naming ``what`` and the offending type.
    """
    try:
        return json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} cannot be stored: {exc}; return JSON data (dict, list, str, int, float, "
            "bool, None) or a pydantic model"
        ) from exc


def loads(text: str | None) -> Any:
    """Parse JSON text from the store (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


def roundtrip(value: Any, text: str) -> Any:
    """The value a resumed run would read back for ``value`` stored as ``text``."""
    return value if type(value) in _SIMPLE else json.loads(text)
