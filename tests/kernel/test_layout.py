"""The installed top-level packages are ours, and the layers import what STYLE.md allows.

``tables`` is also PyTables' import name and ``models`` a common one: a wrong
environment would import someone else's package without any error.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package, marker", [
    ("tables", "define_tables"),
    ("models", None),
    ("agents", None),
    ("web", None),
    ("recstream", None),
])
def test_packages_are_ours(package, marker):
    module = importlib.import_module(package)
    path = Path(module.__file__).resolve()
    assert path.parent == REPO / package, f"{package} imported from {path}"
    if marker:
        assert hasattr(module, marker)


def test_tables_is_not_pytables():
    import tables

    assert not hasattr(tables, "open_file")  # PyTables' entry point
    assert Path(tables.__file__).resolve().parent == REPO / "tables"
    for name in ("codecs", "memory", "users", "context", "broadcast"):
        sub = importlib.import_module(f"tables.{name}")
        assert Path(sub.__file__).resolve().parent == REPO / "tables"


BLOCKED_IMPORT = textwrap.dedent("""
    import importlib, pkgutil, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("faust", "aiohttp"):
                raise ImportError("blocked: " + name)
            return None

    sys.meta_path.insert(0, Blocker())
    import models
    names = sorted(m.name for m in pkgutil.walk_packages(models.__path__, "models."))
    for name in names:
        importlib.import_module(name)
    print(models.__file__)
    print(" ".join(names))
""")


def test_models_import_nothing_of_faust_or_aiohttp(tmp_path):
    # Run outside the checkout, so `models` resolves through the installed package.
    result = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path, names = result.stdout.strip().splitlines()
    assert Path(path).resolve().parent == REPO / "models"
    # The modules serving depends on are among those that imported cleanly.
    assert {"models.online", "models.popularity", "models.ranking"} <= set(names.split())


def test_the_blocker_blocks(tmp_path):
    """The check above can fail: the same script refuses a module that imports faust."""
    script = BLOCKED_IMPORT.replace("import models\n", "import tables\nimport models\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "blocked: faust" in result.stderr
