"""Fixed-shape batches: evaluate a compiled, vmapped function on any number of points without recompiling.

A jitted function compiles once per input shape. Host code that asks for a different number of points at
every step (root finding, refinement, landscapes) therefore pads its points to a fixed batch size (or a
multiple of it) by repeating the last point, runs the compiled program, and drops the padded rows. The
padding points are valid inputs (copies of a real one), so they never raise or produce NaN. One helper
serves the scan engine (:class:`cevns_jax.scan_program.ScanProgram`), the crossings' evaluations
(:func:`cevns_jax.stats.crossings.evaluate`) and the jobs in ``scans/``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["padded_size", "pad_points", "in_batches"]


def padded_size(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that holds ``n`` points (at least one ``multiple``)."""
    if multiple < 1:
        raise ValueError(f"padded_size: the batch size must be ≥ 1, got {multiple}")
    return max(1, -(-int(n) // multiple)) * multiple


def pad_points(points: dict, size: int) -> dict:
    """``{name: (size,) array}``: each (n,) column (n ≥ 1) extended to ``size`` by repeating its last point."""
    out = {}
    for k, v in points.items():
        v = np.atleast_1d(np.asarray(v))
        if v.size == 0 or v.size > size:
            raise ValueError(f"pad_points: column {k!r} has {v.size} points, cannot pad it to {size}")
        out[k] = np.pad(v, (0, size - v.size), mode="edge")
    return out


def in_batches(fn: Callable, points: dict, batch: int) -> dict:
    """``fn`` on ``points`` ({name: (n,) array}, n ≥ 1) in calls of exactly ``batch`` points each (the last
    padded), so ``fn`` sees one shape: ``fn(dict of (batch,) arrays) -> dict of arrays with a leading
    (batch,) axis`` (a bare array is returned as ``{"value": array}``). Returns the rows of the n real
    points, concatenated, as NumPy arrays."""
    points = {k: np.atleast_1d(np.asarray(v)) for k, v in points.items()}
    n = next(iter(points.values())).size
    parts = []
    for lo in range(0, n, batch):
        chunk = pad_points({k: v[lo:lo + batch] for k, v in points.items()}, batch)
        out = fn(chunk)
        out = out if isinstance(out, dict) else {"value": out}
        parts.append({k: np.asarray(v)[:min(batch, n - lo)] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
