"""JSON in and out of the store: the only serialization runtime does (no pickle)."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from runtime.errors import SerializationError

_SIMPLE = (str, int, float, bool, type(None))

MAX_DEPTH = 100
"""The deepest nesting of lists and objects a stored value may have.

Far past real payloads, and well inside what ``json`` and pydantic take on any
stack (pydantic refuses about 200 levels), so a stored value can always be read back.
"""


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
    and sets become lists. Anything else unknown is refused, and so is text
    holding a lone surrogate (``"\\ud800"``: not Unicode, not encodable as UTF-8).

    Raises:
        SerializationError: naming ``what`` and the offending type or text.
    """
    try:
        text = json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise SerializationError(
            f"{what} cannot be stored: it is nested more than {MAX_DEPTH} levels deep"
        ) from None
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} cannot be stored: {exc}; return JSON data (dict, list, str, int, float, "
            "bool, None) or a pydantic model"
        ) from exc
    check_depth(text, what)
    if "\\ud" in text:  # a surrogate escape: a pair (a character past U+FFFF) or a lone one
        _check_surrogates(value, what)
    return text


def _check_surrogates(value: Any, what: str) -> None:
    """Refuse text holding a lone surrogate (``"\\ud800"``): it is not Unicode, so
    it could be stored escaped but never encoded as UTF-8 again (an answer, a
    PostgreSQL ``jsonb``).

    Raises:
        SerializationError: naming ``what`` and the surrogate.
    """
    unescaped = json.dumps(value, default=_default, ensure_ascii=False, allow_nan=False)
    try:
        unescaped.encode("utf-8")
    except UnicodeEncodeError as exc:
        found = unescaped[exc.start]
        raise SerializationError(
            f"{what} cannot be stored: its text holds a lone surrogate ({found!r}), which "
            "is not Unicode; a character past U+FFFF is one code point in Python, or a "
            "pair of escapes in JSON"
        ) from None


# A JSON string (skipped whole) or a bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_depth(text: str, what: str) -> None:
    """Refuse JSON ``text`` nested more than :data:`MAX_DEPTH` levels deep.

    Counting brackets is done in C and settles almost every value; only text with
    more brackets than the limit is walked.

    Raises:
        SerializationError: naming ``what`` and the limit.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise SerializationError(
                    f"{what} cannot be stored: it is nested more than {MAX_DEPTH} levels deep"
                )
        elif char in "]}":
            depth -= 1


def utf8(data: bytes, what: str, *, error: type[Exception] = SerializationError) -> str:
    """``data`` decoded as UTF-8, or ``error`` naming ``what`` and where the first bad byte is.

    The one check for text a user hands over (a settings file, a payload file, stdin).
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{what}: not UTF-8 text (line {line}: byte {exc.start} is {data[exc.start]:#04x})"
        ) from None


def parse(text: str, what: str) -> Any:
    """Decode JSON ``text`` given by a user (a CLI option, a file), strictly.

    NaN, infinities, integers of more than 4300 digits and nesting past
    :data:`MAX_DEPTH` are refused, as :func:`dumps` would refuse them.

    Raises:
        SerializationError: naming ``what`` and what is wrong.
    """

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON (JSON has no NaN or infinity)")

    def number(literal: str) -> float:
        value = float(literal)
        if math.isinf(value):
            raise ValueError(f"{literal} is too large for a float")
        return value

    try:
        check_depth(text, what)
        return json.loads(text, parse_constant=constant, parse_float=number)
    except RecursionError:
        raise SerializationError(
            f"{what} cannot be stored: it is nested more than {MAX_DEPTH} levels deep"
        ) from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise SerializationError(f"{what} is not valid JSON: {exc}") from None


def loads(text: str | None) -> Any:
    """Parse JSON text from the store (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


def roundtrip(value: Any, text: str) -> Any:
    """The value a resumed run would read back for ``value`` stored as ``text``."""
    return value if type(value) in _SIMPLE else json.loads(text)
