"""Every edge of STYLE.md's layer table, checked on the source (recstream/sim has its own test).

Imports are read with ``ast``, function-level ones included: an import hidden in a
function is still an edge, and hiding one is how the old cycles were held apart.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("recstream", "agents", "web", "tables", "models")
# The one place allowed to import upwards: it wires agents, web and ops together.
COMPOSITION_ROOT = {"recstream.app", "recstream.cli"}
SHELL = ("faust", "aiohttp", "mode", "aiokafka", "rocksdict")

# room -> rooms of ours it must never import (STYLE.md "The layers")
NEVER = {
    "models": {"kernel", "ops", "sim", "tables", "agents", "web"},
    "kernel": {"ops", "sim", "agents", "web"},
    "ops": {"sim", "agents", "web"},
    "tables": {"ops", "sim", "agents", "web"},
    "agents": {"ops", "sim", "web"},
    "web": {"ops", "sim", "agents"},
}


def room(module: str) -> str:
    top = module.split(".")[0]
    if top == "recstream":
        second = module.split(".")[1] if "." in module else ""
        return {"ops": "ops", "sim": "sim"}.get(second, "kernel")
    return top


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every module named by an import statement anywhere in the file."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def graph(root: Path = REPO) -> dict[str, set[str]]:
    """Our module → our modules it imports (recstream.sim excluded: another room's test)."""
    files = {module_name(p, root): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    files = {m: p for m, p in files.items() if room(m) != "sim"}
    ours = set(files) | {"recstream.sim"}
    edges = {}
    for name, path in files.items():
        targets = set()
        for imported in imports_of(path, name):
            while imported and imported not in ours:  # `from pkg import name` of a non-module
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        parent = name.rpartition(".")[0]
        if parent in files:  # Python imports a module's package first: a hidden edge
            targets.add(parent)
        edges[name] = targets
    return edges


def violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in edges.items():
        if source in COMPOSITION_ROOT:
            continue
        for target in targets:
            if room(target) in NEVER[room(source)]:
                bad.append(f"{source} -> {target}")
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_layer_imports_what_style_forbids():
    assert violations(graph()) == []


def test_the_import_graph_has_no_cycles():
    assert cycles(graph()) == []


def test_models_import_no_shell_library():
    for path in (REPO / "models").rglob("*.py"):
        name = module_name(path)
        shell = {m for m in imports_of(path, name) if m.split(".")[0] in SHELL}
        assert not shell, f"{name} imports {sorted(shell)}"


@pytest.mark.parametrize("source, target, ok", [
    ("agents.user_writer", "web.views", False),
    ("web.views", "agents.user_writer", False),
    ("tables.codecs", "agents.user_writer", False),
    ("recstream.settings", "recstream.ops.fit", False),
    ("recstream.ops.fit", "web.views", False),
    ("models.als", "recstream.settings", False),
    ("recstream.app", "web.views", True),
    ("agents.user_writer", "tables.codecs", True),
])
def test_the_checks_can_fail(source, target, ok):
    """A forbidden edge and a cycle planted in a copy of the graph are reported."""
    edges = {source: {target}, target: set()}
    assert (violations(edges) == []) is ok
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.x"}}) == [["a.x", "a.y"]]


def test_a_package_that_imports_its_own_modules_is_a_cycle(tmp_path):
    """``pkg/__init__`` importing ``pkg.child`` (even inside a function) is a cycle, since
    importing ``pkg.child`` imports ``pkg`` first: how ``recstream.ops.register`` hid one."""
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "agents" / "__init__.py").write_text(
        "def register():\n    from agents import child\n")
    (tmp_path / "agents" / "child.py").write_text("import numpy\n")
    assert cycles(graph(tmp_path)) == [["agents", "agents.child"]]
    (tmp_path / "agents" / "__init__.py").write_text("")
    assert cycles(graph(tmp_path)) == []


def test_every_module_was_read():
    edges = graph()
    assert {"recstream.app", "recstream.ops.fit", "agents.ingest", "web.views",
            "tables.codecs", "models.als"} <= set(edges)
    assert "agents.ingest" in edges["recstream.app"] or any(
        t.startswith("agents") for t in edges["recstream.app"])
