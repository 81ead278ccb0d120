"""Snowmass-style expected sensitivities of the planned COHERENT detectors (the main job).

    python scans/snowmass.py [--full] [--years 1] [--out figures] [--results results/snowmass]

For COH-Ar-750, COH-CryoCsI-10kg, COH-CryoCsI-700kg, COH-Ge-mini, NaIvETe, their combination (one
shared flux normalisation) and CsI-2021 as the running reference: expected (Asimov, median) 90% CL
sensitivities from the profiled Δχ² (raster scan in the coupling at each mass, Δχ² = 2.71; all
crossings kept), with every preset's nuisance priors. Scans are resumable (results/…); figures are
PNG and PDF; a Markdown table summarises the limits at benchmark masses.

This version covers the gauged L_μ−L_τ Z′ (with the (g−2)_μ band) and scalar dark matter at the
standard benchmark (α_D = 0.5, m_V = 3 m_χ). The CsI-2021 curve is its *expected* sensitivity with
the released exposure, not yet the limit from its data.
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
from cevns_jax._pytree import replace  # noqa: E402
from cevns_jax.forecast import AsimovForecast  # noqa: E402
from cevns_jax.models import NewPhysics, dark_matter, epsilon_from_Y, lmu_minus_ltau  # noqa: E402
from cevns_jax.models.zprime import muon_g2_shift  # noqa: E402
from cevns_jax.scan import Axis, raster_crossings, run_scan  # noqa: E402

cevns_jax.enable_x64()

PLANNED = ["COH-Ar-750", "COH-CryoCsI-10kg", "COH-CryoCsI-700kg", "COH-Ge-mini", "NaIvETe"]
REFERENCE = "COHERENT-CsI-2021"
LEVEL = 2.706  # 90% CL, one parameter at fixed mass (raster)
COLOURS = {"COH-Ar-750": "#1f77b4", "COH-CryoCsI-10kg": "#ff7f0e", "COH-CryoCsI-700kg": "#d62728",
           "COH-Ge-mini": "#2ca02c", "NaIvETe": "#9467bd", "combined": "k", REFERENCE: "0.5"}


def scale_exposure(exp, years: float):
    """Planned presets are one year long: scale their protons on target (and exposure-based backgrounds)."""
    if exp.info.status != "planned" or years == 1.0:
        return exp
    src = replace(exp.source, protons_on_target=exp.source.protons_on_target * years)
    bkg = {k: replace(b, counts=b.counts * years) for k, b in exp.backgrounds.items()}
    return replace(exp, source=src, backgrounds=bkg)


def limits(name, experiments, model_of, axes, coupling_axis, out, dark=False):
    fc = AsimovForecast(experiments, model_of, dark_matter=dark)
    result = run_scan(fc.delta_chi2, axes, out / name, memory_budget_bytes=4e8,
                      description={"experiments": [e.name for e in experiments], "level": LEVEL,
                                   "priors": fc.priors})
    grid = result.values["value"]
    crossings = raster_crossings(axes[1].values(), grid, LEVEL)
    first = np.array([c[0] if c else np.nan for c in crossings])
    return first, crossings


def plot(ax, masses, curves, xlabel, ylabel, title):
    for label, curve in curves.items():
        if label == REFERENCE:
            ax.fill_between(masses, curve, np.nanmax(curve) * 1e3, color="0.85", label=f"{REFERENCE} (expected, released exposure)")
        else:
            ax.plot(masses, curve, color=COLOURS.get(label, "k"), lw=2.4 if label == "combined" else 1.5,
                    ls="--" if label == "combined" else "-", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-resolution grids (for a GPU)")
    parser.add_argument("--years", type=float, default=3.0, help="exposure of the planned detectors [SNS years]")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--results", type=Path, default=Path("results/snowmass"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n_mass, n_coupling = (60, 120) if args.full else (14, 36)
    exps = {n: scale_exposure(cevns_jax.load_experiment(n), args.years) for n in PLANNED + [REFERENCE]}
    sets = {n: [exps[n]] for n in PLANNED + [REFERENCE]}
    sets["combined"] = [exps[n] for n in PLANNED]
    rows, start = [], time.perf_counter()
    tag = f"{args.years:g}y_{n_mass}x{n_coupling}"

    # --- L_μ − L_τ ------------------------------------------------------------------------------
    axes = [Axis("mass_MeV", 1.0, 1000.0, n_mass, "log"), Axis("g", 1e-5, 1e-1, n_coupling, "log")]
    masses = axes[0].values()
    model_of = lambda th: NewPhysics(zprime=lmu_minus_ltau(th["mass_MeV"], th["g"]))  # noqa: E731
    curves = {}
    for label, experiments in sets.items():
        curves[label], _ = limits(f"lmutau_{label}_{tag}", experiments, model_of, axes, "g", args.results)
        print(f"L_mu-L_tau {label}: done ({time.perf_counter() - start:.0f} s)")
    fig, ax = plt.subplots(figsize=(7, 5.2))
    plot(ax, masses, curves, "M_Z′ [MeV]", "g′ (90% CL expected)",
         f"Gauged L_μ−L_τ: planned detectors, {args.years:g} SNS years each\n"
         "expected 90% CL (Asimov, Δχ² = 2.71 raster), preset nuisance priors profiled")
    band_lo = np.sqrt(np.maximum((251e-11 - 2 * 59e-11) / np.asarray(muon_g2_shift(masses, 1.0)), 0))
    band_hi = np.sqrt((251e-11 + 2 * 59e-11) / np.asarray(muon_g2_shift(masses, 1.0)))
    ax.fill_between(masses, band_lo, band_hi, color="#e377c2", alpha=0.25,
                    label="(g−2)_μ 2021 band (2σ; tension ≲1σ after 2025)")
    ax.set_ylim(1e-5, 1e-1)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(args.out / f"snowmass_lmu_ltau.{ext}", dpi=120)
    plt.close(fig)
    for label, curve in curves.items():
        rows.append(("L_μ−L_τ g′", label, *(np.interp(np.log(m), np.log(masses), curve) for m in (10.0, 100.0))))

    # --- scalar dark matter ---------------------------------------------------------------------
    axes = [Axis("m_chi_MeV", 2.0, 40.0, n_mass, "log"), Axis("Y", 1e-13, 1e-7, n_coupling, "log")]
    masses = axes[0].values()

    def dm_of(th):
        eps = epsilon_from_Y(th["Y"], th["m_chi_MeV"])
        return NewPhysics(dark_matter=dark_matter(th["m_chi_MeV"], 3.0 * th["m_chi_MeV"], eps, 0.5))

    curves = {}
    for label, experiments in sets.items():
        curves[label], _ = limits(f"dm_{label}_{tag}", experiments, dm_of, axes, "Y", args.results, dark=True)
        print(f"dark matter {label}: done ({time.perf_counter() - start:.0f} s)")
    fig, ax = plt.subplots(figsize=(7, 5.2))
    plot(ax, masses, curves, "m_χ [MeV]", "Y = ε² α_D (m_χ/m_V)⁴ (90% CL expected)",
         f"Scalar dark matter, α_D = 0.5, m_V = 3 m_χ: {args.years:g} SNS years each\n"
         "expected 90% CL (Asimov, Δχ² = 2.71 raster), π⁰ yield ±15% and preset priors profiled")
    ax.set_ylim(1e-13, 1e-7)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(args.out / f"snowmass_dark_matter.{ext}", dpi=120)
    plt.close(fig)
    for label, curve in curves.items():
        rows.append(("scalar DM Y", label, *(np.interp(np.log(m), np.log(masses), curve) for m in (5.0, 20.0))))

    table = ["| observable | detector | limit at mass 1 | limit at mass 2 |", "|---|---|---|---|"]
    for obs, label, a, b in rows:
        table.append(f"| {obs} | {label} | {a:.3g} | {b:.3g} |")
    summary = (f"# Expected 90% CL sensitivities ({args.years:g} SNS years per planned detector; grid {n_mass}×{n_coupling})\n\n"
               "Masses: L_μ−L_τ at M_Z′ = 10 and 100 MeV; dark matter at m_χ = 5 and 20 MeV.\n\n" + "\n".join(table) + "\n")
    (args.out / "snowmass_summary.md").write_text(summary)
    print(summary)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
