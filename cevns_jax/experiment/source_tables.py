"""``[source]`` tables of the steady source kinds: ``kind = "reactor"``, ``"solar"``, ``"tabulated"``
(docs/physics.md §1.5–1.7). Every field is checked before any compute; errors name file, table and field.

Reactor::

    [source]
    kind = "reactor"
    name = "Brokdorf"                  # shares the flux nuisance between detectors at one reactor
    thermal_power_GW = 3.9             # or thermal_power_MW
    load_factor = 1.0                  # [0, 1]; 0: reactor off (a background-only exposure)
    live_days = 100.0                  # reactor-on live time [d]
    off_live_days = 21.2               # optional: reactor-off live time [d], a second exposure (load_exposures)
    fission_fractions = { U235 = 0.58, U238 = 0.07, Pu239 = 0.29, Pu241 = 0.06 }   # each in [0, 1], sum 1
    energy_per_fission_MeV = { ... }   # optional; default Ma et al. 2013
    core = "point"                     # or "cylinder" with core_radius_m, core_height_m (baseline > radius)

Solar: ``live_days``, optional ``lines`` (["8B", "hep"]), ``flux_8B_cm2_s``, ``flux_hep_cm2_s``,
``sin2_theta12``, ``sin2_theta13``, ``sin2_theta23``, ``dm21_eV2``, ``b8_spectrum_file`` / ``hep_spectrum_file``
(two columns: E [MeV], spectrum). Tabulated: ``file`` (columns E [MeV] and one spectrum per component) or
``energy_MeV`` + ``spectrum`` (one component), ``components``, ``flavours`` ("e", "mu", "tau", or "ebar",
"mubar", "taubar" for antineutrinos: they scatter on nuclei as their ν, on electrons with g_A → −g_A), and either ``fluence_cm2`` (per component, at the detector) or ``flux_cm2_s`` + ``live_days``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CevnsInputError
from ..reactor import CORE_GEOMETRIES, ENERGY_PER_FISSION_MEV, ISOTOPES, make_reactor
from ..releases import _resolve, read_table
from ..solar import HEP_FLUX, NUFIT, SNO_B8_FLUX, SOLAR_LINES, make_solar
from ..spectra import make_tabulated_source
from ..tomltable import Table

__all__ = ["STEADY_KINDS", "FISSION_SUM_TOLERANCE", "compile_reactor", "compile_solar", "compile_tabulated"]

STEADY_KINDS = ("reactor", "solar", "tabulated")
FISSION_SUM_TOLERANCE = 1e-3
"""Largest accepted |Σ f_i − 1| of the fission fractions (published fractions are rounded to 2–3 digits)."""
FLAVOURS = {"e": 0, "mu": 1, "tau": 2, "ebar": 0, "mubar": 1, "taubar": 2}


def _per_isotope(tab: Table, key: str, default=None, **bounds) -> np.ndarray:
    value = tab.get(key, default)
    if value is default and default is not None:
        return np.asarray(default, dtype=float)
    if not isinstance(value, dict):
        raise tab.error(key, f"must be a table {{{', '.join(f'{i} = …' for i in ISOTOPES)}}}, got {value!r}")
    sub = Table(value, f"{tab.where}.{key}")
    missing = [i for i in ISOTOPES if i not in value]
    if missing:
        raise sub.error(missing[0], f"missing: give every one of {', '.join(ISOTOPES)}")
    out = np.array([sub.number(i, **bounds) for i in ISOTOPES])
    sub.check_unused()
    return out


def _live_days(tab: Table) -> float:
    return tab.number("live_days", positive=True)


def compile_reactor(tab: Table, baseline_m: float):
    """The reactor ``[source]`` table → (:class:`cevns_jax.reactor.ReactorSource`, live seconds)."""
    powers = [k for k in ("thermal_power_MW", "thermal_power_GW") if tab.has(k)]
    if len(powers) != 1:
        raise CevnsInputError(f"{tab.where}: give exactly one of thermal_power_MW, thermal_power_GW (found {powers or 'none'})")
    power_MW = tab.number(powers[0], positive=True) * (1e3 if powers[0] == "thermal_power_GW" else 1.0)
    load = tab.number("load_factor", 1.0, minimum=0.0, maximum=1.0)  # 0: reactor off (a background-only exposure)
    days = _live_days(tab)
    if tab.has("off_live_days"):  # read by load_exposures (a second, background-only experiment)
        tab.number("off_live_days", positive=True)
        if load == 0.0:
            raise tab.error("off_live_days", "this exposure is already reactor-off (load_factor = 0)")
    fractions = _per_isotope(tab, "fission_fractions", minimum=0.0, maximum=1.0)
    if abs(fractions.sum() - 1.0) > FISSION_SUM_TOLERANCE:
        raise tab.error("fission_fractions", f"must sum to 1 (within {FISSION_SUM_TOLERANCE:g}), got {fractions.sum():.6g}")
    energies = _per_isotope(tab, "energy_per_fission_MeV", ENERGY_PER_FISSION_MEV, minimum=150.0, maximum=250.0,
                            why=" MeV (released energy per fission is ≈ 200 MeV)")
    core = tab.text("core", "point", choices=CORE_GEOMETRIES)
    radius = height = 0.0
    if core == "cylinder":
        radius = tab.number("core_radius_m", positive=True)
        height = tab.number("core_height_m", positive=True)
        if not baseline_m > radius:
            raise tab.error("core_radius_m", f"the detector baseline {baseline_m:g} m lies inside the core (radius "
                            f"{radius:g} m); the baseline is measured from the core centre, in its mid-plane")
    name = tab.text("name", "reactor")
    tab.check_unused()
    src = make_reactor(power_MW, days, fractions, load_factor=load, energy_per_fission_MeV=energies, core=core,
                       core_radius_m=radius, core_height_m=height, name=name)
    return src, days * 86400.0


def _spectrum_file(tab: Table, key: str, base: Path):
    if not tab.has(key):
        return None
    tab.used.add(key)
    path = _resolve(tab.data, key, base)
    rows = read_table(path, 2, nonnegative_columns=(1,))
    if rows.shape[0] < 2 or not np.all(np.diff(rows[:, 0]) > 0) or rows[0, 0] < 0:
        raise tab.error(key, f"{path}: energies must be >= 0 and increasing (at least two rows)")
    if not rows[:, 1].sum() > 0:
        raise tab.error(key, f"{path}: the spectrum is zero everywhere")
    return rows[:, 0], rows[:, 1]


def compile_solar(tab: Table, base: Path):
    """The solar ``[source]`` table → (:class:`cevns_jax.solar.SolarSource`, live seconds)."""
    days = _live_days(tab)
    lines = tab.get("lines", list(SOLAR_LINES))
    if not isinstance(lines, list) or not lines or any(x not in SOLAR_LINES for x in lines) or len(set(lines)) != len(lines):
        raise tab.error("lines", f"must be a non-empty list of distinct lines from {', '.join(SOLAR_LINES)}, got {lines!r}")
    tab.used.add("lines")
    flux = [tab.number(f"flux_{line}_cm2_s", None, positive=True) for line in lines]
    osc = {}
    for key in NUFIT:
        if tab.has(key):
            osc[key] = tab.number(key, positive=True, maximum=None if key == "dm21_eV2" else 1.0)
    spectra = {}
    for line in lines:
        table = _spectrum_file(tab, {"8B": "b8_spectrum_file", "hep": "hep_spectrum_file"}[line], base)
        if table is not None:
            spectra[line] = table
    tab.check_unused()
    defaults = {"8B": SNO_B8_FLUX, "hep": HEP_FLUX}
    flux = [f if f is not None else defaults[line] for f, line in zip(flux, lines)]
    return make_solar(days, lines=lines, flux_cm2_s=flux, spectra=spectra, **osc), days * 86400.0


def compile_tabulated(tab: Table, base: Path):
    """The tabulated ``[source]`` table → (:class:`cevns_jax.spectra.TabulatedSource`, live seconds or 0)."""
    components = tab.get("components", ["tabulated"])
    if not isinstance(components, list) or not components or not all(isinstance(c, str) for c in components) \
            or len(set(components)) != len(components):
        raise tab.error("components", f"must be a non-empty list of distinct names, got {components!r}")
    tab.used.add("components")
    n = len(components)
    flavours = tab.get("flavours", ["e"] * n)
    if not isinstance(flavours, list) or len(flavours) != n or any(f not in FLAVOURS for f in flavours):
        raise tab.error("flavours", f"must list one of {', '.join(FLAVOURS)} per component ({n}), got {flavours!r}")
    tab.used.add("flavours")
    if tab.has("file") == tab.has("energy_MeV"):
        raise CevnsInputError(f"{tab.where}: give exactly one of file, energy_MeV (+ spectrum)")
    if tab.has("file"):
        tab.used.add("file")
        path = _resolve(tab.data, "file", base)
        rows = read_table(path, n + 1, nonnegative_columns=tuple(range(1, n + 1)))
        E, S, field = rows[:, 0], rows[:, 1:].T, f"file ({path})"
    else:
        if n != 1:
            raise tab.error("energy_MeV", "inline tables hold one component; use a file for several")
        E, S, field = tab.numbers("energy_MeV"), tab.numbers("spectrum")[None, :], "spectrum"
        if E.ndim != 1 or S.shape != (1, E.size):
            raise tab.error("spectrum", f"must have one value per energy ({E.size})")
        if np.any(S < 0):
            raise tab.error("spectrum", "must be non-negative")
    if E.size < 2 or E[0] < 0 or not np.all(np.diff(E) > 0):
        raise tab.error(field if tab.has("file") else "energy_MeV", "energies must be >= 0 and increasing (at least two)")
    if not np.all(np.sum(0.5 * (S[:, 1:] + S[:, :-1]) * np.diff(E), axis=1) > 0):
        raise tab.error(field, "every component's spectrum must have a positive integral")
    given = [k for k in ("fluence_cm2", "flux_cm2_s") if tab.has(k)]
    if len(given) != 1:
        raise CevnsInputError(f"{tab.where}: give exactly one of fluence_cm2, flux_cm2_s (+ live_days) (found {given or 'none'})")
    values = tab.numbers(given[0], length=n) if isinstance(tab.get(given[0]), list) else np.array([tab.number(given[0])])
    if values.shape != (n,) or np.any(values <= 0):
        raise tab.error(given[0], f"must be {n} positive number(s), one per component")
    seconds = 0.0
    if given[0] == "flux_cm2_s":
        seconds = _live_days(tab) * 86400.0
        values = values * seconds
    name = tab.text("name", "tabulated")
    tab.check_unused()
    src = make_tabulated_source(E, S, values, components, [FLAVOURS[f] for f in flavours], name=name,
                                antineutrino=[f.endswith("bar") for f in flavours])
    return src, seconds
