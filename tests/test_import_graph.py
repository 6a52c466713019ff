"""The import graph follows the map drawn in ``tierwise/__init__.py``.

Every module under ``src/tierwise`` is parsed (not imported), and every ``import`` in it
counts: at module level, inside functions (lazy imports hide cycles) and under
``TYPE_CHECKING``. A box of the map is a subpackage (``tierwise.X``) or a top-level module;
an edge goes from the box of the importing module to the box of the imported one. The
checks:

- every box in the source is on the map, and every box on the map is in the source;
- every edge between two boxes goes down the map (from a higher layer to a lower one),
  so the boxes cannot form a cycle, and there is none;
- inside a box, the imports that run when a module is imported (module level, outside
  ``TYPE_CHECKING``) form no cycle among its modules.

``tierwise/__init__.py`` is the package's face, not a box: any module may import
``__version__`` from it, and its own imports must be lazy (inside a function or under
``TYPE_CHECKING``). ``__main__`` belongs to the ``cli`` box.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import tierwise

PACKAGE_DIR = Path(tierwise.__file__).resolve().parent
ROOT = "tierwise"
#: Modules that belong to another box than their name says.
SAME_BOX = {"__main__": "cli"}
_MAP_LINE = re.compile(r"^\s{4}\s*(?:(\d+)\s+)?([a-z_]+)\s{2,}\S")


@dataclass(frozen=True)
class Import:
    """One import in one module: what it names, where, and whether it runs at import."""

    source: str  # the importing module, e.g. "tierwise.plan.write"
    target: str  # the imported module, e.g. "tierwise.planfile.schema"
    names: tuple[str, ...]  # for ``from X import a, b``: a, b
    line: int
    eager: bool  # at module level and outside ``if TYPE_CHECKING:``


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module ``name`` is, or the innermost package holding it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, eager: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, eager
        lazy = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
            isinstance(child, ast.If) and _is_type_checking(child)
        )
        yield from _walk(child, eager and not lazy)


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[Import] = []
    for node, eager in _walk(tree, True):
        if isinstance(node, ast.Import):
            wanted = [(a.name, ()) for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            wanted = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # ``from tierwise.x import module``
                wanted.append((sub, ()) if sub in MODULES else (base, (alias.name,)))
        for name, names in wanted:
            target = _resolve(name) if name.split(".")[0] == ROOT else None
            if target is not None:
                out.append(Import(module, target, names, node.lineno, eager))
    return out


IMPORTS = [i for module, path in MODULES.items() for i in _imports(module, path)]


def box(module: str) -> str:
    """The map's box of a module: ``tierwise.plan.write`` -> ``plan``."""
    name = module.split(".")[1]
    return SAME_BOX.get(name, name)


def layer_map() -> dict[str, int]:
    """The boxes drawn in ``tierwise/__init__.py``'s docstring, with their layers."""
    doc = ast.get_docstring(ast.parse((PACKAGE_DIR / "__init__.py").read_text("utf-8")))
    assert doc is not None, "tierwise/__init__.py has no docstring"
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("::")) + 1
    layers: dict[str, int] = {}
    layer: int | None = None
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the end of the drawing
        found = _MAP_LINE.match(line)
        if found is None:
            continue
        number, name = found.groups()
        if number is not None:
            layer = int(number)
        assert layer is not None, f"box {name!r} is drawn before any layer number"
        assert name not in layers, f"box {name!r} is drawn twice"
        layers[name] = layer
    return layers


def _where(i: Import) -> str:
    return f"{MODULES[i.source].relative_to(PACKAGE_DIR.parent)}:{i.line} imports {i.target}"


def test_the_map_is_drawn() -> None:
    layers = layer_map()
    assert len(layers) > 10
    assert layers["errors"] == 0
    assert layers["cli"] == max(layers.values())


def test_every_box_is_on_the_map() -> None:
    layers = layer_map()
    boxes = {box(m) for m in MODULES if m != ROOT}
    assert sorted(boxes - set(layers)) == [], "packages missing from the map"
    assert sorted(set(layers) - boxes) == [], "boxes on the map that do not exist"


def test_the_top_level_is_only_a_face() -> None:
    for i in IMPORTS:
        if i.source == ROOT:
            assert not i.eager, f"{_where(i)} when tierwise is imported; make it lazy"
        elif i.target == ROOT:
            assert i.names == ("__version__",), f"{_where(i)}: only __version__ lives there"


def _box_edges() -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = {}
    for i in IMPORTS:
        if ROOT in (i.source, i.target):
            continue  # see test_the_top_level_is_only_a_face
        a, b = box(i.source), box(i.target)
        if a != b:
            edges.setdefault((a, b), []).append(i)
    return edges


def test_every_import_between_boxes_goes_down_the_map() -> None:
    layers = layer_map()
    wrong = [
        f"{a} (layer {layers[a]}) -> {b} (layer {layers[b]}): {_where(imports[0])}"
        for (a, b), imports in sorted(_box_edges().items())
        if a in layers and b in layers and layers[a] <= layers[b]
    ]
    assert wrong == [], "imports that go up or across the map:\n" + "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_boxes_form_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for a, b in _box_edges():
        graph.setdefault(a, set()).add(b)
    cycle = _cycle(graph)
    assert cycle is None, "boxes import each other: " + " -> ".join(cycle or ())


@pytest.mark.parametrize("name", sorted({box(m) for m in MODULES if m != ROOT}))
def test_no_import_cycle_inside_a_box(name: str) -> None:
    graph: dict[str, set[str]] = {}
    inside = [i for i in IMPORTS if ROOT not in (i.source, i.target) and i.source != i.target]
    for i in inside:
        if i.eager and box(i.source) == name == box(i.target):
            graph.setdefault(i.source, set()).add(i.target)
    cycle = _cycle(graph)
    assert cycle is None, "modules import each other when loaded: " + " -> ".join(cycle or ())


def test_the_parser_sees_lazy_and_type_only_imports() -> None:
    root = [i for i in IMPORTS if i.source == ROOT]
    assert root, "tierwise/__init__.py gives tierwise.Client through a lazy import"
    assert all(not i.eager for i in root)
    assert any(not i.eager for i in IMPORTS if i.source != ROOT)
