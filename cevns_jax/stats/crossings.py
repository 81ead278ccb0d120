"""Converged exclusion limits: crossings of Δχ² with its level solved by root finding, curves refined
along the mass axis until they no longer change (docs/physics.md §5.9).

A raster of Δχ² over (mass, coupling) only brackets the limits: near a limit Δχ² grows like g⁴ (or
faster), so reading the crossing off a raster by linear interpolation biases it by percent, and a
mass grid coarser than the curve's own structure (the oscillations of a sterile-neutrino limit) moves
the quoted numbers by factors. Here:

* every sign change of Δχ² − level along the coupling raster at each mass is a bracket, and each
  bracket is solved in u = ln g with the Illinois variant of regula falsi on h(u) = ln(Δχ²/level)
  (nearly linear in u where Δχ² ∝ gⁿ, so it converges in a few steps), all brackets of all masses
  and curves at once (one compiled, ``vmap``-ed evaluation per iteration), to :data:`XTOL` in ln g;
  every crossing is kept (islands: the limit is the first, further ones bound allowed islands);
* :func:`refine_masses` bisects every mass interval (geometrically) whose midpoint limit differs from
  the log-log interpolation of its ends by more than ``rtol``, or whose number of crossings changes,
  until none does (or ``max_rounds``), so a drawn or quoted curve is converged to ``rtol`` between
  its points.

Stated accuracy: crossings to |Δ ln g| < :data:`XTOL` (1e-7) given the point function; curves to
``rtol`` (default 0.5%) between mass points; islands narrower than the coupling raster's step can be
missed (choose the raster finer than the narrowest island you need).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..batches import in_batches
from ..errors import CevnsInputError

__all__ = ["raster_crossings", "XTOL", "MAX_ITERATIONS", "BATCH", "LimitCurves", "evaluate", "brackets_from_raster", "solve_brackets", "solve_crossings",
           "refine_masses"]

XTOL = 1e-7
"""Root-finding tolerance on ln(coupling) (relative 1e-7 in the coupling)."""
MAX_ITERATIONS = 60
"""Illinois iterations at most (typically 5–10 reach :data:`XTOL`)."""
BATCH = 32
"""Points per compiled evaluation (rasters are split into batches of this size, the last padded)."""
_FLOOR = 1e-30  # Δχ²/level below this is clipped for the logarithm (Δχ² ≈ 0 far below a limit)


@partial(jax.jit, static_argnums=0)
def _evaluate(fn: Callable, masses, couplings):
    """``fn`` at each (mass, coupling) pair: {label: (n,)}; compiled once per function and batch size."""
    out = jax.vmap(fn)(masses, couplings)
    return out if isinstance(out, dict) else {"value": out}


def evaluate(fn: Callable, masses, couplings) -> dict:
    """``fn(mass, coupling)`` at each pair: {label: (n,) NumPy array}. Evaluated in batches of exactly
    :data:`BATCH` points (the last one padded), so every call reuses one compiled program per ``fn``.

    ``fn`` may instead be a batched evaluator, any object with ``evaluate(masses, couplings) -> {label:
    (n,) array}`` (e.g. a scan's own compiled program, :meth:`cevns_jax.scan.ScanResult.evaluate`, so the
    root finding compiles nothing more); it is used as it is."""
    masses, couplings = np.atleast_1d(np.asarray(masses, dtype=float)), np.atleast_1d(np.asarray(couplings, dtype=float))
    if hasattr(fn, "evaluate"):
        out = fn.evaluate(masses, couplings)
        return {k: np.asarray(v) for k, v in (out if isinstance(out, dict) else {"value": out}).items()}
    if masses.size == 0:  # nothing asked: the labels from one evaluation, no rows
        return {k: v[:0] for k, v in evaluate(fn, [1.0], [1.0]).items()}
    return in_batches(lambda b: _evaluate(fn, jnp.asarray(b["m"], dtype=jnp.float64), jnp.asarray(b["g"], dtype=jnp.float64)),
                      {"m": masses, "g": couplings}, BATCH)


def _h(delta_chi2, level):
    return np.log(np.maximum(np.asarray(delta_chi2, dtype=float), _FLOOR * level) / level)


def brackets_from_raster(couplings, raster, level: float):
    """Brackets of Δχ² = level along the coupling axis: (row index, ln g_lo, ln g_hi, h_lo, h_hi) arrays.

    ``raster``: Δχ² of shape (n_rows, n_couplings) on positive, increasing ``couplings``."""
    g = np.asarray(couplings, dtype=float)
    if g.ndim != 1 or g.size < 2 or np.any(g <= 0) or np.any(np.diff(g) <= 0):
        raise CevnsInputError("limits: the coupling raster must be positive and increasing, with at least 2 points")
    r = np.atleast_2d(np.asarray(raster, dtype=float))
    if r.shape[-1] != g.size:
        raise CevnsInputError(f"limits: raster has {r.shape[-1]} couplings, the axis {g.size}")
    if not np.all(np.isfinite(r)):
        raise CevnsInputError("limits: the Δχ² raster holds NaN or infinite values")
    h = _h(r, level)
    rows, cols = np.nonzero(np.sign(h[:, :-1]) * np.sign(h[:, 1:]) < 0)
    u = np.log(g)
    return rows, u[cols], u[cols + 1], h[rows, cols], h[rows, cols + 1]


def solve_brackets(fn: Callable, label, masses, lo, hi, h_lo, h_hi, level: float, xtol: float = XTOL):
    """Solve Δχ²(mass, g) = level in each bracket [e^lo, e^hi] (Illinois regula falsi in ln g).

    ``fn(mass, coupling) -> {label: Δχ²}`` (or a scalar, label ``"value"``); ``label``: one label, or
    one per bracket (brackets of several labels of one function solved together). All brackets advance
    together, one batched evaluation per iteration. Returns the crossings g [same units as the axis]."""
    a, b, fa, fb = (np.array(x, dtype=float) for x in (lo, hi, h_lo, h_hi))
    masses = np.asarray(masses, dtype=float)
    labels = np.broadcast_to(np.asarray(label, dtype=object), a.shape)
    active = np.abs(b - a) > xtol
    for _ in range(MAX_ITERATIONS):
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        c = b[idx] - fb[idx] * (b[idx] - a[idx]) / (fb[idx] - fa[idx])
        c = np.clip(c, np.minimum(a[idx], b[idx]), np.maximum(a[idx], b[idx]))
        values = evaluate(fn, masses[idx], np.exp(c))
        fc = _h(np.array([values[k][i] for i, k in enumerate(labels[idx])], dtype=float), level)
        flip = fc * fb[idx] < 0
        a[idx] = np.where(flip, b[idx], a[idx])
        fa[idx] = np.where(flip, fb[idx], 0.5 * fa[idx])  # Illinois: halve the retained end's value
        b[idx], fb[idx] = c, fc
        active[idx] = (np.abs(b[idx] - a[idx]) > xtol) & (fc != 0)
    if active.any():
        raise CevnsInputError(f"limits: {int(active.sum())} crossing(s) of {sorted(set(labels[active]))} did not converge to "
                              f"{xtol:g} in ln g within {MAX_ITERATIONS} iterations")
    return np.exp(b)


@dataclass
class LimitCurves:
    """Solved crossings: ``masses`` (sorted) and, per label, one list of crossings (ascending g) per mass.

    ``limit(label)`` is the first crossing at each mass (NaN where Δχ² never reaches the level)."""

    masses: np.ndarray
    crossings: dict
    converged: bool = True
    """False when :func:`refine_masses` stopped at ``max_rounds`` with intervals still failing."""

    def limit(self, label: str) -> np.ndarray:
        return np.array([c[0] if c else np.nan for c in self.crossings[label]])


def solve_crossings(fn: Callable, masses, couplings, level: float, raster: dict | None = None) -> LimitCurves:
    """Every crossing of Δχ² = level at each mass, solved (not interpolated) for every label of ``fn``.

    ``raster``: {label: Δχ² (n_masses, n_couplings)} already computed on the grid (e.g. a resumable
    :func:`cevns_jax.scan.run_scan`); computed here when omitted."""
    masses, couplings = np.asarray(masses, dtype=float), np.asarray(couplings, dtype=float)
    if raster is None:
        mm, gg = np.meshgrid(masses, couplings, indexing="ij")
        flat = evaluate(fn, mm.ravel(), gg.ravel())
        raster = {k: v.reshape(mm.shape) for k, v in flat.items()}
    brackets = {label: brackets_from_raster(couplings, grid, level) for label, grid in raster.items()}
    if not brackets:
        return LimitCurves(masses, {})
    labels = np.concatenate([np.full(b[0].size, k, dtype=object) for k, b in brackets.items()])
    rows, lo, hi, h_lo, h_hi = (np.concatenate([b[j] for b in brackets.values()]) for j in range(5))
    roots = solve_brackets(fn, labels, masses[rows], lo, hi, h_lo, h_hi, level) if rows.size else np.zeros(0)
    out = {label: [[] for _ in masses] for label in raster}
    for label, r, g in zip(labels, rows, roots):  # every label's brackets solved together
        out[label][r].append(float(g))
    return LimitCurves(masses, {k: [sorted(p) for p in v] for k, v in out.items()})


def _needs_split(left: list, mid: list, right: list, u_left: float, u_mid: float, u_right: float, rtol: float,
                 resolve_width: float = 0.0) -> bool:
    if not (len(left) == len(mid) == len(right)):
        return u_right - u_left > resolve_width  # an island or a limit starts or ends inside the interval
    w = (u_mid - u_left) / (u_right - u_left)
    for a, m, b in zip(left, mid, right):
        guess = (1 - w) * np.log(a) + w * np.log(b)
        if abs(np.log(m) - guess) > np.log1p(rtol):
            return True
    return False


def refine_masses(fn: Callable, curves: LimitCurves, couplings, level: float, *, rtol: float = 5e-3,
                  max_rounds: int = 6, solve: Callable | None = None, resolve_width: float = 0.0) -> LimitCurves:
    """Insert (geometric) midpoints into every mass interval where any label's crossings differ from the
    log-log interpolation of the interval's ends by more than ``rtol``, or their number changes; repeat
    on the new intervals, at most ``max_rounds`` times. Returns the refined curves (masses sorted).

    ``resolve_width``: an interval narrower than this in ln(mass) where the number of crossings changes (a
    limit or an island begins or ends inside it) counts as resolved (default 0: bisected until
    ``max_rounds``); the place of the change is then known to that width.

    ``solve(masses) -> LimitCurves``: how crossings at new masses are found (default:
    :func:`solve_crossings` of ``fn`` on the ``couplings`` raster; e.g. a program that solves them itself)."""
    solve = solve or (lambda m: solve_crossings(fn, m, couplings, level))
    masses = list(np.asarray(curves.masses, dtype=float))
    cross = {k: list(v) for k, v in curves.crossings.items()}
    todo = list(range(len(masses) - 1))  # intervals (i, i+1) to test
    for _ in range(max_rounds):
        if not todo:
            break
        mids = np.array([np.sqrt(masses[i] * masses[i + 1]) for i in todo])
        new = solve(mids)
        split = []
        for j, i in enumerate(todo):
            u = np.log([masses[i], mids[j], masses[i + 1]])
            if any(_needs_split(cross[k][i], new.crossings[k][j], cross[k][i + 1], *u, rtol, resolve_width) for k in cross):
                split.append(j)
        # insert every tested midpoint whose interval failed (and keep the others out: converged)
        order = sorted(split, key=lambda j: todo[j], reverse=True)
        inserted = []
        for j in order:
            i = todo[j]
            masses.insert(i + 1, float(mids[j]))
            for k in cross:
                cross[k].insert(i + 1, new.crossings[k][j])
            inserted.append(i)
        # the two halves of each split interval are tested next round (indices after all insertions)
        inserted = sorted(inserted)
        todo = []
        for n, i in enumerate(inserted):
            pos = i + n  # earlier insertions shift later indices
            todo += [pos, pos + 1]
    return LimitCurves(np.array(masses), cross, converged=not todo)


def raster_crossings(couplings: np.ndarray, delta_chi2: np.ndarray, level: float = 2.706) -> list[list[float]]:
    """All crossings of Δχ² = level along the coupling axis, for each row (mass) of ``delta_chi2``.

    Returns one list per mass (ascending couplings). On a positive axis the crossing is interpolated
    linearly in (ln g, ln Δχ²), exact for Δχ² ∝ gⁿ (linear interpolation of Δχ² itself is biased by
    percent where Δχ² ∝ g⁴); still a raster estimate: quoted limits are solved with
    :func:`cevns_jax.stats.crossings.solve_crossings`. More crossings appear where Δχ² is not monotonic (e.g.
    the universal Z′'s allowed island).
    """
    positive = bool(np.all(np.asarray(couplings) > 0))
    x = np.log(couplings) if positive else np.asarray(couplings, dtype=float)
    out = []
    for row in np.atleast_2d(delta_chi2):
        d = np.log(np.maximum(row, 1e-30 * level) / level) if positive else row - level
        idx = np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) < 0)[0]
        cross = [x[i] + (x[i + 1] - x[i]) * (-d[i]) / (d[i + 1] - d[i]) for i in idx]
        out.append([float(np.exp(c)) if positive else float(c) for c in cross])
    return out
