"""``models/`` is pure: importing every module must work with faust, aiohttp and
the rest of recstream unavailable (STYLE: models never import the shell)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys

    BLOCKED = ("faust", "aiohttp", "mode", "aiokafka", "rocksdict",
               "recstream", "tables", "agents", "web")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"models/ must not import {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    import models
    names = [m.name for m in pkgutil.walk_packages(models.__path__, "models.")]
    for name in names:
        importlib.import_module(name)
    leaked = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print(len(names))
""")


def test_models_import_without_the_shell():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 5
