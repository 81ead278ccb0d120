"""The compiled programs of the main job (scans/snowmass.py) and how its limits are solved with them
(docs/physics.md §5.9): one program per model family (every Z′ family with NSI; dark matter of every kind;
single-flavour 3+1 mixing), each study filling the program's inputs from its own axes; the crossings solved
by root finding with the scan's own program, or inside the program where the templates are an exact function
of the coupling (dark matter, sterile mixing); solved limits and bands stored beside the scans with the
identity of what they were computed from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import cevns_jax
from cevns_jax import constants as C
from cevns_jax import replace
from cevns_jax.batches import pad_points, padded_size
from cevns_jax.models import NewPhysics, dark_matter, general, nsi_couplings, sterile_mixing
from cevns_jax.models.sterile import FULL_AMPLITUDE_MIXING, disappearance_amplitude
from cevns_jax.scan import Axis, run_scan
from cevns_jax.scan_program import PytreeInputs, ScanProgram
from cevns_jax.stats.analyses import with_linear_morphing
from cevns_jax.stats.crossings import LimitCurves, refine_masses, solve_crossings
from cevns_jax.stats.forecast import (MAX_CROSSINGS, AsimovForecast, ForecastSpec, affine_coupling_scan, asimov_reference,
                                     dark_matter_coupling_scan, program_labels, shared_delta_chi2)
from cevns_jax.stats.limits import DataLimit
from cevns_jax.stats.teststats import BAND_SIGMAS, asimov_band_levels

cevns_jax.enable_x64()  # before the module's models below are built
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts

PLANNED = ["COH-Ar-750", "COH-CryoCsI-10kg", "COH-CryoCsI-700kg", "COH-Ge-mini", "NaIvETe"]
REFERENCE = "COHERENT-CsI-2021"
FLUX_MONITOR = "COH-D2O"
"""The heavy-water flux monitor (ν_e d → e⁻pp; no CEvNS): the Fisher forecasts add a "combined + COH-D2O" row,
its counts sharing the target station's flux nuisance with the planned detectors (docs/physics.md §11)."""
WITH_MONITOR = f"combined + {FLUX_MONITOR}"
BAND_CURVE = "combined"
"""The detector set whose bands are drawn along the whole curve (every other set: ±1σ at the benchmarks in the
summary table; dark matter solves every band of every set in its program anyway)."""
LEVEL = C.DELTA_CHI2_90CL  # 90% CL, one parameter at fixed mass (raster)
LEVEL_2D = C.DELTA_CHI2_90CL_2D  # 90% CL, two parameters (NSI planes)
BAND_ALPHA = 0.1
BAND_LEVELS = asimov_band_levels(BAND_ALPHA, BAND_SIGMAS)
"""Asimov Δχ² levels of the expected-limit bands −2σ, −1σ, +1σ, +2σ (CLs at 90% CL, CCGV eq. 91:
0.701, 1.317, 5.654, 10.85; the median's level, Φ⁻¹(0.95)² = 2.7055, is the raster level 2.706 to
2e-4, i.e. 5e-5 in a coupling² limit, so the median is the main curve). docs/physics.md §5.11."""

REFINE_RTOL = 5e-3  # solved curves: bisect mass intervals until limits change < 0.5% between points
REFINE_ROUNDS = 5
DARK_MASSES_PER_CHUNK = 2
"""Masses per chunk of the dark-matter program (each carries every detector set's templates, three production
channels and the coupling raster; XLA estimates ≈ 0.45 GB per mass on CPU). The cost per mass is the same at
2 and 4 masses per chunk (COH-Ge-mini's templates 0.69 and 0.68 s per mass on 2 cores), and a study's 12 grid
masses and 2 benchmarks then fill 7 chunks exactly (4 chunks of 4 evaluate 16 masses)."""
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


def sm_references(sets: dict, data) -> dict:
    """The SM references of every detector set's forecast (without dark matter: :func:`asimov_reference`) and of
    the CsI-2021 fit (label :data:`DATA`: the :class:`DataReference` of ``data`` with linear morphing). They
    pickle, so the main job computes them once for both of its processes."""
    refs = {label: asimov_reference(tuple(exps), ForecastSpec()) for label, exps in sets.items()}
    refs[DATA] = DataLimit(lambda theta: None, analysis=with_linear_morphing(data)).reference
    return refs


def evaluators(sets: dict, data, model_of: Callable, references: dict | None = None, dark_matter: bool = False) -> dict:
    """{label: forecast} of every detector set and {DATA: the CsI-2021 data limit} for ``model_of``, from
    :func:`sm_references` where given (the dark-matter forecasts' own references are computed here)."""
    refs = references or {}
    out = {label: AsimovForecast(exps, model_of, dark_matter=dark_matter, reference=None if dark_matter else refs.get(label))
           for label, exps in sets.items()}
    out[DATA] = (DataLimit(model_of, reference=refs[DATA]) if DATA in refs
                 else DataLimit(model_of, analysis=with_linear_morphing(data)))
    return out


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

    def __init__(self, sets: dict, data, family: str, references: dict | None = None):
        self.sets, self.flat, self.data, self.family = sets, PytreeInputs(FAMILIES[family]), data, family
        self.priors = {k: program_labels(tuple(v), ForecastSpec())[1] for k, v in sets.items()}

        def make():  # the forecasts (their SM references compile, unless given) only when the program is traced
            return shared_delta_chi2(evaluators(sets, data, self.flat.build, references), self.flat.build)
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
    return result.values, ScanPairs(result, axes[0].name, axes[1].name), result.meta["identity"]["scan"]


DARK = NewPhysics(dark_matter=dark_matter(10.0, 30.0, 1.0))
"""The structure of every dark-matter study (scalar or Dirac χ, dark photon or leptophobic mediator: leaves)."""


class SharedDark:
    """Every dark-matter study in one compiled program (the structure :data:`DARK`; rasters of
    ``n`` couplings over the same number of decades, as ratios to each study's first coupling, an input):
    templates once per mass, rescaled along the raster, crossings solved in-program
    (:func:`cevns_jax.stats.forecast.dark_matter_coupling_scan`). ``data``: the CsI-2021 release
    analysis, whose *observed* counts give the current limit (label :data:`DATA`)."""

    dark_matter = True

    def __init__(self, sets: dict, data, ratios, power: float, level: float, references: dict | None = None):
        self.sets, self.data, self.flat, self.ratios = sets, data, PytreeInputs(DARK), ratios
        self.references = references
        self.priors = {k: program_labels(tuple(v), ForecastSpec(dark_matter=True))[1] for k, v in sets.items()}

        def make():  # the forecasts (their SM references compile) only when the program is traced
            return dark_matter_coupling_scan(evaluators(sets, data, self.flat.build, references, dark_matter=True),
                                             self.flat.build, "coupling", ratios, power, level=level,
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


class SharedSterile:
    """Every single-flavour 3+1 study in one compiled program (the structure ``FAMILIES["sterile"]``): per Δm²,
    the templates of each detector set and the data at |U|² = :data:`FULL_AMPLITUDE_MIXING` and without mixing;
    along the study's |U|² raster (``couplings``, a constant of the program) the templates are their exact
    affine combination in :func:`cevns_jax.models.sterile.disappearance_amplitude`, so the raster costs profiled fits only, and every crossing
    and band is solved in the program (:func:`cevns_jax.stats.coupling_scan.affine_coupling_scan`)."""

    dark_matter = False

    def __init__(self, sets: dict, data, couplings, level: float, references: dict | None = None):
        self.sets, self.data, self.flat = sets, data, PytreeInputs(FAMILIES["sterile"])
        self.couplings = np.asarray(couplings, dtype=float)
        self.references = references
        self.priors = {k: program_labels(tuple(v), ForecastSpec())[1] for k, v in sets.items()}

        def make():  # the forecasts (their SM references compile, unless given) only when the program is traced
            return affine_coupling_scan(evaluators(sets, data, self.flat.build, references), self.flat.build,
                                        lambda m: replace(m, sterile=None), disappearance_amplitude, self.couplings,
                                        level=level, band_levels=tuple(float(b) for b in BAND_LEVELS))
        point = Lazy(make)
        self.program = ScanProgram(point, before_compile=point.build)

    def identity_couplings(self, axis: Axis) -> np.ndarray:
        return self.couplings

    def prepare(self, model_of: Callable, axes) -> Callable:
        mass, coupling = axes[0].name, axes[1].name
        models = jax.jit(jax.vmap(model_of))
        def prepare(points: dict) -> dict:  # noqa: E306
            m = np.asarray(points[mass], dtype=float)
            return mapped_columns(self.flat, models, {mass: m, coupling: np.full(m.size, FULL_AMPLITUDE_MIXING)})
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
        return PairFunction(shared_delta_chi2(evaluators(sets, shared.data, model_of, shared.references, shared.dark_matter),
                                              model_of), mass_name, coupling_name)
    return grids, InProgramCrossings(result, mass_name, list(grids), direct), result.meta["identity"]["scan"]


class PairFunction:
    """``fn(mass, coupling)`` for :mod:`cevns_jax.stats.crossings` from a point function of a dict
    (hashable by identity, so its compiled program is reused by every solve of one study)."""

    def __init__(self, point, mass_name: str, coupling_name: str):
        self.point, self.mass_name, self.coupling_name = point, mass_name, coupling_name

    def __call__(self, m, g):
        return self.point({self.mass_name: m, self.coupling_name: g})


class InProgramCrossings:
    """Crossings that a scan program solves itself (``{label}@crossings``; dark matter, sterile mixing), at any masses."""

    def __init__(self, result, mass_name: str, labels: list, direct):
        self.result, self.mass_name, self.labels, self.direct = result, mass_name, labels, direct
        self._evaluated: dict = {}

    def evaluate(self, masses) -> dict:
        """The program's outputs at ``masses``, each set of masses run once (the benchmarks' limits and bands
        come from the same evaluation)."""
        masses = np.atleast_1d(np.asarray(masses, dtype=float))
        key = masses.tobytes()
        if key not in self._evaluated:
            self._evaluated[key] = self.result.evaluate({self.mass_name: masses})
        return self._evaluated[key]

    def curves(self, values: dict, masses) -> LimitCurves:
        for k in self.labels:
            if np.any(values[f"{k}@brackets"] > MAX_CROSSINGS):
                print(f"  note: {k}: more than {MAX_CROSSINGS} crossings at some mass; the first are kept", flush=True)
        return LimitCurves(np.asarray(masses, dtype=float), {
            k: [sorted(float(g) for g in row if np.isfinite(g)) for row in np.atleast_2d(values[f"{k}@crossings"])]
            for k in self.labels})

    def solve(self, masses) -> LimitCurves:
        masses = np.atleast_1d(np.asarray(masses, dtype=float))
        return self.curves(self.evaluate(masses), masses)

    def bands(self, masses, labels, values: dict | None = None) -> dict:
        """{label: (n_bands, n_masses) band limits} solved in-program at ``masses`` (``values``: the
        program's outputs there, if already computed)."""
        if values is None:
            values = self.evaluate(masses)
        return {k: np.atleast_2d(np.asarray(values[f"{k}@bands"])).T for k in labels}


class BandLevels:
    """A batched evaluator whose outputs ``{label}#{j}`` are Δχ² × LEVEL / BAND_LEVELS[j] for the pairs
    (label, j) asked: its crossings of LEVEL are those of each band level, so one :func:`solve_crossings`
    call solves every band asked together, with the study's own compiled program."""

    def __init__(self, pairs, wanted):
        self.pairs, self.wanted = pairs, list(wanted)

    def scale(self, values: dict) -> dict:
        return {f"{k}#{j}": np.asarray(values[k]) * (LEVEL / BAND_LEVELS[j]) for k, j in self.wanted}

    def evaluate(self, m, g):
        return self.scale(self.pairs.evaluate(m, g))


class ScanPairs:
    """A batched evaluator for :mod:`cevns_jax.stats.crossings`: the scan's compiled program at any
    (mass, coupling) pairs, keeping the outputs ``labels`` (all when ``None``)."""

    def __init__(self, result, mass_name: str, coupling_name: str, labels=None):
        self.result, self.mass_name, self.coupling_name, self.labels = result, mass_name, coupling_name, labels

    def evaluate(self, m, g):
        out = self.result.evaluate({self.mass_name: m, self.coupling_name: g})
        return out if self.labels is None else {k: out[k] for k in self.labels}

    def only(self, labels) -> "ScanPairs":
        return ScanPairs(self.result, self.mass_name, self.coupling_name, list(labels))


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
    if isinstance(fn, InProgramCrossings):
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
    if isinstance(fn, InProgramCrossings):
        return fn.bands(masses, labels, grids)
    rows = rows or {k: (range(len(BAND_LEVELS)), np.ones(len(masses), bool)) for k in labels}
    wanted = [(k, j) for k in labels for j in rows[k][0]]
    scaled = BandLevels(fn, wanted)
    raster = {f"{k}#{j}": np.where(rows[k][1][:, None], v, 0.0)  # 0: no bracket, not solved
              for (k, j), v in zip(wanted, scaled.scale(grids).values())}
    solved = solve_crossings(scaled, masses, couplings, LEVEL, raster=raster)
    out = {k: np.full((len(BAND_LEVELS), len(masses)), np.nan) for k in labels}
    for k, j in wanted:
        out[k][j] = np.where(rows[k][1], solved.limit(f"{k}#{j}"), np.nan)
    return out
