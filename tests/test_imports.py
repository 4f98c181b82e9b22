"""The package's import graph: no cycles, counting imports inside functions too.

A cycle hidden behind an import inside a function still ties its modules into
one knot that must be understood (and loaded) together; the stages of the
package (scan, data, model, training, inference, explain, evaluation, reports)
only read as a data flow while each module depends on earlier ones.
"""

import ast
from pathlib import Path

from conftest import PROJECT

PACKAGE = PROJECT / "brain_cnn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, wherever in the file the import is."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            # ``from brain_cnn.model import layers`` imports the module brain_cnn.model.layers
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "brain_cnn" / "x.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from brain_cnn.y import g\n    from . import z\n")
    assert _imports("brain_cnn.x", module, {"brain_cnn.x", "brain_cnn.y", "brain_cnn.z"}) == {"brain_cnn.y",
                                                                                            "brain_cnn.z"}


def test_only_the_app_glue_imports_streamlit():
    """Streamlit is confined to the two glue modules (the app's helpers and its door) so that the rest of the
    package runs and is tested without it."""
    graph_free = {name for name, path in _modules().items()
                  if any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                         any((a.name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0] == "streamlit"
                             for a in n.names)
                         for n in ast.walk(ast.parse(path.read_text())))}
    assert graph_free == {"brain_cnn.app_support", "brain_cnn.app_access"}


def test_test_modules_have_unique_names():
    """pytest imports test modules by their file name (no packages under tests/): two alike break collection."""
    names = [p.name for p in (PROJECT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
