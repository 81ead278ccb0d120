"""Accelerator-produced light dark matter through a vector portal (docs/physics.md §4.3).

Production (at rest): π⁰ → γV, V → χχ̄ on shell (m_V < m_π0, m_V > 2m_χ), with
BR(π⁰→γV) = 2ε²(1 − m_V²/m_π0²)³ BR(π⁰→γγ) for a dark photon (kinetic mixing ε) and
2(α_B/α)(1 − m_V²/m_π0²)³ BR(π⁰→γγ) for a leptophobic (baryonic) mediator. Two χ per decay;
fluence Φ_χ = 2 f_π0 BR N_POT/(4πL²) (isotropic at-rest approximation). Isotropic V decay gives a
flat χ energy spectrum on [E₋, E₊], E_± = γ m_V/2 ± βγ p*.

Scattering (coherent, couples to charge ⇒ Z and F_p for the dark photon; to baryon number ⇒ A for
the leptophobic mediator), E the total χ energy, following deNiverville, Pospelov & Ritz,
arXiv:1505.07805 (scalar) and pyCEvNS ``DMNucleusElasticVector`` (Dirac):

    scalar: dσ/dT = 4π ε² α α_D Z²F_p² [2ME² − (2ME + m_χ²)T] / [(E² − m_χ²)(2MT + m_V²)²]
    Dirac:  dσ/dT = 4π ε² α α_D Z²F_p² [2ME² − (2ME + M² + m_χ²)T + MT²] / [(E² − m_χ²)(2MT + m_V²)²]

The signal is prompt: the proton pulse delayed by the χ time of flight L(1/β − 1)/c per energy.
At fixed α_D and m_V/m_χ, N ∝ ε⁴ ∝ Y² with Y = ε² α_D (m_χ/m_V)⁴.

Domain: 0 < 2m_χ < m_V < m_π0 (on-shell production; masses enter squared, so a negative mass would
silently act as |m|), α_D > 0, α_B ≥ 0, π⁰ yield > 0, Y ≥ 0 in :func:`epsilon_from_Y`; ε takes
either sign (only ε² enters). Concrete values outside the domain raise
:class:`~cevns_jax.errors.CevnsInputError`; traced ones become NaN (policy in :mod:`cevns_jax.errors`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import constants as C
from .._pytree import pytree_dataclass, replace, static_field
from ..errors import CevnsInputError, domain_checked
from ..facilities import FACILITIES, PI0_SNS_1GEV

PI0_PER_PROTON = PI0_SNS_1GEV
"""π⁰ per proton of a model not yet tied to a source (the SNS near 1 GeV, ``facilities.PI0_SNS_1GEV``);
:func:`at_source` replaces it with the yield of the experiment's facility."""
ENERGY_NODES = 32
"""Gauss–Legendre nodes of the χ-energy integral at each recoil (× ``Binning.refine`` in the convergence tests)."""


@pytree_dataclass
class DarkMatter:
    """χ of mass ``m_chi_MeV`` through a mediator of mass ``m_V_MeV``.

    ``coupling`` is the kinetic mixing ε (``mediator="dark_photon"``) or α_B (``"leptophobic"``);
    ``alpha_D`` the dark coupling; ``pi0_per_proton`` the π⁰ yield. ``dirac`` is 1 for a Dirac fermion χ and
    0 for a complex scalar, ``leptophobic`` 1 for a baryonic mediator (coupling α_B) and 0 for a dark
    photon (coupling ε): leaves, not static switches, so dark-matter models of every kind share one
    compiled program (values other than 0 and 1 are not physical; the constructor gives only those).
    ``pi0_from_facility`` (static): the yield follows the facility of the experiment (:func:`at_source`)
    instead of being the user's own number.
    Optionally a tabulated χ spectrum replaces the at-rest π⁰ model: energies ``spectrum_E_MeV``, a
    density ``spectrum_pdf`` (any normalisation; linearly interpolated) and ``spectrum_yield`` χ per
    proton per unit coupling² (ε², or α_B) — e.g. from a Monte Carlo with π⁰ decays in flight.
    """

    m_chi_MeV: jnp.ndarray
    m_V_MeV: jnp.ndarray
    coupling: jnp.ndarray
    alpha_D: jnp.ndarray
    pi0_per_proton: jnp.ndarray
    spectrum_E_MeV: jnp.ndarray | None = None
    spectrum_pdf: jnp.ndarray | None = None
    spectrum_yield: jnp.ndarray | None = None
    dirac: jnp.ndarray = 0.0
    leptophobic: jnp.ndarray = 0.0
    pi0_from_facility: bool = static_field(default=False)


def dark_matter(m_chi_MeV, m_V_MeV=None, epsilon=None, alpha_D=0.5, *, alpha_B=None, particle="scalar",
                pi0_per_proton=None, spectrum=None) -> DarkMatter:
    """Dark photon (``epsilon``) or leptophobic (``alpha_B``) dark matter; m_V defaults to 3 m_χ.

    ``pi0_per_proton``: None (default) takes the π⁰ yield of each experiment's facility
    (``facilities.FACILITIES[…].pi0_per_proton``, through :func:`at_source`); a number fixes it.
    ``spectrum = (E_MeV, pdf, yield_per_proton_per_coupling2)`` replaces the at-rest π⁰ production.
    """
    if particle not in ("scalar", "dirac"):
        raise CevnsInputError(f"dark-matter particle must be 'scalar' or 'dirac', got {particle!r}")
    if (epsilon is None) == (alpha_B is None):
        raise CevnsInputError("give exactly one of epsilon (dark photon) or alpha_B (leptophobic mediator)")
    m_V = 3.0 * m_chi_MeV if m_V_MeV is None else m_V_MeV
    masses = jnp.stack([jnp.asarray(m_chi_MeV, dtype=jnp.float64), jnp.asarray(m_V, dtype=jnp.float64)])
    masses = domain_checked(
        masses, lambda m: jnp.broadcast_to((0 < 2 * m[0]) & (2 * m[0] < m[1]) & (m[1] < C.M_PION_NEUTRAL), m.shape),
        f"on-shell π⁰ → γV, V → χχ̄ needs 0 < 2 m_χ < m_V < m_π0 = {C.M_PION_NEUTRAL} MeV; (m_χ, m_V)",
    )
    m_chi_MeV, m_V = masses[0], masses[1]
    alpha_D = domain_checked(alpha_D, lambda a: (a > 0) & jnp.isfinite(a), "dark-matter alpha_D must be > 0 and finite")
    if pi0_per_proton is not None:
        pi0_per_proton = domain_checked(pi0_per_proton, lambda p: (p > 0) & jnp.isfinite(p),
                                        "dark-matter pi0_per_proton must be > 0 and finite")
    if alpha_B is not None:
        alpha_B = domain_checked(alpha_B, lambda a: (a >= 0) & jnp.isfinite(a),
                                 "leptophobic alpha_B must be >= 0 and finite (the branching ratio is linear in it)")
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    table = (None, None, None)
    if spectrum is not None:
        E, pdf, yield_ = (np.asarray(x, dtype=np.float64) for x in spectrum)
        if E.ndim != 1 or E.shape != pdf.shape or E.size < 2 or np.any(np.diff(E) <= 0) or np.any(pdf < 0):
            raise CevnsInputError("tabulated χ spectrum needs increasing energies and a non-negative density of the same length")
        if np.any(E <= float(m_chi_MeV)):
            raise CevnsInputError("tabulated χ spectrum: every total energy must exceed m_χ")
        table = (f(E), f(pdf / np.trapezoid(pdf, E)), f(yield_))
    follow = pi0_per_proton is None and spectrum is None
    pi0 = PI0_PER_PROTON if pi0_per_proton is None else pi0_per_proton
    return DarkMatter(f(m_chi_MeV), f(m_V), f(epsilon if alpha_B is None else alpha_B), f(alpha_D), f(pi0),
                      *table, f(float(particle == "dirac")), f(float(alpha_B is not None)), pi0_from_facility=follow)


def at_source(dm: DarkMatter, source) -> DarkMatter:
    """``dm`` with the π⁰ yield of the facility that ``source`` comes from (its ``name``).

    Only for a model built without its own ``pi0_per_proton`` (``dm.pi0_from_facility``); a source that
    is no facility preset (``name`` not in ``FACILITIES``) keeps the model's yield. Idempotent.
    """
    facility = FACILITIES.get(source.name)
    if not dm.pi0_from_facility or facility is None:
        return dm
    return replace(dm, pi0_per_proton=jnp.asarray(facility.pi0_per_proton, dtype=jnp.float64))


def benchmark_Y(epsilon, m_chi_MeV, m_V_MeV, alpha_D=0.5):
    """Y = ε² α_D (m_χ/m_V)⁴."""
    return epsilon**2 * alpha_D * (m_chi_MeV / m_V_MeV) ** 4


def epsilon_from_Y(Y, m_chi_MeV, m_V_MeV=None, alpha_D=0.5):
    """ε giving Y at the benchmark (α_D = 0.5, m_V = 3 m_χ by default)."""
    m_V = 3.0 * m_chi_MeV if m_V_MeV is None else m_V_MeV
    Y = domain_checked(Y, lambda y: (y >= 0) & jnp.isfinite(y), "dark-matter Y must be >= 0 and finite")
    # floor inside the root: ε(0) ≈ 1e-150 (zero counts) with a finite gradient at Y = 0
    return jnp.sqrt(jnp.maximum(Y, 1e-300) / (alpha_D * (m_chi_MeV / m_V) ** 4))


def branching_ratio(dm: DarkMatter):
    """BR(π⁰ → γV)."""
    phase = jnp.clip(1.0 - dm.m_V_MeV**2 / C.M_PION_NEUTRAL**2, 0.0, 1.0) ** 3
    lepto = dm.leptophobic
    strength = (1.0 - lepto) * dm.coupling**2 + lepto * dm.coupling / C.ALPHA_EM
    return 2.0 * strength * phase * C.BR_PI0_GAMMA_GAMMA


def energy_box(dm: DarkMatter):
    """(E₋, E₊) of χ from V decays in flight after π⁰ → γV at rest [MeV] (the table's range if tabulated)."""
    if dm.spectrum_E_MeV is not None:
        return dm.spectrum_E_MeV[0], dm.spectrum_E_MeV[-1]
    mpi, mV, m = C.M_PION_NEUTRAL, dm.m_V_MeV, dm.m_chi_MeV
    EV = (mpi**2 + mV**2) / (2 * mpi)
    pV = (mpi**2 - mV**2) / (2 * mpi)
    p_star = jnp.sqrt(jnp.maximum(mV**2 / 4 - m**2, 0.0))
    return EV / mV * mV / 2 - pV / mV * p_star, EV / mV * mV / 2 + pV / mV * p_star


def max_recoil(E_MeV, m_MeV, M_MeV):
    """T_max = 2M(E² − m²)/(M² + m² + 2ME) for a massive projectile of total energy E."""
    return 2 * M_MeV * (E_MeV**2 - m_MeV**2) / (M_MeV**2 + m_MeV**2 + 2 * M_MeV * E_MeV)


def min_energy(T_MeV, m_MeV, M_MeV):
    """Smallest total χ energy giving recoil T: [T + √(T² + 2MT + 4m² + 2Tm²/M)]/2."""
    return 0.5 * (T_MeV + jnp.sqrt(T_MeV**2 + 2 * M_MeV * T_MeV + 4 * m_MeV**2 + 2 * T_MeV * m_MeV**2 / M_MeV))


def dsigma_dT(dm: DarkMatter, E_MeV, T_MeV, M_MeV, Z, N, Fp, Fn):
    """χ-nucleus dσ/dT [cm²/MeV] (zero above T_max)."""
    m, mV = dm.m_chi_MeV, dm.m_V_MeV
    lepto = dm.leptophobic
    strength = 4 * jnp.pi * dm.alpha_D * ((1.0 - lepto) * dm.coupling**2 * C.ALPHA_EM * (Z * Fp) ** 2
                                          + lepto * dm.coupling * (Z * Fp + N * Fn) ** 2)
    scalar = 2 * M_MeV * E_MeV**2 - (2 * M_MeV * E_MeV + m**2) * T_MeV
    numerator = scalar + dm.dirac * (M_MeV * T_MeV**2 - M_MeV**2 * T_MeV)  # Dirac: − M²T + MT² more
    p2 = jnp.maximum(E_MeV**2 - m**2, 1e-30)
    value = strength * numerator / (p2 * (2 * M_MeV * T_MeV + mV**2) ** 2) * C.MEV2_TO_CM2
    return jnp.where(T_MeV <= max_recoil(E_MeV, m, M_MeV), jnp.maximum(value, 0.0), 0.0)


def fluence(dm: DarkMatter, protons_on_target, baseline_m):
    """χ fluence [cm⁻²]: 2 f_π0 BR(π⁰ → γV) N_POT/(4πL²)."""
    L_cm = baseline_m * C.M_TO_CM
    if dm.spectrum_E_MeV is not None:
        per_proton = dm.spectrum_yield * ((1.0 - dm.leptophobic) * dm.coupling**2 + dm.leptophobic * dm.coupling)
    else:
        per_proton = 2.0 * dm.pi0_per_proton * branching_ratio(dm)
    return per_proton * protons_on_target / (4 * jnp.pi * L_cm**2)


def energy_nodes(dm: DarkMatter, T_MeV, M_MeV, nodes: int = ENERGY_NODES):
    """χ energies and weights (box spectrum × ``nodes``-point GL) on [max(E₋, E_min(T)), E₊]: shapes (…, nodes)."""
    gl_x, gl_w = np.polynomial.legendre.leggauss(nodes)
    Em, Ep = energy_box(dm)
    lo = jnp.minimum(jnp.maximum(Em, min_energy(T_MeV, dm.m_chi_MeV, M_MeV)), Ep)[..., None]
    half = 0.5 * (Ep - lo)
    E = lo + half * (gl_x + 1.0)
    if dm.spectrum_E_MeV is not None:
        return E, half * gl_w * jnp.interp(E, dm.spectrum_E_MeV, dm.spectrum_pdf)
    return E, half * gl_w / (Ep - Em)


def time_of_flight_delay_ns(dm: DarkMatter, E_MeV, baseline_m):
    """L(1/β − 1)/c [ns] of a χ of total energy E relative to light."""
    beta = jnp.sqrt(jnp.maximum(1.0 - dm.m_chi_MeV**2 / E_MeV**2, 1e-12))
    return baseline_m / C.SPEED_OF_LIGHT_M_PER_NS * (1.0 / beta - 1.0)
