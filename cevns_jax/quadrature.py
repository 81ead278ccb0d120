"""Recoil-energy quadrature that follows the integrand (docs/physics.md §3.4.1).

Every count is ∫ dT Σ_c dR_c/dT(T) R_i(T), integrated with Gauss–Legendre panels in the true recoil
energy T. A GL panel is accurate only where its integrand is smooth, so panel edges are placed on
every feature of the integrand:

* the base grid: log-spaced panels on [10⁻⁵ T_break, T_break] and linear panels on [T_break, T_end],
  where T_break = T_max of the prompt line (a kink of the flux-folded rate) and T_end = T_max of the
  Michel endpoint (the rate vanishes above);
* the true-recoil images of the analysis-bin edges and of the efficiency's feature points when the
  detector resolution is sharper than a panel (high-resolution germanium, an ideal detector): the
  response then steps in T at those images (for an ideal detector the image *is* the integration limit);
  a sharp Gaussian step of width σ_T gets satellites at ±1.5, ±3, ±6 σ_T;

Panel edges are sorted as traced values, so the program has a fixed shape (``jit``/``vmap``/``grad``
work) and the edges move with the parameters that place them. Nodes per panel and panel counts have a
measured error target (``tests/test_accuracy.py``: doubling them changes no bin by more than 1e-4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LOG_PANELS",
    "LINEAR_PANELS",
    "NODES_PER_PANEL",
    "LOWEST_FRACTION",
    "EDGE_SATELLITES",
    "gauss_legendre_panels",
    "base_edges",
    "recoil_of_quenched_keV",
    "response_breakpoints",
    "panel_nodes",
    "sharp_response_satellites",
]

LOG_PANELS = 24
LINEAR_PANELS = 8
NODES_PER_PANEL = 8
LOWEST_FRACTION = 1e-5
"""Lowest recoil on the grid as a fraction of T_break; the neglected slice holds < 1e-5 of the rate."""
EDGE_SATELLITES = (-6.0, -3.0, -1.5, 0.0, 1.5, 3.0, 6.0)
"""Panel edges around a sharp response step, in units of the resolution at the step (±2, ±4 alone are as
accurate in value, but the resolution gradient then kinks at the 2e-4 level as satellites cross base panels)."""
SHARPNESS = 0.1
"""A resolution is sharp where σ_T < 0.1 × the base recoil panel at a bin edge's image: 8 GL nodes no
longer resolve the step. Measured (σ_T/panel, change of the worst bin with breakpoints): COH-Ge-mini
0.02, 1.5e-2; COH-CryoCsI and NaIvETe 0.20, COH-Ar-750 0.21, CENNS-10 0.27, CsI 0.37–0.44: < 1e-6."""
FEATURE_STEP = 1.0
"""Spacing (in scale lengths) of the efficiency feature points imaged into T for sharp resolutions."""

_GL_X, _GL_W = np.polynomial.legendre.leggauss(NODES_PER_PANEL)


def gauss_legendre_panels(edges):
    """GL nodes and weights on consecutive panels; ``edges`` (n_iso, n_edges) sorted → (n_iso, n_nodes)."""
    lo, hi = edges[:, :-1, None], edges[:, 1:, None]
    half = 0.5 * (hi - lo)
    nodes = lo + half * (_GL_X + 1.0)
    weights = half * _GL_W
    n_iso = edges.shape[0]
    return nodes.reshape(n_iso, -1), weights.reshape(n_iso, -1)


def base_edges(T_break, T_end, refine: int = 1):
    """Base panel edges (n_iso, n): log-spaced on [10⁻⁵ T_break, T_break], linear on [T_break, T_end]."""
    log_frac = np.linspace(np.log(LOWEST_FRACTION), 0.0, LOG_PANELS * refine + 1)
    log_edges = T_break[:, None] * jnp.exp(log_frac)
    lin_frac = np.linspace(0.0, 1.0, LINEAR_PANELS * refine + 1)[1:]
    lin_edges = T_break[:, None] + (T_end - T_break)[:, None] * lin_frac
    return jnp.concatenate([log_edges, lin_edges], axis=1)


def panel_nodes(T_break, T_end, extra=None, refine: int = 1):
    """GL nodes and weights [MeV] (n_iso, n_T) on the base panels split at the ``extra`` points.

    ``extra`` (n_iso, k) [MeV] is clipped into the grid's range, merged and sorted; points outside the
    range add zero-width panels (weight 0).
    """
    edges = base_edges(T_break, T_end, refine)
    if extra is not None and extra.shape[-1]:
        lo, hi = edges[:, :1], edges[:, -1:]
        edges = jnp.sort(jnp.concatenate([edges, jnp.clip(extra, lo, hi)], axis=1), axis=1)
    return gauss_legendre_panels(edges)


def recoil_of_quenched_keV(quenching, E_keV, Z, A, T_lo_keV, T_hi_keV, iterations: int = 64):
    """True recoil T [keVnr] whose quenched energy is ``E_keV`` (per isotope: Z, A of shape (n_iso, 1)).

    Bisection in log T on [T_lo, T_hi] (the quenched energy increases with T), then one Newton step,
    which makes the result differentiable with the implicit-function derivative (−∂_θE/∂_TE). Values
    outside the range return the nearer end.
    """
    E_keV = jnp.broadcast_to(E_keV, jnp.broadcast_shapes(jnp.shape(E_keV), jnp.shape(Z)))
    ee = lambda T: quenching.electron_equivalent_keV(T, Z, A)  # noqa: E731
    lo = jnp.full_like(E_keV, jnp.log(T_lo_keV)) if jnp.ndim(T_lo_keV) == 0 else jnp.broadcast_to(jnp.log(T_lo_keV), E_keV.shape)
    hi = jnp.full_like(E_keV, jnp.log(T_hi_keV)) if jnp.ndim(T_hi_keV) == 0 else jnp.broadcast_to(jnp.log(T_hi_keV), E_keV.shape)
    target = jax.lax.stop_gradient(E_keV)

    def step(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        above = jax.lax.stop_gradient(ee(jnp.exp(mid))) >= target
        return jnp.where(above, a, mid), jnp.where(above, mid, b)

    a, b = jax.lax.fori_loop(0, iterations, step, (jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)))
    T0 = jax.lax.stop_gradient(jnp.exp(0.5 * (a + b)))
    value, slope = jax.jvp(ee, (T0,), (jnp.ones_like(T0),))
    safe = jnp.where(slope > 0, slope, 1.0)
    return jnp.where(slope > 0, T0 - (value - E_keV) / safe, T0)


def response_breakpoints(detector, Z, A, T_lo_MeV, T_hi_MeV):
    """Recoil images [MeV] (n_iso, k) of the bin edges (± satellites) and efficiency points, or None.

    Only for detectors whose resolution is sharper than a recoil panel (``binning.recoil_satellites``
    set when the experiment is built, see :func:`cevns_jax.experiment.sharp_response`).
    """
    binning = detector.binning
    if not binning.recoil_satellites:
        return None
    smear, eff = detector.smearing, detector.efficiency
    per_keV = smear.mean_observed(jnp.asarray(1.0))  # observed units per keVee (1 or the light yield)
    x = binning.energy_edges
    sat = jnp.asarray(binning.recoil_satellites)
    width = smear.width_observed(jnp.maximum(x, 0.0) / per_keV)
    x_all = (x[:, None] + sat * width[:, None]).reshape(-1)
    x_all = jnp.concatenate([x_all, eff.points(FEATURE_STEP)])
    E = jnp.maximum(x_all, 0.0) / per_keV
    T_keV = recoil_of_quenched_keV(detector.quenching, E[None, :], Z, A, T_lo_MeV * 1e3, T_hi_MeV * 1e3)
    return T_keV * 1e-3


@jax.jit
def _edge_recoils_and_widths(target, quenching, smearing, x_observed):
    """For observed bin edges ``x_observed``: per isotope, the true recoils T [keVnr] whose quenched
    energy they are, the resolution mapped to recoil σ_T [keVnr], T_break and T_end [keVnr], and the
    smearing width at 1 keVee (0 for an ideal response). One compiled program per detector structure
    (eagerly this was ~50 small compilations at every experiment load)."""
    from . import constants as C
    from .kinematics import max_recoil_energy

    M = target.mass_MeV
    T_break = max_recoil_energy(C.E_NU_MU_PROMPT, M)[:, None] * 1e3
    T_end = max_recoil_energy(C.E_NU_MAX_MICHEL, M)[:, None] * 1e3
    Z, A = target.Z[:, None], (target.Z + target.N)[:, None]
    per_keV = smearing.mean_observed(jnp.asarray(1.0))  # observed units per keVee
    E_keV = jnp.maximum(x_observed, 1e-300)[None, :] / per_keV
    T = recoil_of_quenched_keV(quenching, E_keV, Z, A, LOWEST_FRACTION * T_break, T_end)
    _, dE_dT = jax.jvp(lambda t: quenching.electron_equivalent_keV(t, Z, A), (T,), (jnp.ones_like(T),))
    sigma_T = smearing.width_observed(E_keV) / (per_keV * jnp.maximum(dE_dT, 1e-300))
    return T, sigma_T, T_break, T_end, smearing.width_observed(jnp.asarray(1.0))


def sharp_response_satellites(target, quenching, smearing, energy_edges) -> tuple[float, ...]:
    """Static choice of :attr:`Binning.recoil_satellites` from concrete detector values.

    An ideal resolution gets the bin-edge images alone ``(0,)``; a resolution whose width at some bin
    edge, mapped to true recoil (σ_T = σ_x / (dx/dT)), is narrower than the base recoil panel there gets
    :data:`EDGE_SATELLITES`; a broader one needs no breakpoints ``()``.
    """
    x = np.asarray(energy_edges, dtype=float)
    x = x[x > 0]
    T, sigma_T, T_break, T_end, width_1keV = (np.asarray(a) for a in _edge_recoils_and_widths(
        target, quenching, smearing, jnp.asarray(x if x.size else np.ones(1))))
    if width_1keV == 0.0:
        return (0.0,)
    if x.size == 0:
        return ()
    ratio = np.exp(-np.log(LOWEST_FRACTION) / LOG_PANELS) - 1.0
    panel = np.where(T < T_break, T * ratio, (T_end - T_break) / LINEAR_PANELS)
    inside = (T > LOWEST_FRACTION * T_break) & (T < T_end)
    return EDGE_SATELLITES if np.any(inside & (sigma_T < SHARPNESS * panel)) else ()
