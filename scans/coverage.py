"""Where Wilks fails: coverage of the Wilks region and Feldman–Cousins regions for a 3+1 sterile neutrino.

    python scans/coverage.py [--grid 20] [--toys 300] [--steps 6] [--csi-grid 12] [--csi-toys 150] [--csi-steps 8]
                             [--screen M K [--check-screen N]] [--chunk N] [--csi2017 results/fc_csi2017]
                             [--out figures] [--results results/coverage]

Two (Δm²₄₁, sin²2θ_μμ) planes (log grids, ``--grid``² and ``--csi-grid``² hypotheses, Δm²₄₁ 0.1–100 eV²,
sin²2θ_μμ = 4|U_μ4|²(1 − |U_μ4|²) 0.01–1, i.e. |U_μ4|² 0.0025–0.5):

* COH-Ar-750 (3 SNS years, every preset nuisance profiled), observed = the SM Asimov data (the expected
  region: what a null experiment excludes);
* COHERENT-CsI-2021, observed = the released data (its release fit: AC counts constrain the steady
  state, every release nuisance profiled, flux prior 10%, as in the main job's data limits).

The statistic at a hypothesis θ_h is FC's t(θ_h) = χ²(θ_h, ν̂̂) − min_{θ′} χ²(θ′, ν̂) with the *global* best fit:
the minimum over every Δm² row of the plane of fits with sin²2θ_μμ free in [0, 1] (so the no-oscillation point,
sin²2θ = 0, is inside every row) and every nuisance profiled (``--steps`` / ``--csi-steps`` projected
Fisher-scoring steps; a toy counts as failed unless all its fits converged). The model is a
:class:`~cevns_jax.stats.toys.ToyModel` with POIs (row, sin²2θ_μμ) and ``best_fit_grid`` over the rows: templates
once per Δm² (at full amplitude, and the SM), exactly combined along sin²2θ (every rate is linear in P_μμ,
docs/physics.md §5.9). The construction is :func:`cevns_jax.toyscan.neyman_construction`: toys generated at
θ_h with the nuisances profiled on the observed data, keys ``toy_key(seed, h, i)``, run under the scan engine
(chunked, sharded over devices, resumable in ``--results``/<plane and settings>/, identified by the model's
content; a change of the package source starts a new folder). Per hypothesis:

* Wilks' 90% CL threshold for two parameters, 4.605, and its coverage measured with the toys,
  P(t ≤ 4.605 | θ_h); FC's critical value c(θ_h), the toys' 90% quantile;
* the regions {θ : t_obs(θ) ≤ 4.605} (Wilks) and {θ : t_obs(θ) ≤ c(θ)} (Feldman–Cousins).

The minimum over the Δm² rows is above the continuous one (the grid's t, the same definition for data and
toys, so the FC construction is consistent; Wilks' 4.605 assumes the continuous one). With ``--screen M K`` only a
few rows are fitted per toy, chosen by a two-stage screen (``ToyModel.best_fit_screen``, docs/physics.md §5.11:
the tested row, the no-oscillation fit and K screened rows instead of every row); ``--check-screen N`` refits
the first N toys of every hypothesis over every row and records the misses in the summary. With ``--csi2017`` the
summary of ``scans/fc_csi2017.py`` (the small-count case: CEvNS count of the CsI 2017 data) is drawn as a third
panel. Writes ``figures/coverage_sterile.{png,pdf}`` and ``results/coverage/summary.json``; ``--redraw`` draws
from that summary alone. docs/physics.md §5.11.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import cevns_jax

S_MIN, S_MAX = 0.01, 1.0
"""The plane's sin²2θ_μμ range (log grid)."""
DM2_MIN, DM2_MAX = 0.1, 100.0
"""The plane's Δm²₄₁ range [eV²] (log grid)."""


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=int, default=20, help="points per axis of the COH-Ar-750 plane")
    p.add_argument("--toys", type=int, default=300, help="toys per hypothesis")
    p.add_argument("--steps", type=int, default=6, help="Fisher-scoring steps per profiled fit, COH-Ar-750")
    p.add_argument("--csi-steps", type=int, default=8, help="the same for the CsI-2021 release fit (AC constraint)")
    p.add_argument("--csi-grid", type=int, default=12, help="points per axis of the CsI-2021 plane")
    p.add_argument("--csi-toys", type=int, default=150, help="toys per hypothesis of the CsI-2021 plane")
    p.add_argument("--chunk", type=int, default=None, help="toys per compiled chunk (default: the scan engine's)")
    p.add_argument("--years", type=float, default=3.0, help="COH-Ar-750 exposure [SNS years]")
    p.add_argument("--seed", type=int, default=41)
    p.add_argument("--cl", type=float, default=0.9)
    p.add_argument("--planes", nargs="+", default=["COH-Ar-750", "CsI-2021"], choices=["COH-Ar-750", "CsI-2021"])
    p.add_argument("--csi2017", type=Path, default=Path("results/fc_csi2017"),
                   help="folder of scans/fc_csi2017.py's summary.json (drawn when present)")
    p.add_argument("--out", type=Path, default=Path("figures"))
    p.add_argument("--results", type=Path, default=Path("results/coverage"))
    p.add_argument("--redraw", action="store_true", help="draw from results/coverage/summary.json only")
    p.add_argument("--screen", type=int, nargs=2, metavar=("M", "K"), default=None,
                   help="screened global fit (ToyModel.best_fit_screen): rank every Δm² row, re-rank M, fit K "
                        "(plus the no-oscillation fit and the tested row) instead of every row; e.g. 12 3")
    p.add_argument("--check-screen", type=int, default=0, metavar="N",
                   help="with --screen: rerun the first N toys of every hypothesis fitting every row (the same toys: "
                        "keys by index) and record how often and by how much the screen missed the minimum")
    args = p.parse_args()
    for name in ("grid", "toys", "csi_grid", "csi_toys", "steps", "csi_steps"):
        least = 1 if name.endswith("steps") else 2
        if getattr(args, name) < least:
            p.error(f"--{name.replace('_', '-')} must be at least {least}")
    if args.chunk is not None and args.chunk < 1:
        p.error("--chunk must be at least 1")
    if args.screen is not None and not 1 <= args.screen[1] <= args.screen[0]:
        p.error("--screen M K needs 1 ≤ K ≤ M")
    if args.check_screen and args.screen is None:
        p.error("--check-screen needs --screen")
    toys = [{"COH-Ar-750": args.toys, "CsI-2021": args.csi_toys}[k] for k in args.planes]
    if args.check_screen < 0 or args.check_screen > min(toys):
        p.error(f"--check-screen N needs 0 ≤ N ≤ the toys per hypothesis of the planes run ({min(toys)})")
    return args


# ------------------------------------------------------------------ the two models' μ(row, sin²2θ, ν)

def _template(args, theta):
    """The CEvNS template of Δm² row ``theta["row"]`` at amplitude ``theta["sin2_2theta"]``: t₀ + s (t₁ − t₀)."""
    half, null = args[1], args[2]
    row = jnp.take(half, jnp.round(theta["row"]).astype(jnp.int32), axis=0)
    return null + theta["sin2_2theta"] * (row - null)


def forecast_row_mu(args, theta, nu):
    """μ of an Asimov forecast (every nuisance of the reference) with the sterile template of ``theta``."""
    from cevns_jax.stats.forecast import Signals, expected

    return expected(args[0], [Signals(_template(args, theta))], nu)


def release_row_mu(args, theta, nu):
    """μ of a release analysis (linear morphing) with the sterile template of ``theta``."""
    from cevns_jax.stats.analyses import flat_means, morphed_counts

    analysis = args[0]
    return flat_means(analysis, morphed_counts(analysis, {}, {"signal": _template(args, theta), "dark_matter": None}, nu))


def plane_axes(n: int) -> list:
    from cevns_jax.scan import Axis

    return [Axis("row", 0.0, float(n - 1), n), Axis("sin2_2theta", S_MIN, S_MAX, n, "log")]


def row_dm2(n: int) -> np.ndarray:
    """Δm²₄₁ of the plane's rows [eV²]."""
    return np.geomspace(DM2_MIN, DM2_MAX, n)


def main() -> None:
    args = _parse()
    if args.redraw:
        summary = json.loads((args.results / "summary.json").read_text())
        draw(args, summary)
        return
    cevns_jax.enable_x64()
    cevns_jax.fast_cpu_compilation()
    from scipy import stats

    from cevns_jax import replace
    from cevns_jax.models import NewPhysics, sterile_mixing
    from cevns_jax.models.sterile import FULL_AMPLITUDE_MIXING
    from cevns_jax.nuisances import shape_names
    from cevns_jax.provenance import source_hash
    from cevns_jax.stats.analyses import load_analysis, morphing_templates, observed_vector, with_linear_morphing
    from cevns_jax.stats.fits import fit_priors
    from cevns_jax.stats.forecast import ForecastSpec, asimov_reference, signals
    from cevns_jax.stats.toys import ToyModel
    from cevns_jax.toyscan import neyman_construction

    start = time.perf_counter()
    wilks = float(stats.chi2(2).ppf(args.cl))
    sterile = lambda d, u: NewPhysics(sterile=sterile_mixing(d, Umu4_sq=u))  # noqa: E731
    args.results.mkdir(parents=True, exist_ok=True)

    def row_templates(templ, n):
        """Templates at full amplitude (|U|² = ½) for each Δm² row and the SM: n + 1 folds for the plane."""
        half = templ(jnp.asarray(row_dm2(n)), jnp.full(n, FULL_AMPLITUDE_MIXING))
        return half, templ(jnp.asarray([1.0]), jnp.asarray([0.0]))[0]

    def model_of(mu_fn, arrays, data, priors, n, steps):
        screen = () if args.screen is None else (min(args.screen[0], n), min(args.screen[1], n))
        return ToyModel(arrays, data, {k: jnp.zeros(()) for k in priors}, mu_fn, tuple(sorted(priors.items())),
                        (("row", None, None), ("sin2_2theta", 0.0, 1.0)), steps,
                        best_fit_grid=(("row", tuple(float(r) for r in range(n))),), best_fit_screen=screen)

    def coh_ar(n, steps):  # Asimov forecast reference (SM data)
        exp = cevns_jax.load_experiment("COH-Ar-750")
        exp = replace(exp, source=replace(exp.source, protons_on_target=exp.source.protons_on_target * args.years),
                      backgrounds={k: replace(b, counts=b.counts * args.years) for k, b in exp.backgrounds.items()})
        reference = asimov_reference((exp,), ForecastSpec())
        names = shape_names(dict(reference.labels[0]))
        half, null = row_templates(jax.jit(jax.vmap(lambda d, u: signals(exp, sterile(d, u), names).cevns)), n)
        return model_of(forecast_row_mu, (reference, half, null), reference.data, reference.prior_dict(), n, steps)

    def csi2021(n, steps):  # the release analysis with linear morphing (the main job's data limit)
        analysis = with_linear_morphing(load_analysis("COHERENT-CsI-2021", morphing="exact"))
        templ = jax.jit(jax.vmap(lambda d, u: morphing_templates(analysis, {}, None, sterile(d, u))["signal"]))
        half, null = row_templates(templ, n)
        return model_of(release_row_mu, (analysis, half, null), observed_vector(analysis), fit_priors(analysis), n, steps)

    summary_path = args.results / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if summary.get("cl") != args.cl:  # planes of another confidence level are not kept beside these
        summary = {}
    summary.update({"cl": args.cl, "wilks_threshold": wilks})
    summary.setdefault("planes", {})
    settings = {"COH-Ar-750": (coh_ar, args.grid, args.toys, args.steps,
                               f"COH-Ar-750, {args.years:g} SNS years, SM Asimov data"),
                "CsI-2021": (csi2021, args.csi_grid, args.csi_toys, args.csi_steps, "COHERENT CsI-2021 data")}
    for key in args.planes:
        make, n, toys, steps, title = settings[key]
        t0 = time.perf_counter()
        model = make(n, steps)
        screen = f"_screen{model.best_fit_screen[0]}-{model.best_fit_screen[1]}" if model.best_fit_screen else ""
        folder = args.results / f"{key}_{n}x{n}_{toys}toys_{steps}steps{screen}_seed{args.seed}_{source_hash()[:12]}"
        belt = neyman_construction(model, plane_axes(n), toys, folder, seed=args.seed, cl=args.cl,
                                   chunk_size=args.chunk, label=f"coverage {key}")
        t, ok = belt.toys.values["t"], belt.toys.values["converged"] > 0.5
        cover = np.mean((t <= wilks) & ok, axis=-1)
        crit, t_obs = belt.critical, belt.t_obs
        seconds = time.perf_counter() - t0
        check = screen_check(model, belt, n, args.check_screen, folder.with_name(folder.name + "_check"),
                             args.chunk, key, args.seed) if args.check_screen else None
        summary["planes"][key] = {
            "title": title, "grid": n, "toys_per_point": toys, "steps": steps, "seed": args.seed,
            "dm2_eV2": row_dm2(n).tolist(), "sin2_2theta": plane_axes(n)[1].values().tolist(),
            "fc_critical": crit.tolist(), "wilks_coverage": cover.tolist(), "t_obs": t_obs.tolist(),
            "failure_fraction": float(1 - ok.mean()), "wilks_region_points": int((t_obs <= wilks).sum()),
            "fc_region_points": int(belt.accepted.sum()), "coverage_min": float(cover.min()),
            "coverage_median": float(np.median(cover)), "critical_min": float(crit.min()),
            "critical_max": float(crit.max()), "observed_fits_converged": bool(np.all(belt.observed_converged)),
            "seconds": round(seconds, 1), "device": str(jax.devices()[0].device_kind),
            "fits_per_toy": 1 + (n if not model.best_fit_screen else model.best_fit_screen[1] + 2),
            "screen": list(model.best_fit_screen) or None, "screen_check": check}
        e = summary["planes"][key]
        print(f"{key}: Wilks coverage {e['coverage_min']:.3f}–{cover.max():.3f} (median {e['coverage_median']:.3f}); "
              f"FC critical {e['critical_min']:.2f}–{e['critical_max']:.2f} (Wilks {wilks:.3f}); allowed points Wilks "
              f"{e['wilks_region_points']}, FC {e['fc_region_points']} of {n * n}; failure fraction "
              f"{e['failure_fraction']:.2g}; {n * n * toys:,} toys × "
              f"{e['fits_per_toy']} fits in {seconds:.0f} s; observed fits converged at {belt.observed_converged.sum()} of {n * n} "
              "hypotheses", flush=True)
        summary_path.write_text(json.dumps(summary, indent=1))
    draw(args, summary)
    print(f"total {time.perf_counter() - start:.0f} s")


def screen_check(model, belt, n: int, n_check: int, folder: Path, chunk, key: str, seed: int) -> dict:
    """The screened construction against fitting every row, on the first ``n_check`` toys of every hypothesis
    (the same toys: a toy's key depends on its indices only): the share of toys whose χ²_min the screen left
    above the all-row one by more than 1e-3 (and 0.1), the largest such gap, and the FC critical values of
    those toys by both methods (their largest difference)."""
    from cevns_jax import replace
    from cevns_jax.stats.neyman import critical_values
    from cevns_jax.toyscan import run_toys

    exact = run_toys(replace(model, best_fit_screen=()), plane_axes(n), n_check, folder, seed=seed, chunk_size=chunk,
                     label=f"check {key}")
    fast = {k: v[..., :n_check] for k, v in belt.toys.values.items()}
    gap = fast["chi2_free"] - exact.values["chi2_free"]
    both = (fast["converged"] > 0.5) & (exact.values["converged"] > 0.5)
    gap = np.where(both, gap, 0.0)
    crit_fast = critical_values(fast["t"], belt.cl, fast["converged"])
    crit_exact = critical_values(exact.values["t"], belt.cl, exact.values["converged"])
    finite = np.isfinite(crit_fast) & np.isfinite(crit_exact)  # a failed toy counts as outside: c can be inf
    diff = np.abs(crit_fast - crit_exact)[finite]
    out = {"toys_per_point": n_check, "toys": int(gap.size), "missed_over_1e-3": float(np.mean(gap > 1e-3)),
           "missed_over_0.1": float(np.mean(gap > 0.1)), "largest_gap": float(gap.max()),
           "below_all_rows": float(gap.min()), "critical_max_abs_diff": float(diff.max()) if diff.size else 0.0,
           "critical_points_changed": int(np.sum(diff > 1e-9)), "critical_points_not_finite": int(np.sum(~finite))}
    print(f"{key} screen check ({n_check} toys per point, {gap.size:,} toys refitted over every row): χ²_min above "
          f"the all-row one by > 1e-3 for {out['missed_over_1e-3']:.2%} of toys (> 0.1: {out['missed_over_0.1']:.3%}; "
          f"largest {out['largest_gap']:.3g}); critical values of these toys differ at {out['critical_points_changed']} "
          f"of {n * n} points, by ≤ {out['critical_max_abs_diff']:.3g} (not finite at {out['critical_points_not_finite']})", flush=True)
    return out


def draw(args, summary: dict) -> None:
    """The figure from the summary alone (planes in the order COH-Ar-750, CsI-2021; any missing is skipped)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from figure_style import save_figure, wrap_math

    csi2017 = args.csi2017 / "summary.json"
    fc17 = json.loads(csi2017.read_text()) if csi2017.exists() else None
    planes = {k: summary["planes"][k] for k in ("COH-Ar-750", "CsI-2021") if k in summary["planes"]}
    wilks, cl = summary["wilks_threshold"], summary["cl"]
    ncol = len(planes) + (1 if fc17 else 0)
    fig, axs = plt.subplots(1, ncol, figsize=(5.6 * ncol, 6.2), squeeze=False)
    axs = axs[0]
    for ax, (key, pl) in zip(axs, planes.items()):
        dm2, s2t = np.asarray(pl["dm2_eV2"]), np.asarray(pl["sin2_2theta"])
        crit, cover, t_obs = (np.asarray(pl[k]) for k in ("fc_critical", "wilks_coverage", "t_obs"))
        mesh = ax.pcolormesh(s2t, dm2, cover, cmap="RdBu", vmin=cl - 0.15, vmax=cl + 0.15, shading="nearest")
        ax.contour(s2t, dm2, t_obs - wilks, levels=[0.0], colors="C1", linewidths=2.0, linestyles="--")
        ax.contour(s2t, dm2, t_obs - crit, levels=[0.0], colors="k", linewidths=1.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\sin^2 2\theta_{\mu\mu} = 4|U_{\mu 4}|^2(1 - |U_{\mu 4}|^2)$")
        ax.set_ylabel(r"$\Delta m^2_{41}$ [eV$^2$]")
        ax.set_title(f"{pl['title']}: {pl['grid']}×{pl['grid']}, {pl['toys_per_point']} toys per point", fontsize=9)
        fig.colorbar(mesh, ax=ax, label=f"coverage of the Wilks region (nominal {cl:.0%})", shrink=0.85)
    handles = [Line2D([], [], color="C1", ls="--", lw=2.0, label=r"Wilks, $t_{\rm obs} = 4.61$ ($\chi^2_2$)"),
               Line2D([], [], color="k", lw=1.6, label=r"Feldman–Cousins, $t_{\rm obs} = c(\theta)$ (toys)")]
    if fc17:
        ax = axs[-1]
        s = np.asarray(fc17["grid"])
        ax.plot(s, fc17["t_obs"], "k-", lw=1.4, label=r"$t_{\rm obs}(s)$, CsI 2017 data")
        ax.plot(s, fc17["fc_critical"], "C0-", lw=1.6, label=f"FC critical value ({fc17['toys_per_point']} toys)")
        ax.axhline(fc17["wilks_threshold"], color="C1", ls="--", lw=2.0, label=r"Wilks $\chi^2_1$: 2.71")
        ax2 = ax.twinx()
        ax2.errorbar(s, fc17["wilks_coverage"], yerr=fc17["wilks_coverage_error"], fmt="o", ms=2.5, color="C3",
                     elinewidth=0.8, label="coverage of Wilks (right axis)")
        ax2.axhline(fc17["cl"], color="C3", lw=0.6, ls=":")
        ax2.set_ylim(0.75, 1.0)
        ax2.set_ylabel("coverage of the Wilks interval", color="C3")
        ax.set_ylim(0, 4 * fc17["wilks_threshold"])
        ax.set_xlabel("CEvNS count $s$ (CsI 2017 analysis region)")
        ax.set_ylabel("test statistic")
        lo_w, hi_w = fc17["wilks_interval"]
        lo_f, hi_f = fc17["fc_interval"]
        ax.set_title(f"CsI 2017, CEvNS count: Wilks [{lo_w:.0f}, {hi_w:.0f}], FC [{lo_f:.0f}, {hi_f:.0f}]", fontsize=9)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False, ncol=2)
    def screened(pl):
        if not pl.get("screen"):
            return ""
        text = f", rows screened ({pl['screen'][0]}, {pl['screen'][1]})"
        check = pl.get("screen_check")
        if check:
            text += (f": minimum missed by > 0.001 for {check['missed_over_1e-3']:.2%} of {check['toys']:,} toys "
                     "refitted over every row")
        return text

    parts = [f"{k} {pl['grid']}×{pl['grid']} with {pl['toys_per_point']} toys per point, {pl['steps']} steps, "
             f"failure fraction {pl['failure_fraction']:.2g}{screened(pl)}" for k, pl in planes.items()]
    caption = (f"Sterile 3+1 (ν_μ disappearance), {cl:.0%} CL regions in the plane: allowed to the left of the "
               f"lines. Log grids in Δm²₄₁ ({DM2_MIN:g}–{DM2_MAX:g} eV²) × sin²2θ_μμ ({S_MIN:g}–{S_MAX:g}): "
               + "; ".join(parts) + ". Global best fit: minimum over the Δm² rows of fits with sin²2θ free in "
               "[0, 1] (the null inside every row), every nuisance profiled; failed toys count as outside both "
               "regions. Colour: coverage of Wilks' region measured with the toys (red: under-covers). "
               + (f"Right: CsI 2017 CEvNS count, {len(fc17['grid'])} points × {fc17['toys_per_point']} toys "
                  "(scans/fc_csi2017.py)." if fc17 else ""))
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.02, 0.0), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(wrap_math(caption, 170), fontsize=8, y=0.99)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    args.out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out, "coverage_sterile", tight=False)


if __name__ == "__main__":
    main()
