"""Meson decays at rest into a χχ̄ pair through a vector mediator, on or off its mass shell (docs/physics.md §4.3).

A pseudoscalar meson P (π⁰, η) decays to γ χ χ̄ through its γγ* vertex with the virtual photon mixed into the
mediator V. With s the χχ̄ invariant mass squared, the rate factorises exactly for a vector coupled to
conserved currents (the k^μk^ν/m² parts of the propagator and of the polarisation sum drop out):

    dBR(P → γχχ̄)/ds = BR(P → γV*)(s) · √s Γ(V* → χχ̄)(s) / (π [(s − m_V²)² + m_V² Γ_V²]),
    BR(P → γV*)(s) = 2 κ (1 − s/M²)³ BR(P → γγ),   κ = ε² (dark photon) or α_B/α (baryonic, π⁰ only),
    √s Γ(V* → χχ̄) = α_D s β³/12 (complex scalar χ),  α_D s (1 + 2m_χ²/s) β/3 (Dirac χ),  β = (1 − 4m_χ²/s)^½.

For a scalar χ this is (as a product) BdNMC's dBR(π⁰ → γχχ̄)/ds, deNiverville, Chen, Pospelov & Ritz,
arXiv:1609.01770 (PRD 95, 035006 (2017)) and the BdNMC source ``dbrpi0_to_gamma_dm_dm``:
α_D ε² β (M² − s)³ (s − 4m_χ²)/(6π M⁶ [(s − m_V²)² + m_V²Γ_V²]) per BR(π⁰→γγ) (checked equal term by term).
Γ_V is the constant width Γ(V → χχ̄) at m_V (0 for m_V ≤ 2m_χ). ASSUMPTION: V → e⁺e⁻ (Γ = ε²α m_V/3,
≈ ε²α/α_D ~ 1e-8 of the χχ̄ width at the benchmarks) is left out of Γ_V; it matters only as the regulator of a
pole that lies below 2m_χ, where the s-range never reaches it.
In the narrow-width limit with 2m_χ < m_V < M the s-integral gives BR(P → γV)·BR(V → χχ̄) = BR(P → γV);
for m_V ≫ M the contact limit κ α_D BR(P→γγ)/(6π m_V⁴) ∫ (1 − s/M²)³ s β³ ds (tests/test_dm_offshell.py).

Quadrature in s on [4m_χ², M²]: Gauss–Legendre in θ with s = m_V² + c tan θ, c = [(m_VΓ_V)² + d²]^½ and d
the distance of m_V² from the interval (0 inside). A pole inside is flattened exactly (c = m_VΓ_V); one
outside leaves a smooth integrand bounded between 1/c and 2/c per unit ds. ``S_NODES`` nodes reach 1e-4
relative on the rate and 1e-3 on the counts (halving test). Each s-node gives a χ box in the lab: the χχ̄
system recoils against the photon with p = (M² − s)/2M, the χ isotropic in its rest frame (ASSUMPTION, as for
the on-shell V: a transverse V gives sin²θ* for a scalar χ, see the module docstring of darkmatter), so E_χ
is flat on E_± = E_pair/2 ± p p*/√s, p* = (s/4 − m_χ²)^½.

Pure functions of arrays (masses in MeV); a closed channel (2m_χ ≥ M) has weights exactly 0.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

__all__ = ["S_NODES", "P_FLOOR", "mediator_width", "pair_width_times_sqrt_s", "pair_mass_nodes", "pair_energy_boxes",
           "momentum_range", "box_mixture_nodes"]

S_NODES = 32
"""Nodes of the χχ̄ invariant-mass integral: ``S_NODES // PANEL_NODES`` equal Gauss–Legendre panels in v = asinh((s − m_V²)/c)."""
PANEL_NODES = 8
"""Gauss–Legendre nodes per panel of the s-integral."""
P_FLOOR = 1e-6
"""Smallest χ momentum of the energy map relative to the largest, p_a ≥ P_FLOOR p_b: only a box edge at rest
(p = 0, a degenerate closed channel) reaches it; a recoil's E_min(T) has p ≈ (MT/2)^½ ≫ 1e-6 p_b."""


def _safe_sqrt(x):
    return jnp.sqrt(jnp.maximum(x, 1e-300))


def _composite_nodes(nodes: int):
    """Gauss–Legendre nodes and weights on [0, 1]: ``nodes // PANEL_NODES`` equal panels of PANEL_NODES each."""
    x, w = np.polynomial.legendre.leggauss(PANEL_NODES)
    panels = max(nodes // PANEL_NODES, 1)
    edges = np.arange(panels)[:, None]
    return ((edges + 0.5 * (x + 1.0)) / panels).ravel(), np.tile(0.5 * w / panels, panels)


def pair_width_times_sqrt_s(s_MeV2, m_chi_MeV, alpha_D, dirac):
    """√s Γ(V* → χχ̄) [MeV²] of a mediator of mass² s: α_D s β³/12 (scalar), α_D s (1 + 2m²/s) β/3 (Dirac);
    ``dirac`` 0 or 1 (a leaf: both kinds in one program); 0 below threshold."""
    r = jnp.clip(4 * m_chi_MeV**2 / s_MeV2, 0.0, 1.0)
    beta = _safe_sqrt(1.0 - r) * (r < 1.0)
    scalar = beta**3 / 12.0
    fermion = (1.0 + r / 2.0) * beta / 3.0
    return alpha_D * s_MeV2 * ((1.0 - dirac) * scalar + dirac * fermion)


def mediator_width(m_V_MeV, m_chi_MeV, alpha_D, dirac):
    """Γ(V → χχ̄) [MeV] of the on-shell mediator (0 for m_V ≤ 2m_χ; V → e⁺e⁻ left out, see module)."""
    return pair_width_times_sqrt_s(m_V_MeV**2, m_chi_MeV, alpha_D, dirac) / m_V_MeV


def pair_mass_nodes(M_MeV, m_chi_MeV, m_V_MeV, alpha_D, dirac, nodes: int = S_NODES):
    """Nodes s_k [MeV²] and weights b_k with Σ_k b_k f(s_k) ≈ ∫ ds f(s) ρ(s) over [4m_χ², M²],
    ρ(s) = (1 − s/M²)³ √sΓ(V*→χχ̄)(s)/(π|s − m_V² + i m_VΓ_V|²), so BR(P → γχχ̄) = 2κ BR(P→γγ) Σ_k b_k.
    Shapes (nodes + 1,): the last node is the pole s = m_V² (clipped into the range) carrying the analytic
    ∫ ρ(m_V²)-Lorentzian (ρ's numerator frozen at the pole; 0 for a pole outside the range), the others the
    remainder on composite Gauss–Legendre panels in v = asinh((s − m_V²)/c) (module docstring).
    All b_k = 0 when 2m_χ ≥ M."""
    y, wy = _composite_nodes(nodes)
    x, w = y**2, 2 * y * wy  # v − v_lo ∝ y²: the threshold factors β, β³ become smooth in y
    M2, mV2 = M_MeV**2, m_V_MeV**2
    s_lo = 4 * m_chi_MeV**2
    is_open = s_lo < M2
    s_hi = jnp.where(is_open, M2, s_lo + 1e-6 * M2)  # a dummy non-empty range when closed (weights zeroed below)
    gamma_m = m_V_MeV * mediator_width(m_V_MeV, m_chi_MeV, alpha_D, dirac)  # m_V Γ_V [MeV²]
    d = jnp.maximum(s_lo - mV2, 0.0) + jnp.maximum(mV2 - s_hi, 0.0)
    c = jnp.sqrt(gamma_m**2 + d**2 + (1e-12 * M2) ** 2)
    v_lo, v_hi = jnp.arcsinh((s_lo - mV2) / c), jnp.arcsinh((s_hi - mV2) / c)
    t = jnp.sinh(v_lo + (v_hi - v_lo) * x)
    s = jnp.clip(mV2 + c * t, s_lo, s_hi)
    jac_over_bw = c * jnp.sqrt(1.0 + t**2) / (c**2 * t**2 + gamma_m**2)  # (ds/dv)/|s − m_V² + i m_VΓ_V|²

    def numerator(s_):
        return jnp.clip(1.0 - s_ / M2, 0.0, 1.0) ** 3 * pair_width_times_sqrt_s(s_, m_chi_MeV, alpha_D, dirac) / jnp.pi

    s_pole = jnp.clip(mV2, s_lo, s_hi)
    f_pole = numerator(s_pole) * (s_lo < mV2) * (mV2 < s_hi)  # 0 unless the pole lies inside
    g = jnp.maximum(gamma_m, 1e-300)
    pole = f_pole * (jnp.arctan((s_hi - mV2) / g) - jnp.arctan((s_lo - mV2) / g)) / g
    b = (v_hi - v_lo) * w * jac_over_bw * (numerator(s) - f_pole)
    return jnp.append(s, s_pole), jnp.where(is_open, jnp.append(b, pole), 0.0)


def pair_energy_boxes(M_MeV, s_MeV2, m_chi_MeV):
    """(E₋, E₊) [MeV] of χ from P → γ(χχ̄) at rest with χχ̄ mass² s, χ isotropic in the χχ̄ frame."""
    E_pair = (M_MeV**2 + s_MeV2) / (2 * M_MeV)
    p_pair = jnp.maximum(M_MeV**2 - s_MeV2, 0.0) / (2 * M_MeV)
    p_star = _safe_sqrt(s_MeV2 / 4 - m_chi_MeV**2)
    half = p_pair * p_star / jnp.sqrt(s_MeV2)
    return E_pair / 2 - half, E_pair / 2 + half


def _chebyshev_box_sums(x_upper, x_lower, height, degree: int):
    """ΔT_m = Σ_k height_k [T_m(x_upper,k) − T_m(x_lower,k)], m = 0 … degree, shape (degree + 1, *S) for edges of
    shape S + (K,): the Chebyshev polynomials by the three-term recurrence in one ``lax.scan`` that carries the
    edges' values and emits only the box sums (the full (degree + 1) × S × K table is never stored). Polynomial in
    x, so finite derivatives at x = ±1 (unlike cos(m arccos x))."""
    x = jnp.stack([x_upper, x_lower])

    def box_sum(t):
        return jnp.sum((t[0] - t[1]) * height, axis=-1)

    def step(carry, _):
        previous, current = carry
        following = 2 * x * current - previous
        return (current, following), box_sum(following)

    _, higher = jax.lax.scan(step, (jnp.ones_like(x), x), None, length=degree - 1)  # T_2 … T_degree
    return jnp.concatenate([jnp.zeros_like(higher[:1]), box_sum(x)[None], higher])


def _antiderivative_matrix(order: int):
    """A with J_n = Σ_m A[m, n] T_m the antiderivatives of T_n, n < ``order`` (constants dropped: only differences
    enter): J_0 = T_1, J_1 = T_2/4, J_n = T_{n+1}/2(n+1) − T_{n−1}/2(n−1)."""
    A = np.zeros((order + 1, order))
    A[1, 0], A[2, 1] = 1.0, 0.25
    n = np.arange(2, order)
    A[n + 1, n], A[n - 1, n] = 1 / (2 * (n + 1)), -1 / (2 * (n - 1))
    return A


def _chebyshev_coefficient_matrix(nodes: int):
    """First-kind Chebyshev points y_j ∈ (0, 1) (x_j = 2y_j − 1 = cos(π(j + ½)/n)) and the matrix D with
    c = D f the Chebyshev coefficients of the degree n − 1 interpolant of values f at them."""
    theta = np.pi * (np.arange(nodes) + 0.5) / nodes
    D = 2.0 / nodes * np.cos(np.arange(nodes)[:, None] * theta[None, :])
    D[0] /= 2.0
    return 0.5 * (np.cos(theta) + 1.0), D


def box_mixture_nodes(lower_MeV, upper_MeV, weight, E_low_MeV, nodes: int, *, m_MeV):
    """Nodes E_j and weights W_j [MeV⁻¹ × MeV] with Σ_j W_j h(E_j) ≈ ∫_{E_low} φ(E) h(E) dE for the box mixture
    φ(E) = Σ_k weight_k 1[lower_k < E < upper_k]/(upper_k − lower_k) and any h smooth above E_low (product
    integration: φ enters through exact moments, only h is interpolated).

    ``lower_MeV``, ``upper_MeV``, ``weight``: (K,); ``E_low_MeV``: any shape S (E_min(T) of each recoil);
    ``m_MeV``: the χ mass; returns (S + (nodes,), S + (nodes,)). On [a, b] = [max(E_low, min lower), max upper]
    the variable is the log-momentum, y = ln(p/p_a)/ln(p_b/p_a) with p = (E² − m²)^½: what varies fast for a slow
    χ is a function of p (dσ/dT ∝ 1/p², the time of flight ∝ E/p − 1), and in ln p its nearest singularity
    (p = 0) lies at −∞, the branch points p = ±im at distance π/2 off the real axis; in E the pole p = 0 lies
    just below a. The integrand g(y) = h(E(y)) dE/dy is interpolated at ``nodes`` first-kind Chebyshev points in
    y and the weights are W_j = E'(y_j) ∫ φ(E(y)) ℓ_j(y) dy with ℓ_j the Lagrange basis, φ(E(y)) piecewise
    constant in y, its integrals exact from Chebyshev antiderivatives at the box edges. Exact for g a polynomial
    of degree < ``nodes`` in y; the error is that of Chebyshev interpolation of g (halving tests in
    tests/test_dm_offshell.py). The box edges clipped at E_low are integration limits (gradients flow through
    them). A box of zero width contributes 0 (its weight must then be 0, as for a closed channel)."""
    return _box_mixture(nodes, lower_MeV, upper_MeV, weight, m_MeV, E_low_MeV)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _box_mixture(nodes, lower_MeV, upper_MeV, weight, m_MeV, E_low_MeV):
    return _box_mixture_value(lower_MeV, upper_MeV, weight, m_MeV, E_low_MeV, nodes)


def _box_mixture_jvp(nodes, primals, tangents):
    """Each recoil's nodes and weights depend on its own E_low only (a diagonal Jacobian in E_low): their
    derivative comes from one forward pass with a unit tangent, scaled by E_low's tangent, so k directions at
    once (``jax.jacfwd`` over k nuisances that move the recoil nodes) cost one pass, not k. The boxes' and the
    mass's tangents (model parameters) take an ordinary forward pass, skipped when they are zero."""
    *shared, E_low = primals
    shared_tangents, e_tangent = tangents[:-1], tangents[-1]
    value = lambda lo, up, w, m, e: _box_mixture_value(lo, up, w, m, e, nodes)  # noqa: E731
    if all(type(t) is SymbolicZero for t in shared_tangents):
        out = value(*primals)
        d_out = jax.tree_util.tree_map(jnp.zeros_like, out)
    else:
        shared_tangents = [jnp.zeros_like(x) if type(t) is SymbolicZero else t for x, t in zip(shared, shared_tangents)]
        out, d_out = jax.jvp(lambda *a: value(*a, E_low), tuple(shared), tuple(shared_tangents))
    if type(e_tangent) is not SymbolicZero:
        _, unit = jax.jvp(lambda e: value(*shared, e), (E_low,), (jnp.ones_like(E_low),))
        d_out = jax.tree_util.tree_map(lambda d, u: d + u * e_tangent[..., None], d_out, unit)
    return out, d_out


_box_mixture.defjvp(_box_mixture_jvp, symbolic_zeros=True)


def momentum_range(E_low_MeV, E_high_MeV, m_MeV):
    """(p_low², p_high²) [MeV²] of a χ of mass ``m_MeV`` on [E_low, E_high], the ends of the log-momentum map of
    :func:`box_mixture_nodes` (and of a tabulated spectrum's nodes): p_high ≥ 1e-15 MeV (every p² stays a normal
    float) and p_low within [:data:`P_FLOOR` p_high, p_high] (the floor only for an end at rest, p = 0)."""
    p2_high = jnp.maximum((E_high_MeV - m_MeV) * (E_high_MeV + m_MeV), 1e-30)
    return jnp.clip((E_low_MeV - m_MeV) * (E_low_MeV + m_MeV), P_FLOOR**2 * p2_high, p2_high), p2_high


def _box_mixture_value(lower_MeV, upper_MeV, weight, m_MeV, E_low_MeV, nodes: int):
    y_nodes, D = _chebyshev_coefficient_matrix(nodes)
    m = jnp.asarray(m_MeV)
    a = jnp.maximum(E_low_MeV, jnp.min(lower_MeV))[..., None]  # S + (1,)
    p2_a, p2_b = momentum_range(a, jnp.max(upper_MeV), m)
    log_a = 0.5 * jnp.log(p2_a)
    span = 0.5 * (jnp.log(p2_b) - 2 * log_a)  # ln(p_b/p_a) ≥ 0
    safe = jnp.where(span > 0, span, 1.0)

    def y_of(E):  # y ∈ [0, 1]; an edge at or below a maps to 0 (and above b to 1) on a neighbourhood: derivative 0
        p2 = jnp.clip((E - m) * (E + m), p2_a, p2_b)
        return jnp.where(span > 0, (0.5 * jnp.log(p2) - log_a) / safe, 0.0)

    box_width = upper_MeV - lower_MeV
    open_box = box_width > 0
    height = jnp.where(open_box, weight / jnp.where(open_box, box_width, 1.0), 0.0)  # [MeV⁻¹]; no 0/0 in derivatives
    # contract over the boxes first, then one constant matrix: ∫ φ(E(y)) ℓ_j(y) dy = ½ Σ_m ΔT_m (A D)_mj,
    # ΔT_m = Σ_k height_k [T_m(x₊) − T_m(x₋)] (x = 2y − 1; A: antiderivatives, D: interpolation coefficients)
    delta = _chebyshev_box_sums(2 * y_of(upper_MeV) - 1, 2 * y_of(lower_MeV) - 1, height, nodes)  # (n + 1, *S)
    integrals = jnp.tensordot(delta, 0.5 * _antiderivative_matrix(nodes) @ D, axes=(0, 0))
    p2 = jnp.exp(2 * (log_a + span * y_nodes))
    E = jnp.sqrt(m**2 + p2)
    return E, span * p2 / E * integrals  # dE/dy = ln(p_b/p_a) p²/E
