"""Analysis bins and the sub-bin integration rule (docs/physics.md §3.4.1).

A binned count is ∫_bin dx p(x) ε(x): a distribution p (smearing of one recoil, or an arrival-time profile)
times an efficiency ε (in the observed variable, or in time). Every bin is split into sub-bins
(:func:`subdivide`: the bin edges, equal divisions and the efficiency's feature points), and each sub-bin
contributes its exact probability ΔF times ε at the *conditional mean* x̄ of x in the sub-bin, plus
½ε''(x̄) times its conditional variance (:func:`binned_with_efficiency`). Mean and variance are exact,
from the CDF F of p and its two antiderivatives G' = F, H' = G, so the rule is exact for an efficiency
quadratic on each sub-bin whatever p is: for a sharp p, x̄ → its location; for a broad one, the sub-bin
centre. Every edge and feature point is a traced leaf (thresholds, turn-ons and bin edges stay
differentiable); only the numbers of sub-bins and the bin each feature point refines are static.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from ._pytree import pytree_dataclass, static_field

__all__ = ["Binning", "assign_points", "binned_with_efficiency", "gaussian_antiderivatives", "subdivide",
           "sum_sub_bins"]


def _phi(z):
    """Standard normal density."""
    return jnp.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)


def gaussian_antiderivatives(d, sigma):
    """(Φ(z), dΦ + σφ, ½[(d² + σ²)Φ + dσφ]) with z = d/σ: a Gaussian CDF and its two antiderivatives."""
    z = d / sigma
    Phi, phi = ndtr(z), _phi(z)
    return Phi, d * Phi + sigma * phi, 0.5 * ((d**2 + sigma**2) * Phi + d * sigma * phi)



# ----------------------------------------------------------------------------------------------
# Bins and sub-bins
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class Binning:
    """Analysis bins: edges in the observed variable and in time [ns], and their sub-binning.

    * ``n_sub_energy``: equal sub-bins per energy bin (an int, or one int per bin);
    * ``point_bins``: for each of the efficiency's feature points (``efficiency.points()``), the energy bin
      it refines (−1: outside the analysis range), fixed when the experiment is built
      (:func:`assign_points`); the points themselves stay traced, clipped into their bin;
    * ``n_sub_time``: equal sub-bins per time bin (the timing efficiency is sampled at their midpoints);
    * ``recoil_satellites``: offsets (in resolution widths) of the recoil-panel edges placed around the
      true-recoil image of every bin edge; empty when the resolution is broader than a recoil panel
      (``quadrature.response_breakpoints``);
    * ``refine``: a global refinement factor (2 doubles every quadrature of the forward model: sub-bins,
      the turn-on grid density, recoil panels, energy folding), used by the convergence tests.
    """

    energy_edges: jnp.ndarray
    time_edges_ns: jnp.ndarray
    n_sub_energy: int | tuple = static_field(default=1)
    n_sub_time: int = static_field(default=1)
    point_bins: tuple = static_field(default=())
    recoil_satellites: tuple = static_field(default=())
    refine: int = static_field(default=1)


def _sub_counts(n_sub, n_bins: int, refine: int = 1) -> np.ndarray:
    counts = np.broadcast_to(np.asarray(n_sub, dtype=int), (n_bins,)) * refine
    if np.any(counts < 1):
        raise ValueError(f"sub-bins per bin must be >= 1, got {n_sub}")
    return counts


def _refined_points(points, refine: int):
    """Feature points with ``refine − 1`` extra points between consecutive ones (same static layout)."""
    if refine == 1 or points.shape[0] < 2:
        return points
    frac = jnp.arange(refine) / refine
    inner = (points[:-1, None] + (points[1:] - points[:-1])[:, None] * frac).reshape(-1)
    return jnp.concatenate([inner, points[-1:]])


def assign_points(points, edges) -> tuple[int, ...]:
    """Static bin of each feature point: the bin that contains it (concrete values), else −1."""
    p, e = np.asarray(points, dtype=float), np.asarray(edges, dtype=float)
    idx = np.searchsorted(e, p, side="right") - 1
    return tuple(int(i) if 0 <= i < e.size - 1 else -1 for i in idx)


def subdivide(edges, n_sub, points=None, point_bins: tuple = (), refine: int = 1):
    """Sub-bin edges and the static bin index of every sub-bin.

    Each bin [lo, hi] is split into ``n_sub`` equal parts and at every feature point assigned to it
    (clipped into the bin). Returns ``(fine, segments)``: sorted edges of shape (n_fine + 1,) and a
    NumPy array (n_fine,) with the bin of each sub-bin (bins are contiguous in ``fine``).
    """
    n_bins = edges.shape[0] - 1
    counts = _sub_counts(n_sub, n_bins, refine)
    lo, hi = edges[:-1], edges[1:]
    owner = np.repeat(np.arange(n_bins), counts - 1)
    frac = np.concatenate([np.arange(1, c) / c for c in counts]) if owner.size else np.zeros(0)
    parts = [edges, lo[owner] + (hi - lo)[owner] * frac]
    extra = np.zeros(n_bins, dtype=int)
    if points is not None and point_bins:
        pb = np.repeat(np.asarray(point_bins), refine)[: (len(point_bins) - 1) * refine + 1] if refine > 1 else np.asarray(point_bins)
        pts = _refined_points(points, refine)
        keep = np.flatnonzero(pb >= 0)
        if keep.size:
            b = pb[keep]
            parts.append(jnp.clip(pts[keep], lo[b], hi[b]))
            extra = np.bincount(b, minlength=n_bins)
    fine = jnp.sort(jnp.concatenate(parts))
    segments = np.repeat(np.arange(n_bins), counts + extra)
    return fine, segments


def sum_sub_bins(values, segments: np.ndarray, n_bins: int):
    """Sum sub-bin values (leading axis) into their bins."""
    return jax.ops.segment_sum(values, jnp.asarray(segments), num_segments=n_bins, indices_are_sorted=True)


def _second_derivative(f, x):
    """f''(x) of an elementwise function by nested forward-mode differentiation."""
    first = lambda y: jax.jvp(f, (y,), (jnp.ones_like(y),))[1]  # noqa: E731
    return jax.jvp(first, (x,), (jnp.ones_like(x),))[1]


def binned_with_efficiency(cdf_at, efficiency, edges, n_sub, *, antiderivatives_at=None, points=None,
                           point_bins: tuple = (), refine: int = 1):
    """∫_bin dx p(x) ε(x) for every bin, summed over sub-bins; shape (n_bins, ...).

    ``cdf_at(x)`` returns the CDF at points x of shape (n,) with any trailing batch shape (n, ...).
    With ``antiderivatives_at`` (returning F, G, H with G' = F, H' = G) each sub-bin contributes
    ΔF·[ε(x̄) + ½ε''(x̄)·v] with x̄ and v the mean and variance of x within the sub-bin under p
    (exact moments from F, G, H): exact for a quadratic ε whatever p; the error is O(h⁴ ε⁽⁴⁾) for a
    broad p and O(σ⁴ ε⁽⁴⁾) for a sharp one. Without it, ε at the sub-bin midpoint (smooth time profiles).
    """
    fine, segments = subdivide(edges, n_sub, points, point_bins, refine)
    if antiderivatives_at is None:
        cdf = cdf_at(fine)
        prob = cdf[1:] - cdf[:-1]
        mid = 0.5 * (fine[1:] + fine[:-1])
        weighted = prob * efficiency(mid).reshape((-1,) + (1,) * (prob.ndim - 1))
        return sum_sub_bins(weighted, segments, edges.shape[0] - 1)
    F, G, H = antiderivatives_at(fine)
    prob = F[1:] - F[:-1]
    batch = (1,) * (prob.ndim - 1)
    lo = fine[:-1].reshape((-1,) + batch)
    w = (fine[1:] - fine[:-1]).reshape((-1,) + batch)
    m1 = w * F[1:] - (G[1:] - G[:-1])  # ∫ (x − lo) dF over the sub-bin
    m2 = w**2 * F[1:] - 2.0 * (w * G[1:] - (H[1:] - H[:-1]))  # ∫ (x − lo)² dF
    ok = prob > 1e-12
    safe = jnp.where(ok, prob, 1.0)
    offset = jnp.where(ok, jnp.clip(m1 / safe, 0.0, w), 0.5 * w)
    var = jnp.where(ok, jnp.clip(m2 / safe - offset**2, 0.0, 0.25 * w**2), w**2 / 12.0)
    x = lo + offset
    value = efficiency(x) + 0.5 * _second_derivative(efficiency, x) * var
    return sum_sub_bins(prob * value, segments, edges.shape[0] - 1)
