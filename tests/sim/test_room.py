"""The simulator is a room of its own: no import cycles, and only the service's kernel records/parsing/settings/clock.

Read from the source with ``ast`` (nothing is imported), so the test also sees
imports hidden under ``if TYPE_CHECKING:`` or inside functions.  The checker is
first run on small made-up packages to show that it does catch each breach.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recstream.sim

SIM = Path(recstream.sim.__file__).parent
PACKAGE = "recstream.sim"
KERNEL_ALLOWED = {"recstream.records", "recstream.parsing", "recstream.settings", "recstream.clock"}
OURS_ELSEWHERE = ("agents", "web", "tables", "models")
# Optional heavy dependencies a sink may import only when it is used (see sinks.py).
LAZY_ALLOWED = {"aiokafka"}
MAX_LINES = 300


def imports_of(source: str, module: str, names: set[str]) -> list[tuple[str, bool]]:
    """``(imported module, at module level?)`` for every import in ``source`` (``from pkg import mod`` resolved)."""
    found: list[tuple[str, bool]] = []
    package = module.rsplit(".", 1)[0] if module != PACKAGE else module

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if full in names else base, top))
            visit(child, inner)

    visit(ast.parse(source), True)
    return found


def check_room(sources: dict[str, str]) -> list[str]:
    """Every breach of the room's rules in ``{module name: source}``; empty when the room is sound."""
    names = set(sources)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, source in sources.items():
        for target, top in imports_of(source, name, names):
            root = target.split(".")[0]
            if target.startswith(PACKAGE + ".") or target == PACKAGE:
                if target in names and target != name:
                    graph[name].add(target)
                if not top:
                    problems.append(f"{name}: function-level import of {target}")
            elif root == "recstream":
                if target not in KERNEL_ALLOWED:
                    problems.append(f"{name}: imports {target}; only {sorted(KERNEL_ALLOWED)} from the service")
                elif not top:
                    problems.append(f"{name}: function-level import of {target}")
            elif root in OURS_ELSEWHERE or root == "faust":
                problems.append(f"{name}: imports {target}; the simulator never imports {root}")
            elif not top and root not in LAZY_ALLOWED:
                problems.append(f"{name}: function-level import of {target}")
    problems.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


def room_sources() -> dict[str, str]:
    sources = {}
    for path in sorted(SIM.glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        sources[name] = path.read_text(encoding="utf-8")
    return sources


def test_the_simulator_room_is_sound():
    sources = room_sources()
    assert len(sources) > 10, f"found only {sorted(sources)} under {SIM}"
    assert check_room(sources) == []


def test_modules_stay_small():
    long = {name: src.count("\n") for name, src in room_sources().items() if src.count("\n") > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("sources, expected", [
    ({"recstream.sim.a": "from recstream.sim import b\n", "recstream.sim.b": "import recstream.sim.a\n"},
     "import cycle"),
    ({"recstream.sim.a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from recstream.sim.b import B\n",
      "recstream.sim.b": "from recstream.sim.a import A\n"}, "import cycle"),
    ({"recstream.sim.a": "def f():\n    from recstream.sim.b import B\n", "recstream.sim.b": ""},
     "function-level import of recstream.sim.b"),
    ({"recstream.sim.a": "from recstream.serving import answer\n"}, "only"),
    ({"recstream.sim.a": "from tables.users import UserTable\n"}, "never imports tables"),
    ({"recstream.sim.a": "import models.online\n"}, "never imports models"),
    ({"recstream.sim.a": "from agents import ingest\n"}, "never imports agents"),
    ({"recstream.sim.a": "import web.views\n"}, "never imports web"),
    ({"recstream.sim.a": "async def f():\n    import numpy\n"}, "function-level import of numpy"),
])
def test_the_checker_catches_each_breach(sources, expected):
    problems = check_room(sources)
    assert any(expected in p for p in problems), problems


def test_the_checker_accepts_allowed_edges():
    sources = {
        "recstream.sim.a": "from recstream.records import Rating\nfrom recstream.sim import b\n",
        "recstream.sim.b": "import numpy as np\nfrom recstream.settings import Settings\n"
                           "async def start():\n    from aiokafka import AIOKafkaProducer\n",
    }
    assert check_room(sources) == []
