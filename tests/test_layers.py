"""The import-layering contract (``scripts/layers.py``): its table, and what it catches."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runtime_layers", ROOT / "scripts" / "layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


layers = _load()


def _readme_table() -> dict[int, tuple[str, str]]:
    """The README's Layout table: layer -> (its names outside parentheses, the row)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout") :]
    rows: dict[int, tuple[str, str]] = {}
    for layer, cell in re.findall(r"^\| (\d+) \| (.*) \|$", section, re.MULTILINE):
        top = cell
        while "(" in top:  # drop parenthesized detail, innermost first
            top = re.sub(r"\([^()]*\)", "", top)
        rows[int(layer)] = (" ".join(re.findall(r"`([^`]+)`", top)), cell)
    return rows


def test_the_readme_table_is_the_contracts_table() -> None:
    table = _readme_table()
    assert {layer: names.split() for layer, (names, _) in table.items()} == {
        layer: list(components) for layer, components in layers.LAYERS.items()
    }
    for layer in layers.INDEPENDENT:
        assert "independent of one another" in table[layer][1]


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


TINY = {0: ("base",), 1: ("low", "sub/"), 2: ("left", "right", "mid"), 3: ("top", "__init__")}
"""A tiny contract: layer 2's left and right are independent, ``mid`` too."""


def _check(tmp_path: Path, files: dict[str, str]) -> list[str]:
    root = _package(tmp_path, files)
    found: list[str] = layers.violations(root, "pkg", TINY, frozenset({2}))
    return found


def test_a_package_that_keeps_its_layers_passes(tmp_path: Path) -> None:
    files = {
        "base.py": "X = 1\n",
        "low.py": "from pkg.base import X\n",
        "sub/__init__.py": "from pkg.sub import a\n",
        "sub/a.py": "from . import b\nfrom .b import Y\n",
        "sub/b.py": "import pkg.low\nY = 2\n",
        "left.py": "from pkg import low\n",
        "top.py": "import pkg.left\nimport pkg.right\n",
        "right.py": "",
        "mid.py": "",
    }
    assert _check(tmp_path, files) == []


def test_an_upward_import_fails_wherever_it_is_written(tmp_path: Path) -> None:
    files = {
        "base.py": "from pkg.low import f\n",
        "low.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.left import T
            def f():
                import pkg.top
            def g():
                from .right import h
            """,
        "left.py": "",
        "right.py": "",
        "mid.py": "",
        "top.py": "",
    }
    found = _check(tmp_path, files)
    assert [line.split(": ", 1)[1] for line in found] == [
        "pkg.base (layer 0) imports pkg.low from the higher layer 1",
        "pkg.low (layer 1) imports pkg.left from the higher layer 2",
        "pkg.low (layer 1) imports pkg.top from the higher layer 3",
        "pkg.low (layer 1) imports pkg.right from the higher layer 2",
    ]
    assert found[0].startswith(f"{tmp_path / 'pkg' / 'base.py'}:1:")
    assert found[2].startswith(f"{tmp_path / 'pkg' / 'low.py'}:6:")


def test_independent_siblings_may_not_import_one_another(tmp_path: Path) -> None:
    files = {"left.py": "def f():\n    from pkg import right\n", "right.py": "", "mid.py": ""}
    found = _check(tmp_path, files)
    assert [line.split(": ", 1)[1] for line in found] == [
        "pkg.left (layer 2) imports pkg.right, a sibling of layer 2, whose parts are independent"
    ]


def test_a_cycle_fails_even_inside_one_component(tmp_path: Path) -> None:
    files = {
        "sub/__init__.py": "",
        "sub/a.py": "from pkg.sub.b import Y\n",
        "sub/b.py": "Y = 1\ndef f():\n    from pkg.sub import a\n",
    }
    assert _check(tmp_path, files) == [
        "import cycle: pkg.sub.a:1 imports pkg.sub.b; pkg.sub.b:3 imports pkg.sub.a"
    ]


def test_a_cycle_of_many_modules_is_shown_by_its_shortest_loop(tmp_path: Path) -> None:
    files = {
        "left.py": "import pkg.mid\n",
        "mid.py": "from pkg import right\n",
        "right.py": "import pkg.low\nimport pkg.mid\n",
        "low.py": "def f():\n    import pkg.left\n",
    }
    found = _check(tmp_path, files)
    assert found[-1] == (
        "import cycle: pkg.left:1 imports pkg.mid; pkg.mid:1 imports pkg.right; "
        "pkg.right:1 imports pkg.low; pkg.low:2 imports pkg.left "
        "(4 modules tangled: pkg.left, pkg.low, pkg.mid, pkg.right)"
    )


def test_a_module_in_no_layer_fails(tmp_path: Path) -> None:
    found = _check(tmp_path, {"stray.py": ""})
    assert found == [
        f"{tmp_path / 'pkg' / 'stray.py'}: module pkg.stray is in no layer (add it to LAYERS)"
    ]


def test_a_package_held_below_its_layer_imports_only_from_below(tmp_path: Path) -> None:
    files = {
        "mid.py": "",
        "left.py": "",
        "right.py": "",
        "sub/__init__.py": "",
        "sub/store.py": "from pkg.sub.rules import decide\n",
        "sub/rules/__init__.py": "",
        "sub/rules/decide.py": "from pkg.base import X\nfrom . import table\n",
        "sub/rules/table.py": "import pkg.low\n",
        "sub/rules/bad.py": "from pkg.sub import store\ndef f():\n    import pkg.left\n",
        "base.py": "X = 1\n",
        "low.py": "",
    }
    root = _package(tmp_path, files)
    rules_at = {0: ("base",), 1: ("low", "sub/"), 2: ("left", "right", "mid"), 3: ("__init__",)}
    found = layers.violations(root, "pkg", rules_at, frozenset(), {"sub/rules/": 0})
    assert [line.split(": ", 1)[1] for line in found] == [
        "pkg.sub.rules.bad (layer 1) imports pkg.sub.store, outside the layers 0-0 that "
        "sub/rules/ is held to",
        "pkg.sub.rules.bad (layer 1) imports pkg.left, outside the layers 0-0 that "
        "sub/rules/ is held to",
        "pkg.sub.rules.bad (layer 1) imports pkg.left from the higher layer 2",
        "pkg.sub.rules.table (layer 1) imports pkg.low, outside the layers 0-0 that "
        "sub/rules/ is held to",
    ]
