"""Snowmass-style expected sensitivities of the planned COHERENT detectors (the main job).

    python scans/snowmass.py [--full] [--years 3] [--grid N_MASS N_COUPLING N_NSI] [--only STUDY ...]
                             [--out figures] [--results results/snowmass]

For COH-Ar-750, COH-CryoCsI-10kg, COH-CryoCsI-700kg, COH-Ge-mini, NaIvETe and their combination (one
flux and one π⁰ normalisation per SNS target station, shared as :mod:`cevns_jax.nuisances` says): expected (Asimov, median) 90% CL sensitivities from the profiled Δχ²
(raster in the coupling at each mass, Δχ² = 2.71; all crossings kept; NSI planes at Δχ² = 4.61), with
every preset's nuisance priors. The current limit is computed here from the released CsI-2021 data
(shaded; :class:`cevns_jax.stats.limits.DataLimit`), and CsI-2021's expected sensitivity at its released
exposure is drawn dotted. Studies (``--only`` names): lmutau (with the (g−2)_μ band), universal_zprime
(with its sign-flipped allowed island, resolved on a fine grid around it), dark_matter and
dark_matter_dirac (α_D = 0.5, m_V = 3 m_χ, with thermal-relic lines), leptophobic (α_B against m_V),
sterile_numu and sterile_nue (Δm²₄₁ against |U_α4|²), nsi (ee and μμ planes), fisher (sin²θ_W and
R_n against exposure). Scans are resumable (results/…); figures are PNG and PDF; a Markdown table
summarises the limits at benchmark masses.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import constants as C  # noqa: E402
from cevns_jax import replace  # noqa: E402
from cevns_jax.facilities import get_facility  # noqa: E402
from cevns_jax.models import (NewPhysics, dark_matter, epsilon_from_Y, general, lmu_minus_ltau,  # noqa: E402
                              nsi_couplings, relic_Y, sterile_mixing, universal)
from cevns_jax.models.zprime import muon_g2_shift  # noqa: E402
from cevns_jax.provenance import content_hash, source_hash  # noqa: E402
from cevns_jax.scan import Axis, raster_crossings, run_scan  # noqa: E402
from cevns_jax.scan_program import PytreeInputs, ScanProgram  # noqa: E402
from cevns_jax.batches import pad_points, padded_size  # noqa: E402
from cevns_jax.stats.crossings import XTOL, LimitCurves, refine_masses, solve_crossings  # noqa: E402
from cevns_jax.stats.analyses import load_analysis, with_linear_morphing  # noqa: E402
from cevns_jax.stats.fisher import fisher_blocks  # noqa: E402
from cevns_jax.stats.forecast import (MAX_CROSSINGS, ROOT_ITERATIONS, AsimovForecast, ForecastSpec,  # noqa: E402
                                     affine_coupling_scan, dark_matter_coupling_scan, program_labels, shared_delta_chi2)
from cevns_jax.stats.limits import DataLimit  # noqa: E402
from cevns_jax.stats.teststats import BAND_SIGMAS, asimov_band_levels  # noqa: E402
from figure_style import FigureRecord, legend_outside, plain_log_ticks, save_figure, style, wrap_math  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts

PLANNED = ["COH-Ar-750", "COH-CryoCsI-10kg", "COH-CryoCsI-700kg", "COH-Ge-mini", "NaIvETe"]
REFERENCE = "COHERENT-CsI-2021"
FLUX_MONITOR = "COH-D2O"
"""The heavy-water flux monitor (ν_e d → e⁻pp; no CEvNS): the Fisher forecasts add a "combined + COH-D2O" row,
its counts sharing the target station's flux nuisance with the planned detectors (docs/physics.md §11)."""
WITH_MONITOR = f"combined + {FLUX_MONITOR}"
LEVEL = C.DELTA_CHI2_90CL  # 90% CL, one parameter at fixed mass (raster)
LEVEL_2D = C.DELTA_CHI2_90CL_2D  # 90% CL, two parameters (NSI planes)
BAND_ALPHA = 0.1
BAND_LEVELS = asimov_band_levels(BAND_ALPHA, BAND_SIGMAS)
"""Asimov Δχ² levels of the expected-limit bands −2σ, −1σ, +1σ, +2σ (CLs at 90% CL, CCGV eq. 91:
0.701, 1.317, 5.654, 10.85; the median's level, Φ⁻¹(0.95)² = 2.7055, is the raster level 2.706 to
2e-4, i.e. 5e-5 in a coupling² limit, so the median is the main curve). docs/physics.md §5.11."""
BAND_CURVE = "combined"
DM_MASS_MAX_MEV = 150.0
"""Upper end of the dark-matter mass axes [MeV]: η → γV reaches m_χ = m_η/3 ≈ 183 MeV with m_V = 3m_χ, its
rate falling as (1 − m_V²/m_η²)³ (3% of its m_V → 0 value at 150 MeV); π⁰ and π⁻ capture stop near 45 MeV."""
"""The detector set whose bands are drawn along the whole curve (every other set: ±1σ at the benchmarks in the
summary table; dark matter solves every band of every set in its program anyway)."""
REFINE_RTOL = 5e-3  # solved curves: bisect mass intervals until limits change < 0.5% between points
REFINE_ROUNDS = 5
MEMORY_BUDGET = 2e9
"""Device memory per scan chunk [bytes]: a whole default study (12 × 30 points; 12 dark-matter masses) in one
compiled chunk program (XLA's own estimate; a larger grid is chunked to fit)."""
DARK_BYTES_PER_MASS = 5e8
"""XLA's memory estimate of the dark-matter program per mass [bytes] on CPU (≈ 0.45 GB, measured 2026-11-28;
it carries every detector set's templates, three production channels and the coupling raster): its chunk
size is set from it and :data:`MEMORY_BUDGET` instead of measured by compiling the program once at the whole
grid and again at the chunk that fits (≈ 50 s of a cold start)."""
STERILE_MASSES_PER_CHUNK = 4
"""Δm² points per chunk of the sterile program (each carries every detector set's oscillated templates)."""
UNITS = {"mass_MeV": "MeV", "m_chi_MeV": "MeV", "m_V_MeV": "MeV", "dm2_eV2": "eV²", "g": "1", "Y": "1",
         "alpha_B": "1", "Umu4_sq": "1", "Ue4_sq": "1", "g_over_island": "1", "eps_u": "1", "eps_d": "1"}
"""Units of every scan axis, stored with the results (``cevns_jax.scan.load``); "1": dimensionless."""


def scale_exposure(exp, years: float):
    """Planned presets are one year long: scale their protons on target (and exposure-based backgrounds)."""
    if exp.info.status != "planned" or years == 1.0:
        return exp
    src = replace(exp.source, protons_on_target=exp.source.protons_on_target * years)
    bkg = {k: replace(b, counts=b.counts * years) for k, b in exp.backgrounds.items()}
    return replace(exp, source=src, backgrounds=bkg)


DATA = "CsI-2021 data"


FAMILIES = {"zprime_nsi": NewPhysics(zprime=general(1e3, 0.0, 0.0, 0.0, 0.0), nsi=nsi_couplings()),
            "sterile": NewPhysics(sterile=sterile_mixing(0.0))}
"""The model structures of the non-dark-matter studies, one compiled program each: a Z′ of any family
(tree couplings and the L_μ−L_τ loop mixing as leaves) with NSI, each at its null value unless a study
sets it; and 3+1 mixing (kept apart: oscillations make every recoil node integrate the flux anew, ~10×
the cost of a point without them, docs/physics.md §4.1)."""


def family_of(model_of: Callable, axes) -> str:
    """The first of :data:`FAMILIES` whose structure holds every sub-model of ``model_of`` (at the grid's
    first point)."""
    model = model_of({a.name: jnp.asarray(a.values()[0]) for a in axes})
    present = {k for k, v in vars(model).items() if v is not None}
    for name, template in FAMILIES.items():
        if present <= {k for k, v in vars(template).items() if v is not None}:
            return name
    raise ValueError(f"no shared program for a model with {sorted(present)}")
GENERIC_CHUNK = 128
"""Points per chunk of the shared program (on CPU): small enough that root finding, which evaluates a few
dozen points per step, wastes little on padding."""


class Lazy:
    """A point function built by ``make()`` just before its program compiles (``ScanProgram``'s
    ``before_compile``, outside any trace): a redraw from finished scans then compiles nothing, not even
    the forecasts' SM references."""

    def __init__(self, make: Callable):
        self.make, self.made = make, None

    def build(self) -> None:
        if self.made is None:
            self.made = self.make()

    def __call__(self, theta):
        self.build()
        return self.made(theta)


def mapped_columns(flat: PytreeInputs, models: Callable, points: dict) -> dict:
    """``flat``'s input columns of a study's models at ``points`` ({axis: (n,) array}); ``models`` is the
    study's jitted, vmapped model map, called on the points padded (by repeating the last) to a multiple
    of :data:`GENERIC_CHUNK`, so root finding, which asks for a different number of points at every step,
    compiles it once per bucket instead of every eager operation of the model map per point count."""
    arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in points.items()}
    n = next(iter(arrays.values())).size
    size = padded_size(n, GENERIC_CHUNK)
    padded = pad_points(arrays, size)
    return {k: v[:n] for k, v in flat.columns(models(padded), size).items()}


class SharedProgram:
    """Every non-dark-matter study of one model family in one compiled program: the profiled Δχ² of every
    detector set and the CsI-2021 data at a model of the family's structure (:data:`FAMILIES`), whose
    leaves each study fills on the host from its own model map (``prepare``), so the main job compiles
    one program per family."""

    def __init__(self, sets: dict, data, family: str):
        self.sets, self.flat, self.data, self.family = sets, PytreeInputs(FAMILIES[family]), data, family
        self.priors = {k: program_labels(tuple(v), ForecastSpec())[1] for k, v in sets.items()}

        def make():  # the forecasts (their SM references compile) only when the program is traced
            evaluators = {label: AsimovForecast(exps, self.flat.build) for label, exps in sets.items()}
            evaluators[DATA] = DataLimit(self.flat.build, analysis=with_linear_morphing(data))
            return shared_delta_chi2(evaluators, self.flat.build)
        point = Lazy(make)
        self.program = ScanProgram(point, before_compile=point.build)

    def prepare(self, model_of: Callable) -> Callable:
        """Grid points {axis: array} → the program's inputs, through the study's model map (vmapped and
        compiled once per study and bucket of points, :func:`mapped_columns`)."""
        models = jax.jit(jax.vmap(model_of))
        return lambda points: mapped_columns(self.flat, models, points)


def scan_shared(name: str, shared: SharedProgram, model_of: Callable, axes, out, level) -> tuple:
    """Profiled Δχ² of every detector set and the data on the grid with the shared program:
    ({label: grid}, a batched pair evaluator for root finding, the scan's identity hash)."""
    result = run_scan(shared.program, axes, out / name, chunk_size=GENERIC_CHUNK * len(jax.local_devices()),
                      description={"sets": {k: [e.name for e in v] for k, v in shared.sets.items()}, "level": level,
                                   "priors": shared.priors, "data": DATA, "study": name, "family": shared.family},
                      identity={"sets": shared.sets, "data": shared.data}, label=name,
                      units={**{a.name: UNITS[a.name] for a in axes}, **{k: "Δχ²" for k in list(shared.sets) + [DATA]}},
                      prepare=shared.prepare(model_of))
    return result.values, _ScanPairs(result, axes[0].name, axes[1].name), result.meta["identity"]["scan"]


DARK = NewPhysics(dark_matter=dark_matter(10.0, 30.0, 1.0))
"""The structure of every dark-matter study (scalar or Dirac χ, dark photon or leptophobic mediator: leaves)."""


class SharedDark:
    """Every dark-matter study in one compiled program (the structure :data:`DARK`; rasters of
    ``n`` couplings over the same number of decades, as ratios to each study's first coupling, an input):
    templates once per mass, rescaled along the raster, crossings solved in-program
    (:func:`cevns_jax.stats.forecast.dark_matter_coupling_scan`). ``data``: the CsI-2021 release
    analysis, whose *observed* counts give the current limit (label :data:`DATA`)."""

    dark_matter = True

    def __init__(self, sets: dict, data, ratios, power: float, level: float):
        self.sets, self.data, self.flat, self.ratios = sets, data, PytreeInputs(DARK), ratios
        self.priors = {k: program_labels(tuple(v), ForecastSpec(dark_matter=True))[1] for k, v in sets.items()}

        def make():  # the forecasts (their SM references compile) only when the program is traced
            evaluators = {label: AsimovForecast(exps, self.flat.build, dark_matter=True) for label, exps in sets.items()}
            evaluators[DATA] = DataLimit(self.flat.build, analysis=with_linear_morphing(data))
            return dark_matter_coupling_scan(evaluators, self.flat.build, "coupling", ratios, power, level=level,
                                             scale="coupling_scale", band_levels=tuple(float(b) for b in BAND_LEVELS))
        point = Lazy(make)
        self.program = ScanProgram(point, before_compile=point.build)

    @staticmethod
    def ratios_of(axis: Axis) -> np.ndarray:
        """The raster as ratios to its first value (decades rounded, so equal rasters share a program)."""
        return 10.0 ** np.linspace(0.0, round(float(np.log10(axis.stop / axis.start)), 9), axis.num)

    def identity_couplings(self, axis: Axis) -> np.ndarray:
        return axis.start * self.ratios

    def prepare(self, model_of: Callable, axes) -> Callable:
        mass, coupling = axes[0].name, axes[1].name
        models = jax.jit(jax.vmap(model_of))
        def prepare(points: dict) -> dict:  # noqa: E306
            m = np.asarray(points[mass], dtype=float)
            columns = mapped_columns(self.flat, models, {mass: m, coupling: np.ones_like(m)})
            return {**columns, "coupling_scale": np.full(m.size, axes[1].start)}
        return prepare


STERILE_REFERENCE = 0.5
"""|U_α4|² at which the sterile program computes its oscillated templates: there the strength
4|U|²(1 − |U|²) of every rate's oscillated part is 1 (:func:`cevns_jax.stats.coupling_scan.affine_coupling_scan`)."""


def mixing_strength(U_sq):
    """4|U|²(1 − |U|²): the factor of ⟨sin²Δ⟩ in P_αα with one |U_α4|² ≠ 0 (docs/physics.md §4.1); monotonic on
    the axes' |U|² ≤ ½."""
    return 4.0 * U_sq * (1.0 - U_sq)


class SharedSterile:
    """Every single-flavour 3+1 study in one compiled program (the structure ``FAMILIES["sterile"]``): per Δm²,
    the templates of each detector set and the data at |U|² = :data:`STERILE_REFERENCE` and without mixing;
    along the study's |U|² raster (``couplings``, a constant of the program) the templates are their exact
    affine combination in :func:`mixing_strength`, so the raster costs profiled fits only, and every crossing
    and band is solved in the program (:func:`cevns_jax.stats.coupling_scan.affine_coupling_scan`)."""

    dark_matter = False

    def __init__(self, sets: dict, data, couplings, level: float):
        self.sets, self.data, self.flat = sets, data, PytreeInputs(FAMILIES["sterile"])
        self.couplings = np.asarray(couplings, dtype=float)
        self.priors = {k: program_labels(tuple(v), ForecastSpec())[1] for k, v in sets.items()}

        def make():  # the forecasts (their SM references compile) only when the program is traced
            evaluators = {label: AsimovForecast(exps, self.flat.build) for label, exps in sets.items()}
            evaluators[DATA] = DataLimit(self.flat.build, analysis=with_linear_morphing(data))
            return affine_coupling_scan(evaluators, self.flat.build, lambda m: replace(m, sterile=None), mixing_strength,
                                        self.couplings, level=level, band_levels=tuple(float(b) for b in BAND_LEVELS))
        point = Lazy(make)
        self.program = ScanProgram(point, before_compile=point.build)

    def identity_couplings(self, axis: Axis) -> np.ndarray:
        return self.couplings

    def prepare(self, model_of: Callable, axes) -> Callable:
        mass, coupling = axes[0].name, axes[1].name
        models = jax.jit(jax.vmap(model_of))
        def prepare(points: dict) -> dict:  # noqa: E306
            m = np.asarray(points[mass], dtype=float)
            return mapped_columns(self.flat, models, {mass: m, coupling: np.full(m.size, STERILE_REFERENCE)})
        return prepare


def scan_in_program(name, shared, model_of, axes, out, level, per_device: int) -> tuple:
    """The scan of one study with a program that solves its crossings itself (:class:`SharedDark`,
    :class:`SharedSterile`; ``per_device`` masses per chunk and device): ({label: grid (mass, coupling)}, its
    in-program crossings, the scan's identity hash)."""
    sets = shared.sets
    result = run_scan(shared.program, axes[:1], out / name, chunk_size=per_device * len(jax.local_devices()),
                      description={"sets": {k: [e.name for e in v] for k, v in sets.items()}, "level": level,
                                   "priors": shared.priors, "data": DATA, "couplings": axes[1].values().tolist(),
                                   "study": name, "band_levels": BAND_LEVELS.tolist()},
                      identity={"sets": sets, "data": shared.data, "couplings": shared.identity_couplings(axes[1])},
                      label=f"{name}", units={**{a.name: UNITS[a.name] for a in axes}, **{k: "Δχ²" for k in list(sets) + [DATA]}},
                      output_axes=axes[1:], prepare=shared.prepare(model_of, axes))
    mass_name, coupling_name = axes[0].name, axes[1].name
    grids = {k: v for k, v in result.values.items() if "@" not in k}

    def direct():  # a second method for --check-convergence: Δχ² of the study's own model at (mass, coupling)
        evaluators = {k: AsimovForecast(v, model_of, dark_matter=shared.dark_matter) for k, v in sets.items()}
        evaluators[DATA] = DataLimit(model_of, analysis=with_linear_morphing(shared.data))
        return _PairFunction(shared_delta_chi2(evaluators, model_of), mass_name, coupling_name)
    return grids, _InProgramCrossings(result, mass_name, list(grids), direct), result.meta["identity"]["scan"]


class _PairFunction:
    """``fn(mass, coupling)`` for :mod:`cevns_jax.stats.crossings` from a point function of a dict
    (hashable by identity, so its compiled program is reused by every solve of one study)."""

    def __init__(self, point, mass_name: str, coupling_name: str):
        self.point, self.mass_name, self.coupling_name = point, mass_name, coupling_name

    def __call__(self, m, g):
        return self.point({self.mass_name: m, self.coupling_name: g})


class _InProgramCrossings:
    """Crossings that the dark-matter scan program solves itself (``{label}@crossings``), at any masses."""

    def __init__(self, result, mass_name: str, labels: list, direct):
        self.result, self.mass_name, self.labels, self.direct = result, mass_name, labels, direct

    def curves(self, values: dict, masses) -> LimitCurves:
        for k in self.labels:
            if np.any(values[f"{k}@brackets"] > MAX_CROSSINGS):
                print(f"  note: {k}: more than {MAX_CROSSINGS} crossings at some mass; the first are kept", flush=True)
        return LimitCurves(np.asarray(masses, dtype=float), {
            k: [sorted(float(g) for g in row if np.isfinite(g)) for row in np.atleast_2d(values[f"{k}@crossings"])]
            for k in self.labels})

    def solve(self, masses) -> LimitCurves:
        masses = np.atleast_1d(np.asarray(masses, dtype=float))
        return self.curves(self.result.evaluate({self.mass_name: masses}), masses)

    def bands(self, masses, labels, values: dict | None = None) -> dict:
        """{label: (n_bands, n_masses) band limits} solved in-program at ``masses`` (``values``: the
        program's outputs there, if already computed)."""
        if values is None:
            values = self.result.evaluate({self.mass_name: np.atleast_1d(np.asarray(masses, dtype=float))})
        return {k: np.atleast_2d(np.asarray(values[f"{k}@bands"])).T for k in labels}


class _BandLevels:
    """A batched evaluator whose outputs ``{label}#{j}`` are Δχ² × LEVEL / BAND_LEVELS[j] for the pairs
    (label, j) asked: its crossings of LEVEL are those of each band level, so one :func:`solve_crossings`
    call solves every band asked together, with the study's own compiled program."""

    def __init__(self, pairs, wanted):
        self.pairs, self.wanted = pairs, list(wanted)

    def scale(self, values: dict) -> dict:
        return {f"{k}#{j}": np.asarray(values[k]) * (LEVEL / BAND_LEVELS[j]) for k, j in self.wanted}

    def evaluate(self, m, g):
        return self.scale(self.pairs.evaluate(m, g))


class _ScanPairs:
    """A batched evaluator for :mod:`cevns_jax.stats.crossings`: the scan's compiled program at any
    (mass, coupling) pairs, keeping the outputs ``labels`` (all when ``None``)."""

    def __init__(self, result, mass_name: str, coupling_name: str, labels=None):
        self.result, self.mass_name, self.coupling_name, self.labels = result, mass_name, coupling_name, labels

    def evaluate(self, m, g):
        out = self.result.evaluate({self.mass_name: m, self.coupling_name: g})
        return out if self.labels is None else {k: out[k] for k in self.labels}

    def only(self, labels) -> "_ScanPairs":
        return _ScanPairs(self.result, self.mass_name, self.coupling_name, list(labels))


def cached(path: Path, key: dict, compute: Callable):
    """A JSON-serialisable result stored at ``path`` with the ``key`` it was computed for (hashes of every
    input): reused only when the key matches, else recomputed and rewritten atomically. A redraw from
    finished scans thus solves and compiles nothing."""
    key = json.loads(json.dumps(key))
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                return saved["value"]
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            pass  # unreadable: recompute
    text = json.dumps({"key": key, "value": compute()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return json.loads(text)["value"]  # as a rerun reads it (lists, not tuples): equal inputs hash equally


def curves_to_json(c: LimitCurves) -> dict:
    return {"masses": [float(m) for m in c.masses], "crossings": c.crossings, "converged": bool(c.converged)}


def curves_from_json(d: dict) -> LimitCurves:
    return LimitCurves(np.asarray(d["masses"], dtype=float), d["crossings"], d["converged"])


def solved_curves(fn, masses, couplings, grids: dict, benchmarks, refine: bool = True) -> tuple:
    """(curves, limits at the benchmark masses): every crossing solved by root finding from the raster's
    brackets (dark matter: by the scan program itself); the mass axis refined until the limits change by
    < REFINE_RTOL between points when ``refine`` (docs/physics.md §5.9)."""
    if isinstance(fn, _InProgramCrossings):
        curves, solve = fn.curves(fn.result.values, masses), fn.solve
        at = solve(benchmarks)
    else:  # the benchmark masses' raster evaluated, then every bracket of both solved together
        mm, gg = np.meshgrid(benchmarks, couplings, indexing="ij")
        extra = fn.evaluate(mm.ravel(), gg.ravel())
        raster = {k: np.vstack([grids[k], extra[k].reshape(mm.shape)]) for k in grids}
        both = solve_crossings(fn, np.concatenate([masses, benchmarks]), couplings, LEVEL, raster=raster)
        n, solve = len(masses), None
        curves = LimitCurves(np.asarray(masses, dtype=float), {k: v[:n] for k, v in both.crossings.items()})
        at = LimitCurves(np.asarray(benchmarks, dtype=float), {k: v[n:] for k, v in both.crossings.items()})
    if refine:
        curves = refine_masses(fn, curves, couplings, LEVEL, rtol=REFINE_RTOL, max_rounds=REFINE_ROUNDS, solve=solve)
        if not curves.converged:
            print(f"  note: mass refinement stopped after {REFINE_ROUNDS} rounds", flush=True)
    return curves, at


def band_limits(fn, masses, couplings, grids: dict, labels, rows: dict | None = None) -> dict:
    """Expected-limit bands (docs/physics.md §5.11): {label: (n_bands, n_masses)} the first crossing of the
    Asimov Δχ² with each of :data:`BAND_LEVELS` at ``masses``, solved by root finding with the study's own
    program (dark matter: in that program, from the same templates, every band of every label).
    ``grids``: the raster at ``masses`` (shared programs; its rows are the masses), or for dark matter the
    program's outputs there (or None). ``rows`` (shared programs): {label: (band indices, mask of the
    masses)} to solve only those (NaN elsewhere; default every band at every mass): root finding costs
    one evaluation of the study's program per bracket and iteration."""
    if isinstance(fn, _InProgramCrossings):
        return fn.bands(masses, labels, grids)
    rows = rows or {k: (range(len(BAND_LEVELS)), np.ones(len(masses), bool)) for k in labels}
    wanted = [(k, j) for k in labels for j in rows[k][0]]
    scaled = _BandLevels(fn, wanted)
    raster = {f"{k}#{j}": np.where(rows[k][1][:, None], v, 0.0)  # 0: no bracket, not solved
              for (k, j), v in zip(wanted, scaled.scale(grids).values())}
    solved = solve_crossings(scaled, masses, couplings, LEVEL, raster=raster)
    out = {k: np.full((len(BAND_LEVELS), len(masses)), np.nan) for k in labels}
    for k, j in wanted:
        out[k][j] = np.where(rows[k][1], solved.limit(f"{k}#{j}"), np.nan)
    return out


def draw_bands(ax, masses, bands: np.ndarray, label: str, swap: bool) -> None:
    """±2σ (yellow) and ±1σ (green) expected bands around a median limit (rows of :data:`BAND_LEVELS`)."""
    fill = ax.fill_betweenx if swap else ax.fill_between
    ok2, ok1 = np.isfinite(bands[0]) & np.isfinite(bands[3]), np.isfinite(bands[1]) & np.isfinite(bands[2])
    fill(masses, bands[0], bands[3], where=ok2, color="#ffdd33", lw=0, zorder=0.6, label=f"{label}: expected $\\pm2\\sigma$")
    fill(masses, bands[1], bands[2], where=ok1, color="#33cc33", lw=0, zorder=0.7, label=f"{label}: expected $\\pm1\\sigma$")


def excluded_bands(crossings: list, top: float) -> list:
    """Excluded coupling bands from the solved crossings at each mass: [(lower, upper) arrays, …], NaN where a
    band does not exist. Δχ² < level at the smallest coupling, so the 1st–2nd crossings bound an excluded
    band, the 2nd–3rd an allowed island, the 3rd–(4th or the top of the axis) the next excluded band."""
    bands = []
    for k in range(max((len(c) for c in crossings), default=0) // 2 + 1):
        lo, hi = np.full(len(crossings), np.nan), np.full(len(crossings), np.nan)
        for i, c in enumerate(crossings):
            ends = list(c) + [top]
            if 2 * k + 1 < len(ends):
                lo[i], hi[i] = ends[2 * k], ends[2 * k + 1]
        if np.any(np.isfinite(lo)):
            bands.append((lo, hi))
    return bands


def plot(ax, masses, curves, xlabel, ylabel, title, swap=False, data=None):
    """One curve per detector set. ``data`` = (solved crossings per mass, excluded at the smallest coupling,
    top of the coupling axis) of the CsI-2021 data: the region it excludes (Δχ² ≥ 2.71, so allowed
    islands stay white) is shaded from the solved crossings. ``swap``: coupling on x."""
    if data is not None:
        for lo, hi in excluded_bands(*data):
            (ax.fill_betweenx if swap else ax.fill_between)(masses, lo, hi, color="0.82", zorder=0, lw=0)
        ax.fill_between([], [], color="0.82", label="excluded by the CsI-2021 data,\n90% CL (this package)")
    for label, curve in curves.items():
        xy = (curve, masses) if swap else (masses, curve)
        if not np.any(np.isfinite(curve)):  # no limit anywhere in the scanned coupling range: no legend entry
            continue  # (the summary table says "—")
        if label == REFERENCE:
            ax.plot(*xy, **style(label), label=f"{REFERENCE} expected\n(released exposure)")
        elif label != DATA:  # the data are drawn as the shaded region above
            ax.plot(*xy, **style(label), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(ylabel if swap else xlabel)
    ax.set_ylabel(xlabel if swap else ylabel)
    plain_log_ticks(ax.yaxis if swap else ax.xaxis, masses)
    ax.set_title(title, fontsize=7.5)
    ax.grid(alpha=0.3, which="both")


def fisher_numbers(exps: dict, years: list) -> dict:
    """σ(sin²θ_W), σ(δR_n) per detector and combined at each exposure, and the 3-year 1σ ellipses."""
    table, ellipses = {}, {}
    # one data block per detector on joint labels (ŝ² shared, δR_n per nucleus, flux per target station);
    # exps hold one SNS year here, and every count scales with exposure, so the data blocks do too
    blocks = fisher_blocks(tuple(exps[n] for n in PLANNED + [FLUX_MONITOR]), ("sin2_theta_w", "delta_rn_fm"))
    for y in years:
        weights = np.r_[np.full(len(PLANNED), y), 0.0]  # the monitor's weight 0: its nuisances keep their priors
        fishers = {n: blocks.fisher(weights, k) for k, n in enumerate(PLANNED)}
        rn = {n: next(lab for lab in F.labels if lab.endswith("delta_rn_fm")) for n, F in fishers.items()}
        for n, F in fishers.items():
            err = F.marginalised_errors()
            table[f"{n}|{y:g}"] = (float(err["sin2_theta_w"]), float(err[rn[n]]))
            if y == 3.0:
                pts = F.ellipse("sin2_theta_w", rn[n], centre=(C.SIN2_THETA_W_LOW_ENERGY, 0.0))
                ellipses[n] = [np.asarray(pts[0]).tolist(), np.asarray(pts[1]).tolist()]
        table[f"combined|{y:g}"] = (float(blocks.fisher(weights).marginalised_errors()["sin2_theta_w"]), None)
        table[f"{WITH_MONITOR}|{y:g}"] = (float(blocks.fisher(np.full(len(PLANNED) + 1, y)).marginalised_errors()["sin2_theta_w"]), None)
    return {"table": table, "ellipses": ellipses}


def fisher_forecasts(exps: dict, out: Path, results: Path, record: FigureRecord) -> list[str]:
    """σ(sin²θ_W) and σ(R_n) against exposure (1–5 SNS years), per detector and combined; ellipse figure.
    The numbers are cached with the hash of the experiments and of the package source."""
    years = [1.0, 2.0, 3.0, 4.0, 5.0]
    key = {"experiments": content_hash(tuple(exps[n] for n in PLANNED + [FLUX_MONITOR])), "source": source_hash(), "years": years}
    results.mkdir(parents=True, exist_ok=True)
    numbers = cached(results / "fisher.json", key, lambda: fisher_numbers(exps, years))
    table = {(k.split("|")[0], float(k.split("|")[1])): (a, float("nan") if b is None else b)
             for k, (a, b) in numbers["table"].items()}
    names = ("snowmass_fisher_ellipses", "snowmass_sin2w_vs_exposure")
    if not all([record.current(out, name, numbers) for name in names]):
        draw_fisher(numbers, table, years, out)
        for name in names:
            record.record(out, name, numbers)
    lines = ["| detector | " + " | ".join(f"σ(ŝ²) {y:g} y" for y in years) + " | σ(R_n) [fm] 3 y |",
             "|---|" + "---|" * (len(years) + 1)]
    for n in PLANNED + ["combined", WITH_MONITOR]:
        rn = table[(n, 3.0)][1]  # combined: δR_n is a parameter per nucleus, no single value to quote
        rn_cell = f"{rn:.3f}" if np.isfinite(rn) else "per nucleus (rows above)"
        lines.append(f"| {n} | " + " | ".join(f"{table[(n, y)][0]:.4f}" for y in years) + f" | {rn_cell} |")
    return lines


def draw_fisher(numbers: dict, table: dict, years: list, out: Path) -> None:
    """The Fisher ellipses (sin²θ_W, δR_n) and σ(sin²θ_W) against exposure."""
    fig, ax = plt.subplots(figsize=(6.4, 5))
    for n, (xs, ys) in numbers["ellipses"].items():
        ax.plot(xs, ys, **{**style(n), "markevery": 0.1}, label=n)
    ax.set_xlabel(r"$\sin^2\theta_W$")
    ax.set_ylabel(r"$\delta R_n$ [fm] (shift of every neutron radius)")
    ax.set_title(r"Fisher $1\sigma$ ($\Delta\chi^2 = 2.30$) regions, 3 SNS years each, nuisances marginalised",
                 fontsize=9)
    legend_outside(ax, fontsize=8)
    ax.grid(alpha=0.3)
    finish(fig, out, "snowmass_fisher_ellipses")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for n in PLANNED + ["combined", WITH_MONITOR]:
        ax.plot(years, [table[(n, y)][0] for y in years], **{**style(n), "marker": "o", "markevery": 1}, label=n)
    ax.set_xlabel("exposure [SNS years per detector]")
    ax.set_ylabel(r"$\sigma(\sin^2\theta_W)$, marginalised")
    ax.set_yscale("log")
    ax.set_title(r"Fisher forecast of $\sin^2\theta_W$ ($R_n$ per nucleus and all preset nuisances marginalised;"
                 "\nflux per target station; + COH-D2O: the heavy-water flux monitor added, same exposure)", fontsize=9)
    legend_outside(ax, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    finish(fig, out, "snowmass_sin2w_vs_exposure")


def finish(fig, out: Path, name: str, tight: bool = True) -> None:
    """Save a figure as PNG and PDF and close it (:func:`figure_style.save_figure`)."""
    save_figure(fig, out, name, tight=tight)


@dataclass
class RasterStudy:
    """One Snowmass raster figure: a mass-like axis, a coupling axis scanned at each mass, a model map."""

    name: str
    mass: Axis
    coupling: Axis
    model_of: Callable
    xlabel: str
    ylabel: str
    title: str
    benchmarks: tuple[float, float]
    labels: tuple = ("all",)
    dark: bool = False
    swap_axes: bool = False  # plot the coupling on x (sterile-neutrino convention: |U|² on x, Δm² on y)
    islands: bool = False
    relic: str | None = None  # thermal-relic particle type drawn as a target line
    power: float | None = None  # dark matter: counts ∝ coupling^power at fixed masses (fast raster)
    mixing: bool = False  # 3+1 with one |U_α4|²: templates affine in 4|U|²(1 − |U|²) (fast raster, SharedSterile)


def zprime_band(ax, masses):
    """(g−2)_μ band for L_μ−L_τ (2021 world average, 2σ), labelled with its status."""
    band_lo = np.sqrt(np.maximum((251e-11 - 2 * 59e-11) / np.asarray(muon_g2_shift(masses, 1.0)), 0))
    band_hi = np.sqrt((251e-11 + 2 * 59e-11) / np.asarray(muon_g2_shift(masses, 1.0)))
    ax.fill_between(masses, band_lo, band_hi, color="#e377c2", alpha=0.25,
                    label="$(g-2)_\\mu$ 2021 band ($2\\sigma$;\ntension $\\lesssim 1\\sigma$ after 2025)")


def universal_island_coupling(mass_MeV, q2_MeV2=2000.0, charge_per_nucleon=0.28):
    """Where a universal Z′ flips the sign of the weak charge, Q′ = −2Q_SM, so the rate returns to the SM's.

    Q′ = 3g²A/(√2 G_F (q² + M²)) (F ≈ 1) and |Q_SM| ≈ 0.27 A (Ar), 0.29 A (CsI) give
    g*² = 2√2 G_F |Q_SM|/A (M² + q²)/3 at a typical q² = 2 M_A T ≈ 2000 MeV² (T ≈ 10–20 keV). The island
    scan covers 0.7–1.45 g* finely (the island is ≲ 1% wide in g for a tonne-scale detector).
    """
    G_F = cevns_jax.constants.G_FERMI_GEV2 * 1e-6  # MeV⁻²
    return jnp.sqrt(2.0 * np.sqrt(2.0) * G_F * charge_per_nucleon * (jnp.asarray(mass_MeV) ** 2 + q2_MeV2) / 3.0)


def universal_islands(shared: SharedProgram, labels, mass: Axis, n: int, tag: str, results: Path) -> dict:
    """The sign-flipped allowed island of the universal Z′, resolved on a fine grid around g*(M):
    {label: [(mass, g_low, g_high), …]}."""
    ratio = Axis("g_over_island", 0.7, 1.45, n, "log")
    model_of = lambda th: NewPhysics(zprime=universal(  # noqa: E731
        th["mass_MeV"], th["g_over_island"] * universal_island_coupling(th["mass_MeV"])))
    grids, _, _ = scan_shared(f"universal_island_{tag}", shared, model_of, [mass, ratio], results, LEVEL)
    out = {}
    for label in labels:
        grid = grids[label]
        island = []
        for m, row, cross in zip(mass.values(), grid, raster_crossings(ratio.values(), grid, LEVEL)):
            if row.min() < LEVEL and len(cross) >= 2:
                g_star = float(universal_island_coupling(m))
                island.append((m, cross[0] * g_star, cross[1] * g_star))
        out[label] = island
    return out


def raster_studies(n_mass: int, n_coupling: int) -> list[RasterStudy]:
    def dark_photon_of(particle):
        def model_of(th):
            eps = epsilon_from_Y(th["Y"], th["m_chi_MeV"])
            return NewPhysics(dark_matter=dark_matter(th["m_chi_MeV"], 3.0 * th["m_chi_MeV"], eps, 0.5, particle=particle))
        return model_of

    masses = lambda lo, hi: Axis("mass_MeV", lo, hi, n_mass, "log")  # noqa: E731
    return [
        RasterStudy("lmutau", masses(1.0, 1000.0), Axis("g", 1e-5, 1e-1, n_coupling, "log"),
                    lambda th: NewPhysics(zprime=lmu_minus_ltau(th["mass_MeV"], th["g"])),
                    r"$M_{Z'}$ [MeV]", r"$g'$ (90% CL)", r"Gauged $L_\mu - L_\tau$ $Z'$", (10.0, 100.0)),
        RasterStudy("universal_zprime", masses(1.0, 1000.0), Axis("g", 1e-6, 1e-2, 2 * n_coupling, "log"),
                    lambda th: NewPhysics(zprime=universal(th["mass_MeV"], th["g"])),
                    r"$M_{Z'}$ [MeV]", r"$g$ (90% CL)", r"Universal $Z'$ ($g_\nu = g_u = g_d$); the sign-flipped island "
                    r"($Q_V \to -Q_V$, where it survives) from a fine grid around it", (10.0, 100.0),
                    labels=("COH-Ar-750", "COH-CryoCsI-700kg", "combined", REFERENCE), islands=True),
        RasterStudy("dark_matter", Axis("m_chi_MeV", 2.0, DM_MASS_MAX_MEV, n_mass, "log"), Axis("Y", 1e-13, 1e-7, n_coupling, "log"),
                    dark_photon_of("scalar"), r"$m_\chi$ [MeV]", r"$Y = \varepsilon^2 \alpha_D (m_\chi/m_V)^4$ (90% CL)",
                    r"Scalar dark matter, $\alpha_D = 0.5$, $m_V = 3 m_\chi$, V from $\pi^0$ ($\pm 25\%$), $\eta$ (assumed $\eta/\pi^0 = 0.01$, $\pm 100\%$) and $\pi^-$ capture ($\pm 50\%$)", (5.0, 20.0), dark=True,
                    relic="scalar", power=2.0),
        RasterStudy("dark_matter_dirac", Axis("m_chi_MeV", 2.0, DM_MASS_MAX_MEV, n_mass, "log"), Axis("Y", 1e-13, 1e-7, n_coupling, "log"),
                    dark_photon_of("dirac"), r"$m_\chi$ [MeV]", r"$Y = \varepsilon^2 \alpha_D (m_\chi/m_V)^4$ (90% CL)",
                    r"Dirac-fermion dark matter, $\alpha_D = 0.5$, $m_V = 3 m_\chi$, V from $\pi^0$ ($\pm 25\%$), $\eta$ (assumed $\eta/\pi^0 = 0.01$, $\pm 100\%$) and $\pi^-$ capture ($\pm 50\%$)", (5.0, 20.0), dark=True,
                    relic="dirac", power=2.0),
        RasterStudy("leptophobic", Axis("m_V_MeV", 6.0, 120.0, n_mass, "log"), Axis("alpha_B", 1e-14, 1e-8, n_coupling, "log"),
                    lambda th: NewPhysics(dark_matter=dark_matter(th["m_V_MeV"] / 3.0, th["m_V_MeV"], alpha_B=th["alpha_B"],
                                                                  alpha_D=0.5)),
                    r"$m_V$ [MeV]", r"$\alpha_B$ (90% CL)",
                    r"Leptophobic (baryonic) mediator, scalar $\chi$, $m_\chi = m_V/3$, $\alpha_D = 0.5$, $\pi^0$ yield $\pm 25\%$ (SNS-PPU, STS)", (30.0, 90.0),
                    dark=True, power=2.0),
        RasterStudy("sterile_numu", Axis("dm2_eV2", 0.1, 100.0, n_mass, "log"), Axis("Umu4_sq", 1e-3, 0.5, n_coupling, "log"),
                    lambda th: NewPhysics(sterile=sterile_mixing(th["dm2_eV2"], Umu4_sq=th["Umu4_sq"])),
                    r"$\Delta m^2_{41}$ [eV$^2$]", r"$|U_{\mu 4}|^2$ (90% CL)", r"3+1 sterile neutrino, $\nu_\mu$ and "
                    r"$\bar\nu_\mu$ disappearance into $\nu_s$ ($|U_{e4}| = |U_{\tau 4}| = 0$)", (1.0, 10.0), swap_axes=True, mixing=True),
        RasterStudy("sterile_nue", Axis("dm2_eV2", 0.1, 100.0, n_mass, "log"), Axis("Ue4_sq", 1e-3, 0.5, n_coupling, "log"),
                    lambda th: NewPhysics(sterile=sterile_mixing(th["dm2_eV2"], Ue4_sq=th["Ue4_sq"])),
                    r"$\Delta m^2_{41}$ [eV$^2$]", r"$|U_{e4}|^2$ (90% CL)", r"3+1 sterile neutrino, $\nu_e$ disappearance "
                    r"into $\nu_s$ ($|U_{\mu 4}| = |U_{\tau 4}| = 0$)", (1.0, 10.0), swap_axes=True, mixing=True),
    ]


def draw_raster(study: RasterStudy, masses, curves: dict, solved: LimitCurves, bands: dict, grid_masses, islands: dict,
                relic, years: float, out: Path) -> None:
    """The figure of one raster study (limits, expected bands, data exclusion, islands, relic or (g−2)_μ band)."""
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    for label, island in islands.items():
        if island and label not in (REFERENCE, DATA):
            m, lo, hi = np.array(island).T
            ax.fill_between(m, lo, hi, color=style(label)["color"], alpha=0.3, label=f"{label}: allowed island\n" + r"($Q_V \to -Q_V$)")
            ax.plot(m, np.sqrt(lo * hi), color=style(label)["color"], lw=0.6, alpha=0.6)
    if study.name == "lmutau":
        zprime_band(ax, masses)
    if relic is not None:
        ax.plot(masses, relic, "k:", lw=1.3, label=f"thermal relic ({study.relic}, " + r"$\Omega h^2 = 0.12$)")
    caption = wrap_math(f"{study.title}. {years:g} SNS years per planned detector; expected 90% CL (Asimov "
                        r"median, $\Delta\chi^2 = 2.71$ solved at each mass), every preset nuisance prior profiled; "
                        r"green/yellow: $\pm1\sigma$/$\pm2\sigma$ expected bands of the combination (asymptotic CLs, "
                        r"Cowan et al. 2011; solved at the grid masses); grey: "
                        "excluded by the CsI-2021 data (same statistic, fitted here)", 95)
    plot(ax, masses, curves, study.xlabel, study.ylabel, caption, swap=study.swap_axes,
         data=(solved.crossings[DATA], study.coupling.stop) if DATA in curves else None)
    if BAND_CURVE in bands:
        draw_bands(ax, grid_masses, bands[BAND_CURVE][:, :grid_masses.size], BAND_CURVE, study.swap_axes)
    (ax.set_xlim if study.swap_axes else ax.set_ylim)(study.coupling.start, study.coupling.stop)
    legend_outside(ax, fontsize=7)
    finish(fig, out, f"snowmass_{study.name}")


def run_raster(study: RasterStudy, sets: dict, data, shared: Callable, years: float, tag: str, results: Path, out: Path,
               start: float, record: FigureRecord, refine: bool = False, check: bool = False) -> list:
    """Scan every detector set of a study, draw the figure, return the benchmark rows (``shared()``: the
    :class:`SharedProgram`, built at first use)."""
    labels = list(sets) if study.labels == ("all",) else list(study.labels)
    masses, couplings = study.mass.values(), study.coupling.values()
    axes, name = [study.mass, study.coupling], f"{study.name}_{tag}"
    if study.mixing:
        grids, fn, scan_id = scan_in_program(name, shared(("sterile_affine", tuple(couplings))), study.model_of, axes,
                                             results, LEVEL, STERILE_MASSES_PER_CHUNK)
        grids = {k: grids[k] for k in labels + [DATA]}
        fn.labels = list(grids)
    elif study.power is None:
        grids, fn, scan_id = scan_shared(name, shared(family_of(study.model_of, axes)), study.model_of, axes, results, LEVEL)
        grids, fn = {k: grids[k] for k in labels + [DATA]}, fn.only(labels + [DATA])
    else:
        grids, fn, scan_id = scan_in_program(name, shared(("dark", study.power, tuple(SharedDark.ratios_of(study.coupling)))),
                                             study.model_of, axes, results, LEVEL, max(1, int(MEMORY_BUDGET // DARK_BYTES_PER_MASS)))
        grids = {k: grids[k] for k in labels + [DATA]}
        fn.labels = list(grids)
    key = {"scan": scan_id, "level": LEVEL, "xtol": XTOL, "iterations": ROOT_ITERATIONS, "refine": refine, "rtol": REFINE_RTOL,
           "rounds": REFINE_ROUNDS, "benchmarks": list(study.benchmarks)}
    benchmarks = np.asarray(study.benchmarks, dtype=float)
    solved, at = (curves_from_json(c) for c in cached(results / f"{study.name}_{tag}" / "solved.json", key, lambda: [
        curves_to_json(c) for c in solved_curves(fn, masses, couplings, grids, benchmarks, refine=refine)]))
    masses = solved.masses
    curves = {label: solved.limit(label) for label in grids}
    grid_masses, band_labels = study.mass.values(), [k for k in grids if k != DATA]

    def compute_bands():  # the expected-limit bands at the grid masses and the benchmarks
        if isinstance(fn, _InProgramCrossings):
            on_grid = band_limits(fn, grid_masses, couplings, fn.result.values, band_labels)
            at_bench = band_limits(fn, benchmarks, couplings, None, band_labels)
        else:
            mm, gg = np.meshgrid(benchmarks, couplings, indexing="ij")
            extra = fn.evaluate(mm.ravel(), gg.ravel())
            raster = {k: np.vstack([grids[k], np.asarray(extra[k]).reshape(mm.shape)]) for k in band_labels}
            bench_rows = np.r_[np.zeros(grid_masses.size, bool), np.ones(benchmarks.size, bool)]
            rows = {k: ((0, 1, 2, 3), np.ones(bench_rows.size, bool)) if k == BAND_CURVE else ((1, 2), bench_rows)
                    for k in band_labels}  # full curves for the combination, ±1σ at the benchmarks for the rest
            both = band_limits(fn, np.concatenate([grid_masses, benchmarks]), couplings, raster, band_labels, rows)
            on_grid = {k: v[:, :grid_masses.size] for k, v in both.items()}
            at_bench = {k: v[:, grid_masses.size:] for k, v in both.items()}
        return {k: np.hstack([on_grid[k], at_bench[k]]).tolist() for k in band_labels}
    bands = {k: np.asarray(v, dtype=float) for k, v in cached(
        results / name / "bands.json", {**key, "band_levels": BAND_LEVELS.tolist()}, compute_bands).items()}
    if check:  # the quoted numbers with a doubled coupling raster (other brackets, same roots); dark matter:
        # by a second method, host root finding on the direct Δχ² (a second compiled program)
        fine = np.geomspace(couplings[0], couplings[-1], 2 * couplings.size - 1)
        at2 = solve_crossings(fn.direct() if isinstance(fn, _InProgramCrossings) else fn, benchmarks, fine, LEVEL)
        worst = max((abs(b / a - 1) for k in curves for a, b in zip(at.limit(k), at2.limit(k)) if np.isfinite(a * b)),
                    default=0.0)
        print(f"  convergence: benchmark limits change by at most {worst:.1e} with the coupling raster doubled", flush=True)
    print(f"{study.name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    islands = (universal_islands(shared("zprime_nsi"), [k for k in labels if k != REFERENCE], study.mass,
                                 4 * study.coupling.num, tag, results) if study.islands else {})
    relic = None
    if study.relic:
        key = {"masses": [float(m) for m in masses], "particle": study.relic, "source": source_hash()}
        relic = cached(results / name / "relic.json", key, lambda: np.asarray(relic_Y(masses, study.relic)).tolist())
    inputs = {"years": years, "masses": masses, "curves": curves, "bands": bands, "grid_masses": grid_masses,
              "data": solved.crossings.get(DATA), "islands": islands, "relic": relic}
    if not record.current(out, f"snowmass_{study.name}", inputs):
        draw_raster(study, masses, curves, solved, bands, grid_masses, islands, relic, years, out)
        record.record(out, f"snowmass_{study.name}", inputs)
    n = grid_masses.size  # ±1σ at the benchmarks: rows 1 (−1σ) and 2 (+1σ) of BAND_LEVELS
    one_sigma = {k: [(bands[k][1, n + i], bands[k][2, n + i]) for i in range(len(benchmarks))] for k in band_labels}
    return [(study.name, label, *at.limit(label), *one_sigma.get(label, [None] * len(benchmarks))) for label in curves]


def allowed_area(u, d, grid, level: float) -> float:
    """Area of {Δχ² < level} in the (u, d) plane: signed shoelace areas of the filled-contour polygons of
    the raster (outer boundaries and holes oriented oppositely; linear interpolation along cell edges, so
    second order in the grid step, unlike a count of cells). contourpy comes with matplotlib."""
    import contourpy

    gen = contourpy.contour_generator(u, d, np.asarray(grid).T, fill_type=contourpy.FillType.OuterOffset)
    points, offsets = gen.filled(float(np.min(grid)) - 1.0, level)
    area = 0.0
    for p, o in zip(points, offsets):
        for a, b in zip(o[:-1], o[1:]):
            x, y = p[a:b, 0], p[a:b, 1]
            area += 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return abs(area)


def nsi_regions(shared: SharedProgram, years: float, tag: str, n: int, results: Path, out: Path, start: float,
                record: FigureRecord) -> list:
    """90% CL (Δχ² = 4.61, two parameters) expected regions in (ε^uV_αα, ε^dV_αα) for α = e, μ."""
    rows, planes = [], {}
    axes = [Axis("eps_u", -0.6, 0.6, n, "linear"), Axis("eps_d", -0.6, 0.6, n, "linear")]
    u, d = axes[0].values(), axes[1].values()
    for flavour in ("ee", "mumu"):
        model_of = lambda th, f=flavour: NewPhysics(nsi=nsi_couplings(**{f"{f}_u": th["eps_u"], f"{f}_d": th["eps_d"]}))  # noqa: E731
        grids, _, _ = scan_shared(f"nsi_{flavour}_{tag}", shared, model_of, axes, results, LEVEL_2D)
        planes[flavour] = {label: np.asarray(grids[label]) for label in list(shared.sets) + [DATA]}
        for label, grid in planes[flavour].items():
            grid = grid - grid.min() if label == DATA else grid  # the data: Δχ² against the best point of the plane
            rows.append((f"NSI {flavour} allowed area", label, allowed_area(u, d, grid, LEVEL_2D), float("nan")))
        print(f"nsi {flavour}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    inputs = {"years": years, "u": u, "d": d, "planes": planes}
    if not record.current(out, "snowmass_nsi", inputs):
        draw_nsi(planes, u, d, years, out)
        record.record(out, "snowmass_nsi", inputs)
    return rows


def draw_nsi(planes: dict, u, d, years: float, out: Path) -> None:
    """The two NSI planes: each detector set's 90% CL contour, the combination filled, the data's allowed region."""
    fig, axs = plt.subplots(1, 2, figsize=(11, 5.6))
    for ax, (flavour, grids) in zip(axs, planes.items()):
        for label, grid in grids.items():
            line = style(label)
            if label == DATA:  # allowed region from the data: Δχ² against the best point of the plane
                grid = grid - grid.min()
                ax.contourf(u, d, grid.T, levels=[grid.min() - 1, LEVEL_2D], colors=["0.82"], zorder=0)
                ax.fill_between([], [], color="0.82", label="CsI-2021 data, 90% CL allowed (this package)")
            elif label == "combined":  # filled, so the (small) combined region is visible under the lines
                ax.contourf(u, d, grid.T, levels=[grid.min() - 1, LEVEL_2D], colors=["k"], alpha=0.35, zorder=1)
                ax.contour(u, d, grid.T, levels=[LEVEL_2D], colors=["k"], linewidths=1.0, zorder=1)
                ax.fill_between([], [], color="k", alpha=0.35, label="combined")
            else:
                ax.contour(u, d, grid.T, levels=[LEVEL_2D], colors=[line["color"]], linewidths=line["lw"],
                           linestyles=[line["ls"]], zorder=2)
                ax.plot([], [], color=line["color"], lw=line["lw"], ls=line["ls"], label=label)
        ax.plot(0, 0, "k*", ms=9, label="SM")
        name = {"ee": "e", "mumu": r"\mu"}[flavour]
        ax.set_xlabel(rf"$\varepsilon^{{uV}}_{{{name}{name}}}$")
        ax.set_ylabel(rf"$\varepsilon^{{dV}}_{{{name}{name}}}$")
        ax.set_title("Expected 90% CL allowed regions " + r"($\Delta\chi^2 = 4.61$)" + f", {years:g} SNS years,\n"
                     "other NSI zero, preset nuisance priors profiled", fontsize=9)
        ax.grid(alpha=0.3)
    handles, names = axs[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=7.5)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    finish(fig, out, "snowmass_nsi", tight=False)


def main() -> None:
    studies = [s.name for s in raster_studies(2, 2)] + ["nsi", "fisher"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-resolution grids (for a GPU)")
    parser.add_argument("--years", type=float, default=3.0, help="exposure of the planned detectors [SNS years, > 0]")
    parser.add_argument("--grid", type=int, nargs=3, metavar=("N_MASS", "N_COUPLING", "N_NSI"), default=None,
                        help="grid sizes, each at least 3 (default 12 30 101; --full 60 120 241); limits are "
                             "solved by root finding from the raster's brackets")
    parser.add_argument("--only", nargs="+", default=None, choices=studies, metavar="STUDY",
                        help=f"run only these studies: {', '.join(studies)}")
    parser.add_argument("--refine-curves", action="store_true",
                        help="refine every drawn curve along the mass axis until it changes < 0.5%% between points "
                             "(the quoted benchmark limits are solved exactly at their masses either way)")
    parser.add_argument("--check-convergence", action="store_true",
                        help="re-solve the benchmark limits with the coupling raster doubled and report the change")
    parser.add_argument("--redraw", action="store_true",
                        help="draw every figure again (by default a figure whose inputs, drawing code and files are "
                             "unchanged since it was drawn is kept: it would come out byte-identical)")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--results", type=Path, default=Path("results/snowmass"))
    args = parser.parse_args()
    if not (np.isfinite(args.years) and args.years > 0):
        parser.error(f"--years must be a positive number of SNS years, got {args.years}")
    n_mass, n_coupling, n_nsi = args.grid or ((60, 120, 241) if args.full else (12, 30, 101))
    if min(n_mass, n_coupling, n_nsi) < 3:
        parser.error(f"--grid sizes must each be at least 3, got {n_mass} {n_coupling} {n_nsi}")
    args.out.mkdir(parents=True, exist_ok=True)
    cevns_jax.enable_compilation_cache()
    one_year = {n: cevns_jax.load_experiment(n) for n in PLANNED + [REFERENCE]}  # planned presets: one SNS year
    exps = {n: scale_exposure(e, args.years) for n, e in one_year.items()}
    sets = {n: [exps[n]] for n in PLANNED + [REFERENCE]}
    sets["combined"] = [exps[n] for n in PLANNED]
    rows, start = [], time.perf_counter()
    tag = f"{args.years:g}y_{n_mass}x{n_coupling}"
    wanted = lambda name: args.only is None or name in args.only  # noqa: E731
    # the released CsI-2021 data (the current limits, drawn shaded); its linear morphing is computed when a
    # program needs it (a redraw from finished scans does not)
    data = load_analysis(REFERENCE, morphing="exact")
    print(f"CsI-2021 release analysis loaded ({time.perf_counter() - start:.0f} s)", flush=True)
    record = FigureRecord(args.results / "figures.json", scripts=[__file__], force=args.redraw)
    built = {}
    def shared(family):  # noqa: E306  (built once, at the first study that needs it)
        if family not in built:
            built[family] = (SharedDark(sets, data, np.asarray(family[2]), family[1], LEVEL) if family[0] == "dark"
                             else SharedSterile(sets, data, np.asarray(family[1]), LEVEL) if family[0] == "sterile_affine"
                             else SharedProgram(sets, data, family))
        return built[family]

    for study in raster_studies(n_mass, n_coupling):
        if wanted(study.name):
            rows += run_raster(study, sets, data, shared, args.years, tag, args.results, args.out, start, record,
                               refine=args.refine_curves, check=args.check_convergence)
    if wanted("nsi"):
        rows += nsi_regions(shared("zprime_nsi"), args.years, f"{args.years:g}y_{n_nsi}", n_nsi, args.results, args.out, start, record)

    table = ["| study | detector | at benchmark 1 | ±1σ | at benchmark 2 | ±1σ |", "|---|---|---|---|---|---|"]
    for obs, label, a, b, *band in rows:
        cell = lambda v: f"{v:.3g}" if np.isfinite(v) else "—"  # noqa: E731  (— : no crossing in the scanned range)
        span = lambda w: "" if w is None else f"{cell(w[0])}–{cell(w[1])}"  # noqa: E731
        band = band or [None, None]
        table.append(f"| {obs} | {label} | {cell(a)} | {span(band[0])} | {cell(b)} | {span(band[1])} |")
    benchmarks = "; ".join(f"{s.name}: {s.benchmarks[0]:g}, {s.benchmarks[1]:g} ({s.mass.name})"
                           for s in raster_studies(n_mass, n_coupling))
    summary = (f"# Expected 90% CL sensitivities ({args.years:g} SNS years per planned detector; starting grid "
               f"{n_mass}×{n_coupling})\n\n"
               f"Limits on the coupling solved by root finding exactly at two benchmark masses each ({benchmarks}). NSI rows: area "
               "of the 90% CL allowed region in the plotted ε square (from its contour polygons; an area of a few grid cells, ≲ 1e-3 at 101 × 101, such as the combination's short "
               "segment around the SM, is not resolved by the NSI grid: it is an upper-order-of-magnitude estimate). The drawn "
               "curves join the solved limits at the grid masses; `--refine-curves` refines them (the sterile-neutrino curves "
               "oscillate between the 12 Δm² points). —: no limit inside the scanned "
               "coupling range. ±1σ: the expected-limit band at the benchmark mass (−1σ–+1σ), from the Asimov Δχ² "
               "crossing the CLs band levels of Cowan, Cranmer, Gross & Vitells (90% CL: 1.32 and 5.65; the median's "
               "level is the 2.71 of the limit; docs/physics.md §5.11); none for the data.\n\n" + "\n".join(table) + "\n")
    if wanted("fisher"):
        monitor = cevns_jax.load_experiment(FLUX_MONITOR)  # its preset runs 2 SNS years; the Fisher blocks hold one
        monitor_years = float(monitor.source.protons_on_target) / get_facility(monitor.info.facility).protons_per_year()
        fisher_lines = fisher_forecasts({**{n: one_year[n] for n in PLANNED},
                                         FLUX_MONITOR: scale_exposure(monitor, 1.0 / monitor_years)},
                                        args.out, args.results, record)
        summary += ("\n## Fisher forecasts (marginalised 1σ; δR_n shifts every neutron radius of the target)\n\n"
                    + "\n".join(fisher_lines) + "\n")
    if args.only is not None and set(args.only) != set(studies):  # a partial run never overwrites the full summary
        path = args.out / f"snowmass_summary_{'_'.join(args.only)}.md"
    else:
        path = args.out / "snowmass_summary.md"
    path.write_text(summary)
    print(summary)
    if record.skipped:
        print(f"{record.skipped} figure file pair(s) unchanged since drawn from the same inputs and code: kept "
              "(--redraw draws them again)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    from job import run_job

    run_job(main)
