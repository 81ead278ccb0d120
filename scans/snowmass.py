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
summarises the limits at benchmark masses. The studies run in two processes side by side (:data:`LANES`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import constants as C  # noqa: E402
from cevns_jax.facilities import get_facility  # noqa: E402
from cevns_jax.models import (NewPhysics, dark_matter, epsilon_from_Y, lmu_minus_ltau, nsi_couplings,  # noqa: E402
                              relic_Y, sterile_mixing, universal)
from cevns_jax.provenance import content_hash, source_hash  # noqa: E402
from cevns_jax.scan import Axis, raster_crossings  # noqa: E402
from cevns_jax.stats.analyses import load_analysis  # noqa: E402
from cevns_jax.stats.crossings import XTOL, solve_crossings  # noqa: E402
from cevns_jax.stats.fisher import fisher_blocks  # noqa: E402
from cevns_jax.stats.forecast import ROOT_ITERATIONS  # noqa: E402
from figure_style import FigureRecord  # noqa: E402
import snowmass_figures  # noqa: E402
from snowmass_figures import draw_fisher, draw_nsi, draw_raster  # noqa: E402
from study_programs import (BAND_CURVE, BAND_LEVELS, DARK_MASSES_PER_CHUNK, DATA, FLUX_MONITOR, LEVEL, LEVEL_2D,  # noqa: E402
                            PLANNED, REFERENCE, REFINE_ROUNDS, REFINE_RTOL, STERILE_MASSES_PER_CHUNK,
                            WITH_MONITOR, InProgramCrossings, SharedDark, SharedProgram, SharedSterile, band_limits, sm_references,
                            cached, curves_from_json, curves_to_json, family_of, scale_exposure, scan_in_program,
                            scan_shared, solved_curves)

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts

DM_MASS_MAX_MEV = 250.0
"""Upper end of the dark-matter mass axes [MeV]: η → γχχ̄ through an on- or off-shell V (m_V = 3m_χ) is open to
m_χ = m_η/2 ≈ 274 MeV (on shell to m_η/3 ≈ 183 MeV); π⁰ → γχχ̄ ends at m_π⁰/2 ≈ 67 MeV, π⁻ capture near 46 MeV."""
LANES = (("dark_matter", "dark_matter_dirac", "leptophobic"),
         ("fisher", "lmutau", "universal_zprime", "sterile_numu", "sterile_nue", "nsi"))
"""The studies of the two lanes that the main job runs side by side (two processes), each in this order; the
studies sharing a compiled program are in one lane (dark matter of every kind; the Z′/NSI family and sterile
mixing), so no program is compiled twice."""
INDEPENDENT = ("fisher",)
"""Studies that use none of the lanes' shared inputs (the Fisher forecasts load their own presets)."""


def finished(args, names) -> bool:
    """Whether the studies ``names`` look finished in the results folder (their solved limits, the NSI planes'
    last scan, the Fisher numbers on disk): then the main job computes no SM references ahead for them. Only a
    schedule: a stale or partial result is still found, and recomputed, by its study."""
    n_mass, n_coupling, n_nsi = args.grids
    paths = {"nsi": args.results / f"nsi_mumu_{args.years:g}y_{n_nsi}", "fisher": args.results / "fisher.json"}
    return all((paths.get(name) or args.results / f"{name}_{args.years:g}y_{n_mass}x{n_coupling}" / "bands.json").exists()
               for name in names)


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
        # the three dark-matter rasters span nine decades each: equal ratios share one compiled program
        # (study_programs.SharedDark.ratios_of); the leptophobic π⁰ → γχχ̄ runs off shell above m_V = m_π⁰
        RasterStudy("dark_matter", Axis("m_chi_MeV", 2.0, DM_MASS_MAX_MEV, n_mass, "log"), Axis("Y", 1e-13, 1e-4, n_coupling, "log"),
                    dark_photon_of("scalar"), r"$m_\chi$ [MeV]", r"$Y = \varepsilon^2 \alpha_D (m_\chi/m_V)^4$ (90% CL)",
                    r"Scalar dark matter, $\alpha_D = 0.5$, $m_V = 3 m_\chi$; $\pi^0$ (in flight), $\eta \to \gamma\chi\bar\chi$ (on- or off-shell V; $\pi^0$ $\pm 25\%$, assumed $\eta/\pi^0 = 0.01$ $\pm 100\%$) and $\pi^-$ capture ($\pm 50\%$)", (5.0, 20.0), dark=True,
                    relic="scalar", power=2.0),
        RasterStudy("dark_matter_dirac", Axis("m_chi_MeV", 2.0, DM_MASS_MAX_MEV, n_mass, "log"), Axis("Y", 1e-13, 1e-4, n_coupling, "log"),
                    dark_photon_of("dirac"), r"$m_\chi$ [MeV]", r"$Y = \varepsilon^2 \alpha_D (m_\chi/m_V)^4$ (90% CL)",
                    r"Dirac-fermion dark matter, $\alpha_D = 0.5$, $m_V = 3 m_\chi$; $\pi^0$ (in flight), $\eta \to \gamma\chi\bar\chi$ (on- or off-shell V; $\pi^0$ $\pm 25\%$, assumed $\eta/\pi^0 = 0.01$ $\pm 100\%$) and $\pi^-$ capture ($\pm 50\%$)", (5.0, 20.0), dark=True,
                    relic="dirac", power=2.0),
        RasterStudy("leptophobic", Axis("m_V_MeV", 6.0, 150.0, n_mass, "log"), Axis("alpha_B", 1e-14, 1e-5, n_coupling, "log"),
                    lambda th: NewPhysics(dark_matter=dark_matter(th["m_V_MeV"] / 3.0, th["m_V_MeV"], alpha_B=th["alpha_B"],
                                                                  alpha_D=0.5)),
                    r"$m_V$ [MeV]", r"$\alpha_B$ (90% CL)",
                    r"Leptophobic (baryonic) mediator, scalar $\chi$, $m_\chi = m_V/3$, $\alpha_D = 0.5$, $\pi^0$ in flight, yield $\pm 25\%$ (SNS-PPU, STS)", (30.0, 90.0),
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
                                             study.model_of, axes, results, LEVEL, DARK_MASSES_PER_CHUNK)
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
        if isinstance(fn, InProgramCrossings):
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
        at2 = solve_crossings(fn.direct() if isinstance(fn, InProgramCrossings) else fn, benchmarks, fine, LEVEL)
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


def lane_inputs(args) -> tuple:
    """(planned presets at one SNS year and the reference, the detector sets at the job's exposure, the
    CsI-2021 release analysis)."""
    one_year = {n: cevns_jax.load_experiment(n) for n in PLANNED + [REFERENCE]}  # planned presets: one SNS year
    exps = {n: scale_exposure(e, args.years) for n, e in one_year.items()}
    sets = {n: [exps[n]] for n in PLANNED + [REFERENCE]}
    sets["combined"] = [exps[n] for n in PLANNED]
    # the released CsI-2021 data (the current limits, drawn shaded); its linear morphing is computed when a
    # program needs it (a redraw from finished scans does not)
    return one_year, sets, load_analysis(REFERENCE, morphing="exact")


def run_lane(args, lane: tuple, start: float, inputs: tuple | None = None, references: dict | None = None) -> tuple[dict, int]:
    """Run the studies of one lane in order: ({study: its summary rows, or for "fisher" its table's lines},
    figures kept unchanged). ``inputs``: :func:`lane_inputs` (loaded here if None); ``references``: their
    :func:`study_programs.sm_references`, if computed (else each program computes its own when it compiles)."""
    cevns_jax.enable_compilation_cache()
    n_mass, n_coupling, n_nsi = args.grids
    if inputs is None and any(name not in INDEPENDENT for name in lane):
        inputs = lane_inputs(args)
    one_year, sets, data = inputs or ({}, {}, None)
    tag = f"{args.years:g}y_{n_mass}x{n_coupling}"
    record = FigureRecord(args.results / "figures.json", scripts=[__file__, snowmass_figures.__file__], force=args.redraw)
    built = {}
    def shared(family):  # noqa: E306  (built once, at the first study that needs it)
        if family not in built:
            built[family] = (SharedDark(sets, data, np.asarray(family[2]), family[1], LEVEL, references) if family[0] == "dark"
                             else SharedSterile(sets, data, np.asarray(family[1]), LEVEL, references)
                             if family[0] == "sterile_affine" else SharedProgram(sets, data, family, references))
        return built[family]

    by_name, done = {study.name: study for study in raster_studies(n_mass, n_coupling)}, {}
    for name in lane:
        if name == "nsi":
            done[name] = nsi_regions(shared("zprime_nsi"), args.years, f"{args.years:g}y_{n_nsi}", n_nsi, args.results,
                                     args.out, start, record)
        elif name == "fisher":
            monitor = cevns_jax.load_experiment(FLUX_MONITOR)  # its preset runs 2 SNS years; the Fisher blocks hold one
            monitor_years = float(monitor.source.protons_on_target) / get_facility(monitor.info.facility).protons_per_year()
            planned = {n: one_year[n] if n in one_year else cevns_jax.load_experiment(n) for n in PLANNED}
            done[name] = fisher_forecasts({**planned,
                                           FLUX_MONITOR: scale_exposure(monitor, 1.0 / monitor_years)},
                                          args.out, args.results, record)
        else:
            done[name] = run_raster(by_name[name], sets, data, shared, args.years, tag, args.results, args.out, start,
                                    record, refine=args.refine_curves, check=args.check_convergence)
    return done, record.skipped


def main() -> None:
    studies = [s.name for s in raster_studies(2, 2)] + ["nsi", "fisher"]
    assert sorted(sum(LANES, ())) == sorted(studies), "every study in one lane"
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
    args.grids = (n_mass, n_coupling, n_nsi)
    start = time.perf_counter()
    lanes = [tuple(name for name in lane if args.only is None or name in args.only) for lane in LANES]
    lanes = [lane for lane in lanes if lane]
    # the lanes run side by side in two processes (each its own XLA thread pool: one's single-threaded
    # compilation overlaps the other's work; threads sharing one pool queued behind each other's operations).
    # The second process starts with the studies that need no shared inputs (Fisher) while this one loads the
    # presets and, when the other lane has work left, computes the SM references once for both
    quick = finished(args, sum(lanes, ())) and not args.redraw  # a rerun that only reads: one process is faster
    if len(lanes) > 1 and not quick:
        first = tuple(name for name in lanes[1] if name in INDEPENDENT)
        rest = tuple(name for name in lanes[1] if name not in INDEPENDENT)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_lane, args, first, start)] if first else []
            inputs = lane_inputs(args)
            references = sm_references(*inputs[1:]) if rest and not finished(args, rest) else None
            futures += [pool.submit(run_lane, args, rest, start, inputs, references)] if rest else []
            mine = run_lane(args, lanes[0], start, inputs, references)
            parts = [f.result() for f in futures]
        theirs = ({k: v for part in parts for k, v in part[0].items()}, sum(part[1] for part in parts))
    else:
        mine, theirs = run_lane(args, sum(lanes, ()), start), ({}, 0)
    done, skipped = {**mine[0], **theirs[0]}, mine[1] + theirs[1]
    rows = [row for name in studies if name in done and name != "fisher" for row in done[name]]
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
    if "fisher" in done:
        summary += ("\n## Fisher forecasts (marginalised 1σ; δR_n shifts every neutron radius of the target)\n\n"
                    + "\n".join(done["fisher"]) + "\n")
    if args.only is not None and set(args.only) != set(studies):  # a partial run never overwrites the full summary
        path = args.out / f"snowmass_summary_{'_'.join(args.only)}.md"
    else:
        path = args.out / "snowmass_summary.md"
    path.write_text(summary)
    print(summary)
    if skipped:
        print(f"{skipped} figure file pair(s) unchanged since drawn from the same inputs and code: kept "
              "(--redraw draws them again)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    from job import run_job

    run_job(main)
