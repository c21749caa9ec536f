"""Immutable, versioned model artifacts: ``<root>/<version>/{arrays.npz, manifest.json}``.

A version directory is written under a temporary name in the same folder
and renamed into place (atomic on POSIX), so a reader sees either no version
or a complete one, never a half-written file; an existing version is never
overwritten.  Arrays go through ``np.savez`` and come back with
``allow_pickle=False``: object arrays are refused both ways.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class ArtifactExists(FileExistsError):
    """A version id was reused: versions are immutable."""


def data_hash(*columns: Iterable) -> str:
    """``sha256:<hex>`` over the columns' dtype, shape and bytes, in the given order.

    Same rows in the same order give the same hash on every machine; text is
    hashed as UTF-8, so a str array and its list give the same digest.
    """
    digest = hashlib.sha256()
    for column in columns:
        arr = np.asarray(column)
        if arr.dtype.kind in "UO":
            arr = np.asarray([str(x) for x in arr.ravel()])
            digest.update(f"str{arr.shape}".encode())
            for text in arr.tolist():
                encoded = text.encode("utf-8")
                digest.update(len(encoded).to_bytes(8, "little") + encoded)
        else:
            arr = np.ascontiguousarray(arr)
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            digest.update(arr.tobytes())
    return "sha256:" + digest.hexdigest()


def new_version_id(prefix: str = "v") -> str:
    """Sortable, unique enough for one trainer: ``v20250101T120000Z-3f2a``."""
    return f"{prefix}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.urandom(2).hex()}"


def training_manifest(model: Any, users: np.ndarray, items: np.ndarray, values: np.ndarray,
                      timestamps: np.ndarray | None = None, *, code_version: str,
                      topic_offsets: Mapping[str, Any] | None = None,
                      metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The provenance a version must carry (SPEC §6.11): what data, what code, what settings."""
    ts = None if timestamps is None or len(timestamps) == 0 else np.asarray(timestamps)
    return {
        "model": type(model).__name__,
        "hyperparameters": model.get_params(),
        "code_version": code_version,
        "training_window": None if ts is None else {"start": float(ts.min()),
                                                    "end": float(ts.max())},
        "topic_offsets": dict(topic_offsets or {}),
        "rows": {"interactions": int(len(values)), "users": int(len(np.unique(users))),
                 "items": int(len(np.unique(np.asarray(items).astype(str))))},
        "data_hash": data_hash(users, items, values),
        "metrics": dict(metrics or {}),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save_version(root: str | Path, version: str, arrays: Mapping[str, np.ndarray],
                 manifest: Mapping[str, Any]) -> Path:
    """Write one version atomically and return its directory."""
    root = Path(root)
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"bad version id {version!r}")
    target = root / version
    if target.exists():
        raise ArtifactExists(str(target))
    clean = {name: np.asarray(value) for name, value in arrays.items()}
    for name, value in clean.items():
        if value.dtype.kind == "O":
            raise TypeError(f"array {name!r} has dtype object: it would need pickle")
    root.mkdir(parents=True, exist_ok=True)
    body = dict(manifest)
    body.setdefault("version", version)
    body.setdefault("format_version", FORMAT_VERSION)
    body["arrays"] = {name: {"dtype": value.dtype.str, "shape": list(value.shape)}
                      for name, value in clean.items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        with open(tmp / ARRAYS_FILE, "wb") as handle:
            np.savez(handle, **clean)
            handle.flush()
            os.fsync(handle.fileno())
        with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=2, sort_keys=True, default=_jsonable)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, target)  # fails if target appeared meanwhile: never overwrite
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if target.exists():
            raise ArtifactExists(str(target)) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_version(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, manifest)`` of one version directory; no pickle is ever loaded."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    with np.load(path / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return arrays, manifest


def list_versions(root: str | Path) -> list[str]:
    """Complete versions under ``root``, oldest id first (temp dirs are hidden)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).exists())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(np.asarray(list(value) if isinstance(value, set) else value).tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
