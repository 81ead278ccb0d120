"""Mesons decaying in flight: the χ energy spectrum in the lab from a rest-frame box mixture boosted by a
distribution of meson speeds (docs/physics.md §4.3, "Mesons in flight").

A π⁰ lives 8.5e-17 s and decays where it is made, with the momentum the target gave it. In the meson's rest
frame χ is isotropic (a spin-0 parent) with the energy spectrum f*(E*) of the at-rest model, a mixture of flat
boxes (:mod:`.dm_production`). A meson of rapidity y (γ = cosh y, β = tanh y) turns a χ of rest energy E*,
momentum p* = (E*² − m²)^½ into a lab energy flat on [γ(E* − βp*), γ(E* + βp*)] (cos θ* uniform). Averaged over
directions (the flux of a detector without a stated angle to the beam; at a stated angle
:func:`directional_correction` adds the anisotropic part from the Legendre moments of the π⁰ directions), the fraction of χ below lab energy E from one flat rest box [a, b] is, with
L = γ(E − βp), U = γ(E + βp) the rest energies a lab χ of energy E can have (p its lab momentum),

    F(E) = [ 1[E > γm] (clip(L) − a) + G(clip(U)) − G(clip(L)) ] / (b − a),   clip(x) = min(max(x, a), b),
    G(x) = E acosh(x/m)/(2γβ) − (x² − m²)^½/(2β) + x/2,

(the rest energies below L give lab χ all below E once E exceeds the energy γm of a χ at rest in the meson frame;
those in [L, U] a part (E − γ(E* − βp*))/(2γβp*) of their flat lab interval, whose antiderivative is G). Its
derivative is the density (1/2γβ) ∫_L^U f*(E*)/p*(E*) dE* (tests/test_dm_flight.py checks both, and both against
a Monte Carlo). F is exact; the approximations are two quadratures, each with a halving test:

* the meson rapidity distribution, a histogram of a GEANT4 sample per facility
  (:func:`cevns_jax.facilities.pi0_rapidity_nodes`), represented by Gauss–Legendre nodes in each bin;
* the lab spectrum, represented for the recoil integral by ``darkmatter.LAB_BOXES`` flat boxes whose masses are exact
  differences of F at their edges (so the total and every bin's mass are exact; only the shape inside a box is
  flattened). The edges are placed at equal steps of a blend of F (weight where the χ are) and of the momentum
  (resolution in the tail), read off F on :data:`PLACEMENT_POINTS` points.

Pure functions of arrays; masses and energies in MeV.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .dm_production import _safe_sqrt

__all__ = ["PLACEMENT_POINTS", "DIRECTION_ENERGY_NODES", "DIRECTION_REST_NODES", "boosted_cdf", "in_flight_boxes",
           "directional_correction", "legendre_coefficients"]
PLACEMENT_POINTS = 64
"""Points on which the lab CDF is evaluated to place the lab box edges (placement only: the masses are exact)."""
DIRECTION_ENERGY_NODES = 2
"""Gauss–Legendre nodes per lab box of the lab-energy integral of the anisotropic part (:func:`directional_correction`)."""
DIRECTION_REST_NODES = 8
"""Gauss–Legendre nodes of the rest-energy integral of the anisotropic part, in t = (E* − m)^½."""


def _acosh_ratio(x, m):
    """acosh(x/m) for x ≥ m, with a finite derivative at x = m (floored square root)."""
    r = jnp.maximum(x / m, 1.0)
    return jnp.log(r + _safe_sqrt((r - 1.0) * (r + 1.0)))


def boosted_cdf(E_MeV, m_MeV, lower_MeV, upper_MeV, weight, rapidity, rapidity_weight):
    """Fraction of χ with lab energy ≤ ``E_MeV`` (any shape S): rest-frame boxes ``lower_MeV``, ``upper_MeV``,
    ``weight`` (K,) boosted by meson rapidities ``rapidity`` (n,) of weights ``rapidity_weight`` (Σ = 1), χ
    isotropic in the meson frame, averaged over directions (module docstring). Shape S."""
    E = jnp.asarray(E_MeV)[..., None, None]  # S + (1, 1)
    g = jnp.cosh(rapidity)[:, None]  # (n, 1)
    gb = jnp.sinh(rapidity)[:, None]  # γβ
    m = m_MeV
    p = _safe_sqrt((E - m) * (E + m))
    a, b = lower_MeV, upper_MeV
    L, U = g * E - gb * p, g * E + gb * p
    lo, hi = jnp.clip(L, a, b), jnp.clip(U, a, b)
    beta = gb / g

    def G(x):
        return E * _acosh_ratio(x, m) / (2 * gb) - _safe_sqrt((x - m) * (x + m)) / (2 * beta) + x / 2

    below = jnp.where(E > g * m, lo - a, 0.0)  # 0 at E = γm (there L = m ≤ a): continuous
    width = b - a
    open_box = width > 0
    per_box = jnp.where(open_box, (below + G(hi) - G(lo)) / jnp.where(open_box, width, 1.0), 0.0)
    return jnp.einsum("...nk,n,k->...", per_box, rapidity_weight, weight)


def in_flight_boxes(lower_MeV, upper_MeV, weight, m_MeV, rapidity, rapidity_weight, n_boxes: int,
                    placement_points: int = PLACEMENT_POINTS):
    """The lab χ spectrum of rest boxes (K,) boosted by the meson rapidities (n,), as ``n_boxes`` flat lab boxes:
    (lower, upper, weight), each (n_boxes,), the weights the exact differences of :func:`boosted_cdf` at the edges
    (Σ = Σ ``weight``). The edges run from the χ at rest (E = m) to the highest lab energy, γ_max(E₊ + β_max p₊);
    between, at equal steps of ½F_|w| + ½u on the grid p = p_max u², u ∈ [0, 1] (F_|w| the CDF with |weight|:
    the s-quadrature's remainder weights may be negative), linear between ``placement_points`` points of u."""
    m = m_MeV
    top = jnp.max(upper_MeV)
    y_max = jnp.max(jnp.where(rapidity_weight > 0, rapidity, 0.0))
    E_max = jnp.cosh(y_max) * top + jnp.sinh(y_max) * _safe_sqrt((top - m) * (top + m))
    p_max = _safe_sqrt((E_max - m) * (E_max + m))
    u = jnp.linspace(0.0, 1.0, placement_points + 1)
    E_grid = jnp.sqrt(m**2 + (p_max * u**2) ** 2)
    a = jnp.abs(weight)
    F_abs = boosted_cdf(E_grid, m, lower_MeV, upper_MeV, a / jnp.maximum(jnp.sum(a), 1e-300), rapidity, rapidity_weight)
    blend = 0.5 * F_abs + 0.5 * u + 1e-9 * u  # non-decreasing; strictly increasing with the last term
    steps = jnp.linspace(0.0, 1.0, n_boxes + 1)
    u_edges = jnp.interp(steps * blend[-1], blend, u)
    E_edges = jnp.sqrt(m**2 + (p_max * u_edges**2) ** 2)
    E_edges = E_edges.at[0].set(m).at[-1].set(E_max)
    F = boosted_cdf(E_edges, m, lower_MeV, upper_MeV, weight, rapidity, rapidity_weight)
    return E_edges[:-1], E_edges[1:], jnp.diff(F)


def _legendre_polynomials(c, L: int):
    """P_1(c), …, P_L(c) one after the other (Bonnet's recursion), without storing them together."""
    p_prev, p = jnp.ones_like(c), c
    for l in range(1, L + 1):
        yield p
        p_prev, p = p, ((2 * l + 1) * c * p - l * p_prev) / (l + 1)


def _legendre_series(c, coef):
    """Σ_{l=1..L} coef[..., l−1] P_l(c); ``coef`` broadcasts against ``c`` with a last axis L."""
    return sum(coef[..., l] * p for l, p in enumerate(_legendre_polynomials(c, coef.shape[-1])))


def directional_correction(E_lower_MeV, E_upper_MeV, m_MeV, lower_MeV, upper_MeV, weight, rapidity, rapidity_weight,
                           legendre_coef, energy_nodes: int = DIRECTION_ENERGY_NODES,
                           rest_nodes: int = DIRECTION_REST_NODES):
    """What a detector at a fixed direction sees beyond the direction average, per lab box [``E_lower_MeV``,
    ``E_upper_MeV``] (B,): the anisotropic part of the χ flux in that direction relative to the flux averaged over
    directions (docs/physics.md §4.3, "The detector's angle to the beam"). Add it to the boxes' masses.

    With the π⁰ directions of rapidity node i expanded in Legendre polynomials of the angle to the beam, and the
    detector at angle θ_d, ``legendre_coef[i, l−1]`` = (2l + 1) ⟨P_l(cos θ_π)⟩_i P_l(cos θ_d) (l = 1 … L; the l = 0 term is
    the direction average, :func:`boosted_cdf`). By the addition theorem the density of the angle ψ between a
    π⁰ of node i and the detector direction is ½[1 + A_i(cos ψ)], A_i(c) = Σ_l coef_il P_l(c), and a χ of lab energy E
    reaching the detector from a π⁰ at angle ψ has rest energy E* = γ(E − βp cos ψ), so the lab density is

        ρ(E) = ½ ∫_{−1}^{1} dc [1 + A(c)] f*(γ(E − βpc)) p / p*(E*)
             = 1/(2γβ) ∫_{γ(E−βp)}^{γ(E+βp)} [1 + A(c(E*))] f*(E*) dE*/p*,    c(E*) = (γE − E*)/(γβp),

    (the 1 gives the derivative of :func:`boosted_cdf`). For the flat rest boxes [a, b] the E* range is clipped to
    the box (an integration limit) and integrated in t = (E* − m)^½ (dE*/p* = 2 dt/(2m + t²)^½: the 1/p*
    singularity of a χ at rest in the meson frame removed; A is a polynomial of degree L in E*) with
    ``rest_nodes`` Gauss–Legendre nodes, and each lab box with ``energy_nodes``. Shapes: boxes (B,), rest boxes
    (K,), rapidity nodes (n,), ``legendre_coef`` (n, L); returns (B,)."""
    xe, we = np.polynomial.legendre.leggauss(energy_nodes)
    xt, wt = np.polynomial.legendre.leggauss(rest_nodes)
    m = m_MeV
    half = 0.5 * (E_upper_MeV - E_lower_MeV)
    E = (E_lower_MeV + half)[:, None] + half[:, None] * xe  # (B, e)
    E = E[..., None, None]  # (B, e, 1, 1)
    g = jnp.cosh(rapidity)[:, None]  # (n, 1)
    gb = jnp.sinh(rapidity)[:, None]
    p = _safe_sqrt((E - m) * (E + m))
    a, b = lower_MeV, upper_MeV  # (K,)
    lo = jnp.clip(g * E - gb * p, a, b)  # (B, e, n, K)
    hi = jnp.clip(g * E + gb * p, a, b)
    t_lo, t_hi = _safe_sqrt(lo - m), _safe_sqrt(hi - m)
    t_half = 0.5 * (t_hi - t_lo)
    t = (t_lo + t_half)[..., None] + t_half[..., None] * xt  # (B, e, n, K, r)
    x = m + t**2
    # cos ψ ∈ [−1, 1] wherever the clipped range is not empty; where it is (a rest box the lab energy cannot reach,
    # t_half = 0) the formula leaves [−1, 1] and the degree-L series would reach ~1e24, whose products with the zero
    # width are not zero in a reverse-mode derivative: clamped (a no-op on every node that counts)
    c = jnp.clip((g[..., None] * E[..., None] - x) / (gb[..., None] * p[..., None]), -1.0, 1.0)
    A = _legendre_series(c, legendre_coef[:, None, None, :])
    inner = jnp.sum(A * wt * 2.0 / jnp.sqrt(2 * m + t**2), axis=-1) * t_half  # (B, e, n, K)
    width = b - a
    per_box = jnp.where(width > 0, weight / jnp.where(width > 0, width, 1.0), 0.0)
    density = jnp.einsum("benk,k,n->be", inner, per_box, rapidity_weight / (2 * jnp.sinh(rapidity)))
    return jnp.sum(density * we, axis=-1) * half


def legendre_coefficients(moments, cos_detector):
    """(2l + 1) ⟨P_l(cos θ_π)⟩ P_l(cos θ_d), l = 1 … L, from the π⁰ direction moments ``moments`` (n, L) and the
    cosine of the detector's angle to the beam: the ``legendre_coef`` of :func:`directional_correction`."""
    L = moments.shape[-1]
    values = jnp.stack(list(_legendre_polynomials(jnp.asarray(cos_detector, dtype=moments.dtype), L)))
    return (2 * jnp.arange(1, L + 1, dtype=moments.dtype) + 1) * moments * values
