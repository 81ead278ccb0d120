"""Standard-Model CEvNS cross section and its analytic folding with the π-DAR flux.

Conventions (docs/physics.md §0.3, §2.2): the nuclear vector charge is
Q_V(ν_ℓ; q) = Z g_V^p(ν_ℓ) F_p(q) + N g_V^n F_n(q) (negative in the SM), and

    dσ/dT = (G_F² M/π) [1 − T/E − MT/(2E²) (+ T²/(2E²))] Q_V²,

which is (G_F² M/4π) Q_W² [...] with the COHERENT weak charge Q_W = −2 Q_V. The T²/(2E²) term
(≤ 2E²/M² relative: 4e-7 on CsI, 3e-5 on ¹⁶O at m_μ/2) is off by default and on with ``StandardModel.t2_term`` (codes such as
pyCEvNS keep it: its ``NeutrinoNucleusElasticVector.rates`` folds 2 − 2T/E + T²/E² − MT/E²).

Couplings (docs/physics.md §2.3):
* ``"rc"`` (default): g_V^p(ν_ℓ) = (½ − 2ŝ²) + Δ_RC + δ_ℓ with Δ_RC = 0.01836 − (½ − 2·0.23857) held
  fixed (Erler & Su, arXiv:1303.5522, with the ν_μ charge-radius term removed) and the SM neutrino
  charge-radius shift δ_ℓ = (α/6π)[3 − 2 ln(m_ℓ²/m_W²)] (Bernabéu et al.; Cadeddu et al.,
  arXiv:1810.05606); g_V^n = −0.5117. Same couplings for antineutrinos.
* ``"tree"``: g_V^p = ½ − 2ŝ², g_V^n = −½.
* ``"radiative"``: the PDG parametrisation with explicit ρ, κ̂, λ (Erler & Su arXiv:1303.5522; PDG
  "Electroweak model and constraints on new physics"; docs/physics.md §2.3):
  g_V^p = ρ(½ − 2κ̂ ŝ²) + 2λ_uL + 2λ_uR + λ_dL + λ_dR,  g_V^n = −½ρ + λ_uL + λ_uR + 2λ_dL + 2λ_dR
  (the same combinations as pyCEvNS ``events.py``, athompson-tamu/pyCEvNS). κ̂ may be one number or one
  per flavour (e, μ, τ). The ŝ² in this formula is the one the parameters belong to: the PDG-2004 values
  (:data:`PDG2004_RADIATIVE`) go with ŝ²(M_Z) = 0.2312, not with the low-energy ŝ²(0) (docs/physics.md §7.4).
* ``"explicit"``: g_V^p and g_V^n given per flavour (e, μ, τ); ŝ² is then unused.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, static_field
from .form_factors import nucleon_form_factors
from .errors import CevnsInputError, domain_checked
from .kinematics import min_neutrino_energy, momentum_transfer
from .source import COMPONENT_FLAVOUR, MICHEL_NUE, MICHEL_NUMUBAR

GVP_RC_NUMU_NO_CR = 0.01836
"""Erler–Su g_V^p for ν_μ with its charge-radius term removed (dukecevns ``sm_vector_couplings``)."""
GVN_RC = -0.5117
"""Erler–Su neutron vector coupling including radiative corrections."""
DELTA_RC = GVP_RC_NUMU_NO_CR - (0.5 - 2.0 * C.SIN2_THETA_W_LOW_ENERGY)
"""Non-charge-radius radiative correction to g_V^p (≈ −0.00450), held fixed when ŝ² varies."""
LEPTON_MASSES = (C.M_ELECTRON, C.M_MUON, C.M_TAU)
COUPLING_SCHEMES = ("rc", "tree", "radiative", "explicit")
RADIATIVE_PARAMETERS = ("rho", "kappa", "lambda_uL", "lambda_dL", "lambda_uR", "lambda_dR")

PDG2004_RADIATIVE = dict(rho=1.0086, kappa=0.9978, lambda_uL=-0.0031, lambda_dL=-0.0025,
                         lambda_uR=3.75e-5, lambda_dR=7.5e-5, sin2_theta_w=0.2312)
"""PDG-2004 ν-nucleon parameters with ŝ²(M_Z) = 0.2312 (λ_dR = 2λ_uR = 7.5e-5), as used by Barranco,
Miranda & Rashba, JHEP 0512, 021 (2005) and pyCEvNS ``events.py``/``constants.py``; they give
g_V^p = 0.0304, g_V^n = −0.5122 (docs/physics.md §2.3). Their κ̂ contains the ν_μ charge radius."""


@pytree_dataclass
class StandardModel:
    """Standard-Model electroweak configuration (numbers are leaves, so every one is differentiable).

    Attributes:
        sin2_theta_w: weak mixing angle ŝ² of the coupling formula: the low-energy ŝ²(0), MS-bar (PDG 2024:
            0.23857) for ``"rc"`` and ``"tree"``; the value the ρ, κ̂, λ belong to for ``"radiative"``.
        couplings: ``"rc"`` (radiatively corrected, flavour dependent; default), ``"tree"``,
            ``"radiative"`` (explicit ρ, κ̂, λ) or ``"explicit"`` (g_V^p, g_V^n per flavour).
        rho, kappa, lambdas: ``"radiative"`` parameters: ρ (scalar), κ̂ per flavour (shape (3,)) and
            (λ_uL, λ_dL, λ_uR, λ_dR) (shape (4,)); ``None`` otherwise.
        gvp, gvn: ``"explicit"`` couplings per flavour e, μ, τ (shape (3,) each); ``None`` otherwise.
        t2_term: include +T²/(2E²) in the kinematic factor (static; default False).
    """

    sin2_theta_w: jnp.ndarray
    couplings: str = static_field(default="rc")
    rho: jnp.ndarray | None = None
    kappa: jnp.ndarray | None = None
    lambdas: jnp.ndarray | None = None
    gvp: jnp.ndarray | None = None
    gvn: jnp.ndarray | None = None
    t2_term: bool = static_field(default=False)


def _flavour_vector(name: str, value) -> jnp.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise CevnsInputError(f"{name}: must be a finite number or a list of 3 finite numbers (e, μ, τ), got {value!r}")
    return jnp.asarray(arr)


def _finite_scalar(name: str, value) -> jnp.ndarray:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value):
        raise CevnsInputError(f"{name}: must be a finite number, got {value!r}")
    return jnp.asarray(float(value), dtype=jnp.float64)


def standard_model(
    couplings: str = "rc",
    sin2_theta_w: float | None = None,
    *,
    rho: float | None = None,
    kappa=None,
    lambda_uL: float | None = None,
    lambda_dL: float | None = None,
    lambda_uR: float | None = None,
    lambda_dR: float | None = None,
    gvp=None,
    gvn=None,
    t2_term: bool = False,
) -> StandardModel:
    """The Standard Model with the chosen coupling scheme (PDG 2024 ŝ²(0) unless given).

    ``"radiative"`` needs all of ρ, κ̂ (a number or one per flavour) and the four λ; ``"explicit"``
    needs ``gvp`` and ``gvn`` (a number or one per flavour e, μ, τ). Parameters of another scheme are
    refused rather than ignored. Raises :class:`CevnsInputError` naming the bad argument.
    """
    if couplings not in COUPLING_SCHEMES:
        raise CevnsInputError(f"couplings: unknown coupling scheme {couplings!r}; choose one of {', '.join(COUPLING_SCHEMES)}")
    if not isinstance(t2_term, bool):
        raise CevnsInputError(f"t2_term: must be true or false, got {t2_term!r}")
    radiative = dict(rho=rho, kappa=kappa, lambda_uL=lambda_uL, lambda_dL=lambda_dL, lambda_uR=lambda_uR, lambda_dR=lambda_dR)
    explicit = dict(gvp=gvp, gvn=gvn)
    needed, refused = {"radiative": (radiative, explicit), "explicit": (explicit, radiative)}.get(couplings, ({}, {**radiative, **explicit}))
    stray = [k for k, v in refused.items() if v is not None]
    if stray:
        raise CevnsInputError(f"{stray[0]}: not a parameter of the {couplings!r} coupling scheme")
    missing = [k for k, v in needed.items() if v is None]
    if missing:
        raise CevnsInputError(f"{missing[0]}: required by the {couplings!r} coupling scheme")
    s2 = C.SIN2_THETA_W_LOW_ENERGY if sin2_theta_w is None else sin2_theta_w
    # sin²θ_W ∈ (0, 1): an error if concrete, NaN if traced (policy in cevns_jax.errors)
    s2 = domain_checked(s2, lambda s: (s > 0) & (s < 1), "sin2_theta_w must lie in (0, 1)")
    fields = dict(sin2_theta_w=s2, couplings=couplings, t2_term=t2_term)
    if couplings == "radiative":
        fields.update(
            rho=_finite_scalar("rho", rho),
            kappa=_flavour_vector("kappa", kappa),
            lambdas=jnp.stack([_finite_scalar(k, radiative[k]) for k in RADIATIVE_PARAMETERS[2:]]),
        )
    elif couplings == "explicit":
        if sin2_theta_w is not None:
            raise CevnsInputError("sin2_theta_w: not used by the 'explicit' coupling scheme (give gvp, gvn)")
        fields.update(gvp=_flavour_vector("gvp", gvp), gvn=_flavour_vector("gvn", gvn))
    return StandardModel(**fields)


def resolve_standard_model(experiment=None, sm: StandardModel | None = None) -> StandardModel:
    """The electroweak configuration to use: ``sm`` if given, else the experiment's own (its TOML
    ``[physics]`` table, ``experiment.electroweak``), else the default :func:`standard_model`."""
    if sm is not None:
        return sm
    own = getattr(experiment, "electroweak", None)
    return own if own is not None else standard_model()


def charge_radius_shift(lepton_mass_MeV):
    """SM neutrino charge-radius shift δ_ℓ = (α/6π)[3 − 2 ln(m_ℓ²/m_W²)] of g_V^p."""
    return C.ALPHA_EM / (6.0 * jnp.pi) * (3.0 - 2.0 * jnp.log(lepton_mass_MeV**2 / C.M_W**2))


def nucleon_couplings(sm: StandardModel):
    """Vector couplings: g_V^p per flavour e, μ, τ (shape (3,)) and g_V^n (scalar; shape (3,) for the
    ``"explicit"`` scheme)."""
    tree_p = 0.5 - 2.0 * sm.sin2_theta_w
    if sm.couplings == "tree":
        return jnp.full((3,), tree_p), jnp.asarray(-0.5)
    if sm.couplings == "rc":
        delta = charge_radius_shift(jnp.asarray(LEPTON_MASSES))
        return tree_p + DELTA_RC + delta, jnp.asarray(GVN_RC)
    if sm.couplings == "radiative":
        uL, dL, uR, dR = sm.lambdas[0], sm.lambdas[1], sm.lambdas[2], sm.lambdas[3]
        gvp = sm.rho * (0.5 - 2.0 * sm.kappa * sm.sin2_theta_w) + 2.0 * uL + 2.0 * uR + dL + dR
        return gvp, -0.5 * sm.rho + uL + uR + 2.0 * dL + 2.0 * dR
    if sm.couplings == "explicit":
        return sm.gvp, sm.gvn
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
        helm_radius_fm=target.helm_radius_fm[:, None],
    )


def kinematic_factor(E_MeV, T_MeV, M_MeV, t2_term: bool = False):
    """1 − T/E − MT/(2E²) [+ T²/(2E²) when ``t2_term``], clipped at 0.

    Without the T² term it vanishes exactly at T_max(E) = 2E²/(M + 2E); with it, its zero lies past
    T_max by ≈ T_max/M relative (< 3e-5 for A ≥ 16), a sliver that is kept (no hard cut)."""
    k = 1.0 - T_MeV / E_MeV - M_MeV * T_MeV / (2.0 * E_MeV**2)
    if t2_term:
        k = k + T_MeV**2 / (2.0 * E_MeV**2)
    return jnp.maximum(k, 0.0)


def dsigma_dT(E_MeV, T_MeV, M_MeV, Q_V, t2_term: bool = False):
    """SM-like CEvNS differential cross section dσ/dT [cm²/MeV] for weak charge Q_V."""
    prefactor = C.G_FERMI**2 * M_MeV / jnp.pi * C.MEV2_TO_CM2
    return prefactor * Q_V**2 * kinematic_factor(E_MeV, T_MeV, M_MeV, t2_term)


def michel_moments(T_MeV, M_MeV, spectrum):
    """J_k = ∫_{E_min(T)}^{m_μ/2} f(E) E^{−k} dE, k = 0, 1, 2, for f = a E² + b E³ (docs/physics.md §2.6).

    Zero when E_min(T) ≥ m_μ/2 (the lower limit is clipped to the endpoint, so gradients stay finite).
    """
    a, b = spectrum
    E2 = C.E_NU_MAX_MICHEL
    E1 = jnp.minimum(min_neutrino_energy(T_MeV, M_MeV), E2)
    J0 = a * (E2**3 - E1**3) / 3.0 + b * (E2**4 - E1**4) / 4.0
    J1 = a * (E2**2 - E1**2) / 2.0 + b * (E2**3 - E1**3) / 3.0
    J2 = a * (E2 - E1) + b * (E2**2 - E1**2) / 2.0
    return J0, J1, J2


def folded_kinematic_factors(T_MeV, M_MeV, t2_term: bool = False):
    """Flux-averaged kinematic factors K_c(T) of the three components (shape (3, *T.shape)).

    K_prompt = 1 − T/E_νμ − MT/(2E_νμ²) (clipped), K_delayed = J₀ − T J₁ − (MT/2) J₂, so that
    dR_c/dT per nucleus per unit fluence is (G_F² M/π) Q_V,c² K_c. With ``t2_term`` the prompt factor
    gains T²/(2E_νμ²) and the delayed ones (T²/2) J₂ (exact: the term is T²/2 · E⁻²).
    """
    prompt = kinematic_factor(C.E_NU_MU_PROMPT, T_MeV, M_MeV, t2_term)
    delayed = []
    for spectrum in (MICHEL_NUE, MICHEL_NUMUBAR):
        J0, J1, J2 = michel_moments(T_MeV, M_MeV, spectrum)
        k = J0 - T_MeV * J1 - 0.5 * M_MeV * T_MeV * J2
        if t2_term:
            k = k + 0.5 * T_MeV**2 * J2
        delayed.append(jnp.maximum(k, 0.0))
    return jnp.stack([prompt, *delayed])


def differential_rate_per_fluence(charges, T_MeV, M_MeV, t2_term: bool = False):
    """dR_c/dT per nucleus per unit fluence [cm²/MeV] for component charges Q_V,c (shape (3, ...))."""
    prefactor = C.G_FERMI**2 * M_MeV / jnp.pi * C.MEV2_TO_CM2
    return prefactor * charges**2 * folded_kinematic_factors(T_MeV, M_MeV, t2_term)


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
    """Coherent weak charge Q_V per flavour (3, n_iso, n_T) with charge-radius, millicharge and Z′ shifts, and
    the form factors (F_p, F_n)."""
    M = target.mass_MeV[:, None]
    q = momentum_transfer(T_MeV, M)
    Fp, Fn = nucleon_form_factors(_column(target), q)
    gvp, gvn = nucleon_couplings(sm)
    gvn = jnp.broadcast_to(gvn, (3,))
    if model is not None and model.em is not None:
        from .models.em import charge_radius_coupling_shift

        gvp = gvp + charge_radius_coupling_shift(model.em.charge_radius_cm2)
    Z, N = target.Z[:, None], target.N[:, None]
    Q = jnp.stack([weak_charge(gvp[f], gvn[f], Z, N, Fp, Fn) for f in range(3)])
    if model is not None and model.em is not None:
        from .models.em import millicharge_coupling_shift

        # a millicharge shifts g_V^p by ∝ q_ν/(MT) (docs/physics.md §4.4); adds exactly 0 at q_ν = 0
        Q = Q + Z * Fp * millicharge_coupling_shift(model.em.millicharge_e[:, None, None], M, T_MeV)
    if model is not None and model.zprime is not None:
        from .models.zprime import charge_shift

        Q = Q + charge_shift(model.zprime, Z, N, Fp, Fn, q**2)
    return Q, Fp, Fn


def flavour_prefactors(sm: StandardModel, model, target, T_MeV) -> tuple:
    """Per-flavour prefactors of dσ/dT at recoils T [MeV] (shape (n_iso, n_T)), each (3, n_iso, n_T) or
    ``None``: the weak term G_F²M/π Q² [cm²/MeV] (NSI included), the magnetic-moment and the scalar
    terms; the energy dependence (K(E, T), the magnetic bracket, 1/E²) is folded by the caller."""
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
    return weak, magnetic, scalar


def component_rates(sm: StandardModel, model, target, T_MeV, baseline_m):
    """dR_c/dT per nucleus per unit fluence [cm²/MeV] of the three components, shape (3, n_iso, n_T),
    under the SM (``model=None``) or a :class:`cevns_jax.models.NewPhysics` point."""
    M = target.mass_MeV[:, None]
    weak, magnetic, scalar = flavour_prefactors(sm, model, target, T_MeV)
    flav = np.asarray(COMPONENT_FLAVOUR)
    if model is None or model.sterile is None:
        rate = weak[flav] * folded_kinematic_factors(T_MeV, M, sm.t2_term)
        if magnetic is not None:
            rate = rate + magnetic[flav] * folded_magnetic_factors(T_MeV, M)
        if scalar is not None:
            rate = rate + scalar[flav] * folded_inverse_square_factors(T_MeV, M)
        return rate
    return _oscillated_rates(model.sterile, weak, magnetic, scalar, T_MeV, M, baseline_m, sm.t2_term)


def folded_inverse_square_factors(T_MeV, M_MeV):
    """Flux-averaged 1/E² of the three components above E_min(T) (shape (3, *T.shape)) [1/MeV²]."""
    from .kinematics import max_recoil_energy

    E = C.E_NU_MU_PROMPT
    prompt = jnp.where(T_MeV < max_recoil_energy(E, M_MeV), 1.0 / E**2, 0.0)
    delayed = [michel_moments(T_MeV, M_MeV, spectrum)[2] for spectrum in (MICHEL_NUE, MICHEL_NUMUBAR)]
    return jnp.stack([prompt, *delayed])


def _oscillated_rates(sterile, weak, magnetic, scalar, T_MeV, M, baseline_m, t2_term=False):
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
        per_beta = weak_b * kinematic_factor(E, T, Mb, t2_term)
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
