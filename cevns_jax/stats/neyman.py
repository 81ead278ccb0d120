"""Neyman construction with critical values from toys: Feldman–Cousins regions on 1-D and 2-D grids
(docs/physics.md §5.11).

At each hypothesis θ of a grid the ordering statistic is the profile likelihood ratio with the best fit
in the physical region, t(θ) = χ²(θ, ν̂̂) − min_{θ′ physical} χ²(θ′, ν̂) (Feldman & Cousins, PRD 57, 3873
(1998), arXiv:physics/9711021, §IV; with nuisances profiled as in their §VI-D), i.e. the ``t`` of
:func:`cevns_jax.stats.toys.fit_counts` with the POIs bounded. The acceptance region of θ at confidence
level CL is {data : t ≤ c(θ)} with c(θ) the smallest value such that P(t ≤ c | θ) ≥ CL — the toys' CL
quantile (:func:`critical_values`), or for an enumerable outcome space (one Poisson bin) the exact value
from the outcomes' probabilities (:func:`weighted_critical_values`), which is FC's rule of adding
outcomes in order of the likelihood ratio until their probability reaches CL. The confidence region of
the observed data is {θ : t_obs(θ) ≤ c(θ)} (:func:`confidence_region`; :func:`interval` for one POI). The
whole construction with its toys run under the scan engine is :func:`cevns_jax.toyscan.neyman_construction`.

Toys whose fits did not converge enter with t = +∞ (outside every acceptance region), which can only
raise c(θ) and widen the region: conservative, and counted in :attr:`cevns_jax.toyscan.NeymanBelt.failure_fraction`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import CevnsInputError
from .teststats import TIE_TOLERANCE
from .toys import ToyModel, fit_counts

__all__ = ["critical_values", "weighted_critical_values", "confidence_region", "interval", "observed_statistics"]


def critical_values(t, cl: float, converged=None) -> np.ndarray:
    """c = the smallest toy value with P̂(t ≤ c) ≥ ``cl`` (last axis: toys); failed toys count as t = +∞."""
    if not 0.0 < cl < 1.0:
        raise CevnsInputError(f"confidence level must lie in (0, 1), got {cl!r}")
    t = np.asarray(t, dtype=float)
    if converged is not None:
        t = np.where(np.asarray(converged) > 0.5, t, np.inf)
    n = t.shape[-1]
    k = int(np.ceil(cl * n - 1e-9)) - 1  # the ⌈cl·n⌉-th smallest
    return np.sort(t, axis=-1)[..., k]


def weighted_critical_values(t, weights, cl: float) -> np.ndarray:
    """Exact critical values of an enumerated outcome space: outcomes (last axis) with probabilities
    ``weights`` are accepted in increasing t until their summed probability reaches ``cl``; c is the t
    of the last one accepted (ties enter together)."""
    t, w = np.asarray(t, dtype=float), np.broadcast_to(np.asarray(weights, dtype=float), np.shape(t))
    order = np.argsort(t, axis=-1, kind="stable")
    ts, cum = np.take_along_axis(t, order, -1), np.cumsum(np.take_along_axis(w, order, -1), axis=-1)
    if np.any(cum[..., -1] < cl):
        raise CevnsInputError("weighted critical values: the outcomes enumerated carry less probability than the "
                              "confidence level; enumerate more outcomes")
    first = np.argmax(cum >= cl - 1e-12, axis=-1)
    return np.take_along_axis(ts, first[..., None], -1)[..., 0]


def confidence_region(t_obs, critical, tie: float = TIE_TOLERANCE) -> np.ndarray:
    """Mask of the grid points accepted by the observed data: t_obs(θ) ≤ c(θ) (+ ``tie``, for discrete data)."""
    return np.asarray(t_obs) <= np.asarray(critical) + tie


def interval(values, accepted) -> tuple[float, float, bool]:
    """(lowest, highest accepted grid value, whether the accepted points are contiguous) of a 1-D region
    (NaN, NaN, False if none is accepted). The ends are grid points: their precision is the grid step."""
    values, accepted = np.asarray(values), np.asarray(accepted, dtype=bool)
    idx = np.flatnonzero(accepted)
    if idx.size == 0:
        return float("nan"), float("nan"), False
    return float(values[idx[0]]), float(values[idx[-1]]), bool(idx[-1] - idx[0] + 1 == idx.size)


@jax.jit
def _observed_batch(model: ToyModel, thetas, counts, centre):
    nu0 = jnp.zeros(len(model.nuisance_names))
    return jax.vmap(lambda th: fit_counts(model, counts, centre, th, nu0))(thetas)


def observed_statistics(model: ToyModel, thetas, counts=None, centre=None) -> dict:
    """:func:`cevns_jax.stats.toys.fit_counts` of the observed data (``counts``, default ``model.data``;
    auxiliary measurements ``centre``, default 0) at every hypothesis of ``thetas`` (shape (n, n_poi))."""
    counts = model.data if counts is None else jnp.asarray(counts, dtype=jnp.float64)
    centre = jnp.zeros(len(model.nuisance_names)) if centre is None else jnp.asarray(centre, dtype=jnp.float64)
    out = _observed_batch(model, jnp.asarray(thetas, dtype=jnp.float64).reshape(-1, len(model.poi_names)), counts,
                          centre)
    return {k: np.asarray(v) for k, v in out.items()}
