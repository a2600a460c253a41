"""References: placeholders for values that only exist when a workflow runs.

A workflow constructor runs once, at definition time, so the values flowing
through it are :class:`Ref` objects. ``ref["key"]`` and ``ref.attr`` make a
reference to a field; any other plain Python on a reference (truth tests,
arithmetic, formatting, iteration, comparison) raises
:class:`~runtime.errors.ReferenceMisuseError` naming ``transform``/``when``,
because it would otherwise compute a wrong answer silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from runtime.errors import ReferenceMisuseError

INPUT = "$input"
"""The source name of the workflow's input."""

_HINT = (
    "inside a workflow constructor values are references resolved at run time; "
    "use transform(values, fn) to compute with them, or when(values, condition).then(fn) "
    "to branch on them"
)


class Ref:
    """A reference to (a field of) a value produced at run time.

    Attributes are private on purpose: every public attribute name is a field
    access (``ref.name`` is a reference to the field ``name``).
    """

    __slots__ = ("_path", "_source")

    def __init__(self, source: str, path: tuple[str | int, ...] = ()) -> None:
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_path", path)

    def __getitem__(self, key: str | int) -> Ref:
        if not isinstance(key, (str, int)):
            _misuse(self, f"indexing with {type(key).__name__}")
        return Ref(source_of(self), (*path_of(self), key))

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(source_of(self), (*path_of(self), name))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        _misuse(self, "assigning an attribute")

    def __setitem__(self, key: object, value: object) -> NoReturn:
        _misuse(self, "assigning an item")

    def __repr__(self) -> str:
        return f"<Ref {describe(self)}>"

    def __bool__(self) -> NoReturn:
        _misuse(self, "a truth test (if/and/or/not)")

    def __iter__(self) -> NoReturn:
        _misuse(self, "iteration or unpacking")

    def __len__(self) -> NoReturn:
        _misuse(self, "len()")

    def __contains__(self, item: object) -> NoReturn:
        _misuse(self, "the 'in' operator")

    def __str__(self) -> NoReturn:
        _misuse(self, "str()")

    def __format__(self, spec: str) -> NoReturn:
        _misuse(self, "formatting (f-string or format())")

    def __int__(self) -> NoReturn:
        _misuse(self, "int()")

    def __float__(self) -> NoReturn:
        _misuse(self, "float()")

    def __index__(self) -> NoReturn:
        _misuse(self, "use as an index")

    def __hash__(self) -> int:
        return id(self)

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        _misuse(self, "a call")


def _binary(symbol: str) -> Callable[..., NoReturn]:
    def refuse(self: Ref, *other: object) -> NoReturn:
        _misuse(self, f"the {symbol!r} operator")

    return refuse


for _name, _symbol in {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "truediv": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "matmul": "@",
    "and": "&",
    "or": "|",
    "xor": "^",
    "lshift": "<<",
    "rshift": ">>",
}.items():
    setattr(Ref, f"__{_name}__", _binary(_symbol))
    setattr(Ref, f"__r{_name}__", _binary(_symbol))
for _name, _symbol in {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "neg": "unary -",
    "pos": "unary +",
    "invert": "~",
    "abs": "abs()",
    "round": "round()",
}.items():
    setattr(Ref, f"__{_name}__", _binary(_symbol))


def _misuse(ref: Ref, what: str) -> NoReturn:
    raise ReferenceMisuseError(f"{what} on {describe(ref)} is not allowed: {_HINT}")


def source_of(ref: Ref) -> str:
    """The node a reference points at (``$input`` for the workflow input)."""
    return object.__getattribute__(ref, "_source")  # type: ignore[no-any-return]


def path_of(ref: Ref) -> tuple[str | int, ...]:
    """The field path below the node's value."""
    return object.__getattribute__(ref, "_path")  # type: ignore[no-any-return]


def describe(ref: Ref) -> str:
    """A human name such as ``input["order"].id`` or ``step 'reserve'["ids"]``."""
    source = source_of(ref)
    head = "the workflow input" if source == INPUT else f"the output of {source!r}"
    tail = "".join(f"[{part!r}]" for part in path_of(ref))
    return head + tail


def collect_sources(template: Any) -> set[str]:
    """Every node name referenced anywhere inside a template."""
    found: set[str] = set()
    _walk(template, found)
    return found


def _walk(value: Any, found: set[str]) -> None:
    if isinstance(value, Ref):
        found.add(source_of(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found)


def resolve(template: Any, values: Mapping[str, Any]) -> Any:
    """Replace every reference in ``template`` with its run-time value.

    Args:
        template: a reference, or dicts/lists/tuples nesting references, or plain data.
        values: node name -> that node's value (``INPUT`` -> the workflow input).

    Raises:
        DefinitionError: a field on the path is missing at run time.
    """
    if isinstance(template, Ref):
        return _follow(template, values)
    if isinstance(template, Mapping):
        return {key: resolve(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [resolve(item, values) for item in template]
    if isinstance(template, tuple):
        return tuple(resolve(item, values) for item in template)
    return template


def _follow(ref: Ref, values: Mapping[str, Any]) -> Any:
    from runtime.errors import DefinitionError

    value = values.get(source_of(ref))
    for part in path_of(ref):
        if value is None:
            return None
        try:
            if isinstance(value, (Mapping, list)):
                value = value[part]  # type: ignore[index]
            else:
                value = getattr(value, str(part))
        except (KeyError, IndexError, AttributeError, TypeError) as exc:
            raise DefinitionError(
                f"{describe(ref)}: the field {part!r} does not exist in the run-time value "
                f"({type(value).__name__})"
            ) from exc
    return value
