"""Validation figures of the fits to COHERENT's data releases, written to figures/.

    python scans/fit_figures.py [--releases NAME ...] [--scan-points 41] [--out figures]

For each release: the data with the fitted model stacked by component in the energy and time
projections, and the profile Δχ² in the CEvNS count (with the published result for comparison).
Also writes figures/fits_summary.json with the numbers shown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax.stats import analyses, fits  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts

COLOURS = {"cevns": "#d62728", "steady_state": "#7f7f7f", "brn": "#1f77b4", "brn_prompt": "#1f77b4",
           "brn_delayed": "#aec7e8", "nin": "#2ca02c"}
LABELS = {"cevns": "CEvNS (fit)", "steady_state": "steady state", "brn": "beam-related n", "brn_prompt": "prompt BRN",
          "brn_delayed": "delayed BRN", "nin": "ν-induced n"}


def _project(array, analysis, axis_name):
    a = np.asarray(array)
    if a.ndim == 3:  # CENNS-10: (energy, F90, time)
        a = a.sum(axis=1)
    return a.sum(axis=1) if axis_name == "energy" else a.sum(axis=0)


def _stacked(ax, edges, parts, data, xlabel):
    bottom = np.zeros(len(edges) - 1)
    order = [k for k in parts if k != "cevns"] + ["cevns"]
    for name in order:
        ax.stairs(bottom + parts[name], edges, baseline=bottom, fill=True, color=COLOURS.get(name, "#999999"),
                  alpha=0.85, label=LABELS.get(name, name))
        bottom = bottom + parts[name]
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, data, yerr=np.sqrt(np.maximum(data, 1.0)), fmt="o", color="k", ms=3, label="data (beam on)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events per bin")
    ax.set_xlim(edges[0], edges[-1])


def figure(name: str, scan_points: int, out: Path) -> dict:
    template = "factorised" if name == "COHERENT-CENNS10-2020" else "model"
    result = fits.fit_release(name, signal_template=template, n_scan=scan_points)
    analysis = analyses.load_analysis(name, template)
    parts = analyses.model_counts(analysis, {"cevns_count": result["best"]}, result["nuisances"])
    exp = analysis.experiment
    e_edges = np.asarray(exp.detector.binning.energy_edges)
    t_edges = np.asarray(exp.detector.binning.time_edges_ns) / 1e3
    unit = "keVee" if exp.detector.observable == "keVee" else "PE"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, axis_name, edges, xlabel in ((axes[0], "energy", e_edges, f"reconstructed energy [{unit}]"),
                                         (axes[1], "time", t_edges, "arrival time [μs]")):
        proj = {k: _project(v, analysis, axis_name) for k, v in parts.items()}
        _stacked(ax, edges, proj, _project(analysis.observed, analysis, axis_name), xlabel)
    axes[0].legend(fontsize=8)
    scan = np.asarray(result["scan"]["values"]), np.asarray(result["scan"]["delta_chi2"])
    ax = axes[2]
    ax.plot(*scan, color="#d62728", label="cevns_jax profile")
    ax.axhline(1.0, color="k", lw=0.7, ls=":")
    pub = analyses.PUBLISHED[name]
    ax.axvspan(pub["cevns"] - pub["error"], pub["cevns"] + pub["error"], color="0.85", label=f"published {pub['cevns']:g} ± {pub['error']:g}")
    ax.axvline(result["predicted"], color="#1f77b4", ls="--", label=f"SM prediction {result['predicted']:.0f}")
    ax.set_xlabel("CEvNS events in the analysis region")
    ax.set_ylabel("profile Δχ²")
    ax.set_ylim(0, 9)
    ax.legend(fontsize=8)
    fig.suptitle(f"{name}: fitted CEvNS {result['best']:.0f} +{result['hi'] - result['best']:.0f} −{result['best'] - result['lo']:.0f} "
                 f"events, {result['significance_sigma']:.1f}σ (template: {template}; {exp.info.citation.split(';')[0]})", fontsize=10)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"fit_{name}.{ext}", dpi=120)
    plt.close(fig)
    keep = ("best", "lo", "hi", "significance_sigma", "predicted", "cross_section_cm2", "nuisances", "chi2_min", "n_bins")
    return {"template": template, **{k: result[k] for k in keep}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", nargs="*", default=list(analyses.RELEASES))
    parser.add_argument("--scan-points", type=int, default=41)
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in args.releases:
        summary[name] = figure(name, args.scan_points, args.out)
        print(f"{name}: {summary[name]['best']:.1f} (+{summary[name]['hi'] - summary[name]['best']:.1f} "
              f"-{summary[name]['best'] - summary[name]['lo']:.1f}), {summary[name]['significance_sigma']:.2f} sigma")
    weak = {}
    for label, releases in (("COHERENT-CsI-2021", "COHERENT-CsI-2021"), ("COHERENT-CENNS10-2020", "COHERENT-CENNS10-2020"),
                            ("CsI-2021+CENNS10-2020", ["COHERENT-CsI-2021", "COHERENT-CENNS10-2020"])):
        r = fits.fit_release(releases, poi="sin2_theta_w", n_scan=args.scan_points)
        weak[label] = {k: r[k] for k in ("best", "lo", "hi")}
        print(f"sin2_theta_w {label}: {r['best']:.4f} +{r['hi'] - r['best']:.4f} -{r['best'] - r['lo']:.4f}")
    (args.out / "fits_summary.json").write_text(json.dumps({"cevns": summary, "sin2_theta_w": weak}, indent=2))


if __name__ == "__main__":
    from job import run_job

    run_job(main)
