"""The shape of the house: the library's packages import one another downwards only.

Every import of ``spinmultinet_ase`` code (top level or inside a function) is read from the
source with :mod:`ast`; each subpackage (``dft``, ``train``, ...) and each top-level module
(``model``, ``export``, ...) is one node. The package root only re-exports (its lazy
``SpinMultiNetCalculator``) and holds ``__version__``, so its own imports are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spinmultinet_ase"
ROOT = "spinmultinet_ase"


def _node(module: str) -> str:
    """The graph node of a dotted module name: its first part below the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _imported_modules(tree: ast.AST) -> list[str]:
    """Dotted names of the ``spinmultinet_ase`` modules (or names) a module imports."""
    names = []
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            names += [alias.name for alias in item.names]
        elif isinstance(item, ast.ImportFrom) and item.level == 0 and item.module:
            if item.module == ROOT:  # from spinmultinet_ase import keys, __version__
                names += [f"{ROOT}.{alias.name}" for alias in item.names]
            else:
                names.append(item.module)
        elif isinstance(item, ast.ImportFrom) and item.level > 0:
            raise AssertionError("relative import: the graph reads absolute imports only")
    return [name for name in names if name.split(".")[0] == ROOT]


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, list[str]]]:
    """``{node: {imported node: [files importing it]}}`` for the package at ``package``."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts == (ROOT, "__init__"):
            continue
        source = _node(".".join(parts))
        edges = graph.setdefault(source, {})
        for module in _imported_modules(ast.parse(path.read_text(), str(path))):
            target = _node(module)
            target = ROOT if target.startswith("__") else target
            if target != source:
                edges.setdefault(target, []).append(str(path.relative_to(package.parent)))
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_sees_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / ROOT
    for name, text in {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/one.py": "from spinmultinet_ase.b.two import g\n",
        "b/__init__.py": "",
        "b/two.py": "def g():\n    from spinmultinet_ase.c import h\n",
        "c.py": "import spinmultinet_ase.a.one\n",
        "d.py": "from spinmultinet_ase import c, __version__\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    graph = import_graph(package)
    assert set(graph["d"]) == {"c", ROOT}
    assert cycles(graph) == [["a", "b", "c"]]


def test_packages_import_downwards_only():
    graph = import_graph()
    assert {"dft", "train", "magnetism", "workflows", "reference"} <= set(graph)
    found = cycles(graph)
    details = [
        f"{' <-> '.join(component)}: "
        + "; ".join(
            f"{a} -> {b} ({', '.join(sorted(set(graph[a][b])))})"
            for a in component
            for b in component
            if b in graph[a]
        )
        for component in found
    ]
    assert not found, "import cycles between packages: " + " | ".join(details)


@pytest.mark.parametrize(
    "package", ["data", "nn", "model", "magnetism", "dft", "train", "workflows"]
)
def test_the_general_library_does_not_import_the_reference_reports(package):
    """``reference/`` (data card, convergence study, model card) sits on top, like the CLI."""
    assert "reference" not in import_graph().get(package, {})
