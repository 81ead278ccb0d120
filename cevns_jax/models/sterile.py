"""3+1 sterile neutrinos at short baseline (docs/physics.md §4.1).

    Δ = 1.26693 Δm²₄₁[eV²] L[m]/E[MeV],   P(ν_α → ν_β) = δ_αβ − 4|U_α4|²(δ_αβ − |U_β4|²) ⟨sin²Δ⟩

for α, β ∈ {e, μ, τ} (the rest, P(ν_α→ν_s) = 4|U_α4|²|U_s4|²⟨sin²Δ⟩, is lost to neutral current).
Antineutrinos oscillate identically (CPT). The CEvNS rate of an initial ν_α is the exact flavour
sum Σ_β P_αβ(E) × rate(Q_V(ν_β)). Averaging over the baseline spread d and the energy cell ΔE of
each quadrature node is an analytic low-pass filter (GLoBES-style):

    ⟨sin²Δ⟩ = ½[1 − D_L D_E cos 2Δ],   D_L = sinc(Δ d/L),   D_E = sinc(Δ ΔE/E)

so large Δm² averages smoothly and small Δm² is exact (Anderson et al., PRD 86, 013004 (2012)).

Domain: Δm²₄₁ ≥ 0 (the probabilities are even in Δm², so a negative value would silently act as
|Δm²|), each |U_α4|² in [0, 1] with Σ_α |U_α4|² ≤ 1 (unitarity: |U_s4|² = 1 − Σ ≥ 0), baseline
spread d ≥ 0. :func:`mixing` raises :class:`~cevns_jax.errors.CevnsInputError` for concrete values
outside the domain and turns traced ones into NaN (policy in :mod:`cevns_jax.errors`).
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import constants as C
from .._pytree import pytree_dataclass
from ..errors import domain_checked


@pytree_dataclass
class Sterile:
    """3+1 mixing: Δm²₄₁ [eV²], |U_α4|² for α = e, μ, τ (shape (3,)), baseline spread d [m]."""

    dm2_eV2: jnp.ndarray
    U4_sq: jnp.ndarray
    baseline_spread_m: jnp.ndarray


def mixing(dm2_eV2, Ue4_sq=0.0, Umu4_sq=0.0, Utau4_sq=0.0, baseline_spread_m=0.5) -> Sterile:
    """3+1 mixing parameters; baseline spread d [m] uniform about the baseline, 0.5 m by default (the length
    of the SNS mercury target; an assumption that leaves out the detector's depth, docs/physics.md §4.1)."""
    finite = jnp.isfinite
    dm2 = domain_checked(dm2_eV2, lambda x: (x >= 0) & finite(x), "sterile dm2_eV2 must be >= 0 eV² and finite")
    U = jnp.stack([jnp.asarray(u, dtype=jnp.float64) for u in (Ue4_sq, Umu4_sq, Utau4_sq)])
    U = domain_checked(U, lambda u: (u >= 0) & (u <= 1), "sterile |U_e4|², |U_μ4|², |U_τ4|² must each lie in [0, 1]")
    U = domain_checked(U, lambda u: jnp.broadcast_to(jnp.sum(u) <= 1, u.shape),
                       "sterile mixing: |U_e4|² + |U_μ4|² + |U_τ4|² must be <= 1 (unitarity)")
    d = domain_checked(baseline_spread_m, lambda x: (x >= 0) & finite(x), "sterile baseline_spread_m must be >= 0 m and finite")
    return Sterile(dm2, U, d)


def disappearance_amplitude(U_sq):
    """sin²2θ_αα = 4|U_α4|²(1 − |U_α4|²): with one |U_α4|² ≠ 0, P(ν_α → ν_α) = 1 − sin²2θ_αα ⟨sin²Δ⟩ and every other
    active P is 1 or 0, so each rate is affine in it at fixed Δm² (docs/physics.md §5.9); increasing on |U|² ≤ ½."""
    return 4.0 * U_sq * (1.0 - U_sq)


FULL_AMPLITUDE_MIXING = 0.5
"""|U_α4|² at which :func:`disappearance_amplitude` is 1 (its maximum): the reference of affine sterile templates."""


def _sinc(x):
    """sin(x)/x (unnormalised; jnp.sinc is sin(πx)/(πx))."""
    return jnp.sinc(x / jnp.pi)


def averaged_sin2(model: Sterile, E_MeV, baseline_m, dE_MeV=0.0):
    """⟨sin²Δ⟩ with the baseline-spread and energy-cell filters."""
    phase = C.OSCILLATION_PHASE * model.dm2_eV2 * baseline_m / E_MeV
    damping = _sinc(phase * model.baseline_spread_m / baseline_m) * _sinc(phase * dE_MeV / E_MeV)
    return 0.5 * (1.0 - damping * jnp.cos(2.0 * phase))


def transition_probabilities(model: Sterile, E_MeV, baseline_m, dE_MeV=0.0):
    """P(ν_α → ν_β) for α, β ∈ {e, μ, τ}; shape (3, 3, *E.shape)."""
    s2 = averaged_sin2(model, E_MeV, baseline_m, dE_MeV)
    U = model.U4_sq
    amp = 4.0 * U[:, None] * (jnp.eye(3) - U[None, :])
    return jnp.eye(3).reshape(3, 3, *([1] * jnp.ndim(s2))) - amp.reshape(3, 3, *([1] * jnp.ndim(s2))) * s2


def sterile_appearance(model: Sterile, alpha: int, E_MeV, baseline_m, dE_MeV=0.0):
    """P(ν_α → ν_s) = 4|U_α4|²|U_s4|²⟨sin²Δ⟩ with |U_s4|² = 1 − Σ|U_α4|²."""
    Us = 1.0 - jnp.sum(model.U4_sq)
    return 4.0 * model.U4_sq[alpha] * Us * averaged_sin2(model, E_MeV, baseline_m, dE_MeV)
