"""Physical constants and unit conversions, in one place, with sources.

Internal units (see docs/physics.md §0.1): energies, masses and momenta in **MeV**, times in **ns**,
lengths in **cm** when forming fluences (baselines are given in m at the interface), nuclear radii
in **fm**, cross sections in MeV⁻² inside kernels and **cm²** at the boundary. ħ = c = 1 in kernels.

Sources: PDG 2024 Review of Particle Physics (Phys. Rev. D 110, 030001) for particle masses,
lifetimes and G_F; CODATA 2018 for ħc, α, the atomic mass unit, e and N_A (exact SI values where
the SI fixes them).
"""

from __future__ import annotations

import math

# --- fundamental -------------------------------------------------------------------------------
G_FERMI_GEV2 = 1.1663788e-5
"""Fermi constant G_F/(ħc)³ [GeV⁻²], PDG 2024 (muon lifetime, MuLan)."""
G_FERMI = G_FERMI_GEV2 * 1e-6
"""Fermi constant [MeV⁻²]."""

HBARC_MEV_FM = 197.3269804
"""ħc [MeV fm], CODATA 2018."""
HBARC_MEV_CM = HBARC_MEV_FM * 1e-13
"""ħc [MeV cm]."""
MEV2_TO_CM2 = HBARC_MEV_CM**2
"""Converts a cross section in MeV⁻² to cm² ((ħc)² = 3.893794e-22 MeV² cm²)."""

ALPHA_EM = 1.0 / 137.035999084
"""Fine-structure constant at Q² = 0, CODATA 2018."""

AMU_MEV = 931.49410242
"""Atomic mass unit [MeV], CODATA 2018."""
AVOGADRO = 6.02214076e23
"""Avogadro constant [mol⁻¹], exact (SI 2019)."""
ELEMENTARY_CHARGE_C = 1.602176634e-19
"""Elementary charge [C], exact (SI 2019)."""
SPEED_OF_LIGHT_M_PER_NS = 0.299792458
"""Speed of light [m/ns], exact."""

# --- particle masses [MeV] and lifetimes [ns] (PDG 2024) ----------------------------------------
M_ELECTRON = 0.51099895
M_MUON = 105.6583755
M_TAU = 1776.86
"""τ mass [MeV]; PDG 2022 value (PDG 2024: 1776.93 ± 0.09). Kept at 1776.86 because docs/physics.md §6's
L_μ−L_τ reference values were derived with it; the shift is 1.4e-5 relative."""
M_PION_CHARGED = 139.57039
M_PION_NEUTRAL = 134.9768
M_ETA = 547.862
"""η mass [MeV], PDG 2024 (547.862 ± 0.017)."""
M_PROTON = 938.27208816
M_NEUTRON = 939.56542052
M_DEUTERON = 1875.61294257
"""Deuteron mass [MeV], CODATA 2018. With m_p, m_n, m_e it fixes the ν–d thresholds (docs/physics.md §11)."""
M_W = 80369.2
"""W mass [MeV], PDG 2024 world average 80.3692 GeV. Enters only logarithmically (charge radii)."""

TAU_PION_NS = 26.033
"""π⁺ mean life [ns], PDG 2024 (2.6033e-8 s)."""
TAU_MUON_NS = 2196.9811
"""μ⁺ mean life [ns], PDG 2024 (2.1969811e-6 s)."""

BR_PI0_GAMMA_GAMMA = 0.98823
"""BR(π⁰ → γγ), PDG 2024."""
BR_ETA_GAMMA_GAMMA = 0.3936
"""BR(η → γγ), PDG 2024 (39.36 ± 0.18)%."""
PIMINUS_RADIATIVE_CAPTURE = 0.02
"""Fraction of π⁻ stopped in a heavy nucleus that are captured radiatively (π⁻ A → γ X), ≈ 2% for complex
nuclei (Bistirlich et al., PRC 5, 1867 (1972); on hydrogen it is 1/(1 + P) = 0.39 with the Panofsky ratio
P = 1.546, Spuller et al., PLB 67, 479 (1977)). The dark-photon rate of π⁻ capture is ε² times this (docs/physics.md §4.3)."""

# --- electroweak inputs -----------------------------------------------------------------------
SIN2_THETA_W_LOW_ENERGY = 0.23857
"""sin²θ̂_W(Q → 0) in the MS-bar scheme, PDG 2024 electroweak review (Erler & Ferro-Hernández
running from 0.23129 at M_Z)."""

# --- pion decay-at-rest kinematics (derived) -------------------------------------------------
E_NU_MU_PROMPT = (M_PION_CHARGED**2 - M_MUON**2) / (2.0 * M_PION_CHARGED)
"""Prompt ν_μ energy from π⁺ → μ⁺ ν_μ at rest [MeV] (= 29.792 MeV)."""
E_NU_MAX_MICHEL = M_MUON / 2.0
"""Michel endpoint m_μ/2 [MeV] (= 52.829 MeV)."""

# --- neutrino–deuteron breakup (derived; docs/physics.md §11) ---------------------------------------
Q_NUE_D_CC = 2.0 * M_PROTON + M_ELECTRON - M_DEUTERON
"""Threshold of ν_e d → e⁻ p p [MeV] (= 1.442 MeV): the electron's kinetic energy is at most E_ν − Q."""
B_DEUTERON = M_PROTON + M_NEUTRON - M_DEUTERON
"""Deuteron binding energy [MeV] (= 2.2246 MeV), the threshold of ν d → ν n p."""
E_GAMMA_N_D_CAPTURE = 6.2572
"""Energy of the γ from thermal neutron capture on deuterium, n + d → ³H + γ [MeV]: the neutron separation
energy of ³H, S_n = 6.2572 MeV (AME2020, Wang et al., Chin. Phys. C 45, 030003 (2021)); recoil neglected."""

# --- inelastic neutrino–nucleus channels (docs/physics.md §12) ---------------------------------------
Q_AR40_CC = -33.5354 - (-35.0399)
"""Threshold of ⁴⁰Ar(ν_e, e⁻)⁴⁰K (ground state) [MeV] (= 1.5045 MeV): the difference of the atomic mass excesses
of ⁴⁰K (−33535.4 keV) and ⁴⁰Ar (−35039.9 keV), AME2020 (Wang et al., Chin. Phys. C 45, 030003 (2021)); with
atomic masses the electron's kinetic energy is T_e = E_ν − Q − E_x (nuclear recoil neglected)."""
E_X_AR40_IAS = 4.384
"""Excitation energy of the isobaric analogue state of ⁴⁰K [MeV], which carries the Fermi strength of
⁴⁰Ar(ν_e, e⁻) and most of the π-DAR cross section (M. Bhattacharya et al., Phys. Rev. C 58, 3677 (1998)):
the default single effective excitation of the charged-current channel."""
E_GAMMA_AR40_NC = 9.8
"""Effective de-excitation γ energy of ⁴⁰Ar(ν, ν′)⁴⁰Ar* [MeV]: the 1⁺ M1 level near 9.8 MeV to which the
SNOwGLoBES argon NC channel de-excites directly to the ground state (SNOwGLoBES manual, §"Charged and inelastic
neutral current interactions with argon"); an assumption of this package's NC response."""
M_LEAD_G_PER_MOL = 207.2
"""Standard atomic weight of lead [g/mol] (CIAAW 2021 abridged value 207.2): lead nuclei per kg of shield."""

# --- derived conversions -----------------------------------------------------------------------
JOULE_PER_GWH = 3.6e12
"""Joules in one GWh."""
OSCILLATION_PHASE = 1e3 / (4.0 * HBARC_MEV_FM)
"""Δm²L/(4E) = OSCILLATION_PHASE · Δm²[eV²] · L[m] / E[MeV] (= 1.26693): 1 eV² = 1e-12 MeV², 1 m = 1e15 fm."""
KEV = 1e-3
"""One keV in MeV."""
KG_TO_G = 1e3
M_TO_CM = 100.0
US_TO_NS = 1e3


def protons_on_target(energy_GWh: float, proton_energy_GeV: float) -> float:
    """Protons on target delivered by an integrated beam energy [GWh] at a proton kinetic energy [GeV].

    N_POT = E_beam / (E_p · e); 1 GWh at 1 GeV is 2.2469e22 POT (docs/physics.md §1.1).
    """
    return energy_GWh * JOULE_PER_GWH / (proton_energy_GeV * 1e9 * ELEMENTARY_CHARGE_C)


def protons_on_target_from_power(beam_power_MW: float, proton_energy_GeV: float, beam_hours: float) -> float:
    """Protons on target from beam power [MW], proton kinetic energy [GeV] and beam time [h]."""
    return protons_on_target(beam_power_MW * beam_hours * 1e-3, proton_energy_GeV)


assert math.isclose(OSCILLATION_PHASE, 1.26693, rel_tol=1e-5)

# --- cosmology: thermal relic abundance (cevns_jax.models.relic) ------------------------------
OMEGA_DM_H2_PLANCK2018 = 0.120
"""Cold-dark-matter density Ω_c h², Planck 2018 VI (A&A 641, A6), TT,TE,EE+lowE+lensing: 0.120 ± 0.001."""
M_PLANCK_MEV = 1.220890e22
"""Planck mass (ħc/G_N)^(1/2) [MeV], PDG 2024 (1.220890(14) × 10¹⁹ GeV); H = √(4π³g_*/45) T²/M_Pl."""
T_CMB_K = 2.7255
"""CMB temperature today [K], Fixsen 2009 (ApJ 707, 916), as quoted by the PDG."""
BOLTZMANN_MEV_PER_K = 8.617333262e-11
"""Boltzmann constant [MeV/K], exact (SI 2019)."""
RHO_CRIT_OVER_H2_MEV_PER_CM3 = 1.053672e-2
"""Critical density ρ_c/h² = 3(100 km/s/Mpc)²/(8πG_N) [MeV cm⁻³], PDG 2024 astrophysical constants
(1.053672(24) × 10⁻⁵ GeV cm⁻³)."""
SPEED_OF_LIGHT_CM_PER_S = 2.99792458e10
"""Speed of light [cm/s], exact."""
SIGMA_V_MEV2_TO_CM3_PER_S = MEV2_TO_CM2 * SPEED_OF_LIGHT_CM_PER_S
"""Converts σv from MeV⁻² (v in units of c) to cm³/s (1.16733e-11)."""


# ----------------------------------------------------------------------------------------------
# Statistics (Wilks' theorem: Δχ² of a profile likelihood follows χ²_k for k parameters of interest)
# ----------------------------------------------------------------------------------------------
DELTA_CHI2_90CL = 2.706
"""Δχ² of a 90% CL one-parameter interval or raster limit: the 0.90 quantile of χ²₁ (2.7055, e.g.
``scipy.stats.chi2.ppf(0.9, 1)``; PDG Statistics review, Table 40.2), rounded to 2.706."""
DELTA_CHI2_90CL_2D = 4.605
"""Δχ² of a 90% CL two-parameter region: the 0.90 quantile of χ²₂ = −2 ln 0.1 = 4.6052 (PDG Table 40.2)."""
DELTA_CHI2_2D = {0.683: 2.296, 0.90: DELTA_CHI2_90CL_2D, 0.95: 5.991}
"""Δχ² of two-parameter joint regions by confidence level (χ²₂ quantiles −2 ln(1 − CL); PDG Table 40.2)."""
