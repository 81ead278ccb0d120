"""Sterile neutrinos at three SNS baselines: COH-CryoCsI-1 (19.3 m), COH-Ge-2 (22 m) and COH-Ar-750 (28 m),
alone and combined (issue 14 item 5).

    python scans/sterile_baselines.py [--years 3] [--masses 24] [--couplings 16] [--rtol 0.05] [--rounds 4] [--out figures]

A 3+1 neutrino with Δm²₄₁ ≈ 1–100 eV² makes the prompt ν_μ line (29.8 MeV) oscillate over metres: each
baseline sees the disappearance at other Δm², so detectors at several distances from one target station
cover each other's blind spots, and the shared flux normalisation cancels between them (the argument of
COHERENT's multi-baseline sterile studies). Expected 90% CL (Asimov data at the SM, every preset nuisance
profiled, the flux shared by the three detectors of the First Target Station) upper limits on |U_μ4|² (ν_μ
and ν̄_μ disappearance) and |U_e4|² (ν_e) against Δm²₄₁ (docs/physics.md §4.4, §5.9):

* the crossing Δχ² = 2.706 is solved by root finding at each Δm² (Illinois regula falsi in ln|U|² from the
  brackets of a coupling raster, :func:`cevns_jax.stats.crossings.solve_crossings`, to 1e-7 in ln|U|²);
* the Δm² grid is refined (geometric bisection, :func:`cevns_jax.stats.crossings.refine_masses`) until every
  curve agrees with the log-log interpolation of its neighbours to ``--rtol`` (or ``--rounds`` rounds, reported);
* the benchmark limits (Δm² = 1, 3, 10 eV²) are solved at those values, and again with the coupling raster
  doubled: the table reports the largest change (the raster only brackets, so it should be ~1e-7).

Writes figures/sterile_baselines.{png,pdf} and figures/sterile_baselines.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import constants as C  # noqa: E402
from cevns_jax.models import NewPhysics, sterile_mixing  # noqa: E402
from cevns_jax.stats.crossings import refine_masses, solve_crossings  # noqa: E402
from cevns_jax.stats.forecast import AsimovForecast, shared_delta_chi2  # noqa: E402
from figure_style import legend_outside, save_figure  # noqa: E402
from job import run_job  # noqa: E402
from snowmass import scale_exposure  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()

LEVEL = C.DELTA_CHI2_90CL
DETECTORS = ("COH-CryoCsI-1", "COH-Ge-2", "COH-Ar-750")
COMBINED = "combined (19.3 + 22 + 28 m)"
FLAVOURS = {"Umu4_sq": r"$|U_{\mu 4}|^2$", "Ue4_sq": r"$|U_{e 4}|^2$"}
PLAIN = {"Umu4_sq": r"\|U_μ4\|²", "Ue4_sq": r"\|U_e4\|²"}
"""The mixing names in the Markdown table."""
BENCHMARKS = (1.0, 3.0, 10.0)
"""Δm²₄₁ [eV²] at which the table quotes solved limits."""
DM2_RANGE = (0.1, 100.0)
"""Δm²₄₁ axis [eV²]."""
U_RANGE = (1e-3, 0.5)
"""|U|² raster [1]: brackets only (the crossings are solved)."""
STYLES = {"COH-CryoCsI-1": dict(color="#d62728", ls="-.", lw=1.5), "COH-Ge-2": dict(color="#2ca02c", ls=(0, (2, 1.5)), lw=1.8),
          "COH-Ar-750": dict(color="#1f77b4", ls="-", lw=1.6), COMBINED: dict(color="k", ls="-", lw=2.2)}


def point_function(exps: dict, field: str):
    """(Δm² [eV²], |U|²) → {label: profiled Δχ²} for every detector alone and the combination (one program)."""
    model_of = lambda th: NewPhysics(sterile=sterile_mixing(th["dm2"], **{field: th["U"]}))  # noqa: E731
    sets = {n: [exps[n]] for n in DETECTORS} | {COMBINED: [exps[n] for n in DETECTORS]}
    point = shared_delta_chi2({k: AsimovForecast(v, model_of) for k, v in sets.items()}, model_of)
    return lambda m, g: point({"dm2": m, "U": g})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=3.0, help="SNS years per detector (> 0)")
    parser.add_argument("--masses", type=int, default=24, help="starting Δm² points (≥ 3; refined)")
    parser.add_argument("--couplings", type=int, default=16, help="|U|² raster points (≥ 3; brackets only)")
    parser.add_argument("--rtol", type=float, default=0.05, help="curve convergence between Δm² points")
    parser.add_argument("--rounds", type=int, default=4, help="refinement rounds at most (≥ 0)")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    if not (np.isfinite(args.years) and args.years > 0):
        parser.error(f"--years must be a positive number of SNS years, got {args.years}")
    if min(args.masses, args.couplings) < 3 or not 0 < args.rtol < 1 or args.rounds < 0:
        parser.error("--masses and --couplings must be ≥ 3, --rtol in (0, 1) and --rounds ≥ 0")
    start = time.perf_counter()
    exps = {n: scale_exposure(cevns_jax.load_experiment(n), args.years) for n in DETECTORS}
    masses = np.geomspace(*DM2_RANGE, args.masses)
    couplings = np.geomspace(*U_RANGE, args.couplings)
    fine = np.geomspace(*U_RANGE, 2 * args.couplings - 1)
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharey=True)
    rows, notes = [], []
    for ax, (field, label) in zip(axes, FLAVOURS.items()):
        print(f"{field}: compiling and scanning {masses.size} × {couplings.size} points, then refining", flush=True)
        fn = point_function(exps, field)
        curves = refine_masses(fn, solve_crossings(fn, masses, couplings, LEVEL), couplings, LEVEL, rtol=args.rtol, max_rounds=args.rounds)
        at = solve_crossings(fn, BENCHMARKS, couplings, LEVEL)
        at2 = solve_crossings(fn, BENCHMARKS, fine, LEVEL)
        worst = max((abs(b / a - 1) for k in at.crossings for a, b in zip(at.limit(k), at2.limit(k)) if np.isfinite(a * b)),
                    default=0.0)
        notes.append(f"{PLAIN[field]}: {curves.masses.size} Δm² points after refinement "
                     f"({'converged' if curves.converged else 'NOT converged'} to {args.rtol:g}); benchmark limits move by "
                     f"at most {worst:.1e} with the |U|² raster doubled.")
        for name in list(DETECTORS) + [COMBINED]:
            ax.plot(curves.limit(name), curves.masses, **STYLES[name], label=name)
            rows.append((PLAIN[field], name, *at.limit(name)))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(*U_RANGE)
        ax.set_ylim(*DM2_RANGE)
        ax.set_xlabel(f"{label} (90% CL)")
        ax.grid(alpha=0.3, which="both")
        print(f"{field}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    axes[0].set_ylabel(r"$\Delta m^2_{41}$ [eV$^2$]")
    axes[0].set_title(r"$\nu_\mu$, $\bar\nu_\mu$ disappearance ($|U_{e4}| = |U_{\tau 4}| = 0$)", fontsize=9)
    axes[1].set_title(r"$\nu_e$ disappearance ($|U_{\mu 4}| = |U_{\tau 4}| = 0$)", fontsize=9)
    legend_outside(axes[1], fontsize=8)
    fig.suptitle(f"3+1 sterile neutrino at three SNS baselines, {args.years:g} SNS years each: expected 90% CL "
                 r"(Asimov, $\Delta\chi^2 = 2.71$ solved at each $\Delta m^2$), every preset nuisance profiled, "
                 "flux shared", fontsize=9)
    args.out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out, "sterile_baselines")
    cell = lambda v: f"{v:.3g}" if np.isfinite(v) else "—"  # noqa: E731
    table = ["| mixing | detector | " + " | ".join(f"Δm² = {m:g} eV²" for m in BENCHMARKS) + " |",
             "|---|---|" + "---|" * len(BENCHMARKS)]
    table += [f"| {lab} | {name} | " + " | ".join(cell(v) for v in vals) + " |" for lab, name, *vals in rows]
    text = (f"# Sterile neutrinos at three SNS baselines (scans/sterile_baselines.py)\n\n"
            f"Expected 90% CL upper limits ({args.years:g} SNS years per detector, SNS-PPU; Asimov data at the SM; every "
            "preset nuisance profiled, the flux shared by the three First-Target-Station detectors), solved at each "
            "Δm²₄₁ (—: no limit below |U|² = 0.5).\n\n" + "\n".join(table) + "\n\n" + "\n".join(f"- {n}" for n in notes)
            + f"\n\nRun time {time.perf_counter() - start:.0f} s.\n")
    (args.out / "sterile_baselines.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    run_job(main)
