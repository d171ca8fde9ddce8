"""The transform's modules import each other without a circle: each module builds only on modules below it.
Imports anywhere in a module count, those inside functions too (a deferred import hides a circle, it does not
remove one)."""
from __future__ import annotations

import ast
from pathlib import Path

import services.transform

PACKAGE = "services.transform"


def imports_of(path: Path) -> set[str]:
    """The services.transform modules a source file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from services.transform import load` names a module; `from services.transform.load import x` too
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.startswith(PACKAGE + "."))
    return found


def import_graph(directory: Path) -> dict[str, set[str]]:
    modules = {f"{PACKAGE}.{path.stem}": path for path in directory.glob("*.py") if path.stem != "__init__"}
    return {name: imports_of(path) & set(modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as the list of its modules (first repeated last), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_transform_modules_have_no_import_cycle():
    graph = import_graph(Path(services.transform.__file__).parent)
    assert f"{PACKAGE}.parse" in graph and graph[f"{PACKAGE}.csv_records"], "the walk found the parser's modules"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_sees_a_deferred_import(tmp_path):
    """The old layout's circle (parse imported the readers inside a function, the readers imported parse at the
    top) is found."""
    (tmp_path / "parse.py").write_text("def iter_records():\n    from services.transform.csv_records import iter_csv\n")
    (tmp_path / "csv_records.py").write_text("from services.transform.parse import Reject\n")
    (tmp_path / "records.py").write_text("import re\n")
    assert find_cycle(import_graph(tmp_path)) == [f"{PACKAGE}.csv_records", f"{PACKAGE}.parse",
                                                 f"{PACKAGE}.csv_records"]
