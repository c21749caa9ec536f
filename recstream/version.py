"""The version of this code, recorded in every trained model and served answer."""
from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path


def code_version() -> str:
    """``git describe --always --dirty`` of this checkout, else the installed version."""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                                  capture_output=True, text=True, timeout=20, check=True)
            if done.stdout.strip():
                return "git:" + done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return "recstream==" + importlib.metadata.version("recstream")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
