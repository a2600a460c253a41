"""The contract suite calls every method of the ``Store`` protocol, and nothing backend-specific.

How "called" is decided: statically. Each contract file (``test_contract*.py``) is
parsed, and a method counts when a function there calls it on one of its ``Store``
parameters (``store.fire(...)``, ``other.claim_run(...)`` in a test, ``s.fan_out(...)``
in a helper taking ``s: Store``), nested functions seeing their enclosing function's.
Calls made inside shared helpers (``tests/helpers``, ``tests/store/bus.py``) do not
count: each method is called by the contract itself, where its results are asserted.

Why statically rather than by recording calls at run time: a recording can only be
judged once every contract test has run, which a run of one file or one ``-k`` does
not do; the static check gives the same answer in any selection and order. What the
scan cannot see, the ``store`` fixture enforces as the tests run: it hands out a
:class:`~tests.store.backends.ProtocolOnly` view that refuses any attribute outside
the protocol, so nothing the scan counts can reach past it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runtime.store.base import Store
from tests.store.backends import STORE_METHODS

HERE = Path(__file__).parent
CONTRACT = sorted(HERE.glob("test_contract*.py"))
BACKEND_MODULES = ("runtime.store.sqlite", "sqlite3", "aiosqlite", "psycopg")
"""What a contract file may not import: it must run unchanged on every backend."""


def exercised(source: str) -> set[str]:
    """The methods called on a ``Store`` parameter by the functions of ``source``."""
    called: set[str] = set()

    def visit(node: ast.AST, stores: frozenset[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            typed = {a.arg for a in arguments if ast.unparse(a.annotation or ast.Pass()) == "Store"}
            # A parameter of another type shadows an enclosing Store of the same name.
            stores = frozenset((stores - {a.arg for a in arguments}) | typed)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in stores
        ):
            called.add(node.func.attr)
        for child in ast.iter_child_nodes(node):
            visit(child, stores)

    visit(ast.parse(source), frozenset())
    return called


def test_every_method_of_the_protocol_is_exercised_by_the_contract() -> None:
    called = set().union(*(exercised(path.read_text()) for path in CONTRACT))

    assert {"prune", "close", "checkpoint"} <= STORE_METHODS  # the bases' methods too
    assert sorted(STORE_METHODS - called) == []
    assert sorted(called - STORE_METHODS) == []  # the fixture would refuse these anyway


def test_the_contract_imports_no_backend() -> None:
    found = []
    for path in CONTRACT:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.startswith(BACKEND_MODULES)]
    assert found == []


def test_the_scan_counts_calls_on_store_parameters_only() -> None:
    source = """
async def test_x(store: Store, other: Store, name: str) -> None:
    await store.get_run(name)
    name.upper()

    async def inner(s: Store) -> None:
        await s.fan_out(T0, 1)
        await other.emit(e)

    async def shadow(store: object) -> None:
        store.redrive(None, T0)

async def helper(db: object) -> None:
    await db.list_runs()
"""
    assert exercised(source) == {"get_run", "fan_out", "emit"}


@pytest.mark.parametrize("name", ["path", "_write", "open", "__aenter__"])
async def test_the_store_fixture_refuses_what_is_not_the_protocol(store: Store, name: str) -> None:
    with pytest.raises(AttributeError, match="not a method of the Store protocol"):
        getattr(store, name)
