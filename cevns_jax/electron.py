"""Neutrino–electron elastic scattering: cross sections and atomic binding (docs/physics.md §10).

Per free electron at rest, for a neutrino of energy E [MeV] and an electron recoil (kinetic energy) T [MeV]
below T_max = 2E²/(m_e + 2E) (Vogel & Engel, PRD 39, 3378 (1989); 't Hooft 1971; PDG 2024 electroweak review):

    dσ/dT = (G_F² m_e/2π) [(g_V + g_A)² + (g_V − g_A)² (1 − T/E)² − (g_V² − g_A²) m_e T/E²]
            + (πα²/m_e²)(μ_ν/μ_B)² (1/T − 1/E),

with ν̄ obtained by g_A → −g_A. The couplings of ν_ℓ (:func:`electron_couplings`) are
g_V = −½ + 2ŝ² + δ_ℓe − δ_ℓ and g_A = −½ + δ_ℓe: the neutral current, the charged current for ν_e (δ_ℓe,
after a Fierz transformation) and, except in the ``"tree"`` scheme, the SM neutrino charge radius δ_ℓ of
:func:`cevns_jax.xsec.charge_radius_shift` with the sign of a charge −1 target. The electromagnetic
properties of :mod:`cevns_jax.models.em` enter as shifts of g_V (charge radius +(√2πα/3G_F)⟨r²⟩, millicharge
−√2πα q_ν/(G_F m_e T); Giunti & Studenikin, Rev. Mod. Phys. 87, 531 (2015)) and the incoherent magnetic term.
At T ≪ E the millicharge alone gives 2πα² q_ν²/(m_e T²).

In every case dσ/dT = a₀(T) + a₁(T)/E + a₂(T)/E² (:func:`cross_section_coefficients`), which folds with a
π-DAR source in closed form (the Michel moments J₀, J₁, J₂ of docs/physics.md §2.6 with M = m_e) and with a
steady source by the moments of :func:`cevns_jax.spectra.energy_moments` (the same Gauss–Legendre panels as
:func:`cevns_jax.spectra.energy_nodes`).

Atomic binding: the stepping approximation — an electron of binding energy B scatters as free for T > B and
not at all below, so an atom offers Z_eff(T) = Σ_shells n_s Θ(T − B_s) electrons (:func:`stepping_electrons`;
Kopeikin et al., Phys. At. Nucl. 60, 1859 (1997); docs/physics.md §10.4). Binding energies:
:data:`BINDING_ENERGIES_KEV`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from .errors import CevnsInputError
from .kinematics import max_recoil_energy, min_neutrino_energy
from .spectra import energy_moments
from .source import MICHEL_NUE, MICHEL_NUMUBAR
from .xsec import LEPTON_MASSES, charge_radius_shift, michel_moments

__all__ = ["BINDING_ENERGIES_KEV", "electron_couplings", "flavour_electron_couplings", "cross_section_coefficients",
           "dsigma_dT", "total_cross_section", "stepping_electrons", "binding_edges_MeV", "check_target_elements",
           "electrons_per_unit", "component_antineutrino", "electron_source_rates"]

# (binding energy [keV], electrons) per subshell, K first. Values: X-ray Data Booklet (A. C. Thompson et al.,
# LBNL 2009), Table 1-1 (G. P. Williams; from Bearden & Burr, Rev. Mod. Phys. 39, 125 (1967), Cardona & Ley
# (1978), Fuggle & Mårtensson (1980)), as tabulated in xraylib's data/fluor_lines/BindingEnergies.dat (W: that
# file's compilation above Z = 70). Relative to the vacuum level (Ar, Xe) or the Fermi level / valence-band
# top (solids). Subshells with equal binding are merged; valence electrons the table does not list (Ca 4s,
# Cs 6s, W 6s) are taken as free (B = 0).
BINDING_ENERGIES_KEV: dict[str, tuple[tuple[float, int], ...]] = {
    "O": ((0.5320, 2), (0.0285, 2), (0.0071, 4)),
    "Na": ((1.0721, 2), (0.0633, 2), (0.0311, 6), (0.0007, 1)),
    "Al": ((1.5596, 2), (0.1177, 2), (0.0732, 2), (0.0727, 4), (0.0007, 2), (0.0055, 1)),
    "Si": ((1.8389, 2), (0.1487, 2), (0.0995, 2), (0.0989, 4), (0.0076, 2), (0.0030, 2)),
    "Ar": ((3.2060, 2), (0.3263, 2), (0.2507, 2), (0.2486, 4), (0.0292, 2), (0.0159, 2), (0.0158, 4)),
    "Ca": ((4.0381, 2), (0.4378, 2), (0.3500, 2), (0.3464, 4), (0.0437, 2), (0.0254, 6), (0.0, 2)),
    "Ge": ((11.1031, 2), (1.4143, 2), (1.2478, 2), (1.2167, 4), (0.1800, 2), (0.1279, 2), (0.1208, 4),
           (0.0287, 10), (0.0050, 2), (0.0023, 2)),
    "I": ((33.1694, 2), (5.1881, 2), (4.8521, 2), (4.5571, 4), (1.0721, 2), (0.9305, 2), (0.8746, 4),
          (0.6313, 4), (0.6194, 6), (0.1864, 2), (0.1227, 6), (0.0496, 10), (0.0136, 2), (0.0033, 5)),
    "Xe": ((34.5644, 2), (5.4528, 2), (5.1037, 2), (4.7822, 4), (1.1487, 2), (1.0021, 2), (0.9406, 4),
           (0.6894, 4), (0.6767, 6), (0.2133, 2), (0.1455, 6), (0.0695, 4), (0.0675, 6), (0.0234, 2),
           (0.0134, 2), (0.0121, 4)),
    "Cs": ((35.9846, 2), (5.7143, 2), (5.3594, 2), (5.0119, 4), (1.2171, 2), (1.0650, 2), (0.9976, 4),
           (0.7395, 4), (0.7255, 6), (0.2308, 2), (0.1723, 2), (0.1616, 4), (0.0788, 4), (0.0765, 6),
           (0.0227, 2), (0.0131, 2), (0.0114, 4), (0.0, 1)),
    "W": ((69.5250, 2), (12.0998, 2), (11.5440, 2), (10.2068, 4), (2.8196, 2), (2.5749, 2), (2.2810, 4),
          (1.8716, 4), (1.8092, 6), (0.5950, 2), (0.4916, 2), (0.4253, 4), (0.2588, 4), (0.2454, 6),
          (0.0379, 6), (0.0358, 8), (0.0771, 2), (0.0468, 2), (0.0356, 4), (0.0061, 4), (0.0, 2)),
}
"""Subshell binding energies [keV] and occupancies of the target elements (stepping approximation)."""

_CC = np.array([1.0, 0.0, 0.0])  # charged current: ν_e only


def electron_couplings(sm):
    """(g_V, g_A) of ν_ℓ–e scattering per flavour e, μ, τ (shape (3,) each), for neutrinos (ν̄: g_A → −g_A).

    ``"tree"``: g_V = −½ + 2ŝ² (+1 for ν_e), g_A = −½ (+1 for ν_e) with the model's ŝ². ``"rc"``: in addition
    the SM charge-radius term, g_V − δ_ℓ. ``"radiative"``/``"explicit"`` (whose parameters are ν–nucleon
    ones): the ``"rc"`` couplings at the low-energy ŝ²(0) of PDG 2024 (docs/physics.md §10.2)."""
    own = sm.couplings in ("tree", "rc")
    s2 = sm.sin2_theta_w if own else C.SIN2_THETA_W_LOW_ENERGY
    g_V = -0.5 + 2.0 * s2 + _CC
    if sm.couplings != "tree":
        g_V = g_V - charge_radius_shift(jnp.asarray(LEPTON_MASSES))
    return g_V, jnp.asarray(-0.5 + _CC)


def flavour_electron_couplings(sm, model, T_MeV):
    """(g_V, g_A, μ²) per flavour with the electromagnetic shifts of ``model.em``: g_V of shape (3, *T.shape)
    (a millicharge makes it depend on T [MeV]), g_A (3,), squared magnetic moments [μ_B²] (3,) or ``None``."""
    from .models.em import charge_radius_coupling_shift, millicharge_coupling_shift

    g_V, g_A = electron_couplings(sm)
    shape = (3,) + (1,) * jnp.ndim(T_MeV)
    g_V = jnp.broadcast_to(g_V.reshape(shape), (3,) + jnp.shape(T_MeV))
    if model is None or model.em is None:
        return g_V, g_A, None
    em = model.em
    # a charge −1 target: the shifts of g_V^p with the opposite sign (docs/physics.md §4.4)
    g_V = g_V - charge_radius_coupling_shift(em.charge_radius_cm2).reshape(shape)
    g_V = g_V - millicharge_coupling_shift(em.millicharge_e.reshape(shape), C.M_ELECTRON, T_MeV)
    return g_V, g_A, em.magnetic_moment_muB**2


def cross_section_coefficients(g_V, g_A, T_MeV, antineutrino=False, mu2_muB2=None):
    """(a₀, a₁, a₂) with dσ/dT = a₀ + a₁/E + a₂/E² per free electron [cm²/MeV] below T_max(E), for couplings
    g_V, g_A (broadcast against T [MeV]), a neutrino (or ``antineutrino``: g_A → −g_A, a bool or a ±1 sign
    array) and squared magnetic moment μ² [μ_B²]."""
    sign = jnp.where(jnp.asarray(antineutrino), -1.0, 1.0)
    gA = sign * g_A
    K = C.G_FERMI**2 * C.M_ELECTRON / (2.0 * jnp.pi) * C.MEV2_TO_CM2
    left, right, mixed = (g_V + gA) ** 2, (g_V - gA) ** 2, g_V**2 - gA**2
    a0 = K * (left + right)
    a1 = -2.0 * K * right * T_MeV
    a2 = K * (right * T_MeV**2 - mixed * C.M_ELECTRON * T_MeV)
    if mu2_muB2 is not None:
        c = jnp.pi * C.ALPHA_EM**2 / C.M_ELECTRON**2 * C.MEV2_TO_CM2 * mu2_muB2
        a0, a1 = a0 + c / T_MeV, a1 - c
    return a0, a1, a2


def dsigma_dT(E_MeV, T_MeV, g_V, g_A, antineutrino=False, mu2_muB2=None):
    """dσ/dT per free electron [cm²/MeV] at neutrino energy E and recoil T [MeV] (zero at T ≥ T_max(E))."""
    a0, a1, a2 = cross_section_coefficients(g_V, g_A, T_MeV, antineutrino, mu2_muB2)
    inside = T_MeV < max_recoil_energy(E_MeV, C.M_ELECTRON)
    return jnp.where(inside, a0 + a1 / E_MeV + a2 / E_MeV**2, 0.0)


def total_cross_section(E_MeV, g_V, g_A, antineutrino=False, T_min_MeV=0.0):
    """Weak σ(E) per free electron [cm²] above the recoil T_min, in closed form (∫ of :func:`dsigma_dT` with
    constant couplings from T_min to T_max): the check of the coefficients in ``tests/test_electron.py``."""
    Tm = max_recoil_energy(E_MeV, C.M_ELECTRON)
    sign = jnp.where(jnp.asarray(antineutrino), -1.0, 1.0)
    gA = sign * g_A
    K = C.G_FERMI**2 * C.M_ELECTRON / (2.0 * jnp.pi) * C.MEV2_TO_CM2
    left, right, mixed = (g_V + gA) ** 2, (g_V - gA) ** 2, g_V**2 - gA**2
    t0 = jnp.minimum(T_min_MeV, Tm)

    def F(T):  # antiderivative of the bracket
        return left * T - right * E_MeV / 3.0 * (1.0 - T / E_MeV) ** 3 - mixed * C.M_ELECTRON * T**2 / (2.0 * E_MeV**2)

    return K * (F(Tm) - F(t0))


def stepping_electrons(element: str, T_MeV):
    """Z_eff(T): electrons of ``element`` bound by less than the recoil T [MeV] (stepping approximation)."""
    shells = BINDING_ENERGIES_KEV[element]
    B = np.array([b for b, _ in shells]) * C.KEV
    n = np.array([k for _, k in shells], dtype=float)
    T = jnp.asarray(T_MeV)[..., None]
    return jnp.sum(jnp.where(T > B, n, 0.0), axis=-1)


def _elements(target) -> list[str]:
    return [sym.lstrip("0123456789") for sym in target.isotopes]


def check_target_elements(target, where: str) -> None:
    """Raise :class:`CevnsInputError` unless every element of ``target`` has a binding-energy table."""
    missing = sorted(set(_elements(target)) - set(BINDING_ENERGIES_KEV)) if target.isotopes else ["(unnamed isotopes)"]
    if missing:
        raise CevnsInputError(f"{where}: electron_scattering needs atomic binding energies, which are tabulated for "
                              f"{', '.join(BINDING_ENERGIES_KEV)}; missing {', '.join(missing)}")


def binding_edges_MeV(target) -> np.ndarray:
    """Distinct positive binding energies [MeV] of the target's elements: the steps of Z_eff(T)."""
    B = {b for el in set(_elements(target)) for b, _ in BINDING_ENERGIES_KEV[el] if b > 0}
    return np.array(sorted(B)) * C.KEV


def electrons_per_unit(target, T_MeV):
    """Electrons per formula unit that can take a recoil T [MeV]: Σ_iso x_iso Z_eff(element, T)."""
    elements = _elements(target)
    total = 0.0
    for el in sorted(set(elements)):
        idx = np.array([i for i, e in enumerate(elements) if e == el])
        total = total + jnp.sum(target.atoms_per_unit[idx]) * stepping_electrons(el, T_MeV)
    return total


def component_antineutrino(source) -> np.ndarray:
    """Whether each flux component of ``source`` is an antineutrino (static): its ``antineutrino`` attribute,
    all neutrinos when it has none (a tabulated source without ν̄ flavours)."""
    flags = tuple(getattr(source, "antineutrino", ()) or ())
    return np.array(flags if flags else (False,) * len(source.components), dtype=bool)


def electron_source_rates(sm, model, T_MeV, source, refine: int = 1):
    """dR_c/dT per free electron per unit fluence [cm²/MeV] of each component of ``source`` at electron recoils
    T [MeV] (shape (n_T,)); shape (n_c, n_T). π-DAR: closed form (prompt line, Michel moments with M = m_e);
    steady: Gauss–Legendre panels in E above E_min(T) (:func:`cevns_jax.spectra.energy_moments`)."""
    flav = np.asarray(source.flavours)
    g_V, g_A, mu2 = flavour_electron_couplings(sm, model, T_MeV)
    anti = component_antineutrino(source)
    a0, a1, a2 = cross_section_coefficients(g_V[flav], g_A[flav][:, None], T_MeV, anti[:, None],
                                            None if mu2 is None else mu2[flav][:, None])
    if not source.steady:
        E = C.E_NU_MU_PROMPT
        inside = T_MeV < max_recoil_energy(E, C.M_ELECTRON)
        prompt = jnp.where(inside, a0[0] + a1[0] / E + a2[0] / E**2, 0.0)
        delayed = []
        for c, spectrum in ((1, MICHEL_NUE), (2, MICHEL_NUMUBAR)):
            J0, J1, J2 = michel_moments(T_MeV, C.M_ELECTRON, spectrum)
            delayed.append(a0[c] * J0 + a1[c] * J1 + a2[c] * J2)
        return jnp.stack([prompt, *delayed])
    J0, J1, J2 = energy_moments(source, min_neutrino_energy(T_MeV, C.M_ELECTRON), (0, 1, 2), refine)  # (n_c, n_T)
    return a0 * J0 + a1 * J1 + a2 * J2
