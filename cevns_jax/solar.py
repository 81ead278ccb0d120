"""Solar ⁸B and hep neutrinos at the Earth: spectra, fluxes and MSW survival probability (docs/physics.md §1.7).

Spectra (unit-normalised, [1/MeV]):

* hep (³He + p → ⁴He + e⁺ + ν_e) is a single allowed transition: λ(E) ∝ E² p W F(2, W) with the positron
  total energy W = Q + m_e − E, p = √(W² − m_e²), endpoint Q = 18.773 MeV and the non-relativistic Fermi
  function F of the positron in the field of ⁴He (J. N. Bahcall, *Neutrino Astrophysics*, CUP 1989, ch. 6;
  Bahcall's tabulated hep spectrum has ⟨E⟩ = 9.628 MeV, this shape 9.625 MeV);
* ⁸B (⁸B → ⁸Be* + e⁺ + ν_e) feeds the broad 2⁺ level of ⁸Be, so its spectrum is no allowed shape: the
  package ships the evaluated table of Winter et al., PRC 73, 025503 (2006) (R-matrix strength function fitted
  to the measured α spectrum, recoil-order corrections; ``data/solar/b8_winter2006.txt``, 0.1 MeV steps, linear
  between rows), mean energy 6.770 MeV (Bahcall et al., PRC 54, 411 (1996): 6.735 ± 0.036 MeV). Another
  table can replace it (``b8_spectrum_file``, two columns E [MeV], λ).

Fluxes: ⁸B 5.25 × 10⁶ cm⁻² s⁻¹ (± 0.16 stat, +0.11/−0.13 syst; SNO combined analysis, PRC 88, 025501 (2013),
NC-based, flavour blind); hep 7.98 × 10³ cm⁻² s⁻¹ (± 30%; SSM B16-GS98, Vinyoles et al., ApJ 835, 202 (2017)).

Survival probability (adiabatic MSW, large mixing angle, averaged over the Sun–Earth distance; day only):
P_ee = c₁₃⁴ [½ + ½ cos 2θ₁₂ᵐ cos 2θ₁₂] + s₁₃⁴ with cos 2θ₁₂ᵐ = (cos 2θ₁₂ − β)/√((cos 2θ₁₂ − β)² + sin² 2θ₁₂),
β = 2√2 G_F c₁₃² n_e E / Δm²₂₁ at the production point (Mikheyev–Smirnov; Wolfenstein; e.g. PDG review
"Neutrino mixing", §14.6). Approximations: one production density per line (not averaged over the production
zone), no Earth matter (night) effect, the non-ν_e part split between ν_μ and ν_τ as cos²θ₂₃ : sin²θ₂₃.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, static_field
from .releases import data_path, read_table

__all__ = ["SOLAR_LINES", "SNO_B8_FLUX", "SNO_B8_FLUX_STAT", "SNO_B8_FLUX_SYST", "HEP_FLUX", "HEP_FLUX_REL_ERROR",
           "NUFIT", "PRODUCTION_DENSITY_NA", "HEP_Q_MEV", "B8_TABLE", "allowed_positron_spectrum",
           "hep_spectrum", "b8_spectrum", "survival_probability", "SolarSource", "make_solar"]

SOLAR_LINES = ("8B", "hep")
SNO_B8_FLUX = 5.25e6
"""⁸B ν flux at the Earth [cm⁻² s⁻¹], all flavours: SNO, PRC 88, 025501 (2013)."""
SNO_B8_FLUX_STAT = 0.16e6
SNO_B8_FLUX_SYST = (0.11e6, 0.13e6)
"""(+, −) systematic uncertainty [cm⁻² s⁻¹] of :data:`SNO_B8_FLUX`."""
HEP_FLUX = 7.98e3
"""hep ν flux [cm⁻² s⁻¹]: standard solar model B16-GS98 (Vinyoles et al., ApJ 835, 202 (2017))."""
HEP_FLUX_REL_ERROR = 0.30
NUFIT = dict(sin2_theta12=0.303, sin2_theta13=0.02203, sin2_theta23=0.572, dm21_eV2=7.41e-5)
"""Best fit, normal ordering with SK atmospheric data: NuFIT 5.2 (2022), Esteban et al., JHEP 09, 178 (2020)."""
PRODUCTION_DENSITY_NA = {"8B": 90.0, "hep": 60.0}
"""Electron density at production [N_A cm⁻³] (assumption: BS05(OP) profile, Bahcall, Serenelli & Basu, ApJ 621,
L85 (2005), near the peak of each line's production, r ≈ 0.05 R_⊙ for ⁸B, ≈ 0.15 R_⊙ for hep)."""
HEP_Q_MEV = 18.773
"""hep ν endpoint [MeV] (Bahcall 1989)."""
B8_TABLE = "solar/b8_winter2006.txt"
"""Shipped ⁸B spectrum (Winter et al. 2006; provenance in ``cevns_jax/data/README.md``)."""
_TABLE_STEP = 0.001
PANEL_MEV = 0.1
"""Width of the energy panels of a solar source [MeV] (the ⁸B table's step)."""
MAX_TABLE_ROWS = 400
"""Rows of a coarser (user) table become panel edges too."""


def allowed_positron_spectrum(E_MeV, Q_MeV, Z_daughter):
    """Unnormalised allowed β⁺ neutrino spectrum E² p W F(Z, W) (numpy) at ν energies E [MeV]."""
    E = np.asarray(E_MeV, dtype=float)
    W = Q_MeV + C.M_ELECTRON - E
    p = np.sqrt(np.clip(W**2 - C.M_ELECTRON**2, 0.0, None))
    x = 2.0 * math.pi * Z_daughter * C.ALPHA_EM * W / np.maximum(p, 1e-12)
    fermi = x / np.expm1(np.minimum(x, 700.0))  # positron: 2πη/(e^{2πη} − 1)
    return np.where((E > 0) & (E < Q_MeV), E**2 * p * W * fermi, 0.0)


def _normalised_table(E, values):
    return values / np.trapezoid(values, E)


def hep_spectrum():
    """(E [MeV], unit-normalised hep spectrum [1/MeV]) on a 1 keV grid."""
    E = np.arange(0.0, HEP_Q_MEV + _TABLE_STEP, _TABLE_STEP)
    E[-1] = HEP_Q_MEV
    return E, _normalised_table(E, allowed_positron_spectrum(E, HEP_Q_MEV, 2))


def b8_spectrum():
    """(E [MeV], unit-normalised ⁸B spectrum [1/MeV]): the shipped Winter et al. (2006) table, cut after its
    last non-zero row (checksummed, :mod:`cevns_jax.releases`)."""
    rows = read_table(data_path(B8_TABLE), 3, nonnegative_columns=(0, 1))
    last = int(np.nonzero(rows[:, 1] > 0)[0][-1]) + 1
    E, lam = rows[: last + 1, 0], rows[: last + 1, 1]
    return E, _normalised_table(E, lam)


def survival_probability(E_MeV, n_e_NA, sin2_theta12, sin2_theta13, dm21_eV2):
    """Averaged adiabatic MSW ν_e survival probability at the Earth (module docstring) at energies E [MeV]
    for an electron density n_e [N_A cm⁻³] at production."""
    c13sq = 1.0 - sin2_theta13
    cos2 = 1.0 - 2.0 * sin2_theta12
    sin2_2 = 4.0 * sin2_theta12 * (1.0 - sin2_theta12)
    # √2 G_F n_e [eV] for n_e in N_A cm⁻³: G_F [MeV⁻²] × (ħc [MeV cm])³ × N_A, in eV
    v = math.sqrt(2.0) * C.G_FERMI * C.HBARC_MEV_CM**3 * C.AVOGADRO * 1e6 * n_e_NA
    beta = 2.0 * v * c13sq * (E_MeV * 1e6) / dm21_eV2
    cos2m = (cos2 - beta) / jnp.sqrt((cos2 - beta) ** 2 + sin2_2)
    return c13sq**2 * (0.5 + 0.5 * cos2m * cos2) + sin2_theta13**2


@pytree_dataclass
class SolarSource:
    """Solar ⁸B and/or hep neutrinos at the detector, per flavour at the Earth (docs/physics.md §1.7).

    Components: for each line, ν_e, ν_μ, ν_τ (``"8B_nue"``, ``"8B_numu"``, ``"8B_nutau"``, then hep).

    Attributes:
        flux_cm2_s: flux of each line at the Earth [cm⁻² s⁻¹] (n_lines,).
        live_days: live time [days].
        sin2_theta12, sin2_theta13, sin2_theta23, dm21_eV2: oscillation parameters.
        n_e_NA: electron density at production of each line [N_A cm⁻³] (n_lines,).
        energy_MeV, spectra: the lines' unit-normalised spectra [1/MeV] on a common grid (n_E,), (n_lines, n_E).
        lines: the lines (static), a subset of :data:`SOLAR_LINES`.
    """

    flux_cm2_s: jnp.ndarray
    live_days: jnp.ndarray
    sin2_theta12: jnp.ndarray
    sin2_theta13: jnp.ndarray
    sin2_theta23: jnp.ndarray
    dm21_eV2: jnp.ndarray
    n_e_NA: jnp.ndarray
    energy_MeV: jnp.ndarray
    spectra: jnp.ndarray
    lines: tuple = static_field(default=SOLAR_LINES)
    endpoints: tuple = static_field(default=(15.3, HEP_Q_MEV))
    breaks: tuple = static_field(default=(0.0, HEP_Q_MEV))
    name: str = static_field(default="Sun")

    steady = True
    flavours_per_line = (0, 1, 2)
    @property
    def components(self) -> tuple:
        return tuple(f"{line}_{f}" for line in self.lines for f in ("nue", "numu", "nutau"))

    @property
    def flavours(self) -> tuple:
        return self.flavours_per_line * len(self.lines)

    @property
    def antineutrino(self) -> tuple:
        return (False,) * (3 * len(self.lines))

    energy_nodes_per_panel = 16
    """Per 0.1 MeV panel (:data:`PANEL_MEV`): the tabulated spectra are linear between their rows, which are
    panel edges for the ⁸B table's 0.1 MeV rows and for user tables of at most ``MAX_TABLE_ROWS`` rows; the hep
    table's 1 keV rows are not, and their small kinks inside a panel are what the 16 nodes resolve (halving
    the step changes the fold by < 1e-7: ``tests/test_sources.py::test_fold_converges``)."""

    @property
    def energy_breaks_MeV(self) -> tuple:
        """Every :data:`PANEL_MEV` up to the highest endpoint, the endpoints and the rows of coarse tables."""
        return self.breaks

    @property
    def recoil_energies_MeV(self) -> tuple:
        """(10 MeV, the highest endpoint): log recoil panels below T_max(10 MeV), linear ones above, where the
        rate falls to zero at the endpoints."""
        return (min(10.0, min(self.endpoints)), max(self.endpoints))

    def spectrum_per_MeV(self, E_MeV):
        """Each component's spectrum: the line's shape × its flavour fraction at E (P_ee, (1 − P_ee) cos²θ₂₃,
        (1 − P_ee) sin²θ₂₃), normalised to the line's flux (the fractions go to the spectrum, so that the
        fluence of each component is the line's); shape (3 n_lines, *E.shape)."""
        out = []
        for k in range(len(self.lines)):
            shape = jnp.interp(E_MeV, self.energy_MeV, self.spectra[k], left=0.0, right=0.0)
            pee = survival_probability(E_MeV, self.n_e_NA[k], self.sin2_theta12, self.sin2_theta13, self.dm21_eV2)
            out += [shape * pee, shape * (1.0 - pee) * (1.0 - self.sin2_theta23), shape * (1.0 - pee) * self.sin2_theta23]
        return jnp.stack(out)

    def fluence_cm2(self, baseline_m):
        """Each component's fluence [cm⁻²]: the line's flux × live time (flavour fractions are in the spectra);
        independent of the baseline."""
        return jnp.repeat(self.flux_cm2_s * self.live_days * 86400.0, 3)


def make_solar(live_days, *, lines=SOLAR_LINES, flux_cm2_s=None, spectra=None, **oscillation) -> SolarSource:
    """A :class:`SolarSource` for ``live_days`` (``spectra``: {line: (E, λ)} tables replacing the built-in shapes;
    ``oscillation``: overrides of :data:`NUFIT` and ``n_e_NA`` per line)."""
    lines = tuple(lines)
    builtin = {"8B": b8_spectrum, "hep": hep_spectrum}
    tables = {line: (spectra or {}).get(line) or builtin[line]() for line in lines}
    grid = np.unique(np.concatenate([np.asarray(tables[line][0], dtype=float) for line in lines]))
    S = np.stack([np.interp(grid, *tables[line], left=0.0, right=0.0) for line in lines])
    S = S / np.trapezoid(S, grid, axis=-1)[:, None]
    default_flux = {"8B": SNO_B8_FLUX, "hep": HEP_FLUX}
    flux = [default_flux[line] for line in lines] if flux_cm2_s is None else flux_cm2_s
    osc = {**NUFIT, **{k: v for k, v in oscillation.items() if k in NUFIT}}
    n_e = oscillation.get("n_e_NA", [PRODUCTION_DENSITY_NA[line] for line in lines])
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    top = max(float(tables[line][0][-1]) for line in lines)
    edges = {float(e) for e in np.round(np.arange(0.0, top, PANEL_MEV), 9)} | {float(tables[line][0][-1]) for line in lines}
    for line in lines:
        if len(tables[line][0]) <= MAX_TABLE_ROWS:
            edges |= {float(e) for e in tables[line][0] if e <= top}
    return SolarSource(
        flux_cm2_s=f(flux), live_days=f(live_days), sin2_theta12=f(osc["sin2_theta12"]),
        sin2_theta13=f(osc["sin2_theta13"]), sin2_theta23=f(osc["sin2_theta23"]), dm21_eV2=f(osc["dm21_eV2"]),
        n_e_NA=f(n_e), energy_MeV=f(grid), spectra=f(S), lines=lines,
        endpoints=tuple(float(tables[line][0][-1]) for line in lines), breaks=tuple(sorted(edges)),
    )
