"""Where Wilks fails: coverage of the Wilks region and Feldman–Cousins regions for a 3+1 sterile neutrino.

    python scans/coverage.py [--grid 10] [--toys 200] [--steps 4] [--csi-grid 8] [--csi-toys 100] [--csi-steps 8] [--csi2017 results/fc_csi2017]
                             [--out figures] [--results results/coverage]

Two (Δm²₄₁, |U_μ4|²) planes (log grids, ``--grid``² and ``--csi-grid``² hypotheses, Δm²₄₁ 0.1–100 eV²,
|U_μ4|² 0.003–0.5; each plane is stored in ``--results`` as it finishes and reused by a rerun with the same
settings and package source):

* COH-Ar-750 (3 SNS years, every preset nuisance profiled), observed = the SM Asimov data (the expected
  region: what a null experiment excludes);
* COHERENT-CsI-2021, observed = the released data (its release fit: AC counts constrain the steady
  state, every release nuisance profiled, flux prior 10%, as in the main job's data limits).

The statistic at a hypothesis θ_h is FC's t(θ_h) = χ²(θ_h, ν̂̂) − min_{θ′} χ²(θ′, ν̂), the minimum taken
over the grid *and* the no-oscillation point (U = 0: every Δm²), each χ² profiled over every nuisance
(``--steps`` / ``--csi-steps`` projected Fisher-scoring steps, :func:`cevns_jax.stats.minimise.fit_box`; convergence flags
counted). Toys at θ_h are generated as in :mod:`cevns_jax.stats.toys` (Poisson counts at the nuisances
profiled on the observed data, auxiliary measurements fluctuated; keys ``toy_key(seed, h, i)``), with a
:class:`~cevns_jax.stats.toys.ToyModel` whose parameter of interest is the grid index (templates computed
once per Δm² and combined exactly along |U_μ4|²: oscillations are the expensive part of the model). Per hypothesis:

* Wilks' 90% CL threshold for two parameters, 4.605, and its coverage measured with the toys,
  P(t ≤ 4.605 | θ_h) (binomial error); FC's critical value c(θ_h), the toys' 90% quantile;
* the regions {θ : t_obs(θ) ≤ 4.605} (Wilks) and {θ : t_obs(θ) ≤ c(θ)} (Feldman–Cousins).

The minimum over a grid is above the true minimum, so t here is the grid's t (the same definition for
the data and the toys, so the FC construction is consistent; Wilks' 4.605 assumes the continuous one).
With ``--csi2017`` the summary of ``scans/fc_csi2017.py`` (the small-count case: CEvNS count of the
CsI 2017 data) is drawn as a third panel. Writes ``figures/coverage_sterile.{png,pdf}`` and
``results/coverage/summary.json``. docs/physics.md §5.11.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import cevns_jax


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=int, default=10, help="points per axis of each plane")
    p.add_argument("--toys", type=int, default=200, help="toys per hypothesis")
    p.add_argument("--steps", type=int, default=4, help="Fisher-scoring steps per profiled fit, COH-Ar-750")
    p.add_argument("--csi-steps", type=int, default=8, help="the same for the CsI-2021 release fit (AC constraint)")
    p.add_argument("--csi-grid", type=int, default=8, help="points per axis of the CsI-2021 plane")
    p.add_argument("--csi-toys", type=int, default=100, help="toys per hypothesis of the CsI-2021 plane")
    p.add_argument("--batch", type=int, default=25, help="toys per compiled call")
    p.add_argument("--years", type=float, default=3.0, help="COH-Ar-750 exposure [SNS years]")
    p.add_argument("--seed", type=int, default=41)
    p.add_argument("--cl", type=float, default=0.9)
    p.add_argument("--csi2017", type=Path, default=Path("results/fc_csi2017"),
                   help="folder of scans/fc_csi2017.py's summary.json (drawn when present)")
    p.add_argument("--out", type=Path, default=Path("figures"))
    p.add_argument("--results", type=Path, default=Path("results/coverage"))
    return p.parse_args()


# ------------------------------------------------------------------ the two models' μ(template, ν)

def forecast_grid_mu(args, theta, nu):
    """μ of an Asimov forecast with the CEvNS template of grid point ``theta["index"]``."""
    from cevns_jax.stats.forecast import Signals, expected

    reference, templates = args
    t = jnp.take(templates, jnp.round(theta["index"]).astype(jnp.int32), axis=0)
    return expected(reference, [Signals(t)], nu)


def release_grid_mu(args, theta, nu):
    """μ of a release analysis (linear morphing) with the CEvNS template of grid point ``theta["index"]``."""
    from cevns_jax.stats.analyses import flat_means, morphed_counts

    analysis, templates = args
    t = jnp.take(templates, jnp.round(theta["index"]).astype(jnp.int32), axis=0)
    return flat_means(analysis, morphed_counts(analysis, {}, {"signal": t, "dark_matter": None}, nu))


def _sigmas(model):
    priors = dict(model.priors)
    return jnp.asarray([jnp.inf if priors.get(k) is None else float(priors[k]) for k in model.nuisance_names])


def _profile_all(model, counts, centre, n_steps: int):
    """χ² profiled over every nuisance at every template: (values, converged), each (n_templates,)."""
    from cevns_jax.stats.minimise import fit_box

    names = model.nuisance_names
    inv_var = 1.0 / _sigmas(model) ** 2
    lo, hi = jnp.full(len(names), -jnp.inf), jnp.full(len(names), jnp.inf)
    n_templates = model.args[1].shape[0]

    def one(j):
        mu = lambda x: model.mu_fn(model.args, {"index": j}, {k: x[i] for i, k in enumerate(names)})  # noqa: E731
        _, value, ok, _ = fit_box(mu, counts, centre, inv_var, centre, lo, hi, n_steps)
        return value, ok

    return jax.vmap(one)(jnp.arange(n_templates, dtype=jnp.float64))


@partial(jax.jit, static_argnames="n_steps")
def observed_profile(model, n_steps: int):
    return _profile_all(model, model.data, jnp.zeros(len(model.nuisance_names)), n_steps)


@partial(jax.jit, static_argnames="n_steps")
def toy_profiles(model, h, nu_gen, seed, index, n_steps: int):
    """Toys ``index`` (B,) of hypothesis ``h``: χ² at every template (B, n_templates) and convergence."""
    from cevns_jax.stats.toys import generate, toy_key

    def one(i):
        counts, centre = generate(model, jnp.atleast_1d(h.astype(jnp.float64)), nu_gen, toy_key(seed, h, i))
        return _profile_all(model, counts, centre, n_steps)

    return jax.vmap(one)(index)


def construction(model, n_hyp: int, n_toys: int, batch: int, seed: int, n_steps: int, label: str) -> dict:
    """t of every toy at every hypothesis (the first ``n_hyp`` templates; the rest only enter the minimum),
    and t_obs. Returns {"t": (n_hyp, n_toys), "ok": (n_hyp, n_toys), "t_obs": (n_hyp,), "obs_ok"}."""
    from cevns_jax.stats.toys import generating_batch

    start = time.perf_counter()
    chi2, ok = (np.asarray(a) for a in observed_profile(model, n_steps))
    t_obs = chi2[:n_hyp] - chi2.min()
    nu_gen = np.asarray(generating_batch(model, jnp.arange(n_hyp, dtype=jnp.float64)[:, None]))
    t, good = np.zeros((n_hyp, n_toys)), np.zeros((n_hyp, n_toys), bool)
    for h in range(n_hyp):
        for b0 in range(0, n_toys, batch):
            idx = jnp.arange(b0, b0 + batch, dtype=jnp.uint32)
            c, k = (np.asarray(a) for a in toy_profiles(model, jnp.uint32(h), jnp.asarray(nu_gen[h]), jnp.uint32(seed),
                                                        idx, n_steps))
            m = min(batch, n_toys - b0)
            best = np.argmin(c, axis=1)
            t[h, b0:b0 + m] = (c[:, h] - c.min(axis=1))[:m]
            good[h, b0:b0 + m] = (k[:, h] & k[np.arange(len(best)), best])[:m]
        if h == 0 or (h + 1) % 10 == 0:
            print(f"  {label}: {h + 1}/{n_hyp} hypotheses ({time.perf_counter() - start:.0f} s)", flush=True)
    return {"t": t, "ok": good, "t_obs": t_obs, "obs_ok": bool(ok[:n_hyp].all() and ok[np.argmin(chi2)])}


def main() -> None:
    args = _parse()
    cevns_jax.enable_x64()
    cevns_jax.fast_cpu_compilation()
    from scipy import stats

    from cevns_jax import replace
    from cevns_jax.models import NewPhysics, sterile_mixing
    from cevns_jax.models.sterile import FULL_AMPLITUDE_MIXING, disappearance_amplitude
    from cevns_jax.nuisances import shape_names
    from cevns_jax.provenance import source_hash
    from cevns_jax.stats.analyses import load_analysis, morphing_templates, observed_vector, with_linear_morphing
    from cevns_jax.stats.fits import fit_priors
    from cevns_jax.stats.forecast import ForecastSpec, asimov_reference, signals
    from cevns_jax.stats.neyman import critical_values
    from cevns_jax.stats.toys import ToyModel

    start = time.perf_counter()
    wilks = float(stats.chi2(2).ppf(args.cl))
    sterile = lambda d, u: NewPhysics(sterile=sterile_mixing(d, Umu4_sq=u))  # noqa: E731
    args.results.mkdir(parents=True, exist_ok=True)

    def plane(n):
        dm2, umu = np.geomspace(0.1, 100.0, n), np.geomspace(3e-3, 0.5, n)
        D, U = (jnp.asarray(a.ravel()) for a in np.meshgrid(dm2, umu, indexing="ij"))  # h = (i_dm2, j_U), C order
        return dm2, umu, D, U

    def plane_templates(templ, n):
        """Templates of every plane point (C order) and of the null: the oscillated fold once per Δm², at
        |U|² = ½, and the SM; at |U|² the exact affine combination t₀ + 4|U|²(1 − |U|²)(t_½ − t₀) (every rate is
        linear in P_μμ, docs/physics.md §5.9), so n folds instead of n²."""
        dm2, umu, _, _ = plane(n)
        half = templ(jnp.asarray(dm2), jnp.full(n, FULL_AMPLITUDE_MIXING))  # (n, bins…)
        null = templ(jnp.asarray([1.0]), jnp.asarray([0.0]))  # (1, bins…)
        s = jnp.asarray(disappearance_amplitude(umu)).reshape((1, n) + (1,) * (half.ndim - 1))
        grid = null[:, None] + s * (half[:, None] - null[:, None])  # (n_dm2, n_U, bins…)
        return jnp.concatenate([grid.reshape((n * n,) + half.shape[1:]), null])

    def coh_ar(n):  # Asimov forecast reference (SM data), templates of every grid point and of the null
        exp = cevns_jax.load_experiment("COH-Ar-750")
        exp = replace(exp, source=replace(exp.source, protons_on_target=exp.source.protons_on_target * args.years),
                      backgrounds={k: replace(b, counts=b.counts * args.years) for k, b in exp.backgrounds.items()})
        reference = asimov_reference((exp,), ForecastSpec())
        names = shape_names(dict(reference.labels[0]))
        t = plane_templates(jax.jit(jax.vmap(lambda d, u: signals(exp, sterile(d, u), names).cevns)), n)
        priors = reference.prior_dict()
        return ToyModel((reference, t), reference.data, {k: jnp.zeros(()) for k in priors}, forecast_grid_mu,
                        tuple(sorted(priors.items())), (("index", None, None),), args.steps)

    def csi2021(n):  # the release analysis with linear morphing (the main job's data limit), sterile templates
        analysis = with_linear_morphing(load_analysis("COHERENT-CsI-2021", morphing="exact"))
        t = plane_templates(jax.jit(jax.vmap(lambda d, u: morphing_templates(analysis, {}, None, sterile(d, u))["signal"])), n)
        priors = fit_priors(analysis)
        return ToyModel((analysis, t), observed_vector(analysis), {k: jnp.zeros(()) for k in priors}, release_grid_mu,
                        tuple(sorted(priors.items())), (("index", None, None),), args.csi_steps)

    summary = {"cl": args.cl, "wilks_threshold": wilks, "seed": args.seed, "planes": {}}
    results = {}
    for key, make, n, toys, steps, title in (
            ("COH-Ar-750", coh_ar, args.grid, args.toys, args.steps, f"COH-Ar-750, {args.years:g} SNS years, SM Asimov data"),
            ("CsI-2021", csi2021, args.csi_grid, args.csi_toys, args.csi_steps, "COHERENT CsI-2021 data")):
        dm2, umu, _, _ = plane(n)
        ident = {"grid": n, "toys": toys, "steps": steps, "seed": args.seed, "years": args.years, "source": source_hash()}
        stored = args.results / f"{key}.json"
        saved = json.loads(stored.read_text()) if stored.exists() else {}
        if saved.get("identity") == ident:
            r = {k: np.asarray(v) for k, v in saved["values"].items()}
        else:
            model = make(n)
            print(f"{key}: templates {model.args[1].shape} ({time.perf_counter() - start:.0f} s)", flush=True)
            r = construction(model, n * n, toys, args.batch, args.seed, steps, key)
            stored.write_text(json.dumps({"identity": ident, "values": {k: np.asarray(v).tolist() for k, v in r.items()}}))
        ok = np.asarray(r["ok"], dtype=bool)
        crit = critical_values(r["t"], args.cl, ok).reshape(n, n)
        cover = np.mean((r["t"] <= wilks) & ok, axis=-1).reshape(n, n)
        t_obs = np.asarray(r["t_obs"]).reshape(n, n)
        results[key] = (dm2, umu, crit, cover, t_obs, title)
        summary["planes"][key] = {
            "title": title, "grid": n, "toys_per_point": toys, "steps": steps, "dm2_eV2": dm2.tolist(),
            "Umu4_sq": umu.tolist(), "fc_critical": crit.tolist(), "wilks_coverage": cover.tolist(),
            "t_obs": t_obs.tolist(), "failure_fraction": float(1 - ok.mean()),
            "observed_fits_converged": bool(r["obs_ok"]),
            "wilks_region_points": int((t_obs <= wilks).sum()), "fc_region_points": int((t_obs <= crit).sum()),
            "coverage_min": float(cover.min()), "coverage_median": float(np.median(cover)),
            "critical_min": float(crit.min()), "critical_max": float(crit.max())}
        print(f"{key}: Wilks coverage {cover.min():.3f}–{cover.max():.3f} (median {np.median(cover):.3f}); FC critical "
              f"{crit.min():.2f}–{crit.max():.2f} (Wilks {wilks:.3f}); allowed points Wilks {(t_obs <= wilks).sum()}, "
              f"FC {(t_obs <= crit).sum()} of {n * n}; failure fraction {1 - ok.mean():.2g} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=1))
    draw(args, wilks, results, summary)
    print(f"total {time.perf_counter() - start:.0f} s")


def draw(args, wilks, results: dict, summary: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from figure_style import save_figure, wrap_math

    csi2017 = args.csi2017 / "summary.json"
    fc17 = json.loads(csi2017.read_text()) if csi2017.exists() else None
    ncol = 3 if fc17 else 2
    fig, axs = plt.subplots(1, ncol, figsize=(5.6 * ncol, 6.2))
    for ax, (key, (dm2, umu, crit, cover, t_obs, title)) in zip(axs, results.items()):
        mesh = ax.pcolormesh(umu, dm2, cover, cmap="RdBu", vmin=args.cl - 0.15, vmax=args.cl + 0.15, shading="nearest")
        ax.contour(umu, dm2, t_obs - wilks, levels=[0.0], colors="C1", linewidths=2.0, linestyles="--")
        ax.contour(umu, dm2, t_obs - crit, levels=[0.0], colors="k", linewidths=1.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$|U_{\mu 4}|^2$")
        ax.set_ylabel(r"$\Delta m^2_{41}$ [eV$^2$]")
        ax.set_title(title, fontsize=9)
        fig.colorbar(mesh, ax=ax, label=f"coverage of the Wilks region (nominal {args.cl:.0%})", shrink=0.85)
    handles = [Line2D([], [], color="C1", ls="--", lw=2.0, label=r"Wilks, $t_{\rm obs} = 4.61$ ($\chi^2_2$)"),
               Line2D([], [], color="k", lw=1.6, label=r"Feldman–Cousins, $t_{\rm obs} = c(\theta)$ (toys)")]
    if fc17:
        ax = axs[2]
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
    p = summary["planes"]
    a, c = p["COH-Ar-750"], p["CsI-2021"]
    caption = (f"Sterile 3+1 (ν_μ disappearance), {args.cl:.0%} CL regions in the plane: allowed to the left of the "
               f"lines. Log grids in Δm²₄₁ (0.1–100 eV²) × |U_μ4|² (0.003–0.5): COH-Ar-750 {a['grid']}×{a['grid']} with "
               f"{a['toys_per_point']} toys per point, CsI-2021 {c['grid']}×{c['grid']} with {c['toys_per_point']}; "
               f"minimum of χ² over the grid and U = 0, every nuisance profiled ({a['steps']} and {c['steps']} steps; "
               f"failure fraction {a['failure_fraction']:.2g} and {c['failure_fraction']:.2g}, failed toys count as "
               "outside both regions). Colour: coverage of Wilks' region measured with the toys (red: under-covers). "
               + (f"Right: CsI 2017 CEvNS count, {len(fc17['grid'])} points × {fc17['toys_per_point']} toys "
                  "(scans/fc_csi2017.py)." if fc17 else ""))
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.02, 0.0), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(wrap_math(caption, 170), fontsize=8, y=0.99)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    args.out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out, "coverage_sterile", tight=False)


if __name__ == "__main__":
    main()
