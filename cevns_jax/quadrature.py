"""Recoil-energy quadrature that follows the integrand (docs/physics.md §3.4.1).

Every count is ∫ dT Σ_c dR_c/dT(T) R_i(T), integrated with Gauss–Legendre panels in the true recoil
energy T. A GL panel is accurate only where its integrand is smooth, so panel edges are placed on
every feature of the integrand:

* the base grid: log-spaced panels on [T_floor, T_break] and linear panels on [T_break, T_end],
  where T_break = T_max of the prompt line (a kink of the flux-folded rate) and T_end = T_max of the
  Michel endpoint (the rate vanishes above); T_floor is the response floor (:func:`response_floor`,
  at least 10⁻⁵ T_break), below which no bin sees more than 1e-12 of an event. Isotopes that quench
  alike share one grid holding all their kinks (:func:`shared_base_edges`);
* the true-recoil images of the analysis-bin edges and of the efficiency's feature points when the
  detector resolution is sharper than a panel (high-resolution germanium, an ideal detector): the
  response then steps in T at those images (for an ideal detector the image *is* the integration limit);
  a sharp Gaussian step of width σ_T gets satellites at ±2, ±6 σ_T;

Panel edges are sorted as traced values, so the program has a fixed shape (``jit``/``vmap``/``grad``
work) and the edges move with the parameters that place them. Nodes per panel and panel counts have a
measured error target (``tests/test_accuracy.py``: doubling them changes no bin by more than 1e-4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._pytree import run_once

__all__ = [
    "LOG_PANELS",
    "LINEAR_PANELS",
    "NODES_PER_PANEL",
    "LOWEST_FRACTION",
    "EDGE_SATELLITES",
    "gauss_legendre_panels",
    "base_edges",
    "shared_base_edges",
    "recoil_of_quenched_keV",
    "response_floor",
    "response_ceiling",
    "recoil_ceiling",
    "recoil_log_panels",
    "response_breakpoints",
    "panel_nodes",
    "sharp_response_satellites",
]

LOG_PANELS = 24
LINEAR_PANELS = 8
NODES_PER_PANEL = 8
LOWEST_FRACTION = 1e-5
"""Lowest recoil on the grid as a fraction of T_break; the neglected slice holds < 1e-5 of the rate."""
EDGE_SATELLITES = (-6.0, -2.0, 2.0, 6.0)
"""Panel edges around a sharp response step, in units of the resolution σ_T at the step. The outer pair at
±6σ_T leaves a tail of 1e-9 to the base panels beyond (with ±4σ_T outermost, 3e-5, the resolution
gradient kinked at the 2e-4 level as satellites crossed base panels); 8 GL nodes on [2, 6]σ_T and
[−2, 2]σ_T integrate a Gaussian step times a smooth factor to 4e-9 σ_T of its height whatever base edge
falls among them, the same order as the denser set (−6, −3, −1.5, 0, 1.5, 3, 6) used before (1e-10), and
its jumps as a base edge moves are below 4e-9 (measured against adaptive quadrature)."""
SHARPNESS = 0.1
"""A resolution is sharp where σ_T < 0.1 × the base recoil panel at a bin edge's image: 8 GL nodes no
longer resolve the step. Measured (σ_T/panel, change of the worst bin with breakpoints): COH-Ge-mini
0.02, 1.5e-2; COH-CryoCsI and NaIvETe 0.20, COH-Ar-750 0.21, CENNS-10 0.27, CsI 0.37–0.44: < 1e-6."""
FEATURE_STEP = 2.0
"""Spacing (in scale lengths) of the efficiency feature points imaged into T for sharp resolutions: a
logistic turn-on smeared by the resolution is integrated by 8-node panels to the same error (6e-8 of the
step, set by the ±10-scale ends) with images every 1, 2 or 4 scale lengths."""
RESPONSE_FLOOR = 1e-12
"""Recoils whose chance of being observed above the lowest analysis-bin edge is below this are left off
the recoil grid (:func:`response_floor`): their share of any bin is below 1e-12 of a unit response."""

_GL_X, _GL_W = np.polynomial.legendre.leggauss(NODES_PER_PANEL)


def gauss_legendre_panels(edges):
    """GL nodes and weights on consecutive panels; ``edges`` (n_iso, n_edges) sorted → (n_iso, n_nodes)."""
    lo, hi = edges[:, :-1, None], edges[:, 1:, None]
    half = 0.5 * (hi - lo)
    nodes = lo + half * (_GL_X + 1.0)
    weights = half * _GL_W
    n_iso = edges.shape[0]
    return nodes.reshape(n_iso, -1), weights.reshape(n_iso, -1)


def _log_edges(T_break, T_low, n: int):
    """n + 1 log-spaced edges from T_low to T_break (both (k,) or scalars) → (k, n + 1)."""
    frac = np.linspace(1.0, 0.0, n + 1)
    T_break, T_low = jnp.reshape(T_break, (-1, 1)), jnp.reshape(T_low, (-1, 1))
    return T_break * jnp.exp(frac * jnp.log(T_low / T_break))


def base_edges(T_break, T_end, refine: int = 1, T_low=None, log_panels: int | None = None):
    """Base panel edges (n_iso, n): log-spaced on [T_low, T_break], linear on [T_break, T_end].

    ``T_low`` defaults to 10⁻⁵ T_break and ``log_panels`` to :data:`LOG_PANELS` (both × ``refine``).
    """
    T_low = LOWEST_FRACTION * T_break if T_low is None else T_low
    log_edges = _log_edges(T_break, T_low, (log_panels or LOG_PANELS) * refine)
    lin_frac = np.linspace(0.0, 1.0, LINEAR_PANELS * refine + 1)[1:]
    lin_edges = T_break[:, None] + (T_end - T_break)[:, None] * lin_frac
    return jnp.concatenate([log_edges, lin_edges], axis=1)


def shared_base_edges(T_break, T_end, refine: int = 1, T_low=None, log_panels: int | None = None):
    """Base panel edges (1, n) that serve every isotope of a target: log-spaced on [10⁻⁵ T_b⁻, T_b⁻],
    every isotope's T_break, linear on [T_b⁺, T_e⁺] and every isotope's T_end (T_b∓ the smallest and
    largest T_break, T_e⁺ the largest T_end).

    Each isotope's integrand is smooth between its own T_break and T_end, which are panel edges here,
    and vanishes above its T_end (exactly: the flux-folded rates are zero there), so these panels
    integrate every isotope as its own base grid does, on LOG + LINEAR + 2(n_iso − 1) panels. For one
    isotope they are :func:`base_edges`.
    """
    lo_break, hi_break, hi_end = jnp.min(T_break), jnp.max(T_break), jnp.max(T_end)
    T_low = LOWEST_FRACTION * lo_break if T_low is None else T_low
    log_edges = _log_edges(lo_break, T_low, (log_panels or LOG_PANELS) * refine)[0, :-1]
    lin_frac = np.linspace(0.0, 1.0, LINEAR_PANELS * refine + 1)[1:-1]
    edges = jnp.concatenate([log_edges, T_break, hi_break + (hi_end - hi_break) * lin_frac, T_end])
    return jnp.sort(edges)[None, :]


def panel_nodes(T_break, T_end, extra=None, refine: int = 1, shared: bool = False, T_low=None,
                log_panels: int | None = None):
    """GL nodes and weights [MeV] on the base panels split at the ``extra`` points.

    Shape (n_iso, n_T), or (1, n_T) with ``shared`` (one grid for every isotope, :func:`shared_base_edges`).
    ``extra`` (n_iso or 1, k) [MeV] is clipped into the grid's range, merged and sorted; points outside the
    range add zero-width panels (weight 0). ``T_low`` and ``log_panels``: see :func:`base_edges`.
    """
    edges = (shared_base_edges if shared else base_edges)(T_break, T_end, refine, T_low, log_panels)
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


def response_floor(quenching, smearing, x0, Z, A, T_lo_MeV, T_hi_MeV, iterations: int = 64):
    """Lowest recoil [MeV] worth integrating (shape of Z broadcast with T_lo_MeV): below it the chance of an
    observation above the lowest bin edge x₀, 1 − F(x₀ | E_ee(T)), is below :data:`RESPONSE_FLOOR`, for
    every bin. Bisection in log E_ee on the smearing's CDF, then the quenching inverted; the result, lowered
    by 10%, is clipped to [T_lo, ½ T_hi] and carries no derivative (the slice it drops holds < 1e-12 of a unit
    response, so its derivative is as small). T_lo where x₀ ≤ 0 (every recoil may be seen).
    """
    smear = smearing
    x0 = jax.lax.stop_gradient(x0)
    per_keV = jax.lax.stop_gradient(smear.mean_observed(jnp.asarray(1.0)))
    top = jnp.maximum(x0, 1e-300) / per_keV  # keVee: the mean reaches the edge there (tail ≥ ~½)
    log_lo, log_hi = jnp.log(top) - 40.0, jnp.log(top)

    def step(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        tail = 1.0 - jax.lax.stop_gradient(smear.cdf(x0, jnp.exp(mid)))
        below = tail <= RESPONSE_FLOOR
        return jnp.where(below, mid, a), jnp.where(below, b, mid)

    a, _ = jax.lax.fori_loop(0, iterations, step, (log_lo, log_hi))
    E_floor = jnp.exp(a)
    T_keV = recoil_of_quenched_keV(jax.lax.stop_gradient(quenching), jnp.reshape(E_floor, (1, 1)), Z, A,
                                   T_lo_MeV * 1e3, T_hi_MeV * 1e3)
    # 10% lower: for an ideal resolution the crossing *is* the image of x₀, a panel edge of its own
    T = jax.lax.stop_gradient(0.9 * T_keV * 1e-3)
    T = jnp.clip(T, T_lo_MeV, 0.5 * T_hi_MeV)
    return jnp.where(x0 > 0.0, T, T_lo_MeV * jnp.ones_like(T))


def response_ceiling(smearing, x_top):
    """Electron-equivalent energy [keVee] above which a deposit is seen below the top bin edge ``x_top`` with
    probability < :data:`RESPONSE_FLOOR` (the mirror of :func:`response_floor`): bisection in log E on the
    smearing's CDF, +20%, no derivative (the slice above holds < 1e-12 of a unit response). For an ideal
    resolution the crossing *is* the image of x_top."""
    x_top = jax.lax.stop_gradient(x_top)
    per_keV = jax.lax.stop_gradient(smearing.mean_observed(jnp.asarray(1.0)))
    start = jnp.log(jnp.maximum(x_top, 1e-300) / per_keV)

    def step(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        seen = jax.lax.stop_gradient(smearing.cdf(x_top, jnp.exp(mid)))
        below = seen < RESPONSE_FLOOR
        return jnp.where(below, a, mid), jnp.where(below, mid, b)

    _, b = jax.lax.fori_loop(0, 64, step, (start, start + 12.0))
    return jax.lax.stop_gradient(1.2 * jnp.exp(b))


def recoil_ceiling(quenching, smearing, x_top, Z, A, T_lo_MeV, T_hi_MeV):
    """The nuclear recoil [MeV] (shape of Z broadcast with T_lo_MeV) whose quenched energy is the
    :func:`response_ceiling`: higher recoils are seen below the top bin edge with probability < 1e-12. Clipped to
    [T_lo, T_hi]; no derivative."""
    E_top = response_ceiling(smearing, x_top)
    T_keV = recoil_of_quenched_keV(jax.lax.stop_gradient(quenching), jnp.reshape(E_top, (1, 1)), Z, A,
                                   T_lo_MeV * 1e3, T_hi_MeV * 1e3)
    return jnp.clip(jax.lax.stop_gradient(T_keV * 1e-3), T_lo_MeV, T_hi_MeV)


def _recoil_survey(target, quenching, smearing, energy_edges, energies=None) -> dict:
    """The concrete detector facts behind the static recoil-grid choices (:func:`sharp_response_satellites`,
    :func:`recoil_log_panels`), as NumPy arrays, from one compiled program per detector structure (target,
    quenching and smearing kinds, isotope count) shared by every preset with that structure: the source's
    (E_break, E_end) enter as values (π-DAR prompt line and endpoint by default) and the bin edges padded to a
    multiple of 32 with the last one (each column is computed alone). Both choices call it with the same
    arguments, so the second call reuses the first's program."""
    from . import constants as C

    edges = np.asarray(energy_edges, dtype=float)
    x = edges[edges > 0]
    padded = x if x.size else np.ones(1)
    padded = np.concatenate([padded, np.repeat(padded[-1:], -padded.size % 32)])
    E = jnp.asarray(energies or (C.E_NU_MU_PROMPT, C.E_NU_MAX_MICHEL), dtype=jnp.float64)
    out = {k: np.asarray(v) for k, v in _survey(target, quenching, smearing, jnp.asarray(padded),
                                                 jnp.asarray(edges[0]), E).items()}
    out["T"], out["sigma_T"], out["n_edges"] = out["T"][:, :x.size], out["sigma_T"][:, :x.size], x.size
    return out


@run_once
def _survey(target, quenching, smearing, x_observed, x0, energies):
    """:func:`_recoil_survey`'s program. For observed bin edges ``x_observed``: per isotope, the true recoils
    T [keVnr] whose quenched energy they are, the resolution mapped to recoil σ_T [keVnr], T_break and T_end
    [keVnr], the smearing width at 1 keVee (0 for an ideal response), and the smallest ln(T_break / T_floor) over
    the isotopes for the lowest edge ``x0`` (:func:`response_floor`)."""
    from .kinematics import max_recoil_energy

    M = target.mass_MeV
    T_break = max_recoil_energy(energies[0], M)[:, None] * 1e3
    T_end = max_recoil_energy(energies[1], M)[:, None] * 1e3
    Z, A = target.Z[:, None], (target.Z + target.N)[:, None]
    per_keV = smearing.mean_observed(jnp.asarray(1.0))  # observed units per keVee
    E_keV = jnp.maximum(x_observed, 1e-300)[None, :] / per_keV
    T = recoil_of_quenched_keV(quenching, E_keV, Z, A, LOWEST_FRACTION * T_break, T_end)
    _, dE_dT = jax.jvp(lambda t: quenching.electron_equivalent_keV(t, Z, A), (T,), (jnp.ones_like(T),))
    sigma_T = smearing.width_observed(E_keV) / (per_keV * jnp.maximum(dE_dT, 1e-300))
    T_break_MeV = T_break * 1e-3
    floor = response_floor(quenching, smearing, x0, Z, A, LOWEST_FRACTION * T_break_MeV, T_break_MeV)
    return {"T": T, "sigma_T": sigma_T, "T_break": T_break, "T_end": T_end,
            "width_1keV": smearing.width_observed(jnp.asarray(1.0)), "floor_ratio": jnp.max(jnp.log(T_break_MeV / floor))}


def sharp_response_satellites(target, quenching, smearing, energy_edges, energies=None) -> tuple[float, ...]:
    """Static choice of :attr:`Binning.recoil_satellites` from concrete detector values (``energies``: the
    source's ``recoil_energies_MeV``, (E_break, E_end) [MeV]; default the π-DAR prompt line and endpoint).

    An ideal resolution gets the bin-edge images alone ``(0,)``; a resolution whose width at some bin
    edge, mapped to true recoil (σ_T = σ_x / (dx/dT)), is narrower than the base recoil panel there gets
    :data:`EDGE_SATELLITES`; a broader one needs no breakpoints ``()``.
    """
    s = _recoil_survey(target, quenching, smearing, energy_edges, energies)
    T, sigma_T, T_break, T_end = s["T"], s["sigma_T"], s["T_break"], s["T_end"]
    if s["width_1keV"] == 0.0:
        return (0.0,)
    if s["n_edges"] == 0:
        return ()
    ratio = np.exp(-np.log(LOWEST_FRACTION) / LOG_PANELS) - 1.0
    panel = np.where(T < T_break, T * ratio, (T_end - T_break) / LINEAR_PANELS)
    inside = (T > LOWEST_FRACTION * T_break) & (T < T_end)
    return EDGE_SATELLITES if np.any(inside & (sigma_T < SHARPNESS * panel)) else ()


def recoil_log_panels(target, quenching, smearing, energy_edges, energies=None) -> int:
    """Static number of log-spaced recoil panels on [T_floor, T_break] (:attr:`Binning.recoil_log_panels`).

    The standard grid has :data:`LOG_PANELS` panels on 10⁻⁵ T_break … T_break (ratio 1.62 per panel);
    above a response floor (:func:`response_floor`, e.g. a Gaussian resolution and a threshold) the same
    ratio needs fewer. The count keeps each panel's ratio at most 1.62 for a floor 1.5 times lower in
    log range than at the build point (the floor moves with thresholds and resolutions), at least 4.
    """
    span = float(_recoil_survey(target, quenching, smearing, energy_edges, energies)["floor_ratio"])
    full = -np.log(LOWEST_FRACTION)
    return int(min(LOG_PANELS, max(4, np.ceil(LOG_PANELS * min(1.5 * span, full) / full))))
