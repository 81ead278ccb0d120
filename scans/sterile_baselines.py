"""Sterile neutrinos at three SNS baselines: COH-CryoCsI-1 (19.3 m), COH-Ge-2 (22 m) and COH-Ar-750 (28 m),
alone and combined (issues 12 item 3, 14 item 5).

    python scans/sterile_baselines.py [--years 3] [--masses 24] [--rtol 0.01] [--rounds 12] [--dm2-max 100] [--out figures]

A 3+1 neutrino with Δm²₄₁ ≈ 1–100 eV² makes the prompt ν_μ line (29.8 MeV) oscillate over metres: each
baseline sees the disappearance at other Δm², so detectors at several distances from one target station
cover each other's blind spots, and the shared flux normalisation cancels between them (the argument of
COHERENT's multi-baseline sterile studies). Expected 90% CL (Asimov data at the SM, every preset nuisance
profiled, the flux shared by the three detectors of the First Target Station) upper limits on |U_μ4|² (ν_μ
and ν̄_μ disappearance) and |U_e4|² (ν_e) against Δm²₄₁ (docs/physics.md §4.1, §4.4, §5.9). The
oscillation is averaged over the 0.5 m spread of the baseline (the length of the mercury target; the
model's default, docs/physics.md §4.1), so the prompt line keeps oscillating up to ~150 eV²: the curves
have tens of periods on the Δm² axis, and are resolved as follows.

* Crossings Δχ² = 2.706 are solved per detector at each Δm² by a secant iteration in ln|U|² started from
  the log-log interpolation of the limits already known at the nearest Δm² (Δχ² ∝ |U|⁴ for small mixing
  sets the first step), to |Δ ln|U|²| < ``XTOL_CURVE`` (1e-4); a limit above |U|² = 0.5 (the top of the
  axis) is drawn at 0.5 and tabulated as —.
* The Δm² grid is refined (geometric bisection, :func:`cevns_jax.stats.crossings.refine_masses`) until
  every curve agrees with the log-log interpolation of its neighbours to ``--rtol``; then refined again
  to ``--rtol``/2, and the largest change of any curve at any Δm² between the two is measured and
  reported (the convergence check; the figure draws the finer curves).
* The benchmark limits (Δm² = 1, 3, 10 eV²) are solved independently on a |U|² raster with Illinois
  regula falsi to 1e-7 (:func:`cevns_jax.stats.crossings.solve_crossings`), and again with the raster
  doubled; the table gives those, and the notes the largest differences between the three solutions.

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
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import constants as C  # noqa: E402
from cevns_jax.models import NewPhysics, sterile_mixing  # noqa: E402
from cevns_jax.errors import CevnsInputError  # noqa: E402
from cevns_jax.stats.crossings import LimitCurves, evaluate, refine_masses, solve_crossings  # noqa: E402
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
"""Δm²₄₁ axis [eV²] (to 30 eV²: ~10 periods of the 28 m curve, resolved in ~30 min on 2 loaded cores;
``--dm2-max 100`` draws ~25 more)."""
START_STEP = 1.0
"""Linear step [eV²] of the starting Δm² grid (with the log-spaced points): below half the shortest
oscillation period of a curve, π E_νμ/(1.26693 L) = 2.6 eV² at 28 m, so no period hides in an interval."""
U_RANGE = (1e-3, 0.5)
"""|U|² axis and benchmark raster [1] (the raster only brackets: the crossings are solved)."""
X_MIN = 1e-2
"""Left end of the drawn |U|² axis (every limit here is above 0.02)."""
XTOL_CURVE = 1e-4
"""Secant tolerance on ln|U|² of the drawn curves (50× below the halved refinement tolerance 0.005)."""
MAX_SECANT = 30
"""Secant steps at most per crossing (typically 2–4 from a neighbour's limit)."""
STYLES = {"COH-CryoCsI-1": dict(color="#d62728", ls="-.", lw=1.5), "COH-Ge-2": dict(color="#2ca02c", ls=(0, (2, 1.5)), lw=1.8),
          "COH-Ar-750": dict(color="#1f77b4", ls="-", lw=1.6), COMBINED: dict(color="k", ls="-", lw=2.2)}


def point_function(exps: dict, field: str):
    """(Δm² [eV²], |U|²) → {label: profiled Δχ²} for every detector alone and the combination (one program)."""
    model_of = lambda th: NewPhysics(sterile=sterile_mixing(th["dm2"], **{field: th["U"]}))  # noqa: E731
    sets = {n: [exps[n]] for n in DETECTORS} | {COMBINED: [exps[n] for n in DETECTORS]}
    point = shared_delta_chi2({k: AsimovForecast(v, model_of) for k, v in sets.items()}, model_of)
    return lambda m, g: point({"dm2": m, "U": g})


class CurveSolver:
    """Δm² [eV²] → :class:`LimitCurves` (one crossing per label: the limit, clipped to |U|² ≤ ``U_RANGE[1]``).

    Every (Δm², label) pair runs its own secant iteration h(u) = ln(Δχ²/level) = 0 in u = ln|U|², all pairs
    of one call advancing together (one batched evaluation per step). The start is the log-log
    interpolation of the limits already solved at the nearest Δm² (|U|² = 0.05 before any), the first step
    takes slope dh/du = 2 (Δχ² ∝ |U|⁴ at small mixing, the disappearance being linear in |U|²), later
    steps the secant slope (kept in [0.5, 8]). Solved masses are remembered, so refinement rounds and the
    halved-tolerance check never solve one Δm² twice."""

    def __init__(self, fn, labels, level: float, xtol: float = XTOL_CURVE):
        self.fn, self.labels, self.level, self.xtol = fn, list(labels), level, xtol
        self.known: dict = {}  # Δm² → {label: limit}
        self.evaluations = 0

    def _start(self, masses, labels):
        if not self.known:
            return {k: np.full(masses.size, np.log(0.05)) for k in labels}
        m = np.array(sorted(self.known))
        return {k: np.interp(np.log(masses), np.log(m), np.log([self.known[x][k] for x in m])) for k in labels}

    def _solve(self, masses):
        lo, hi = np.log(U_RANGE[0]), np.log(U_RANGE[1])
        labels = self.labels
        start = self._start(masses, labels)
        pairs = [(i, k) for k in labels for i in range(masses.size)]
        u = np.clip(np.array([start[k][i] for i, k in pairs]), lo, hi)
        u_prev, h_prev = np.full(u.size, np.nan), np.full(u.size, np.nan)
        result = np.full(u.size, np.nan)
        active = np.ones(u.size, dtype=bool)
        for _ in range(MAX_SECANT):
            idx = np.nonzero(active)[0]
            if idx.size == 0:
                break
            values = evaluate(self.fn, masses[[pairs[j][0] for j in idx]], np.exp(u[idx]))
            self.evaluations += idx.size
            h = np.log(np.maximum([values[pairs[j][1]][n] for n, j in enumerate(idx)], 1e-30 * self.level) / self.level)
            slope = np.where(np.isnan(h_prev[idx]), 2.0, (h - h_prev[idx]) / (u[idx] - u_prev[idx]))
            slope = np.where(np.isfinite(slope), np.clip(slope, 0.5, 8.0), 2.0)
            step = -h / slope
            top = (u[idx] >= hi) & (h < 0)  # Δχ² below the level at the top of the axis: no limit there
            if np.any((u[idx] <= lo) & (h > 0)):
                raise CevnsInputError(f"sterile_baselines: a limit lies below |U|² = {U_RANGE[0]:g}; lower U_RANGE")
            done = top | (np.abs(step) < self.xtol)
            u_new = np.clip(u[idx] + step, lo, hi)
            result[idx[done]] = np.where(top[done], U_RANGE[1], np.exp(u_new[done]))
            active[idx[done]] = False
            u_prev[idx], h_prev[idx] = u[idx], h
            u[idx] = u_new
        if active.any():
            raise CevnsInputError(f"sterile_baselines: {int(active.sum())} crossing(s) did not converge in "
                                  f"{MAX_SECANT} secant steps")
        for i, m in enumerate(masses):
            self.known[float(m)] = {k: float(result[n * masses.size + i]) for n, k in enumerate(labels)}

    def __call__(self, masses) -> LimitCurves:
        masses = np.asarray(masses, dtype=float)
        new = np.array([m for m in masses if float(m) not in self.known])
        if new.size:
            self._solve(new)
        return LimitCurves(masses, {k: [[self.known[float(m)][k]] for m in masses] for k in self.labels})


def largest_change(coarse: LimitCurves, fine: LimitCurves) -> float:
    """max over labels and the fine curve's Δm² of |coarse (log-log interpolated) / fine − 1|."""
    worst = 0.0
    for k in fine.crossings:
        interp = np.exp(np.interp(np.log(fine.masses), np.log(coarse.masses), np.log(coarse.limit(k))))
        worst = max(worst, float(np.max(np.abs(interp / fine.limit(k) - 1))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=3.0, help="SNS years per detector (> 0)")
    parser.add_argument("--masses", type=int, default=24,
                        help="log-spaced starting Δm² points (≥ 3; with 1 eV² steps; refined)")
    parser.add_argument("--couplings", type=int, default=16, help="|U|² raster of the benchmark limits (≥ 3; brackets only)")
    parser.add_argument("--rtol", type=float, default=0.01, help="curve convergence between Δm² points (checked at rtol/2)")
    parser.add_argument("--rounds", type=int, default=12, help="refinement rounds at most (≥ 0)")
    parser.add_argument("--dm2-max", type=float, default=DM2_RANGE[1], help="top of the Δm² axis [eV²]")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    if not (np.isfinite(args.years) and args.years > 0):
        parser.error(f"--years must be a positive number of SNS years, got {args.years}")
    if min(args.masses, args.couplings) < 3 or not 0 < args.rtol < 1 or args.rounds < 0:
        parser.error("--masses and --couplings must be ≥ 3, --rtol in (0, 1) and --rounds ≥ 0")
    if not (np.isfinite(args.dm2_max) and args.dm2_max > DM2_RANGE[0]):
        parser.error(f"--dm2-max must exceed {DM2_RANGE[0]:g} eV², got {args.dm2_max}")
    start = time.perf_counter()
    dm2_range = (DM2_RANGE[0], args.dm2_max)
    exps = {n: scale_exposure(cevns_jax.load_experiment(n), args.years) for n in DETECTORS}
    # the start grid must not alias the oscillations (a whole period inside an interval can pass the midpoint
    # test): log-spaced, plus steps of START_STEP eV² (< half the shortest period, 2.6 eV² at 28 m) above it
    masses = np.union1d(np.geomspace(*dm2_range, args.masses), np.arange(START_STEP, dm2_range[1], START_STEP))
    couplings = np.geomspace(*U_RANGE, args.couplings)
    fine = np.geomspace(*U_RANGE, 2 * args.couplings - 1)
    labels = list(DETECTORS) + [COMBINED]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharey=True)
    rows, notes, converged_all, worst_change, table_rows = [], [], True, 0.0, []
    for ax, (field, label) in zip(axes, FLAVOURS.items()):
        print(f"{field}: compiling and solving {masses.size} Δm² points, then refining", flush=True)
        fn = point_function(exps, field)
        solver = CurveSolver(fn, labels, LEVEL)
        curves = refine_masses(fn, solver(masses), couplings, LEVEL, rtol=args.rtol, max_rounds=args.rounds, solve=solver)
        print(f"{field}: {curves.masses.size} points at rtol {args.rtol:g} ({time.perf_counter() - start:.0f} s); "
              f"refining to {args.rtol / 2:g}", flush=True)
        finer = refine_masses(fn, curves, couplings, LEVEL, rtol=args.rtol / 2, max_rounds=args.rounds, solve=solver)
        change = largest_change(curves, finer)
        at = solve_crossings(fn, BENCHMARKS, couplings, LEVEL)
        at2 = solve_crossings(fn, BENCHMARKS, fine, LEVEL)
        secant = solver(np.asarray(BENCHMARKS))
        raster_change = max((abs(b / a - 1) for k in at.crossings for a, b in zip(at.limit(k), at2.limit(k))
                             if np.isfinite(a * b)), default=0.0)
        method_change = max((abs(b / a - 1) for k in at.crossings for a, b in zip(at.limit(k), secant.limit(k))
                             if np.isfinite(a) and a < U_RANGE[1]), default=0.0)
        converged_all &= curves.converged and finer.converged
        worst_change = max(worst_change, change)
        notes.append(f"{PLAIN[field]}: {curves.masses.size} Δm² points at rtol {args.rtol:g} "
                     f"({'converged' if curves.converged else 'NOT converged'}), {finer.masses.size} at {args.rtol / 2:g} "
                     f"({'converged' if finer.converged else 'NOT converged'}); the largest change of any curve at any Δm² "
                     f"between the two is {100 * change:.2f}%. Benchmark limits: the |U|² raster doubled moves them by at most "
                     f"{raster_change:.1e}, the curves' secant solver differs from them by at most {method_change:.1e} "
                     f"({solver.evaluations} point evaluations for the curves).")
        table_rows.append(np.column_stack([finer.masses] + [finer.limit(name) for name in labels]))
        for name in labels:
            ax.plot(finer.limit(name), finer.masses, **STYLES[name], label=name)
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
    for (field, _), data in zip(FLAVOURS.items(), table_rows):  # the drawn curves (0.5: no limit below it)
        np.savetxt(args.out / f"sterile_baselines_{field}.csv", data, delimiter=",", fmt="%.6g",
                   header="dm2_eV2," + ",".join(labels), comments="")
    print(text)


if __name__ == "__main__":
    run_job(main)
