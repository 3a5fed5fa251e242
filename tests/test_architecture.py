"""How the project's modules may depend on each other, read from the source (ast), not run.

- No import cycle between the modules of annotation/, guidelines/, active_learning/ and
  parity/. The graph holds the imports that run when a module is imported: its top-level
  statements (under `if`, `try` and class bodies too), not those inside functions (they
  run later, on a call) nor those under `if TYPE_CHECKING:` (they never run). A package's
  `__init__` re-exporting its submodules is no cycle: `from pkg.sub import x` is an edge
  to `pkg.sub`, and `from pkg import sub` to `pkg.sub` when `sub` is a module; the parent
  package that Python initialises first is not counted as an edge. Migrations are left out.
- Apps depend one way (DESIGN.md): guidelines → annotation and active_learning →
  annotation; annotation imports neither, and guidelines and active_learning do not import
  each other — at any depth, inside functions included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("annotation", "guidelines", "active_learning", "parity")


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    deferred: bool  # inside a function, or under `if TYPE_CHECKING:`


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], deferred: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement with whether it runs only later (in a function) or never."""
    for node in body:
        yield node, deferred
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _statements(node.body, True)
        elif isinstance(node, ast.If):
            yield from _statements(node.body, deferred or _is_type_checking(node.test))
            yield from _statements(node.orelse, deferred)
        elif isinstance(node, ast.ClassDef | ast.With):
            yield from _statements(node.body, deferred)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _statements(block, deferred)
            for handler in node.handlers:
                yield from _statements(handler.body, deferred)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The project modules `name` imports, each resolved to the module it names."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]

    def known(dotted: str) -> str | None:
        # The longest prefix that is a project module (`import a.b.c` imports a.b.c).
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = []
    for node, deferred in _statements(ast.parse(path.read_text()).body, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in modules else base)
        for target in targets:
            resolved = known(target)
            if resolved is not None and resolved != name:
                found.append(Import(resolved, node.lineno, deferred))
    return found


def import_graph() -> dict[str, list[Import]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's DFS), each
    sorted: every one of them is at least one import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


class ImportGraphTests:
    def test_it_reads_imports_as_python_runs_them(self, tmp_path: Path) -> None:
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("from pkg.a import x\nfrom . import b\n")
        (package / "a.py").write_text(
            "from typing import TYPE_CHECKING\n"
            "import pkg.b\n"
            "from .c import y\n"
            "if TYPE_CHECKING:\n    from pkg import c\n"
            "def f():\n    from pkg import c\n"
        )
        (package / "b.py").write_text("class B:\n    from pkg.c import y\n")
        (package / "c.py").write_text("")
        modules = {
            "pkg": package / "__init__.py",
            **{f"pkg.{n}": package / f"{n}.py" for n in "abc"},
        }
        graph = {
            name: [(i.target, i.deferred) for i in imports_of(name, path, modules)]
            for name, path in modules.items()
        }
        assert graph == {
            "pkg": [("pkg.a", False), ("pkg.b", False)],
            "pkg.a": [("pkg.b", False), ("pkg.c", False), ("pkg.c", True), ("pkg.c", True)],
            "pkg.b": [("pkg.c", False)],
            "pkg.c": [],
        }

    def test_it_finds_a_cycle_through_any_number_of_modules(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
        assert cycles(graph) == [["a", "b", "c"]]
        assert cycles({"a": {"b"}, "b": set()}) == []


class ArchitectureTests:
    def test_it_finds_no_import_cycle_between_the_projects_modules(self) -> None:
        graph = {
            name: {i.target for i in found if not i.deferred}
            for name, found in import_graph().items()
        }
        assert len(graph) > 100  # the walk found the project
        assert cycles(graph) == []

    def test_it_keeps_the_apps_depending_one_way(self) -> None:
        forbidden = {
            "annotation": ("guidelines", "active_learning"),
            "guidelines": ("active_learning",),
            "active_learning": ("guidelines",),
        }
        wrong = [
            f"{name}:{i.line} imports {i.target}"
            for name, found in import_graph().items()
            for i in found
            if i.target.split(".")[0] in forbidden.get(name.split(".")[0], ())
        ]
        assert wrong == []
