"""No import circles in `server`: no module imports a module that imports it back.

The graph is read from the source with `ast`, so a circle that Python happens to survive
today (a late import, a name defined before the import that needs it) still counts. An import
of `a.b.c` runs the packages `a` and `a.b` first, so it is an edge to each of them as well,
except to the packages the importing module sits in (they are already running). Imports under
`if TYPE_CHECKING:` never run and are left out."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import server

ROOT = Path(server.__file__).resolve().parent


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that importing `name` (at `path`) runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
    edges = set()
    mine = set(_ancestors(name))
    for target in targets:
        edges.update(t for t in [target, *_ancestors(target)] if t in known and t not in mine)
    edges.discard(name)
    edges.update(t for t in targets if t in mine)  # `from server.web import bp` in server.web.x
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    assert cycles(graph()) == []


def test_web_does_not_import_the_api() -> None:
    wrong = {
        (name, target)
        for name, targets in graph().items()
        if name == "server.web" or name.startswith("server.web.")
        for target in targets
        if target == "server.api" or target.startswith("server.api.")
    }
    assert wrong == set()


def test_the_graph_sees_each_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: plain, from, relative, package-runs-first and TYPE_CHECKING."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "pkg": "__init__.py",
        "pkg.a": "a.py",
        "pkg.b": "b.py",
        "pkg.c": "c.py",
        "pkg.sub": "sub/__init__.py",
        "pkg.sub.leaf": "sub/leaf.py",
        "pkg.d": "d.py",
    }
    texts = {
        "pkg": "from pkg import a\n",
        "pkg.a": "import pkg.b\n",
        "pkg.b": "def late():\n    from . import c\n",
        "pkg.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        "pkg.sub": "from pkg.sub import leaf\n",
        "pkg.sub.leaf": "from pkg.sub import NAME\nfrom ..c import x\n",
        "pkg.d": "from pkg.sub.leaf import y\n",
    }
    for name, rel in files.items():
        (pkg / rel).write_text(texts[name])
    graph = {name: imports(name, pkg / rel, set(files)) for name, rel in files.items()}
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},  # pkg itself is already running
        "pkg.b": {"pkg.c"},  # a late import counts too
        "pkg.c": set(),  # never runs
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.sub", "pkg.c"},  # a name from its own package: that runs first
        "pkg.d": {"pkg.sub", "pkg.sub.leaf"},  # pkg.sub runs before pkg.sub.leaf
    }
    assert cycles(graph) == [["pkg.sub", "pkg.sub.leaf"]]
