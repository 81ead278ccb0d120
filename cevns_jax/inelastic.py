"""Inelastic neutrino–nucleus channels of a stopped-pion source (docs/physics.md §12).

    ar40_nue_cc   ⁴⁰Ar(ν_e, e⁻)⁴⁰K*     electron seen with T_e = E_ν − Q − E_x     (delayed ν_e timing)
    ar40_nc       ⁴⁰Ar(ν, ν′)⁴⁰Ar*      de-excitation γ line at E_γ                 (every component's timing)
    pb_nin        Pb(ν, ν′/e⁻ + n)      neutrino-induced neutrons from a lead shield, a background
                                        (ν_e CC and NC of every flavour, each with its component's timing)

Cross sections σ(E_ν) are shipped tables (``data/inelastic/``, checksummed; provenance in each header):
MARLEY for the CC on argon (Gardiner, PRC 103, 044604 (2021)), the SNOwGLoBES inelastic NC on argon, and
Engel, McLaughlin & Volpe, PRD 67, 013005 (2003) for 1n and 2n emission from ²⁰⁸Pb. Linear interpolation in
E_ν, σ = 0 below each table's first energy (the first row of the CC table is the threshold Q with σ = 0).

Counts (detector with ``[detector.inelastic] channels = [...]``; N nuclei of the target or lead shield, Φ_c the
fluence of component c, f_c its unit spectrum, R_i the detector response to an electron-equivalent energy,
τ_{c,j} the component's time-bin fractions):

    μ^CC_ij  = N_Ar Φ_e ∫ dE f_e(E) σ_CC(E) R_i(E − Q − E_x) τ_{e,j}
    μ^NC_ij  = N_Ar Σ_c Φ_c ⟨σ_NC⟩_c R_i(E_γ) τ_{c,j}
    μ^NIN_ij = N_Pb s ε_n Σ_c Φ_c ⟨σ_1n + 2 σ_2n⟩_c u_i τ_{c,j}

with E_x (``excitation_MeV``), E_γ (``gamma_MeV``), the lead mass, ε_n (``nin_efficiency``: detected neutrons
per produced neutron) and s (``nin_scale``: measured/theory) leaves of :class:`InelasticResponse`, and u_i the
fraction of the observed-energy window in bin i (an assumed flat spectrum of neutron recoils).

The lead scale s defaults to 1 (the Engel et al. table); COHERENT measured Pb(ν_e, Xn) at
:data:`PB_NIN_MEASURED` = 0.29 (+0.17/−0.16) × the MARLEY prediction (arXiv:2212.11295): start there with
``nin_scale = 0.29`` and a ``nin_yield`` prior ≈ 0.6. ν_e CC on ¹²⁷I is not a channel: no citable σ(E) table
was found (docs/physics.md §12 lists what was searched).

Quadrature: Gauss–Legendre, :data:`NODES` per panel, one panel between consecutive table energies (linear σ
times a cubic Michel spectrum: exact on each panel; only the response R_i is not polynomial); error target
1e-6 of each bin, ``refine = 2`` halves every panel (``tests/test_inelastic.py``). π-DAR sources only.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, require_x64, static_field
from .errors import CevnsInputError, DataFileError
from .nuclei import units_per_kg
from .releases import data_path, read_table
from .source import michel_spectrum_nue, michel_spectrum_numubar
from .spectra import table_panels

__all__ = ["CHANNELS", "TABLES", "NODES", "PB_NIN_MEASURED", "InelasticResponse", "inelastic_table",
           "cross_section_cm2", "energy_panels", "flux_averaged_cm2", "argon40_per_kg", "lead_nuclei",
           "check_inelastic", "inelastic_counts"]

CHANNELS = ("ar40_nue_cc", "ar40_nc", "pb_nin")
"""Channel names of ``[detector.inelastic] channels``; also the keys of their counts in
:func:`cevns_jax.rates.expected_counts`."""
TABLES = {"ar40_nue_cc": ("inelastic/ar40_nue_cc_marley.txt", 2),
          "ar40_nue_cc_klmv": ("inelastic/ar40_nue_cc_klmv.txt", 2),
          "ar40_nc": ("inelastic/ar40_nc.txt", 2),
          "pb_nin": ("inelastic/pb208_neutrons_engel.txt", 7)}
"""Shipped tables (path under ``data/``, number of columns; column 0 is E_ν [MeV], the others σ [cm²]).
``ar40_nue_cc_klmv`` is a second calculation of the CC channel (Kolbe et al., J. Phys. G 29, 2569 (2003)),
used to compare theories only."""
NODES = 4
"""Gauss–Legendre nodes per energy panel."""
PB_NIN_MEASURED = (0.29, 0.17, 0.16)
"""COHERENT's measured ^natPb(ν_e, Xn) cross section relative to the MARLEY prediction with measured Gamow–Teller
strengths: (value, +error, −error), arXiv:2212.11295 (lead NIN detector fit jointly with earlier COHERENT data).
The starting point for ``nin_scale``; the ``nin_yield`` prior ≈ 0.6 is the mean ln half-width of the interval
(docs/physics.md §12)."""
ARGON_CHANNELS = ("ar40_nue_cc", "ar40_nc")


@pytree_dataclass
class InelasticResponse:
    """Which inelastic channels a detector carries (static ``channels``) and the leaves of their responses:
    ``excitation_MeV`` (effective ⁴⁰K excitation of the CC channel), ``gamma_MeV`` (de-excitation γ of the NC
    channel), ``lead_kg`` (lead near the detector), ``nin_efficiency`` (detected neutrons in the analysis
    window per produced neutron) and ``nin_scale`` (neutron yield relative to the theory table)."""

    excitation_MeV: jnp.ndarray
    gamma_MeV: jnp.ndarray
    lead_kg: jnp.ndarray
    nin_efficiency: jnp.ndarray
    nin_scale: jnp.ndarray
    channels: tuple = static_field(default=())


def inelastic_table(name: str) -> np.ndarray:
    """The table of ``name`` (a key of :data:`TABLES`), shape (n, columns), energies increasing."""
    path, n_col = TABLES[name]
    rows = read_table(data_path(path), n_col, nonnegative_columns=tuple(range(n_col)))
    if not np.all(np.diff(rows[:, 0]) > 0):
        raise DataFileError(f"{data_path(path)}: energies must increase")
    return rows


def _interp(E, rows, col):
    """Linear interpolation of column ``col``; 0 below the first energy (the threshold), the last value above."""
    E = jnp.asarray(E, dtype=jnp.float64)
    x = jnp.asarray(rows[:, 0])
    sigma = jnp.interp(E, x, jnp.asarray(rows[:, col]), left=0.0)
    return jnp.where(E >= rows[0, 0], sigma, 0.0)


def cross_section_cm2(name: str, E_MeV, table=None):
    """σ(E_ν) [cm²] of channel ``name`` at ``E_MeV`` (any shape). ``ar40_nue_cc`` (and ``ar40_nue_cc_klmv``):
    the ν_e CC cross section; ``ar40_nc``: the NC cross section (every flavour); ``pb_nin``: a pair
    (ν_e CC, ν NC, ν̄ NC) of neutron *yields* σ_1n + 2σ_2n [cm²]."""
    require_x64()
    rows = inelastic_table(name) if table is None else table
    if name in ("ar40_nue_cc", "ar40_nue_cc_klmv"):  # the analytic threshold, whatever the table's first row
        return jnp.where(jnp.asarray(E_MeV) > C.Q_AR40_CC, _interp(E_MeV, rows, 1), 0.0)
    if name != "pb_nin":
        return _interp(E_MeV, rows, 1)
    return tuple(_interp(E_MeV, rows, a) + 2.0 * _interp(E_MeV, rows, a + 1) for a in (1, 3, 5))


def energy_panels(name: str, refine: int = 1, table=None):
    """Gauss–Legendre nodes and weights [MeV] on [first table energy, Michel end point], one panel between
    consecutive table energies (each split in ``refine``); static numpy."""
    rows = inelastic_table(name) if table is None else table
    return table_panels(rows[:, 0], float(rows[0, 0]), C.E_NU_MAX_MICHEL, NODES, refine)


def _averages(name: str, refine: int, table):
    """(prompt ν_μ, delayed ν_e, delayed ν̄_μ) flux-averaged σ [cm²] of an NC-like channel (Pb: neutron yields;
    the ν_e entry of ``pb_nin`` is CC + NC)."""
    E, w = energy_panels(name, refine, table)
    f_e, f_mu = michel_spectrum_nue(E), michel_spectrum_numubar(E)
    if name == "ar40_nc":
        s = cross_section_cm2(name, E, table)
        prompt = cross_section_cm2(name, C.E_NU_MU_PROMPT, table)
        return prompt, jnp.sum(w * f_e * s), jnp.sum(w * f_mu * s)
    cc, nc, nc_bar = cross_section_cm2(name, E, table)
    prompt = cross_section_cm2(name, C.E_NU_MU_PROMPT, table)[1]
    return prompt, jnp.sum(w * f_e * (cc + nc)), jnp.sum(w * f_mu * nc_bar)


def flux_averaged_cm2(name: str, refine: int = 1) -> dict:
    """π-DAR flux-averaged cross sections [cm²] of channel ``name``: a CC table gives {"delayed_nue"}; ``ar40_nc``
    and ``pb_nin`` give {"prompt_numu", "delayed_nue", "delayed_numubar"} (``pb_nin``: neutron yields
    σ_1n + 2σ_2n, also {"delayed_nue_cc"} alone); the prompt line at 29.79 MeV, Michel spectra otherwise."""
    table = inelastic_table(name)
    if name in ("ar40_nue_cc", "ar40_nue_cc_klmv"):
        E, w = energy_panels(name, refine, table)
        return {"delayed_nue": jnp.sum(w * michel_spectrum_nue(E) * cross_section_cm2(name, E, table))}
    out = dict(zip(("prompt_numu", "delayed_nue", "delayed_numubar"), _averages(name, refine, table)))
    if name == "pb_nin":
        E, w = energy_panels(name, refine, table)
        out["delayed_nue_cc"] = jnp.sum(w * michel_spectrum_nue(E) * cross_section_cm2(name, E, table)[0])
    return out


def argon40_per_kg(target):
    """⁴⁰Ar nuclei per kg of target: formula units per kg × ⁴⁰Ar atoms per unit."""
    index = [k for k, sym in enumerate(target.isotopes) if sym == "40Ar"]
    return units_per_kg(target) * jnp.sum(target.atoms_per_unit[np.asarray(index, dtype=int)])


def lead_nuclei(lead_kg):
    """Lead nuclei in ``lead_kg`` of natural lead (every isotope given the ²⁰⁸Pb cross sections)."""
    return lead_kg * 1e3 / C.M_LEAD_G_PER_MOL * C.AVOGADRO


def check_inelastic(experiment, where: str) -> None:
    """Raise :class:`CevnsInputError` (naming ``where``) unless ``experiment`` can predict its inelastic channels:
    a π-DAR source; for the argon channels ⁴⁰Ar in the target and a detector that sees electrons/γ in keVee or
    photoelectrons."""
    inel = experiment.detector.inelastic
    if inel is None:
        return
    if experiment.source.steady or tuple(experiment.source.components) != ("prompt_numu", "delayed_nue",
                                                                           "delayed_numubar"):
        raise CevnsInputError(f"{where}: inelastic channels need a π-DAR source (kind = \"pion_dar\")")
    argon = [c for c in inel.channels if c in ARGON_CHANNELS]
    if argon and "40Ar" not in experiment.target.isotopes:
        raise CevnsInputError(f"{where}: channel {argon[0]!r} needs argon in the target, not "
                              f"{experiment.target.name!r}")
    if argon and experiment.detector.observable not in ("keVee", "PE"):
        raise CevnsInputError(f"{where}: channel {argon[0]!r} needs a detector that sees electrons and γ rays in "
                              f"keVee or photoelectrons, not {experiment.detector.observable!r}")


def inelastic_counts(experiment) -> dict:
    """Expected counts {channel: (n_E, n_t)} of the detector's inelastic channels ({} without any): the module
    docstring's μ^CC, μ^NC and μ^NIN."""
    det = experiment.detector
    inel = det.inelastic
    if inel is None or not inel.channels:
        return {}
    require_x64()
    from .rates import neutrino_time_fractions
    from .response import energy_response

    src = experiment.source
    fluence = src.fluence_cm2(det.baseline_m)  # (3,): prompt ν_μ, delayed ν_e, delayed ν̄_μ
    tau = neutrino_time_fractions(experiment)  # (3, n_t)
    refine = det.binning.refine
    out = {}
    if "ar40_nue_cc" in inel.channels:
        table = inelastic_table("ar40_nue_cc")
        E, w = energy_panels("ar40_nue_cc", refine, table)
        T_keV = jnp.maximum(E - C.Q_AR40_CC - inel.excitation_MeV, 0.0) * 1e3  # σ ≲ 1e-43 cm² where clipped
        R = energy_response(det.smearing, det.efficiency, det.binning, T_keV)  # (n_E, n_nodes)
        n_ar = argon40_per_kg(experiment.target) * det.mass_kg
        spectrum = n_ar * fluence[1] * jnp.einsum("ek,k->e", R, w * michel_spectrum_nue(E)
                                                  * cross_section_cm2("ar40_nue_cc", E, table))
        out["ar40_nue_cc"] = spectrum[:, None] * tau[1][None, :]
    if "ar40_nc" in inel.channels:
        avg = jnp.stack(_averages("ar40_nc", refine, inelastic_table("ar40_nc")))
        R = energy_response(det.smearing, det.efficiency, det.binning, jnp.reshape(inel.gamma_MeV * 1e3, (1,)))[:, 0]
        n_ar = argon40_per_kg(experiment.target) * det.mass_kg
        out["ar40_nc"] = n_ar * R[:, None] * jnp.einsum("c,cj->j", fluence * avg, tau)[None, :]
    if "pb_nin" in inel.channels:
        avg = jnp.stack(_averages("pb_nin", refine, inelastic_table("pb_nin")))
        edges = det.binning.energy_edges
        shape = jnp.diff(edges) / (edges[-1] - edges[0])  # flat in the observed energy
        scale = lead_nuclei(inel.lead_kg) * inel.nin_efficiency * inel.nin_scale
        out["pb_nin"] = scale * shape[:, None] * jnp.einsum("c,cj->j", fluence * avg, tau)[None, :]
    return out
