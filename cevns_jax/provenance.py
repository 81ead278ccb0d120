"""Content hashes that identify what a stored result was computed from.

A scan's values depend on the experiments (every leaf and every static field), the model family and
its fixed parameters, the priors, the grid and the code. :func:`content_hash` turns any such pytree
(pytree dataclasses, dicts, lists, arrays, numbers, strings) into a SHA-256 of its structure and the
exact bytes of its leaves; :func:`source_hash` hashes the package's own source and data files, so a
result computed by other code is never taken for this code's. Both are pure and deterministic across
processes and machines (no Python ``hash``, no object ids).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import jax
import numpy as np

__all__ = ["content_hash", "source_hash", "PACKAGE_ROOT"]

PACKAGE_ROOT = Path(__file__).resolve().parent


def _leaf_bytes(leaf) -> bytes:
    if isinstance(leaf, (str, bytes)):
        return (leaf if isinstance(leaf, bytes) else leaf.encode()) + b"|str"
    if leaf is None:
        return b"None"
    a = np.asarray(leaf)
    if a.dtype == object:
        return repr(leaf).encode() + b"|obj"
    return a.dtype.str.encode() + repr(a.shape).encode() + np.ascontiguousarray(a).tobytes()


def content_hash(obj) -> str:
    """SHA-256 (hex) of a pytree: its tree structure (static fields included, through their ``repr``),
    every leaf's path, dtype, shape and bytes. Equal inputs give equal hashes in any process;
    changing any leaf value, shape, dtype or static field changes the hash."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(obj, is_leaf=lambda x: x is None)
    h = hashlib.sha256(str(treedef).encode())
    for path, leaf in leaves:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(_leaf_bytes(leaf))
    return h.hexdigest()


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 (hex) of the package's Python sources and shipped data files (paths and contents).

    Cached per process: the installed code does not change while it runs."""
    h = hashlib.sha256()
    for path in sorted(p for p in PACKAGE_ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        if path.suffix in (".pyc", ".pyo"):
            continue
        h.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
