"""Stopped-pion facilities: beam parameters, neutrino and π⁰ yields, each cited or marked as an assumption.

The neutrino yield per proton (per flavour) depends on the proton energy and target, so each SNS
preset is tied to the era in which it was measured; no value is reused silently for another era.
Times are in the time coordinate of the corresponding data release where one exists.

The π⁰ yield per proton (production of accelerator dark matter, :mod:`cevns_jax.models.darkmatter`)
is a GEANT value for the SNS mercury target near 1 GeV; elsewhere it is scaled with the facility's
own π⁺ (decay-at-rest ν) yield, π⁰/p = R · ν/p with R = 0.106/0.0875 fixed at the SNS near 1 GeV
(:data:`PI0_TO_NU_AT_1GEV`): isospin ties π⁰ to the charged-pion production of the same beam and
target, so the ν yield carries the energy and target dependence. Each facility states which it is.

The other production channels of dark matter (docs/physics.md §4.3) are tied to the π⁰ yield of the same
facility: stopped π⁻ per proton with the GEANT ratio of the SNS mercury target (:data:`PIMINUS_TO_PI0_SNS`),
and η per proton with an energy-dependent η/π⁰ ratio (:func:`eta_to_pi0`, an assumption: the η is produced
near or below its free nucleon–nucleon threshold at these beams, and no published yield was found).

The π⁰ speeds (π⁰ decaying in flight, :mod:`cevns_jax.models.dm_flight`) come from GEANT4 rapidity histograms of
three targets (:data:`PI0_MOMENTUM_TABLES`, :func:`pi0_rapidity_nodes`); each facility names the one it uses.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from . import constants as C
from .errors import CevnsInputError, DataFileError
from .releases import data_path, read_table
from .source import ProtonPulse, Source


@dataclass(frozen=True)
class Facility:
    """Static description of a π-DAR facility (not a pytree: it is turned into a :class:`Source`)."""

    name: str
    proton_energy_GeV: float
    beam_power_MW: float
    repetition_rate_Hz: float
    nu_per_proton: float
    nu_per_proton_rel_uncertainty: float
    pulse_sigma_ns: float
    pulse_mean_ns: float = 0.0
    bunch_offsets_ns: tuple[float, ...] = (0.0,)
    beam_hours_per_year: float = 5000.0
    sources: str = ""
    assumptions: str = ""
    pi0_per_proton: float = 0.0
    pi0_rel_uncertainty: float = 0.0
    pi0_source: str = ""
    target_station: str = ""
    """The target (and its station) the neutrinos and π⁰ come from; facilities that share it share their
    flux and π⁰ normalisation nuisances (:mod:`cevns_jax.nuisances`). Empty: the facility's own name."""
    pulse_flat_top_ns: float = 0.0
    """Width of a flat-top proton pulse [ns], its edges Gaussian with ``pulse_sigma_ns``; 0: a Gaussian pulse."""
    eta_per_proton: float = 0.0
    """η per proton (dark-matter production, η → γV); its log-normal prior width ``eta_rel_uncertainty``."""
    eta_rel_uncertainty: float = 0.0
    eta_source: str = ""
    piminus_per_proton: float = 0.0
    """π⁻ stopped (and captured) per proton (dark-matter production, π⁻p → nV); prior ``piminus_rel_uncertainty``."""
    piminus_rel_uncertainty: float = 0.0
    piminus_source: str = ""
    pi0_momentum_table: str = ""
    """Facility whose π⁰ rapidity histogram (``data/mesons/pi0_rapidity_<name>.txt``, GEANT4) gives this one's π⁰
    speeds (π⁰ decays in flight, :func:`pi0_rapidity_nodes`); empty: π⁰ decay at rest."""

    def protons_per_year(self) -> float:
        """Protons on target in one year of ``beam_hours_per_year`` at the nominal power."""
        return C.protons_on_target_from_power(self.beam_power_MW, self.proton_energy_GeV, self.beam_hours_per_year)


PI0_SNS_1GEV = 0.106
"""π⁰ per proton on the SNS mercury target near 1 GeV: GEANT (52935 π⁰ in 500000 protons, pyCEvNS); ±15%."""
NU_SNS_1GEV = 0.0875
"""ν per flavour per proton near 1 GeV: the middle of the release values 0.08–0.09 (SNS-2017/2020/2021)."""
PIMINUS_TO_PI0_SNS = 18324 / 52935
"""Stopped π⁻ per π⁰ on the SNS mercury target near 1 GeV (≈ 0.346): GEANT, 18324 π⁻ and 52935 π⁰ in 500000
protons (pyCEvNS ``DMFluxFromPiMinusAbsorption`` and ``DMFluxFromPi0Decay`` defaults, the code of Dutta et al.,
PRL 124, 121802 (2020), arXiv:1906.10745)."""
ETA_TO_PI0_ANCHORS = ((0.8, 0.003), (1.0, 0.01), (1.3, 0.02), (2.0, 1.0 / 30.0))
"""(E_p [GeV], η/π⁰) of :func:`eta_to_pi0` — ASSUMED, not measured: 1/30 is the η/π⁰ ratio of the BdNMC production
model for multi-GeV beams (deNiverville, Frugiuele, Pospelov & Ritz, arXiv:1609.01770), taken from 2 GeV on;
below, the η threshold in free NN collisions (T_p = 1.254 GeV) suppresses it: 0.02 at 1.3 GeV, 0.01 at 1 GeV
(production through Fermi motion and secondary πN → ηN only), 0.003 at 0.8 GeV."""
ETA_PRIOR_WIDTH = 1.0
"""Log-normal width of every η yield (a factor e): the ratio is an assumption (:data:`ETA_TO_PI0_ANCHORS`)."""
PIMINUS_PRIOR_WIDTH = 0.5
"""Log-normal width of every stopped-π⁻ yield × radiative-capture fraction (≈ 2% in heavy nuclei, 0.39 on hydrogen)."""


def eta_to_pi0(proton_energy_GeV: float) -> float:
    """η per π⁰ at proton kinetic energy E_p [GeV]: log-linear between :data:`ETA_TO_PI0_ANCHORS`, constant
    outside (an assumption, stated there)."""
    E = [e for e, _ in ETA_TO_PI0_ANCHORS]
    r = [math.log(v) for _, v in ETA_TO_PI0_ANCHORS]
    x = min(max(proton_energy_GeV, E[0]), E[-1])
    for k in range(len(E) - 1):
        if x <= E[k + 1]:
            return math.exp(r[k] + (r[k + 1] - r[k]) * (x - E[k]) / (E[k + 1] - E[k]))
    return math.exp(r[-1])


ETA_TO_PI0_SNS = eta_to_pi0(1.0)
"""η/π⁰ at the SNS near 1 GeV (0.01, an assumption): the default ratio of a model with a fixed π⁰ yield."""


def _channels(pi0: float, proton_energy_GeV: float) -> dict:
    """η and π⁻ fields of a facility from its π⁰ yield (ratios :func:`eta_to_pi0`, :data:`PIMINUS_TO_PI0_SNS`)."""
    ratio = eta_to_pi0(proton_energy_GeV)
    return dict(
        eta_per_proton=round(ratio * pi0, 6), eta_rel_uncertainty=ETA_PRIOR_WIDTH,
        eta_source=f"Assumption: η/π⁰ = {ratio:.4f} at {proton_energy_GeV} GeV (facilities.eta_to_pi0) × π⁰/p = {pi0}; "
        "log-normal prior 1.0 (a factor e).",
        piminus_per_proton=round(PIMINUS_TO_PI0_SNS * pi0, 6), piminus_rel_uncertainty=PIMINUS_PRIOR_WIDTH,
        piminus_source=f"π⁻/π⁰ = 18324/52935 (GEANT, SNS mercury near 1 GeV, pyCEvNS) × π⁰/p = {pi0}; prior 0.5 "
        "(with the radiative-capture fraction, constants.PIMINUS_RADIATIVE_CAPTURE).",
    )


PI0_TO_NU_AT_1GEV = PI0_SNS_1GEV / NU_SNS_1GEV
"""π⁰ per decay-at-rest π⁺ at the SNS near 1 GeV (≈ 1.21), used to scale π⁰ yields to other beams."""

_PI0_GEANT = ("GEANT π⁰ yield of the SNS mercury target near 1 GeV: 52935 π⁰ per 500000 protons = 0.106 "
              "(pyCEvNS); COHERENT's own GEANT4 yields (arXiv:1911.06422, arXiv:2110.11453) not re-read here. ±15%.")


def _pi0_scaled(nu_per_proton: float, why: str, proton_energy_GeV: float) -> dict:
    """π⁰ (and η, π⁻) fields of a facility whose π⁰ yield is scaled with its ν yield (an assumption, stated)."""
    return dict(
        **_channels(round(PI0_TO_NU_AT_1GEV * nu_per_proton, 4), proton_energy_GeV),
        pi0_per_proton=round(PI0_TO_NU_AT_1GEV * nu_per_proton, 4),
        pi0_rel_uncertainty=0.25,
        pi0_source=f"Assumption: π⁰/p = {PI0_TO_NU_AT_1GEV:.3f} × ν/p (the SNS ratio near 1 GeV, 0.106/0.0875) × "
        f"{nu_per_proton} ν/flavour/proton = {PI0_TO_NU_AT_1GEV * nu_per_proton:.4f}; {why} "
        "±25% (ratio and ν yield).",
    )


NU_POWER_LAW_ANCHORS = ((1.0, NU_SNS_1GEV), (2.0, 0.3))
"""(E_p [GeV], ν/flavour/proton) through which :func:`nu_per_proton_power_law` passes: the SNS near 1 GeV
(mercury) and the ESS at 2 GeV (tungsten; Baxter et al., arXiv:1911.00762)."""


def nu_per_proton_power_law(proton_energy_GeV: float) -> float:
    """ν per flavour per proton [1] from the power law r(E) = r₁ (E/E₁)^α through :data:`NU_POWER_LAW_ANCHORS`
    (α = ln(0.3/0.0875)/ln 2 ≈ 1.78): the package's stated energy dependence for facilities without a published
    yield (an assumption: it ignores target material and geometry). It gives 0.059 at 0.8 GeV (Lujan), 0.139 at
    1.3 GeV, 0.202 at 1.6 GeV (CSNS) and 0.62 at 3 GeV, where JSNS² measured 0.485 ± 35% (arXiv:2412.18509)."""
    (e1, r1), (e2, r2) = NU_POWER_LAW_ANCHORS
    alpha = math.log(r2 / r1) / math.log(e2 / e1)
    return r1 * (proton_energy_GeV / e1) ** alpha


SNS_FIRST_TARGET_STATION = "SNS-FTS"
"""The SNS First Target Station (mercury): the 2017–2021 COHERENT eras and the Proton Power Upgrade."""

_SNS_PULSE = "SNS proton pulse: Gaussian σ = 150 ns (COHERENT CENNS-10 release, LArParametersAnlA.yaml)."

FACILITIES: dict[str, Facility] = {
    f.name: f
    for f in (
        Facility(
            "SNS-2017", 0.957, 1.4, 60.0, 0.08, 0.10, 150.0, 700.0,
            sources="COHERENT CsI 2017 release (arXiv:1804.09459, coherent_parameters.yaml): 0.08 ± 0.008 ν/flavour/"
            "proton, 7.47594 GWh; E_p = 0.957 GeV (dukecevns csicheck.json). " + _SNS_PULSE,
            assumptions="Pulse mean 0.70 μs in the 2017 release's time coordinate, from the release's tabulated prompt "
            "arrival-time PDF (pyCEvNS uses 0.7 μs).",
            pi0_per_proton=PI0_SNS_1GEV, pi0_rel_uncertainty=0.15,
            pi0_source=_PI0_GEANT + " Taken at 0.957 GeV (4% below 1 GeV, inside the 15%).", pi0_momentum_table="SNS",
            **_channels(PI0_SNS_1GEV, 1.0),
            target_station=SNS_FIRST_TARGET_STATION,
        ),
        Facility(
            "SNS-2020", 0.9965, 1.4, 60.0, 0.09, 0.10, 150.0, 440.0,
            sources="COHERENT CENNS-10 release (arXiv:2006.12659, LArParametersAnlA.yaml): 0.09 ± 0.009 ν/flavour/proton, "
            "13.8e22 POT = 6.12 GWh (⇒ E_p = 0.9965 GeV), pulse mean 440 ± 200 ns, σ = 150 ns.",
            pi0_per_proton=PI0_SNS_1GEV, pi0_rel_uncertainty=0.15, pi0_source=_PI0_GEANT, pi0_momentum_table="SNS",
            **_channels(PI0_SNS_1GEV, 1.0),
            target_station=SNS_FIRST_TARGET_STATION,
        ),
        Facility(
            "SNS-2021", 0.983, 1.4, 60.0, 0.0848, 0.10, 150.0, 0.0,
            sources="COHERENT CsI 2021 (PRL 129, 081801; arXiv:2110.07730): 0.0848 ± 10% ν/flavour/proton, 3.198e23 POT "
            "= 13.99 GWh (⇒ E_p = 0.983 GeV). " + _SNS_PULSE,
            assumptions="Pulse mean set per experiment (the 2021 release's time origin).",
            pi0_per_proton=PI0_SNS_1GEV, pi0_rel_uncertainty=0.15,
            pi0_source=_PI0_GEANT + " Taken at 0.983 GeV (2% below 1 GeV, inside the 15%).", pi0_momentum_table="SNS",
            **_channels(PI0_SNS_1GEV, 1.0),
            target_station=SNS_FIRST_TARGET_STATION,
        ),
        Facility(
            "SNS-PPU", 1.3, 2.0, 60.0, 0.13, 0.15, 150.0, 0.0,
            sources="SNS Proton Power Upgrade: 1.3 GeV protons, up to 2.0 MW to the First Target Station (ORNL); "
            "5000 beam hours per 'SNS year' (COHERENT convention).",
            assumptions="Yield 0.13 ν/flavour/proton at 1.3 GeV: the yield grows with proton energy (COHERENT, "
            "arXiv:2109.11049); 0.12–0.13 is the commonly quoted range and a power law through 0.0875 at 1 GeV and "
            "0.3 at 2 GeV gives 0.14. Prior widened to 15%.",
            **_pi0_scaled(0.13, "no published π⁰ yield at 1.3 GeV.", 1.3), pi0_momentum_table="SNS",
            target_station=SNS_FIRST_TARGET_STATION,
        ),
        Facility(
            "SNS-STS", 1.3, 0.7, 15.0, 0.13, 0.15, 150.0, 0.0,
            sources="SNS Second Target Station: 1.3 GeV, 700 kW, 15 Hz (one pulse in four), tungsten target.",
            assumptions="Yield taken equal to the FTS value at 1.3 GeV (tungsten vs mercury target not modelled).",
            **_pi0_scaled(0.13, "no published π⁰ yield for the STS tungsten target.", 1.3), pi0_momentum_table="SNS",
            target_station="SNS-STS",
        ),
        Facility(
            "ESS", 2.0, 5.0, 14.0, 0.3, 0.15, 1.0e3, 1430.0e3,
            sources="European Spallation Source: 2 GeV, 5 MW, 14 Hz, 2.86 ms pulse; 0.3 ν/flavour/proton (Baxter et "
            "al., arXiv:1911.00762).",
            assumptions="The 2.86 ms pulse is a flat top (closed-form timing, docs/physics.md §1.3) centred at 1.43 ms, "
            "its edges Gaussian with σ = 1 μs (ASSUMED: the linac current rises within microseconds; the muon "
            "lifetime, 2.2 μs, smooths the delayed edges more). 5000 beam hours per year.",
            pulse_flat_top_ns=2.86e6,
            **_pi0_scaled(0.3, "no published π⁰ yield for the ESS tungsten target at 2 GeV.", 2.0), pi0_momentum_table="JPARC-MLF",
        ),
        Facility(
            "CSNS", 1.6, 0.1, 25.0, round(nu_per_proton_power_law(1.6), 3), 0.25, 30.0, 0.0, (0.0, 410.0),
            sources="China Spallation Neutron Source (IHEP, Dongguan): 1.6 GeV rapid-cycling synchrotron, 25 Hz, solid "
            "tungsten target, 100 kW design for CSNS-I (140 kW reached), 500 kW for CSNS-II, about 5000 beam hours per "
            "year (T. Liang, 'Status and prospects of CSNS', TUM 2023; S. N. Fu et al., J. Phys. Conf. Ser. 1021, "
            "012002 (2018)); extracted pulses shorter than 500 ns (IHEP). CEvNS programme: CLOVERS (arXiv:2303.13423).",
            assumptions="Yield from the package's power law in proton energy (nu_per_proton_power_law: through 0.0875 at "
            "1 GeV and 0.3 at 2 GeV) at 1.6 GeV, 25% prior (no published CSNS yield). Two equal bunches per pulse "
            "(harmonic number 2), 410 ns apart: half the revolution period of the 227.92 m ring at 1.6 GeV (409 ns); "
            "each a Gaussian of σ = 30 ns (ASSUMED).",
            **_pi0_scaled(round(nu_per_proton_power_law(1.6), 3), "no published π⁰ yield at 1.6 GeV.", 1.6), pi0_momentum_table="SNS",
        ),
        Facility(
            "Lujan", 0.8, 0.1, 20.0, round(nu_per_proton_power_law(0.8), 3), 0.30, 123.0, 0.0,
            sources="LANSCE Lujan Center (the CCM source): 800 MeV protons on a tungsten target, 100 kW, 20 Hz, 290 ns "
            "pulse (CCM: Van de Water, Rutgers seminar 2022; Dunton and Thompson, Fermilab W&C 2023; CCM200 at 23 m "
            "and 90°, 2.25e22 POT in its three-year run: A. Schneider, SLAC seminar 2024).",
            assumptions="Pulse: a Gaussian of FWHM 290 ns (σ = 123 ns). Yield from the package's power law in proton "
            "energy (nu_per_proton_power_law) at 0.8 GeV, 30% prior: CCM's own simulated yield of the Lujan target "
            "is not re-read here.",
            **_pi0_scaled(round(nu_per_proton_power_law(0.8), 3), "CCM's own π⁰ yield of the Lujan target is not re-read here.", 0.8), pi0_momentum_table="Lujan",
        ),
        Facility(
            "J-PARC-MLF", 3.0, 1.0, 25.0, 0.485, 0.35, 42.5, 0.0, (0.0, 540.0),
            sources="J-PARC MLF (JSNS²): 3 GeV RCS, 1 MW (0.33 mA), 25 Hz, mercury target; each spill two 100 ns bunches "
            "540 ns apart; 3.8e22 POT per 5000-hour year (JSNS² TDR, arXiv:1705.08629). Yield: JSNS²'s measured ν_e "
            "flux (6.7 ± 1.6 stat ± 1.7 syst)e-9 cm⁻² per proton at 24 m (arXiv:2412.18509) = 0.485 ν per flavour "
            "per proton (one ν_e per μ⁺ decay at rest), ±35%.",
            assumptions="Each bunch a Gaussian of FWHM 100 ns (σ = 42.5 ns), equal weights (docs/physics.md §1.3). "
            "The bunch spacing is JSNS²'s 540 ns; half the RCS revolution period at 3 GeV is 598 ns.",
            **_pi0_scaled(0.485, "no published π⁰ yield of the MLF mercury target at 3 GeV.", 3.0), pi0_momentum_table="JPARC-MLF",
        ),
    )
}


PI0_MOMENTUM_TABLES = {
    "SNS": "SNS mercury target, ~1 GeV (COHERENT)",
    "Lujan": "LANSCE Lujan tungsten target, 800 MeV (CCM)",
    "JPARC-MLF": "J-PARC MLF mercury target, 3 GeV (JSNS²)",
}
"""π⁰ rapidity histograms shipped (``data/mesons/pi0_rapidity_<key>.txt``: a GEANT4 simulation of each target, the
one of Dutta et al., arXiv:1906.10745 and arXiv:2006.09386, from pyCEvNS; provenance in each header). A facility
without its own takes the nearest beam energy's, an ASSUMPTION: SNS-PPU, SNS-STS (1.3 GeV) and CSNS (1.6 GeV, tungsten)
the SNS's, the ESS (2 GeV, tungsten) J-PARC's; a higher beam energy makes faster π⁰, so the first three are too
slow and the ESS's too fast (docs/physics.md §4.3)."""
RAPIDITY_BINS = 192
"""Rapidity bins every histogram is padded to (with empty bins), so that every facility shares one program shape."""
LEGENDRE_ORDERS = 8
"""Legendre moments ⟨P_l(cos θ)⟩ (l = 1 … 8) of the π⁰ directions to the beam per rapidity bin in each table: what
the dark-matter flux at a detector's angle needs (:func:`cevns_jax.models.dm_flight.directional_correction`).
Truncation: the direction factor at 90° and 137° (CsI, CENNS-10) moves by ≤ 0.2% in total and ≤ 0.8% in single
lab boxes from 8 to 16 orders, the statistical precision of the 10,484 SNS π⁰; within 1.5% of 24 orders from 15° to
165°, ≈ 4% low on the beam axis (docs/physics.md §4.3)."""


@functools.cache
def _rapidity_histogram(key: str) -> tuple:
    path = data_path(f"mesons/pi0_rapidity_{key}.txt")
    rows = read_table(path, 3 + LEGENDRE_ORDERS, nonnegative_columns=(0, 1, 2))
    if not (np.all(rows[:, 1] > rows[:, 0]) and np.all(rows[1:, 0] == rows[:-1, 1])) or rows.shape[0] > RAPIDITY_BINS:
        raise DataFileError(f"{path}: rapidity bins must be contiguous, increasing and at most {RAPIDITY_BINS}")
    if rows[:, 2].sum() <= 0:
        raise DataFileError(f"{path}: no π⁰ counted")
    if np.any(np.abs(rows[:, 3:]) > rows[:, 2:3] * (1 + 1e-9)):  # |P_l| ≤ 1: a sum is at most the bin's count
        raise DataFileError(f"{path}: a Legendre sum (columns 4–{3 + LEGENDRE_ORDERS}) exceeds its bin's π⁰ count")
    return tuple(map(tuple, rows))


def _rapidity_rows(facility_name: str) -> np.ndarray | None:
    key = get_facility(facility_name).pi0_momentum_table
    return np.asarray(_rapidity_histogram(key)) if key else None


def pi0_rapidity_nodes(facility_name: str, nodes_per_bin: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """π⁰ rapidities y = asinh(|p|/m_π⁰) and weights (Σ = 1) of facility ``facility_name``'s π⁰ (its
    ``pi0_momentum_table``), ``nodes_per_bin`` Gauss–Legendre nodes in each histogram bin (the density flat in a
    bin), padded with weight-0 nodes to :data:`RAPIDITY_BINS` × ``nodes_per_bin``; None: π⁰ at rest (no table)."""
    rows = _rapidity_rows(facility_name)
    if rows is None:
        return None
    x, w = np.polynomial.legendre.leggauss(nodes_per_bin)
    lo, hi, counts = rows[:, :1], rows[:, 1:2], rows[:, 2:3]
    y = lo + 0.5 * (hi - lo) * (x + 1.0)
    weight = counts * 0.5 * w / counts.sum()
    pad = (RAPIDITY_BINS - rows.shape[0]) * nodes_per_bin
    y = np.concatenate([y.ravel(), np.full(pad, float(hi[-1, 0]))])  # padding: real speeds, weight 0
    return y, np.concatenate([weight.ravel(), np.zeros(pad)])


def pi0_direction_moments(facility_name: str, nodes_per_bin: int = 1) -> np.ndarray | None:
    """⟨P_l(cos θ)⟩ of the π⁰ directions to the beam, l = 1 … :data:`LEGENDRE_ORDERS`, at each node of
    :func:`pi0_rapidity_nodes` (the bin's value; 0 in empty and padding bins): shape (nodes, LEGENDRE_ORDERS)."""
    rows = _rapidity_rows(facility_name)
    if rows is None:
        return None
    counts = rows[:, 2:3]
    moments = np.where(counts > 0, rows[:, 3:] / np.where(counts > 0, counts, 1.0), 0.0)
    moments = np.repeat(moments, nodes_per_bin, axis=0)
    return np.concatenate([moments, np.zeros(((RAPIDITY_BINS - rows.shape[0]) * nodes_per_bin, LEGENDRE_ORDERS))])


def target_station(name: str) -> str:
    """The target station of facility preset ``name`` (its own name if it states none or is unknown)."""
    facility = FACILITIES.get(name)
    return (facility.target_station or facility.name) if facility is not None else name


def get_facility(name: str) -> Facility:
    """The facility preset ``name``; the error lists the available ones."""
    try:
        return FACILITIES[name]
    except KeyError:
        raise CevnsInputError(f"unknown facility {name!r}; available: {', '.join(FACILITIES)}") from None


def pi0_per_proton(name: str) -> float:
    """π⁰ per proton on target of the facility preset ``name`` (see the facility's ``pi0_source``)."""
    return get_facility(name).pi0_per_proton


def make_source(
    facility: Facility,
    protons_on_target: float,
    *,
    nu_per_proton: float | None = None,
    pulse_mean_ns: float | None = None,
    pulse_sigma_ns: float | None = None,
    pulse_flat_top_ns: float | None = None,
) -> Source:
    """A :class:`Source` for ``protons_on_target`` at ``facility``, with optional overrides."""
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    n_bunch = len(facility.bunch_offsets_ns)
    pulse = ProtonPulse(
        mean_ns=f(facility.pulse_mean_ns if pulse_mean_ns is None else pulse_mean_ns),
        sigma_ns=f(facility.pulse_sigma_ns if pulse_sigma_ns is None else pulse_sigma_ns),
        bunch_offsets_ns=f(facility.bunch_offsets_ns),
        bunch_weights=f([1.0] * n_bunch),
        flat_top_ns=float(facility.pulse_flat_top_ns if pulse_flat_top_ns is None else pulse_flat_top_ns),
    )
    return Source(
        protons_on_target=f(protons_on_target),
        nu_per_proton=f(facility.nu_per_proton if nu_per_proton is None else nu_per_proton),
        pulse=pulse,
        name=facility.name,
    )
