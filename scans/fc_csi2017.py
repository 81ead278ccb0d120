"""Where Wilks fails, small counts: Wilks vs Feldman–Cousins for the CEvNS count of the CsI 2017 data.

    python scans/fc_csi2017.py [--grid 41] [--toys 1000] [--max 300] [--cl 0.9] [--out results/fc_csi2017]

The release fit of COHERENT's first CsI data (docs/physics.md §5.8: beam-on coincidence histogram,
steady state fixed by the anti-coincidence counts, every release nuisance profiled), parameter of interest
the CEvNS count s ≥ 0. On a grid of s:

* t_obs(s) = χ²(s, ν̂̂) − min_{s′ ≥ 0} χ²(s′, ν̂) of the data (:func:`cevns_jax.stats.neyman.observed_statistics`);
* ``--toys`` toys at every s (generated at the profiled nuisances of s, auxiliary measurements fluctuated;
  :func:`cevns_jax.toyscan.run_toys`, resumable in ``--out``/toys);
* the FC critical value c(s) (their ``--cl`` quantile) against Wilks' χ²₁ threshold (2.706 at 90%), and the
  coverage of the Wilks region measured with the same toys, P(t ≤ 2.706 | s);
* the two intervals {s : t_obs ≤ threshold} (grid points; the grid step is their precision).

Writes ``summary.json`` and ``wilks_vs_fc.png`` into ``--out`` (not a test, not a preset figure).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=int, default=41, help="points of the CEvNS-count grid")
    p.add_argument("--toys", type=int, default=1000, help="toys per grid point")
    p.add_argument("--max", type=float, default=300.0, help="largest CEvNS count of the grid")
    p.add_argument("--cl", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=2017)
    p.add_argument("--out", type=Path, default=Path("results/fc_csi2017"))
    return p.parse_args()


def _release_mu(objective, theta, nu):
    return objective.mu({"cevns_count": theta["cevns_count"]}, nu)


def main() -> None:
    args = _parse()
    import numpy as np
    from scipy import stats

    import cevns_jax
    from cevns_jax.scan import Axis
    from cevns_jax.stats.analyses import load_analysis
    from cevns_jax.stats.fits import Objective
    from cevns_jax.stats.neyman import confidence_region, critical_values, interval, observed_statistics
    from cevns_jax.stats.toys import ToyModel
    from cevns_jax.toyscan import run_toys

    cevns_jax.enable_x64()
    cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts
    objective = Objective([load_analysis("COHERENT-CsI-2017")], "cevns_count")
    model = ToyModel(objective, objective.observed(), objective.zero(), _release_mu,
                     tuple(sorted(objective.priors.items())), (("cevns_count", 0.0, None),))
    axis = Axis("cevns_count", 0.0, args.max, args.grid)
    s = axis.values()
    t_obs = observed_statistics(model, s[:, None])["t"]
    run = run_toys(model, [axis], args.toys, args.out / "toys", seed=args.seed, label="CsI 2017 FC toys")
    crit = critical_values(run.values["t"], args.cl, run.values["converged"])
    wilks = float(stats.chi2(1).ppf(args.cl))
    coverage = np.mean((run.values["t"] <= wilks) & (run.values["converged"] > 0.5), axis=-1)
    fc_lo, fc_hi, fc_cont = interval(s, confidence_region(t_obs, crit))
    w_lo, w_hi, w_cont = interval(s, t_obs <= wilks)
    summary = {
        "release": "COHERENT-CsI-2017", "poi": "cevns_count", "cl": args.cl, "toys_per_point": args.toys,
        "grid": s.tolist(), "t_obs": t_obs.tolist(), "fc_critical": crit.tolist(), "wilks_threshold": wilks,
        "wilks_coverage": coverage.tolist(), "wilks_coverage_error": np.sqrt(coverage * (1 - coverage) / args.toys).tolist(),
        "failure_fraction": run.failure_fraction.tolist(),
        "fc_interval": [fc_lo, fc_hi], "fc_interval_contiguous": fc_cont,
        "wilks_interval": [w_lo, w_hi], "wilks_interval_contiguous": w_cont,
        "grid_step": float(s[1] - s[0]) if s.size > 1 else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"CsI 2017, {args.cl:.0%} CL on the CEvNS count (grid step {summary['grid_step']}): "
          f"Wilks [{w_lo:.1f}, {w_hi:.1f}], Feldman–Cousins [{fc_lo:.1f}, {fc_hi:.1f}]; "
          f"Wilks coverage {coverage.min():.3f}–{coverage.max():.3f}; "
          f"failure fraction ≤ {run.failure_fraction.max():.3g}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    top.plot(s, t_obs, "k-", label=r"$t_{\rm obs}(s)$ (data)")
    top.plot(s, crit, "C0-", label=f"FC critical value ({args.toys} toys)")
    top.axhline(wilks, color="C1", ls="--", label=f"Wilks $\\chi^2_1$ ({wilks:.3f})")
    top.set_ylabel("test statistic")
    top.set_ylim(0, max(3 * wilks, float(np.max(crit[np.isfinite(crit)], initial=wilks)) * 1.2))
    top.legend(fontsize=8)
    bottom.errorbar(s, coverage, yerr=summary["wilks_coverage_error"], fmt="o", ms=3, color="C1")
    bottom.axhline(args.cl, color="k", lw=0.8)
    bottom.set_ylabel("coverage of Wilks")
    bottom.set_xlabel("CEvNS count $s$ (CsI 2017 analysis region)")
    fig.suptitle(f"COHERENT CsI 2017: Wilks vs Feldman–Cousins, {args.cl:.0%} CL", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out / "wilks_vs_fc.png", dpi=150)


if __name__ == "__main__":
    from job import run_job

    run_job(main)
