"""One compiler per TOML table of an experiment description: ``[source]`` (facility and exposure),
``[detector.quenching]``, ``[detector.smearing]``, ``[detector.efficiency]``,
``[detector.timing_efficiency]`` and each ``[[backgrounds]]`` entry. Each reads its
:class:`~cevns_jax.tomltable.Table`, checks every field (errors name file, table and field) and returns
the pytree piece; :func:`cevns_jax.experiment.experiment_from_dict` assembles them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import constants as C
from .. import response as resp
from ..domain import LINDHARD_K_MAX
from ..errors import CevnsInputError, DataFileError
from ..facilities import get_facility, make_source
from ..nuclei import Target
from ..releases import _resolve, read_table, template
from ..source import Source, protons_for_fluence
from ..tomltable import Table, as_f64 as _f
from .pytrees import TIME_PROFILES, Background
from .subkev import SUBKEV_QUENCHING, SUBKEV_SMEARING, compile_subkev_quenching, compile_subkev_smearing, observable_unit
from .source_tables import STEADY_KINDS, compile_reactor, compile_solar, compile_tabulated

__all__ = ["Exposure", "EXPOSURES", "SOURCE_KINDS", "TIMING_STEP", "compile_source", "compile_pion_source",
           "compile_quenching", "compile_smearing", "compile_efficiency", "time_subdivisions", "compile_timing_efficiency", "compile_background"]


@dataclass(frozen=True)
class Exposure:
    """Exposure bookkeeping used to normalise backgrounds: beam energy [GWh], beam time [s], duty. A steady
    source (``steady``) has no beam: ``beam_seconds`` is the live time and the duty factor is 1."""

    beam_GWh: float
    beam_seconds: float
    repetition_rate_Hz: float
    steady: bool = False


EXPOSURES = ("protons_on_target", "exposure_GWh", "years", "fluence_per_flavour_cm2")
SOURCE_KINDS = ("pion_dar",) + STEADY_KINDS
"""Values of ``[source] kind`` (default ``"pion_dar"``)."""


def compile_source(tab: Table, baseline_m: float, base: Path | None = None):
    """The ``[source]`` table of any kind (``kind``: :data:`SOURCE_KINDS`) → (source, facility or source name,
    :class:`Exposure`). Steady kinds are compiled by :mod:`cevns_jax.experiment.source_tables`."""
    kind = tab.text("kind", "pion_dar", choices=SOURCE_KINDS)
    if kind == "pion_dar":
        return compile_pion_source(tab, baseline_m)
    base = base or Path.cwd()
    if kind == "reactor":
        src, seconds = compile_reactor(tab, baseline_m)
    elif kind == "solar":
        src, seconds = compile_solar(tab, base)
    else:
        src, seconds = compile_tabulated(tab, base)
    return src, src.name, Exposure(0.0, seconds, 0.0, steady=True)


def compile_pion_source(tab: Table, baseline_m: float) -> tuple[Source, str, Exposure]:
    """The π-DAR ``[source]`` table. A ``fluence_per_flavour_cm2`` exposure (the time-integrated fluence of each
    flavour at the detector) is converted to the equivalent protons on target, N_POT = 4πL²Φ/r, with the
    facility's (or the given) ν per proton r and the detector baseline L, so that everything scaled by
    N_POT (dark-matter fluence, backgrounds per GWh or per beam day) stays consistent with that fluence."""
    facility = get_facility(tab.text("facility"))
    exposures = [k for k in EXPOSURES if tab.has(k)]
    if len(exposures) != 1:
        raise CevnsInputError(f"{tab.where}: give exactly one of {', '.join(EXPOSURES)} (found {exposures or 'none'})")
    energy = tab.number("proton_energy_GeV", facility.proton_energy_GeV, positive=True)
    power = tab.number("beam_power_MW", facility.beam_power_MW, positive=True)
    kind = exposures[0]
    if kind == "protons_on_target":
        pot = tab.number(kind, positive=True)
    elif kind == "exposure_GWh":
        pot = C.protons_on_target(tab.number(kind, positive=True), energy)
    elif kind == "years":
        hours = tab.number("beam_hours_per_year", facility.beam_hours_per_year, positive=True)
        pot = C.protons_on_target_from_power(power, energy, hours * tab.number(kind, positive=True))
    r = tab.number("nu_per_proton", facility.nu_per_proton, positive=True)
    if kind == "fluence_per_flavour_cm2":
        pot = float(protons_for_fluence(tab.number(kind, positive=True), r, baseline_m))
    if not np.isfinite(pot):
        raise tab.error(kind, f"gives {pot:g} protons on target (overflow); use a physical exposure")
    period_us = 1e6 / facility.repetition_rate_Hz
    mean = tab.number("pulse_mean_us", facility.pulse_mean_ns / 1e3, minimum=-period_us, maximum=period_us,
                      why=f" in magnitude (the {facility.name} beam period, μs)")
    sigma = tab.number("pulse_sigma_us", facility.pulse_sigma_ns / 1e3, positive=True, maximum=period_us / 2,
                       why=f" (half the {facility.name} beam period, μs)")
    flat = tab.number("pulse_flat_top_us", facility.pulse_flat_top_ns / 1e3, minimum=0.0, maximum=period_us / 2,
                      why=f" (0 for a Gaussian pulse; at most half the {facility.name} beam period, μs)")
    tab.check_unused()
    src = make_source(facility, pot, nu_per_proton=r, pulse_mean_ns=mean * 1e3, pulse_sigma_ns=sigma * 1e3,
                      pulse_flat_top_ns=flat * 1e3)
    beam_GWh = pot * energy * 1e9 * C.ELEMENTARY_CHARGE_C / C.JOULE_PER_GWH
    exposure = Exposure(beam_GWh, beam_GWh * 1e3 / power * 3600.0, facility.repetition_rate_Hz)
    return src, facility.name, exposure


def compile_quenching(tab: Table, target: Target, base: Path):
    model = tab.text("model", choices=("constant", "linear", "polynomial", "lindhard") + SUBKEV_QUENCHING)
    if model in SUBKEV_QUENCHING:
        q = compile_subkev_quenching(tab, model, target, base)
    elif model == "constant":
        q = resp.ConstantQuenching(factor=_f(_per_isotope(tab, "factor", target, maximum=1.0, why=" (E_ee <= T)")))
    elif model == "linear":
        a = tab.number("a", positive=True, maximum=1.0, why=" (E_ee <= T)")
        q = resp.LinearQuenching(a=_f(a), b_per_keVnr=_f(tab.number("b_per_keVnr")))
    elif model == "polynomial":
        if tab.has("file"):
            rows = read_table(_path(tab, "file", base), 4)
            if rows.shape[0] != 5:
                raise DataFileError(f"{_path(tab, 'file', base)}: expected 5 coefficient rows (nominal, 2 × ±1σ)")
            coeffs, shifts = rows[0], np.stack([rows[1] - rows[0], rows[3] - rows[0]])
        else:
            coeffs = tab.numbers("coefficients_MeV")
            shifts = tab.numbers("shifts_MeV", np.zeros((0, coeffs.size)))
            if shifts.ndim != 2 or shifts.shape[1] != coeffs.size:
                raise tab.error("shifts_MeV", f"must be a list of rows of {coeffs.size} numbers")
        q = resp.PolynomialQuenching(coefficients=_f(coeffs), shifts=_f(shifts), pulls=_f(np.zeros(shifts.shape[0])))
    else:
        Z, A = np.asarray(target.Z), np.asarray(target.Z + target.N)
        k = tab.number("k", positive=True, maximum=LINDHARD_K_MAX, why=" (Ge measures 0.16-0.18; see cevns_jax.domain)") \
            if tab.has("k") else None
        q = resp.LindhardQuenching(k=_f(k) if k is not None else _f(0.133 * Z ** (2 / 3) / np.sqrt(A)))
    tab.check_unused()
    return q


def _per_isotope(tab: Table, key: str, target: Target, **bounds) -> np.ndarray | float:
    """A number, or a table {element: number} expanded to one value per isotope of the target."""
    value = tab.get(key)
    if not isinstance(value, dict):
        return tab.number(key, positive=True, **bounds)
    elements = [sym.lstrip("0123456789") for sym in target.isotopes]
    missing = sorted(set(elements) - set(value))
    if missing:
        raise tab.error(key, f"needs a value for every element of the target; missing {', '.join(missing)}")
    sub = Table(value, f"{tab.where}.{key}")
    out = np.array([sub.number(el, positive=True, **bounds) for el in elements])
    sub.check_unused()
    return out


def compile_smearing(tab: Table, target: Target | None = None, quenching=None):
    """The ``[detector.smearing]`` table and the observed unit; ``target`` and ``quenching`` (when given) set the
    defaults and unit of the sub-keV models (:mod:`cevns_jax.experiment.subkev`)."""
    model = tab.text("model", choices=("gaussian", "gamma_pe", "poisson_pe", "none") + SUBKEV_SMEARING)
    if model in SUBKEV_SMEARING:
        s, observable = compile_subkev_smearing(tab, model, target, quenching)
    elif model == "none":  # ideal resolution: the observed value is the quenched energy [keVee]
        s, observable = resp.NoSmearing(), observable_unit(quenching, "keVee")
    elif model == "gaussian":
        s = resp.GaussianSmearing(
            sigma0_keV=_f(tab.number("sigma0_keVee", 0.0, nonnegative=True)),
            stochastic_sqrt_keV=_f(tab.number("stochastic_sqrt_keVee", 0.0, nonnegative=True)),
            linear=_f(tab.number("linear", 0.0, nonnegative=True)),
        )
        if float(s.sigma0_keV) == float(s.stochastic_sqrt_keV) == float(s.linear) == 0.0:
            raise tab.error("model", 'a Gaussian of zero width: use model = "none" for an ideal resolution')
        observable = observable_unit(quenching, "keVee")
    elif model == "gamma_pe":
        s = resp.GammaPESmearing(
            light_yield_PE_per_keV=_f(tab.number("light_yield_PE_per_keVee", positive=True)),
            width_per_keV=_f(tab.number("width_per_keVee", positive=True)),
        )
        observable = "PE"
    else:
        s = resp.PoissonPESmearing(
            light_yield_PE_per_keV=_f(tab.number("light_yield_PE_per_keVee", positive=True)),
            spe_width=_f(tab.number("spe_width", 0.4, positive=True)),
        )
        observable = "PE"
    tab.check_unused()
    return s, observable


def compile_efficiency(tab: Table, base: Path):
    model = tab.text("model", "flat", choices=("flat", "logistic", "table", "coherent2017", "coherent2021"))
    if model == "flat":
        e = resp.FlatEfficiency(value=_f(tab.number("value", 1.0, positive=True, maximum=1.0)))
    elif model == "logistic":
        e = resp.LogisticEfficiency(
            maximum=_f(tab.number("maximum", 1.0, positive=True, maximum=1.0)),
            threshold=_f(tab.number("threshold", nonnegative=True)),
            width=_f(tab.number("width", positive=True)),
        )
    elif model == "table":
        if tab.has("file"):
            n_col = tab.whole("columns", 2)
            cx, cy = tab.whole("x_column", 0, minimum=0), tab.whole("efficiency_column", 1, minimum=0)
            for key, col in (("x_column", cx), ("efficiency_column", cy)):
                if col >= n_col:
                    raise tab.error(key, f"column {col} does not exist in a {n_col}-column table (columns count from 0)")
            rows = read_table(_path(tab, "file", base), n_col)
            x, y = rows[:, cx], rows[:, cy]
        else:
            x, y = tab.numbers("x"), tab.numbers("values")
        if x.shape != y.shape or x.size < 2 or not np.all(np.diff(x) > 0):
            raise CevnsInputError(f"{tab.where}: efficiency table needs increasing x with one value each")
        if np.any((y < 0) | (y > 1)):
            field = f"file ({_path(tab, 'file', base)}, column {cy})" if tab.has("file") else "values"
            raise tab.error(field, f"efficiency values must lie in [0, 1], found {y.min():g} to {y.max():g}")
        e = resp.TabulatedEfficiency(x=_f(x), values=_f(y))
    elif model == "coherent2017":
        e = resp.Coherent2017Efficiency(
            a=_f(tab.number("a", positive=True, maximum=1.0)),
            k=_f(tab.number("k", positive=True)),
            x0=_f(tab.number("x0")),
            step_width=_f(tab.number("step_width", 0.25, positive=True)),
        )
    else:
        rows = read_table(_path(tab, "file", base), 4)
        if rows.shape[0] != 3:
            raise DataFileError(f"{_path(tab, 'file', base)}: expected 3 coefficient rows (nominal, ±1σ)")
        e = resp.Coherent2021Efficiency(coefficients=_f(rows[0]), shift=_f(rows[1] - rows[0]), pull=_f(0.0))
    tab.check_unused()
    return e


TIMING_STEP = 0.03
"""Largest λ·h of a time sub-bin of width h under an exponential timing efficiency of rate λ. The time folding
is exact for an efficiency quadratic on each sub-bin (its kink t₀ is a sub-bin edge), so a sub-bin's error is
at most sup|ε_T'''|·h³/40 = (λh)³/40 ≈ 7e-7 of its probability (docs/physics.md §3.4.1)."""


def time_subdivisions(timing, time_edges_us) -> tuple[int, ...] | int:
    """Equal sub-bins of each time bin for the timing efficiency (1 when there is none)."""
    if isinstance(timing, resp.NoTimingEfficiency):
        return 1
    widths_ns = np.diff(np.asarray(time_edges_us, dtype=float)) * 1e3
    return tuple(max(1, int(math.ceil(w * float(timing.decay_per_ns) / TIMING_STEP))) for w in widths_ns)


def compile_timing_efficiency(tab: Table):
    model = tab.text("model", "none", choices=("none", "exponential"))
    if model == "none":
        t = resp.NoTimingEfficiency()
    else:
        t = resp.ExponentialTimingEfficiency(
            start_ns=_f(tab.number("start_us") * 1e3),
            decay_per_ns=_f(tab.number("decay_per_us", nonnegative=True) / 1e3),
        )
    tab.check_unused()
    return t


def _path(tab: Table, key: str, base: Path) -> Path:
    tab.used.add(key)
    return _resolve(tab.data, key, base)


def compile_background(
    tab: Table, energy_edges, time_edges_us, base: Path, mass_kg: float, exposure: Exposure, observable: str = "keVee"
) -> tuple[Background, float | None]:
    profile = tab.text("time_profile", choices=TIME_PROFILES)
    if tab.has("rate_per_kg_day_keV"):
        _check_differential_rate(tab, observable)
    n_E = energy_edges.size - 1
    if profile == "table":
        spec = tab.table("template")
        try:
            tmpl = template(spec.data, energy_edges, time_edges_us, base)
        except DataFileError as exc:
            raise DataFileError(f"{tab.where}.template: {exc}") from None
        spec.used.update(spec.data)
    else:
        shape = tab.text("energy_shape", "flat", choices=("flat", "exponential", "table"))
        centres = 0.5 * (energy_edges[1:] + energy_edges[:-1])
        width = np.diff(energy_edges)
        if shape == "flat":
            tmpl = width.copy()
        elif shape == "exponential":
            tmpl = width * np.exp(-centres / tab.number("energy_slope", positive=True))
        else:
            tmpl = tab.numbers("energy_pdf", length=n_E)
            if np.any(tmpl < 0):
                raise tab.error("energy_pdf", "must be non-negative")
    total = float(np.sum(tmpl))
    if not total > 0:
        raise CevnsInputError(f"{tab.where}: background template is empty inside the analysis bins")
    roi_width = float(energy_edges[-1] - energy_edges[0])
    counts = _background_counts(tab, total if profile == "table" else None, time_edges_us, mass_kg, exposure, roi_width)
    prior = tab.number("prior", positive=True) if tab.has("prior") else None
    tab.check_unused()
    return Background(counts=_f(counts), shape=_f(tmpl / total), time_profile=profile), prior


def _check_differential_rate(tab: Table, observable: str) -> None:
    """``rate_per_kg_day_keV`` is a flat rate per unit of a keV energy axis (docs/physics.md §1.5)."""
    if observable not in ("keVee", "keVnr"):
        raise tab.error("rate_per_kg_day_keV", f"is a rate per keV, but the bins are in {observable}: use counts or "
                        "rate_per_kg_day")
    if tab.get("time_profile") != "flat" or tab.get("energy_shape", "flat") != "flat":
        raise tab.error("rate_per_kg_day_keV", 'is a flat rate: it needs time_profile = "flat" and energy_shape = "flat"')


def _background_counts(tab: Table, template_total, time_edges_us, mass_kg: float, exposure: Exposure,
                       roi_width: float = 0.0) -> float:
    """Expected background counts in the analysis region from one of four normalisations.

    * ``counts``: the number itself (default for release templates: the template's own sum);
    * ``counts_per_kg_GWh``: beam-related backgrounds, scaled with target mass and delivered beam energy;
    * ``rate_per_kg_day``: steady-state rate (counts per kg per day of continuous live time, over the
      analysis energy range) times mass, beam days and the duty factor (repetition rate × window);
    * ``rate_per_kg_day_keV``: a flat rate per kg·day·keV (keVee or keVnr, the bins' unit), the form in which
      reactor experiments publish backgrounds; times the width of the analysis region ``roi_width`` it is
      ``rate_per_kg_day``.
    """
    keys = ("counts", "counts_per_kg_GWh", "rate_per_kg_day", "rate_per_kg_day_keV")
    given = [k for k in keys if tab.has(k)]
    if len(given) > 1:
        raise CevnsInputError(f"{tab.where}: give only one of {', '.join(keys)}")
    if not given:
        if template_total is None:
            raise CevnsInputError(f"{tab.where}: missing required field 'counts' (or counts_per_kg_GWh, rate_per_kg_day)")
        return template_total
    key = given[0]
    value = tab.number(key, nonnegative=True)
    if key == "counts":
        return value
    if key == "rate_per_kg_day_keV":
        value = value * roi_width
    if key == "counts_per_kg_GWh":
        if exposure.steady:
            raise tab.error(key, "a steady source has no beam energy; use counts or rate_per_kg_day")
        return value * mass_kg * exposure.beam_GWh
    if exposure.steady:  # continuous live time: no duty factor
        if not exposure.beam_seconds > 0:
            raise tab.error(key, "the source gives no live time (a tabulated fluence_cm2): use counts, or give the "
                            "source as flux_cm2_s with live_days")
        return value * mass_kg * exposure.beam_seconds / 86400.0
    window_s = (time_edges_us[-1] - time_edges_us[0]) * 1e-6
    duty = exposure.repetition_rate_Hz * window_s
    return value * mass_kg * exposure.beam_seconds / 86400.0 * duty

