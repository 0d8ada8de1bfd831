"""The package's layering, enforced: every import (function-local and TYPE_CHECKING ones included) points to
the module's own layer or a lower one, and no two modules import each other through any path.

The layers, lowest first, are the ones docs/ARCHITECTURE.md draws.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import stylesurv

PACKAGE = Path(stylesurv.__file__).resolve().parent
LAYERS = ("core", "cohort", "faces", "gan", "invert", "survival", "explain", "studies", "report", "app")


def module_name(path: Path) -> str:
    parts = ("stylesurv", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """Index of a module's layer: its sub-package's place in LAYERS; the package root (only __version__)
    sits with core, `python -m stylesurv` with the app."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] == "__main__":
        return len(LAYERS) - 1
    return LAYERS.index(parts[1])


def imported_modules(path: Path) -> set[str]:
    """The stylesurv modules a file imports anywhere in it (``from a import b``: ``a.b`` when that is a
    module, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "stylesurv"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "stylesurv":
                continue
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
    return found


GRAPH = {name: imported_modules(path) - {name} for name, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        assert 0 <= layer(name) < len(LAYERS), name
    assert {name.split(".")[1] for name in MODULES if name.count(".") >= 1} <= {*LAYERS, "__main__"}


def test_the_graph_sees_function_local_imports() -> None:
    # app.counterfactual imports app.pipeline and app.predict inside a function only
    assert {"stylesurv.app.pipeline", "stylesurv.app.predict"} <= GRAPH["stylesurv.app.counterfactual"]


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} ({LAYERS[layer(source)]}) imports {target} ({LAYERS[layer(target)]})"
        for source, targets in graph.items()
        for target in targets
        if target in MODULES and layer(target) > layer(source)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_edges(GRAPH) == []


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize(
    "graph, upward, cyclic",
    [
        ({"stylesurv.core.errors": {"stylesurv.app.cli"}, "stylesurv.app.cli": set()}, 1, 0),
        ({"stylesurv.gan.ops": {"stylesurv.gan.loss"}, "stylesurv.gan.loss": {"stylesurv.gan.ops"}}, 0, 1),
        ({"stylesurv.app.cli": {"stylesurv.core.errors"}, "stylesurv.core.errors": set()}, 0, 0),
    ],
)
def test_the_checks_catch_what_they_are_for(graph: dict[str, set[str]], upward: int, cyclic: int) -> None:
    assert len(upward_edges(graph)) == upward
    assert len(cycles(graph)) == cyclic


@pytest.mark.parametrize("package", LAYERS)
def test_every_package_says_what_it_is_and_lists_its_modules(package: str) -> None:
    module = importlib.import_module(f"stylesurv.{package}")
    assert module.__doc__ and len(module.__doc__) > 20
    on_disk = {p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__"}
    assert set(module.__all__) == on_disk
