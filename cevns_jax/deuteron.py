"""Neutrino–deuteron breakup in heavy water: the flux-normalisation channel (docs/physics.md §11).

    ν_e d → e⁻ p p (charged current, CC, threshold Q = 1.442 MeV)      ν d → ν n p (neutral current, NC, B_d = 2.225 MeV)

Cross sections: the total σ(E_ν) tabulated by Nakamura et al., Nucl. Phys. A707 (2002) 561 (shipped as
``data/deuteron/nakamura2002_total.txt``, checksummed), linearly interpolated in E_ν. π-DAR flux averages of
this table reproduce the values COHERENT quotes (docs/physics.md §11, ``tests/test_d2o.py``).

Counts of a water-Cherenkov detector (``[detector] channel = "deuteron_breakup"``):

* CC: the electron carries T_e = E_ν − Q (the two protons share the rest; their kinetic energy, ≲ 1 MeV for
  most events, is neglected) and is seen in keVee through the detector's smearing and efficiency (§3.2–3.3);
  time profile of the ν_e (delayed) component.
      μ^CC_{ij} = N_d Φ ∫ dE f_νe(E) σ_CC(E) R_i(E − Q) · τ_{νe,j}
* NC: the neutron is captured on deuterium and the 6.257 MeV γ is seen through the same response, times
  ``nc_efficiency`` (the probability that the neutron is captured on deuterium with its γ inside the
  analysis window). The capture time in D₂O (tens of ms) is much longer than the beam period, so the
  captures are spread uniformly in time: flat time profile over the analysis window.
      μ^NC_{ij} = N_d Σ_c Φ_c ⟨σ_NC⟩_c · ε_n · R_i(E_γ) · (flat)_j

Quadrature: Gauss–Legendre, :data:`NODES` per panel, one panel between consecutive table energies (the
integrand is smooth on each, with kinks only at the table's nodes); error target 1e-6 of each bin,
``refine = 2`` halves every panel (``tests/test_d2o.py``). π-DAR sources only.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, require_x64
from .errors import CevnsInputError
from .nuclei import units_per_kg
from .releases import data_path, read_table
from .source import michel_spectrum_nue, michel_spectrum_numubar
from .spectra import table_panels

__all__ = ["CHANNELS", "TABLE", "NODES", "DeuteronResponse", "deuteron_table", "cross_sections_cm2",
           "energy_panels", "flux_averaged_cm2", "deuterons_per_kg", "check_deuteron", "deuteron_counts"]

CHANNELS = ("nu_d_cc", "nu_d_nc")
"""Keys of the ν–d counts in :func:`cevns_jax.rates.expected_counts` (CC: ν_e only; NC: all three components)."""
TABLE = "deuteron/nakamura2002_total.txt"
"""The shipped cross-section table (columns E [MeV], σ_NC(ν), σ_NC(ν̄), σ_CC(ν_e), σ_CC(ν̄_e) [cm²])."""
NODES = 8
"""Gauss–Legendre nodes per energy panel."""


@pytree_dataclass
class DeuteronResponse:
    """Response of a heavy-water Cherenkov detector to the NC channel: ``nc_efficiency``, the probability that
    an NC breakup gives a detected neutron-capture γ inside the analysis window (the CC electron goes through
    the detector's smearing and efficiency like any electron)."""

    nc_efficiency: jnp.ndarray


def deuteron_table() -> np.ndarray:
    """The Nakamura et al. (2002) table, shape (n, 5): E [MeV], σ_NC(ν), σ_NC(ν̄), σ_CC(ν_e), σ_CC(ν̄_e) [cm²]."""
    rows = read_table(data_path(TABLE), 5, nonnegative_columns=(0, 1, 2, 3, 4))
    if not np.all(np.diff(rows[:, 0]) > 0):
        from .errors import DataFileError

        raise DataFileError(f"{data_path(TABLE)}: energies must increase")
    return rows


def cross_sections_cm2(E_MeV, table=None):
    """(σ_NC(ν), σ_NC(ν̄), σ_CC(ν_e)) [cm²] at neutrino energies ``E_MeV`` (any shape), linear interpolation of
    the table; 0 below the table and below each threshold, the last row's value is the table's end (60 MeV,
    above every π-DAR energy)."""
    require_x64()
    rows = deuteron_table() if table is None else table
    E = jnp.asarray(E_MeV, dtype=jnp.float64)
    x = jnp.asarray(rows[:, 0])
    out = []
    for col, threshold in ((1, C.B_DEUTERON), (2, C.B_DEUTERON), (3, C.Q_NUE_D_CC)):
        sigma = jnp.interp(E, x, jnp.asarray(rows[:, col]), left=0.0)
        out.append(jnp.where(E > threshold, sigma, 0.0))
    return tuple(out)


def energy_panels(E_low: float, E_high: float, refine: int = 1, table=None):
    """Gauss–Legendre nodes and weights [MeV] on [E_low, E_high], one panel between consecutive table energies
    (each split in ``refine``); static numpy (the grid does not depend on any leaf)."""
    rows = deuteron_table() if table is None else table
    return table_panels(rows[:, 0], E_low, E_high, NODES, refine)


def flux_averaged_cm2(refine: int = 1):
    """π-DAR flux-averaged cross sections [cm²]: {"prompt_numu_nc", "delayed_nue_nc", "delayed_numubar_nc",
    "delayed_nue_cc"} (the prompt line at 29.79 MeV; Michel spectra for the delayed components)."""
    table = deuteron_table()
    E, w = energy_panels(C.Q_NUE_D_CC, C.E_NU_MAX_MICHEL, refine, table)
    nc, nc_bar, cc = cross_sections_cm2(E, table)
    f_e, f_mu = michel_spectrum_nue(E), michel_spectrum_numubar(E)
    return {"prompt_numu_nc": cross_sections_cm2(C.E_NU_MU_PROMPT, table)[0],
            "delayed_nue_nc": jnp.sum(w * f_e * nc), "delayed_numubar_nc": jnp.sum(w * f_mu * nc_bar),
            "delayed_nue_cc": jnp.sum(w * f_e * cc)}


def deuterons_per_kg(target):
    """Deuterons (²H nuclei) per kg of target: formula units per kg × ²H atoms per unit."""
    index = [k for k, sym in enumerate(target.isotopes) if sym == "2H"]
    return units_per_kg(target) * jnp.sum(target.atoms_per_unit[np.asarray(index, dtype=int)])


def check_deuteron(experiment, where: str) -> None:
    """Raise :class:`CevnsInputError` unless ``experiment`` can predict ν–d breakup counts: a π-DAR source, a
    target containing deuterium, a detector that sees electrons in keVee."""
    if experiment.source.steady or tuple(experiment.source.components) != ("prompt_numu", "delayed_nue",
                                                                           "delayed_numubar"):
        raise CevnsInputError(f"{where}: the deuteron_breakup channel needs a π-DAR source (kind = \"pion_dar\")")
    if "2H" not in experiment.target.isotopes:
        raise CevnsInputError(f"{where}: the deuteron_breakup channel needs deuterium in the target (e.g. "
                              f"target = \"D2O\"), not {experiment.target.name!r}")
    if experiment.detector.observable != "keVee":
        raise CevnsInputError(f"{where}: the deuteron_breakup channel needs a detector that sees electrons in keVee, "
                              f"not {experiment.detector.observable!r}")


def deuteron_counts(experiment) -> dict:
    """Expected ν–d counts {"nu_d_cc": (n_E, n_t), "nu_d_nc": (n_E, n_t)} of a ``deuteron_breakup`` detector
    ({} for any other): the module docstring's μ^CC and μ^NC."""
    det = experiment.detector
    if det.deuteron is None:
        return {}
    require_x64()
    from .rates import flat_time_fractions, neutrino_time_fractions
    from .response import energy_response

    table = deuteron_table()
    src = experiment.source
    n_d = deuterons_per_kg(experiment.target) * det.mass_kg
    fluence = src.fluence_cm2(det.baseline_m)  # (3,): prompt ν_μ, delayed ν_e, delayed ν̄_μ
    E, w = energy_panels(C.Q_NUE_D_CC, C.E_NU_MAX_MICHEL, det.binning.refine, table)
    nc, nc_bar, cc = cross_sections_cm2(E, table)
    f_e, f_mu = michel_spectrum_nue(E), michel_spectrum_numubar(E)
    R = energy_response(det.smearing, det.efficiency, det.binning, (E - C.Q_NUE_D_CC) * 1e3)  # (n_E, n_nodes)
    cc_spectrum = n_d * fluence[1] * jnp.einsum("ek,k->e", R, w * f_e * cc)
    n_nc = n_d * (fluence[0] * cross_sections_cm2(C.E_NU_MU_PROMPT, table)[0]
                  + fluence[1] * jnp.sum(w * f_e * nc) + fluence[2] * jnp.sum(w * f_mu * nc_bar))
    R_gamma = energy_response(det.smearing, det.efficiency, det.binning,
                              jnp.asarray([C.E_GAMMA_N_D_CAPTURE * 1e3]))[:, 0]
    nc_spectrum = n_nc * det.deuteron.nc_efficiency * R_gamma
    return {"nu_d_cc": cc_spectrum[:, None] * neutrino_time_fractions(experiment)[1][None, :],
            "nu_d_nc": nc_spectrum[:, None] * flat_time_fractions(experiment)[None, :]}
