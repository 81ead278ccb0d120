"""Standard-Model CEvNS cross section and its analytic folding with the π-DAR flux.

Conventions (PHYSICS.md §0.3, §2.2): the nuclear vector charge is
Q_V(ν_ℓ; q) = Z g_V^p(ν_ℓ) F_p(q) + N g_V^n F_n(q) (negative in the SM), and

    dσ/dT = (G_F² M/π) [1 − T/E − MT/(2E²)] Q_V²,

which is (G_F² M/4π) Q_W² [...] with the COHERENT weak charge Q_W = −2 Q_V.

Couplings (PHYSICS.md §2.3):
* ``"rc"`` (default): g_V^p(ν_ℓ) = (½ − 2ŝ²) + Δ_RC + δ_ℓ with Δ_RC = 0.01836 − (½ − 2·0.23857) held
  fixed (Erler & Su, arXiv:1303.5522, with the ν_μ charge-radius term removed) and the SM neutrino
  charge-radius shift δ_ℓ = (α/6π)[3 − 2 ln(m_ℓ²/m_W²)] (Bernabéu et al.; Cadeddu et al.,
  arXiv:1810.05606); g_V^n = −0.5117. Same couplings for antineutrinos.
* ``"tree"``: g_V^p = ½ − 2ŝ², g_V^n = −½.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, static_field
from .form_factors import nucleon_form_factors
from .kinematics import min_neutrino_energy, momentum_transfer
from .source import COMPONENT_FLAVOUR, MICHEL_NUE, MICHEL_NUMUBAR

GVP_RC_NUMU_NO_CR = 0.01836
"""Erler–Su g_V^p for ν_μ with its charge-radius term removed (dukecevns ``sm_vector_couplings``)."""
GVN_RC = -0.5117
"""Erler–Su neutron vector coupling including radiative corrections."""
DELTA_RC = GVP_RC_NUMU_NO_CR - (0.5 - 2.0 * C.SIN2_THETA_W_LOW_ENERGY)
"""Non-charge-radius radiative correction to g_V^p (≈ −0.00450), held fixed when ŝ² varies."""
LEPTON_MASSES = (C.M_ELECTRON, C.M_MUON, C.M_TAU)
COUPLING_SCHEMES = ("rc", "tree")


@pytree_dataclass
class StandardModel:
    """Standard-Model electroweak inputs.

    Attributes:
        sin2_theta_w: low-energy weak mixing angle ŝ²(0), MS-bar (PDG 2024: 0.23857).
        couplings: ``"rc"`` (radiatively corrected, flavour dependent; default) or ``"tree"``.
    """

    sin2_theta_w: jnp.ndarray
    couplings: str = static_field(default="rc")


def standard_model(couplings: str = "rc", sin2_theta_w: float = C.SIN2_THETA_W_LOW_ENERGY) -> StandardModel:
    """The Standard Model with PDG 2024 ŝ²(0) and the chosen coupling scheme."""
    if couplings not in COUPLING_SCHEMES:
        raise ValueError(f"unknown coupling scheme {couplings!r}; choose one of {COUPLING_SCHEMES}")
    # sin²θ_W ∈ (0, 1): an error if concrete, NaN if traced (policy in cevns_jax.errors)
    from .errors import domain_checked

    s2 = domain_checked(sin2_theta_w, lambda s: (s > 0) & (s < 1), "sin2_theta_w must lie in (0, 1)")
    return StandardModel(sin2_theta_w=s2, couplings=couplings)


def charge_radius_shift(lepton_mass_MeV):
    """SM neutrino charge-radius shift δ_ℓ = (α/6π)[3 − 2 ln(m_ℓ²/m_W²)] of g_V^p."""
    return C.ALPHA_EM / (6.0 * jnp.pi) * (3.0 - 2.0 * jnp.log(lepton_mass_MeV**2 / C.M_W**2))


def nucleon_couplings(sm: StandardModel):
    """Vector couplings (g_V^p per flavour e, μ, τ as shape (3,), g_V^n scalar)."""
    tree_p = 0.5 - 2.0 * sm.sin2_theta_w
    if sm.couplings == "tree":
        return jnp.full((3,), tree_p), jnp.asarray(-0.5)
    if sm.couplings == "rc":
        delta = charge_radius_shift(jnp.asarray(LEPTON_MASSES))
        return tree_p + DELTA_RC + delta, jnp.asarray(GVN_RC)
    raise ValueError(f"unknown coupling scheme {sm.couplings!r}")


def weak_charge(gvp, gvn, Z, N, Fp, Fn):
    """Q_V = Z g_V^p F_p + N g_V^n F_n (library sign convention, negative in the SM)."""
    return Z * gvp * Fp + N * gvn * Fn


def sm_component_charges(sm: StandardModel, target, T_MeV):
    """SM weak charge Q_V of each flux component at recoils ``T_MeV`` of shape (n_iso, n_T).

    Returns shape (3 components, n_iso, n_T).
    """
    Q, _, _ = flavour_charges(sm, None, target, T_MeV)
    return Q[np.asarray(COMPONENT_FLAVOUR)]


def _column(target):
    """View of a target whose per-isotope arrays broadcast against (n_iso, n_T) grids."""
    from ._pytree import replace

    return replace(
        target,
        Z=target.Z[:, None],
        N=target.N[:, None],
        proton_radius_fm=target.proton_radius_fm[:, None],
        neutron_radius_fm=target.neutron_radius_fm[:, None],
    )


def kinematic_factor(E_MeV, T_MeV, M_MeV):
    """1 − T/E − MT/(2E²), clipped at 0 (vanishes exactly at T_max)."""
    return jnp.maximum(1.0 - T_MeV / E_MeV - M_MeV * T_MeV / (2.0 * E_MeV**2), 0.0)


def dsigma_dT(E_MeV, T_MeV, M_MeV, Q_V):
    """SM-like CEvNS differential cross section dσ/dT [cm²/MeV] for weak charge Q_V."""
    prefactor = C.G_FERMI**2 * M_MeV / jnp.pi * C.MEV2_TO_CM2
    return prefactor * Q_V**2 * kinematic_factor(E_MeV, T_MeV, M_MeV)


def michel_moments(T_MeV, M_MeV, spectrum):
    """J_k = ∫_{E_min(T)}^{m_μ/2} f(E) E^{−k} dE, k = 0, 1, 2, for f = a E² + b E³ (PHYSICS.md §2.6).

    Zero when E_min(T) ≥ m_μ/2 (the lower limit is clipped to the endpoint, so gradients stay finite).
    """
    a, b = spectrum
    E2 = C.E_NU_MAX_MICHEL
    E1 = jnp.minimum(min_neutrino_energy(T_MeV, M_MeV), E2)
    J0 = a * (E2**3 - E1**3) / 3.0 + b * (E2**4 - E1**4) / 4.0
    J1 = a * (E2**2 - E1**2) / 2.0 + b * (E2**3 - E1**3) / 3.0
    J2 = a * (E2 - E1) + b * (E2**2 - E1**2) / 2.0
    return J0, J1, J2


def folded_kinematic_factors(T_MeV, M_MeV):
    """Flux-averaged kinematic factors K_c(T) of the three components (shape (3, *T.shape)).

    K_prompt = 1 − T/E_νμ − MT/(2E_νμ²) (clipped), K_delayed = J₀ − T J₁ − (MT/2) J₂, so that
    dR_c/dT per nucleus per unit fluence is (G_F² M/π) Q_V,c² K_c.
    """
    prompt = kinematic_factor(C.E_NU_MU_PROMPT, T_MeV, M_MeV)
    delayed = []
    for spectrum in (MICHEL_NUE, MICHEL_NUMUBAR):
        J0, J1, J2 = michel_moments(T_MeV, M_MeV, spectrum)
        delayed.append(jnp.maximum(J0 - T_MeV * J1 - 0.5 * M_MeV * T_MeV * J2, 0.0))
    return jnp.stack([prompt, *delayed])


def differential_rate_per_fluence(charges, T_MeV, M_MeV):
    """dR_c/dT per nucleus per unit fluence [cm²/MeV] for component charges Q_V,c (shape (3, ...))."""
    prefactor = C.G_FERMI**2 * M_MeV / jnp.pi * C.MEV2_TO_CM2
    return prefactor * charges**2 * folded_kinematic_factors(T_MeV, M_MeV)


def folded_magnetic_factors(T_MeV, M_MeV):
    """Flux-averaged magnetic-moment brackets of the three components (shape (3, *T.shape)) [1/MeV]:
    prompt 1/T − 1/E + T/(4E²) below T_max(E_νμ); delayed J₀/T − J₁ + (T/4) J₂."""
    from .kinematics import max_recoil_energy

    E = C.E_NU_MU_PROMPT
    below = T_MeV < max_recoil_energy(E, M_MeV)
    prompt = jnp.where(below, 1.0 / T_MeV - 1.0 / E + T_MeV / (4.0 * E**2), 0.0)
    delayed = []
    for spectrum in (MICHEL_NUE, MICHEL_NUMUBAR):
        J0, J1, J2 = michel_moments(T_MeV, M_MeV, spectrum)
        delayed.append(jnp.maximum(J0 / T_MeV - J1 + 0.25 * T_MeV * J2, 0.0))
    return jnp.stack([prompt, *delayed])


STERILE_ENERGY_NODES = 64
_GL64_X, _GL64_W = np.polynomial.legendre.leggauss(STERILE_ENERGY_NODES)


def flavour_charges(sm: StandardModel, model, target, T_MeV):
    """Coherent weak charge Q_V per flavour (3, n_iso, n_T) with charge-radius and Z′ shifts, and the
    form factors (F_p, F_n)."""
    M = target.mass_MeV[:, None]
    q = momentum_transfer(T_MeV, M)
    Fp, Fn = nucleon_form_factors(_column(target), q)
    gvp, gvn = nucleon_couplings(sm)
    if model is not None and model.em is not None:
        from .models.em import charge_radius_coupling_shift

        gvp = gvp + charge_radius_coupling_shift(model.em.charge_radius_cm2)
    Z, N = target.Z[:, None], target.N[:, None]
    Q = jnp.stack([weak_charge(gvp[f], gvn, Z, N, Fp, Fn) for f in range(3)])
    if model is not None and model.zprime is not None:
        from .models.zprime import charge_shift

        Q = Q + charge_shift(model.zprime, Z, N, Fp, Fn, q**2)
    return Q, Fp, Fn


def component_rates(sm: StandardModel, model, target, T_MeV, baseline_m):
    """dR_c/dT per nucleus per unit fluence [cm²/MeV] of the three components, shape (3, n_iso, n_T),
    under the SM (``model=None``) or a :class:`cevns_jax.models.NewPhysics` point."""
    M = target.mass_MeV[:, None]
    Q, Fp, Fn = flavour_charges(sm, model, target, T_MeV)
    Z, N = target.Z[:, None], target.N[:, None]
    if model is not None and model.nsi is not None:
        from .models.nsi import charge_squared

        Q2 = charge_squared(model.nsi, Q, Z, N, Fp, Fn)
    else:
        Q2 = Q**2
    weak = C.G_FERMI**2 * M / jnp.pi * C.MEV2_TO_CM2 * Q2  # (3 flavours, n_iso, n_T)
    magnetic = scalar = None
    if model is not None and model.em is not None:
        from .models.em import magnetic_prefactor

        magnetic = magnetic_prefactor(model.em.magnetic_moment_muB[:, None, None], Z, Fp)
    if model is not None and model.scalar is not None:
        from .models.scalar import prefactor

        scalar = prefactor(model.scalar, Z, N, Fp, T_MeV, M)
    flav = np.asarray(COMPONENT_FLAVOUR)
    if model is None or model.sterile is None:
        rate = weak[flav] * folded_kinematic_factors(T_MeV, M)
        if magnetic is not None:
            rate = rate + magnetic[flav] * folded_magnetic_factors(T_MeV, M)
        if scalar is not None:
            rate = rate + scalar[flav] * folded_inverse_square_factors(T_MeV, M)
        return rate
    return _oscillated_rates(model.sterile, weak, magnetic, scalar, T_MeV, M, baseline_m)


def folded_inverse_square_factors(T_MeV, M_MeV):
    """Flux-averaged 1/E² of the three components above E_min(T) (shape (3, *T.shape)) [1/MeV²]."""
    from .kinematics import max_recoil_energy

    E = C.E_NU_MU_PROMPT
    prompt = jnp.where(T_MeV < max_recoil_energy(E, M_MeV), 1.0 / E**2, 0.0)
    delayed = [michel_moments(T_MeV, M_MeV, spectrum)[2] for spectrum in (MICHEL_NUE, MICHEL_NUMUBAR)]
    return jnp.stack([prompt, *delayed])


def _oscillated_rates(sterile, weak, magnetic, scalar, T_MeV, M, baseline_m):
    """Exact flavour sum Σ_β P_αβ(E) rate_β; the delayed spectra are folded over E with 64-node
    Gauss–Legendre on [E_min(T), m_μ/2] (a trailing node axis, no loop), each node's cell width
    feeding the oscillation low-pass filter."""
    from .kinematics import max_recoil_energy
    from .models.em import magnetic_kinematics
    from .models.sterile import transition_probabilities

    def per_initial_flavour(E, dE, T, weak_b, magnetic_b, scalar_b):
        """Σ_β P_αβ(E) [weak_β K(E, T) + magnetic_β B(E, T) + scalar_β/E²] for α = e, μ; shape (2, …)."""
        P = transition_probabilities(sterile, E, baseline_m, dE)[:2]  # (2, 3, …)
        Mb = M[..., None] if E.ndim > T_MeV.ndim else M
        per_beta = weak_b * kinematic_factor(E, T, Mb)
        inside = T < max_recoil_energy(E, Mb)
        if magnetic_b is not None:
            bracket = magnetic_kinematics(E, jnp.where(inside, T, 1.0))
            per_beta = per_beta + magnetic_b * jnp.where(inside, bracket, 0.0)
        if scalar_b is not None:
            per_beta = per_beta + scalar_b * jnp.where(inside, 1.0 / E**2, 0.0)
        return jnp.einsum("ab...,b...->a...", P, per_beta)

    E_prompt = jnp.full_like(T_MeV, C.E_NU_MU_PROMPT)
    prompt = per_initial_flavour(E_prompt, 0.0, T_MeV, weak, magnetic, scalar)[1]
    E2 = C.E_NU_MAX_MICHEL
    E1 = jnp.minimum(min_neutrino_energy(T_MeV, M), E2)[..., None]
    half = 0.5 * (E2 - E1)
    E = E1 + half * (_GL64_X + 1.0)  # (n_iso, n_T, n_E)
    dE = half * _GL64_W
    mag = None if magnetic is None else magnetic[..., None]
    sca = None if scalar is None else scalar[..., None]
    folded = per_initial_flavour(E, dE, T_MeV[..., None], weak[..., None], mag, sca)  # (2, n_iso, n_T, n_E)
    delayed = [jnp.sum(dE * (a * E**2 + b * E**3) * folded[alpha], axis=-1)
               for alpha, (a, b) in ((0, MICHEL_NUE), (1, MICHEL_NUMUBAR))]
    return jnp.stack([prompt, *delayed])
