"""Sterile neutrinos at three SNS baselines: COH-CryoCsI-1 (19.3 m), COH-Ge-2 (22 m) and COH-Ar-750 (28 m),
alone and combined (issues 12 item 3, 14 item 5).

    python scans/sterile_baselines.py [--years 3] [--masses 24] [--raster 24] [--rtol 0.005] [--rounds 12] [--dm2-max 100] [--out figures]

A 3+1 neutrino with Δm²₄₁ ≈ 1–100 eV² makes the prompt ν_μ line (29.8 MeV) oscillate over metres: each
baseline sees the disappearance at other Δm², so detectors at several distances from one target station
cover each other's blind spots, and the shared flux normalisation cancels between them (the argument of
COHERENT's multi-baseline sterile studies). Expected 90% CL (Asimov data at the SM, every preset nuisance
profiled, the flux shared by the three detectors of the First Target Station) upper limits on |U_μ4|² (ν_μ
and ν̄_μ disappearance) and |U_e4|² (ν_e) against Δm²₄₁ (docs/physics.md §4.1, §4.4, §5.9). The
oscillation is averaged over the 0.5 m spread of the baseline (the length of the mercury target; the
model's default, docs/physics.md §4.1), so the prompt line keeps oscillating up to ~150 eV²: the curves
have tens of periods on the Δm² axis, and are resolved as follows.

* At each Δm² every rate is affine in the disappearance amplitude 4|U|²(1 − |U|²) (docs/physics.md §5.9), so
  one compiled program computes the oscillated templates once (at |U|² = ½ and without mixing), the
  profiled Δχ² on a ``--raster``-point |U|² raster in [1e-3, 0.5], and solves every sign change of
  Δχ² − 2.706 along it by Illinois regula falsi in ln|U|², inside the program
  (:func:`cevns_jax.stats.coupling_scan.affine_coupling_scan`): every crossing is kept (a second and third
  bound an allowed island), and where Δχ² stays below the level up to |U|² = 0.5 there is no limit (—, the
  curve ends). The raster is checked: at every Δm² of the final curves a 4× finer raster finds the same
  crossings (count and value, reported).
* The Δm² grid is refined (geometric bisection, :func:`cevns_jax.stats.crossings.refine_masses`) until
  every curve agrees with the log-log interpolation of its neighbours to ``--rtol`` (an interval where a
  limit appears or ends counts as resolved once it is narrower than ``--rtol`` in ln Δm²); then refined
  again to ``--rtol``/2, and the largest change of any finite curve at any Δm² between the two is
  measured and reported (the convergence check; the figure draws the finer curves).
* The benchmark limits (Δm² = 1, 3, 10 eV²) come from the same program, and are checked by a second
  method: the full oscillated fold at each |U|² (no affine combination), a doubled raster and host-side
  Illinois (:func:`cevns_jax.stats.crossings.solve_crossings`); the notes give the largest difference.

Writes figures/sterile_baselines.{png,pdf} and figures/sterile_baselines.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import constants as C  # noqa: E402
from cevns_jax import replace  # noqa: E402
from cevns_jax.models import NewPhysics, sterile_mixing  # noqa: E402
from cevns_jax.models.sterile import FULL_AMPLITUDE_MIXING, disappearance_amplitude  # noqa: E402
from cevns_jax.errors import CevnsInputError  # noqa: E402
from cevns_jax.stats.coupling_scan import MAX_CROSSINGS, affine_coupling_scan  # noqa: E402
from cevns_jax.stats.crossings import LimitCurves, refine_masses, solve_crossings  # noqa: E402
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
DM2_RANGE = (0.1, 30.0)
"""Δm²₄₁ axis [eV²] (to 30 eV²: ~10 periods of the 28 m curve, converged to 0.5% in 6 min on the idle 2-core CPU;
``--dm2-max 100`` draws ~25 more)."""
START_STEP = 1.0
"""Linear step [eV²] of the starting Δm² grid (with the log-spaced points): below half the shortest
oscillation period of a curve, π E_νμ/(1.26693 L) = 2.6 eV² at 28 m, so no period hides in an interval."""
U_RANGE = (1e-3, 0.5)
"""|U|² axis and benchmark raster [1] (the raster only brackets: the crossings are solved)."""
X_MIN = 1e-2
"""Left end of the drawn |U|² axis (every limit here is above 0.02)."""
RASTER = 24
"""|U|² points of the in-program raster per Δm² (brackets only; a step of 0.27 in ln|U|²; checked at 4×)."""
BATCH = 16
"""Δm² points per compiled evaluation (the last batch padded)."""
STYLES = {"COH-CryoCsI-1": dict(color="#d62728", ls="-.", lw=1.5), "COH-Ge-2": dict(color="#2ca02c", ls=(0, (2, 1.5)), lw=1.8),
          "COH-Ar-750": dict(color="#1f77b4", ls="-", lw=1.6), COMBINED: dict(color="k", ls="-", lw=2.2)}


def point_function(exps: dict, field: str):
    """(Δm² [eV²], |U|²) → {label: profiled Δχ²} for every detector alone and the combination (one program)."""
    model_of = lambda th: NewPhysics(sterile=sterile_mixing(th["dm2"], **{field: th["U"]}))  # noqa: E731
    sets = {n: [exps[n]] for n in DETECTORS} | {COMBINED: [exps[n] for n in DETECTORS]}
    point = shared_delta_chi2({k: AsimovForecast(v, model_of) for k, v in sets.items()}, model_of)
    return lambda m, g: point({"dm2": m, "U": g})


class InProgramSolver:
    """Δm² [eV²] → :class:`LimitCurves` of every detector and the combination, every crossing of |U|² ∈
    [``U_RANGE``] kept, solved inside one compiled program per raster (module docstring). Solved Δm² are
    remembered, so refinement rounds and the halved-tolerance check never solve one twice."""

    def __init__(self, exps: dict, field: str, couplings):
        model_of = lambda th: NewPhysics(sterile=sterile_mixing(th["dm2"], **{field: FULL_AMPLITUDE_MIXING}))  # noqa: E731
        sets = {n: [exps[n]] for n in DETECTORS} | {COMBINED: [exps[n] for n in DETECTORS]}
        evaluators = {k: AsimovForecast(v, model_of) for k, v in sets.items()}
        point = affine_coupling_scan(evaluators, model_of, lambda m: replace(m, sterile=None), disappearance_amplitude,
                                     np.asarray(couplings, dtype=float), level=LEVEL)
        self.program, self.labels, self.known, self.evaluations = jax.jit(jax.vmap(point)), list(sets), {}, 0

    def _solve(self, masses) -> None:
        for lo in range(0, masses.size, BATCH):
            part = masses[lo:lo + BATCH]
            out = self.program({"dm2": jnp.asarray(np.pad(part, (0, BATCH - part.size), mode="edge"))})
            self.evaluations += BATCH
            for k in self.labels:
                if np.any(np.asarray(out[f"{k}@brackets"])[:part.size] > MAX_CROSSINGS):
                    raise CevnsInputError(f"sterile_baselines: {k} crosses the level more than {MAX_CROSSINGS} times")
                if np.any(np.asarray(out[k])[:part.size, 0] > LEVEL):  # excluded at the raster's bottom already
                    raise CevnsInputError(f"sterile_baselines: a limit of {k} lies below |U|² = {U_RANGE[0]:g}; lower U_RANGE")
            for i, m in enumerate(part):
                self.known[float(m)] = {k: sorted(float(g) for g in np.asarray(out[f"{k}@crossings"])[i] if np.isfinite(g))
                                        for k in self.labels}

    def __call__(self, masses) -> LimitCurves:
        masses = np.atleast_1d(np.asarray(masses, dtype=float))
        new = np.array([m for m in dict.fromkeys(masses.tolist()) if float(m) not in self.known])
        if new.size:
            self._solve(new)
        return LimitCurves(masses, {k: [self.known[float(m)][k] for m in masses] for k in self.labels})


def largest_change(coarse: LimitCurves, fine: LimitCurves) -> float:
    """max over labels and the fine curve's Δm² of |coarse (log-log interpolated) / fine − 1|, where the limit
    and both coarse neighbours are finite (where a limit appears or ends, the place is resolved to the
    refinement width instead)."""
    worst = 0.0
    for k in fine.crossings:
        c, f = coarse.limit(k), fine.limit(k)
        j = np.clip(np.searchsorted(coarse.masses, fine.masses), 1, coarse.masses.size - 1)
        ok = np.isfinite(f) & np.isfinite(c[j - 1]) & np.isfinite(c[j])
        if not ok.any():
            continue
        w = np.log(fine.masses[ok] / coarse.masses[j[ok] - 1]) / np.log(coarse.masses[j[ok]] / coarse.masses[j[ok] - 1])
        interp = np.exp((1 - w) * np.log(c[j[ok] - 1]) + w * np.log(c[j[ok]]))
        worst = max(worst, float(np.max(np.abs(interp / f[ok] - 1))))
    return worst


def raster_check(solver: "InProgramSolver", check: "InProgramSolver", masses) -> tuple[int, float]:
    """(Δm² points where the 4× raster finds another number of crossings, largest relative change of a crossing)."""
    a, b = solver(masses), check(masses)
    mismatched, worst = 0, 0.0
    for k in a.crossings:
        for x, y in zip(a.crossings[k], b.crossings[k]):
            if len(x) != len(y):
                mismatched += 1
            elif x:
                worst = max(worst, max(abs(q / p - 1) for p, q in zip(x, y)))
    return mismatched, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=3.0, help="SNS years per detector (> 0)")
    parser.add_argument("--masses", type=int, default=24,
                        help="log-spaced starting Δm² points (≥ 3; with 1 eV² steps; refined)")
    parser.add_argument("--raster", type=int, default=RASTER, help="|U|² raster per Δm² (≥ 3; brackets only; checked at 4×)")
    parser.add_argument("--rtol", type=float, default=0.005, help="curve convergence between Δm² points (checked at rtol/2)")
    parser.add_argument("--rounds", type=int, default=12, help="refinement rounds at most (≥ 0)")
    parser.add_argument("--dm2-max", type=float, default=DM2_RANGE[1], help="top of the Δm² axis [eV²]")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    if not (np.isfinite(args.years) and args.years > 0):
        parser.error(f"--years must be a positive number of SNS years, got {args.years}")
    if min(args.masses, args.raster) < 3 or not 0 < args.rtol < 1 or args.rounds < 0:
        parser.error("--masses and --raster must be ≥ 3, --rtol in (0, 1) and --rounds ≥ 0")
    if not (np.isfinite(args.dm2_max) and args.dm2_max > DM2_RANGE[0]):
        parser.error(f"--dm2-max must exceed {DM2_RANGE[0]:g} eV², got {args.dm2_max}")
    start = time.perf_counter()
    dm2_range = (DM2_RANGE[0], args.dm2_max)
    exps = {n: scale_exposure(cevns_jax.load_experiment(n), args.years) for n in DETECTORS}
    # the start grid must not alias the oscillations (a whole period inside an interval can pass the midpoint
    # test): log-spaced, plus steps of START_STEP eV² (< half the shortest period, 2.6 eV² at 28 m) above it
    masses = np.union1d(np.geomspace(*dm2_range, args.masses), np.arange(START_STEP, dm2_range[1], START_STEP))
    couplings = np.geomspace(*U_RANGE, args.raster)
    fine = np.geomspace(*U_RANGE, 4 * args.raster - 3)  # every step of the raster split in four
    labels = list(DETECTORS) + [COMBINED]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharey=True)
    rows, notes, converged_all, worst_change, table_rows = [], [], True, 0.0, []
    for ax, (field, label) in zip(axes, FLAVOURS.items()):
        print(f"{field}: compiling and solving {masses.size} Δm² points, then refining", flush=True)
        solver = InProgramSolver(exps, field, couplings)
        refine = dict(rtol=args.rtol, max_rounds=args.rounds, solve=solver, resolve_width=np.log1p(args.rtol))
        curves = refine_masses(None, solver(masses), couplings, LEVEL, **refine)
        print(f"{field}: {curves.masses.size} points at rtol {args.rtol:g} ({time.perf_counter() - start:.0f} s); "
              f"refining to {args.rtol / 2:g}", flush=True)
        finer = refine_masses(None, curves, couplings, LEVEL, **{**refine, "rtol": args.rtol / 2,
                                                                 "resolve_width": np.log1p(args.rtol / 2)})
        change = largest_change(curves, finer)
        mismatched, raster_change = raster_check(solver, InProgramSolver(exps, field, fine), finer.masses)
        at = solver(np.asarray(BENCHMARKS))
        direct = solve_crossings(point_function(exps, field), BENCHMARKS, np.geomspace(*U_RANGE, 2 * args.raster - 1), LEVEL)
        method_change = max((abs(b / a - 1) for k in at.crossings for a, b in zip(at.limit(k), direct.limit(k))
                             if np.isfinite(a * b)), default=0.0)
        same_count = all(np.isfinite(a) == np.isfinite(b) for k in at.crossings for a, b in zip(at.limit(k), direct.limit(k)))
        islands = {k: int(sum(len(c) > 1 for c in finer.crossings[k])) for k in labels}
        converged_all &= curves.converged and finer.converged and mismatched == 0 and same_count
        worst_change = max(worst_change, change)
        notes.append(f"{PLAIN[field]}: {curves.masses.size} Δm² points at rtol {args.rtol:g} "
                     f"({'converged' if curves.converged else 'NOT converged'}), {finer.masses.size} at {args.rtol / 2:g} "
                     f"({'converged' if finer.converged else 'NOT converged'}); the largest change of any finite curve at "
                     f"any Δm² between the two is {100 * change:.2f}%. The |U|² raster ({args.raster} points) against one "
                     f"4× finer at all {finer.masses.size} Δm²: {mismatched} differ in their number of crossings, the "
                     f"crossings move by at most {raster_change:.1e}. Benchmark limits against the full oscillated fold "
                     f"(second method, doubled raster, host Illinois): at most {method_change:.1e}"
                     f"{'' if same_count else ' (a limit found by one method only)'}. Δm² points with more than one "
                     f"crossing (islands): {sum(islands.values()) or 'none'}"
                     + (f" ({', '.join(f'{k}: {v}' for k, v in islands.items() if v)})" if any(islands.values()) else "") + ".")
        table_rows.append(np.column_stack([finer.masses] + [finer.limit(name) for name in labels]))
        for name in labels:
            ax.plot(finer.limit(name), finer.masses, **STYLES[name], label=name)  # NaN (no limit): the curve ends
            for n in range(1, max((len(c) for c in finer.crossings[name]), default=0)):  # island edges, if any
                edge = np.array([c[n] if len(c) > n else np.nan for c in finer.crossings[name]])
                ax.plot(edge, finer.masses, **{**STYLES[name], "lw": 0.8, "ls": ":"},
                        label=f"{name}: island edge" if n == 1 else None)
            rows.append((PLAIN[field], name, *at.limit(name)))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(X_MIN, U_RANGE[1])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # < 2 decades: no labels on minor ticks
        ax.set_ylim(*dm2_range)
        ax.set_xlabel(f"{label} (90% CL)")
        ax.grid(alpha=0.3, which="both")
        print(f"{field}: done ({time.perf_counter() - start:.0f} s); {notes[-1]}", flush=True)
    axes[0].set_ylabel(r"$\Delta m^2_{41}$ [eV$^2$]")
    axes[0].set_title(r"$\nu_\mu$, $\bar\nu_\mu$ disappearance ($|U_{e4}| = |U_{\tau 4}| = 0$)", fontsize=9)
    axes[1].set_title(r"$\nu_e$ disappearance ($|U_{\mu 4}| = |U_{\tau 4}| = 0$)", fontsize=9)
    legend_outside(axes[1], fontsize=8)
    fig.suptitle(f"3+1 sterile neutrino at three SNS baselines, {args.years:g} SNS years each: expected 90% CL "
                 r"(Asimov, $\Delta\chi^2 = 2.71$ solved at each $\Delta m^2$), every preset nuisance profiled, flux shared;"
                 "\n" r"oscillation averaged over a 0.5 m baseline spread; curves refined in $\Delta m^2$ to "
                 f"{100 * args.rtol:g}% and {100 * args.rtol / 2:g}% (largest change between the two: {100 * worst_change:.2f}%)",
                 fontsize=9)
    args.out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out, "sterile_baselines")
    cell = lambda v: f"{v:.3g}" if np.isfinite(v) else "—"  # noqa: E731
    table = ["| mixing | detector | " + " | ".join(f"Δm² = {m:g} eV²" for m in BENCHMARKS) + " |",
             "|---|---|" + "---|" * len(BENCHMARKS)]
    table += [f"| {lab} | {name} | " + " | ".join(cell(v) for v in vals) + " |" for lab, name, *vals in rows]
    text = (f"# Sterile neutrinos at three SNS baselines (scans/sterile_baselines.py)\n\n"
            f"Expected 90% CL upper limits ({args.years:g} SNS years per detector, SNS-PPU; Asimov data at the SM; every "
            "preset nuisance profiled, the flux shared by the three First-Target-Station detectors), solved at each "
            "Δm²₄₁ (—: no limit below |U|² = 0.5). The oscillation is averaged over a 0.5 m spread of the baseline "
            "(the mercury target's length; docs/physics.md §4.1). "
            + ("Every curve is converged: " if converged_all and worst_change < args.rtol else "NOT every curve is converged: ")
            + f"refined to {100 * args.rtol:g}% and again to {100 * args.rtol / 2:g}%, the curves move by at most "
            f"{100 * worst_change:.2f}% at any Δm² in [{dm2_range[0]:g}, {dm2_range[1]:g}] eV².\n\n"
            + "\n".join(table) + "\n\n" + "\n".join(f"- {n}" for n in notes)
            + f"\n\nRun time {time.perf_counter() - start:.0f} s.\n")
    (args.out / "sterile_baselines.md").write_text(text, encoding="utf-8")
    for (field, _), data in zip(FLAVOURS.items(), table_rows):  # the drawn curves (nan: no limit below 0.5)
        np.savetxt(args.out / f"sterile_baselines_{field}.csv", data, delimiter=",", fmt="%.6g",
                   header="dm2_eV2," + ",".join(labels), comments="")
    print(text)


if __name__ == "__main__":
    run_job(main)
