"""The import-layering contract of runtime/: a module imports only from layers below it.

Run by ``scripts/check``: ``python scripts/layers.py`` prints every violation and exits 1
if there is one. Every ``import`` statement counts (module level, inside functions, under
``if TYPE_CHECKING:``), since each is a dependency a reader must follow. A module fails
the contract when it imports

- from a higher layer (``store`` importing ``engine``);
- from a sibling component of a layer whose components are independent of one another
  (layer 3: ``engine/``, ``bus``, ``scheduling/``, ``pruner``, ``watch``, ``discovery``);
- from above the layer a package is held to (``HELD_BELOW``: the store's rules see
  layers 0 and 1 only, not the store's other modules);
- in a cycle: an import cycle among runtime's modules fails whatever the layers say,
  inside one component too.

``LAYERS`` below is the one table; the README's "Layout" table mirrors it and
``tests/test_layers.py`` checks that the two agree.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "runtime"

LAYERS: dict[int, tuple[str, ...]] = {
    0: (
        "errors",
        "limits",
        "models",
        "clock",
        "cron",
        "config",
        "log",
        "ids",
        "codec",
        "retry",
        "usercode",
        "telemetry",
    ),
    1: ("sdk/", "container"),
    2: ("registry", "store/"),
    3: ("engine/", "bus", "scheduling/", "pruner", "watch", "discovery"),
    4: ("service", "workflows_api", "runs", "client", "web/"),
    5: ("cli/", "bench/", "testing", "__main__", "__init__"),
}
"""Components by layer: a module (``clock``) or a package (``store/``, every module in it).
``__init__`` is the package's public surface, above everything it re-exports."""

INDEPENDENT = frozenset({3})
"""Layers whose components may not import one another (README: "independent of one another")."""

HELD_BELOW: dict[str, int] = {"store/rules/": 1}
"""Packages inside a component that import from no layer above the one given, nor from
the rest of their component: ``store/rules/``, the rules above the backends (DESIGN 3),
sees layers 0 and 1 only, never a backend or the ``Store`` protocol beside it."""


@dataclass(frozen=True)
class Import:
    """One import statement of one module, resolved to the runtime module it names."""

    source: str
    target: str
    line: int


def component_of(module: str, layers: Mapping[int, tuple[str, ...]]) -> tuple[int, str] | None:
    """The (layer, component) a dotted module name belongs to, or ``None`` if unlisted."""
    parts = module.split(".")[1:]  # without the package
    name = "__init__" if not parts else parts[0]
    for layer, components in layers.items():
        for component in components:
            if component.rstrip("/") == name and (component.endswith("/") or len(parts) <= 1):
                return layer, component
    return None


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    """The imports of module ``name`` (at ``path``) that name modules in ``known``.

    ``from a.b import c`` names the module ``a.b.c`` when there is one, else ``a.b``.
    A module's parent packages, which Python imports first, are not counted: a
    package's ``__init__`` importing its own modules is not a cycle.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    yield Import(name, target, node.lineno)
                elif base in known:
                    yield Import(name, base, node.lineno)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_cycle(graph: Mapping[str, set[str]], tangle: list[str]) -> list[str]:
    """One shortest import path from the first module of ``tangle`` back to it."""
    start = tangle[0]
    members = set(tangle)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:  # back where it began: walk the way home backwards
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def violations(
    root: Path,
    package: str = PACKAGE,
    layers: Mapping[int, tuple[str, ...]] = LAYERS,
    independent: frozenset[int] = INDEPENDENT,
    held_below: Mapping[str, int] = HELD_BELOW,
) -> list[str]:
    """Every breach of the contract by the package at ``root``, one line each."""
    known = modules(root, package)
    held = {
        f"{package}.{name.strip('/').replace('/', '.')}": (name, top)
        for name, top in held_below.items()
    }
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in known}
    lines: dict[tuple[str, str], int] = {}
    for name, path in known.items():
        where = component_of(name, layers)
        if where is None:
            problems.append(f"{path}: module {name} is in no layer (add it to LAYERS)")
            continue
        for found in imports(name, path, known):
            graph[name].add(found.target)
            lines.setdefault((name, found.target), found.line)
            there = component_of(found.target, layers)
            at = f"{path}:{found.line}: {name} (layer {where[0]}) imports {found.target}"
            for inside, (spelled, top) in held.items():
                if not _within(name, inside) or _within(found.target, inside) or there is None:
                    continue
                if there[0] > top or there[1] == where[1]:
                    problems.append(f"{at}, outside the layers 0-{top} that {spelled} is held to")
            if there is None or there[1] == where[1]:
                continue
            if there[0] > where[0]:
                problems.append(f"{at} from the higher layer {there[0]}")
            elif there[0] == where[0] and where[0] in independent:
                problems.append(f"{at}, a sibling of layer {where[0]}, whose parts are independent")
    for tangle in cycles(graph):
        way = shortest_cycle(graph, tangle)
        edges = "; ".join(f"{a}:{lines[a, b]} imports {b}" for a, b in itertools.pairwise(way))
        more = f" ({len(tangle)} modules tangled: {', '.join(tangle)})" if len(tangle) > 2 else ""
        problems.append(f"import cycle: {edges}{more}")
    return problems


def main() -> int:
    """Check runtime/ next to this script's folder; print the violations."""
    root = Path(__file__).resolve().parent.parent / PACKAGE
    problems = violations(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"layers: {len(problems)} violation(s) of the import contract (scripts/layers.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
