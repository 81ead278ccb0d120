"""Is there one germanium quenching factor that fits reactor and SNS data? (issue 13 item 7)

    python scans/germanium_quenching.py [--out figures] [--k-nominal 0.162] [--points 49]

Data: the CONUS+ 2025 on/off count (`cevns_jax.stats.analyses.conusplus_analysis`: 327 kg·d on, 60 kg·d off,
fitted 395 ± 106) and the COHERENT Ge-Mini 2025 excess (`ge_mini_analysis`: 20.6 +7.1 −6.3 over a background
fixed by the published 3.9σ), each a one-bin Poisson likelihood (docs/physics.md §5.10). The CEvNS signal of each
is the SM prediction of its preset with a Lindhard k, so the count depends on k only through quenching: at the
CONUS+ threshold (170 eVee ≈ 1 keVnr) strongly, at Ge-Mini's (1.5 keVee ≈ 6 keVnr) mildly.

Both presets are given the same nominal k (``--k-nominal``), and the fit parameter is the shift of that k
(``quenching_k``, a nuisance of each analysis without prior); the joint fit shares it
(``share=(("quenching_k", "nucleus"),)``, docs/physics.md §5.6): one quenching curve for both sources. Profiled:
the reactor ν̄ yield (±2.5%, the CONUS+ preset) and the SNS ν flux (±10%, the Ge-Mini preset), and the CONUS+
background (free, fixed by the reactor-off count). Δχ²(k) = min χ²(k) − min over k; intervals are root-found
crossings of Δχ² = 1 (68%) and 2.706 (90%, two-sided). The compatibility of the two data sets is the parameter
goodness of fit χ²_PG = χ²_joint,min − χ²_CONUS+,min − χ²_Ge-Mini,min (1 degree of freedom: one shared k instead
of two; Maltoni & Schwetz, PRD 68, 033020 (2003)).

Outputs: figures/germanium_quenching.{png,pdf} (Δχ² curves with the k values in use) and
figures/germanium_quenching.md (the numbers).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import chi2 as chi2_dist  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import constants as C  # noqa: E402
from cevns_jax import replace  # noqa: E402
from cevns_jax.quenching import AdiabaticQuenching  # noqa: E402
from cevns_jax.rates import total_cevns  # noqa: E402
from cevns_jax.stats.analyses import load_analysis, with_nuisances  # noqa: E402
from cevns_jax.stats.fits import Objective, fixed_interval, fixed_minimum, fixed_profile  # noqa: E402
from cevns_jax.xsec import resolve_standard_model  # noqa: E402
from figure_style import legend_outside, save_figure  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()

ANALYSES = ("CONUS+-2025", "COHERENT-Ge-Mini-2025")
K_IN_USE = {"CONUS (Bonhomme et al. 2022)": (0.162, 0.004), "Lindhard $0.133\\,Z^{2/3}A^{-1/2}$": (0.157, None),
            "Scholz et al. 2016": (0.179, 0.001)}
"""Germanium Lindhard k values in use (docs/physics.md §3.8.1) with their quoted errors."""
SHARE = (("quenching_k", "nucleus"),)
LEVELS = {"68%": 1.0, "90%": C.DELTA_CHI2_90CL}
K_STEP = 0.01
"""First bracketing step of the interval search in k (≈ the CONUS+ 1σ width)."""


def analysis(name: str, k_nominal: float, quenching=None):
    """The counting analysis of ``name`` with nominal Lindhard k ``k_nominal`` (or the given quenching model),
    the exact forward model at every step, and the k shift and flux as nuisances (flux: the preset's prior)."""
    a = load_analysis(name, morphing="exact")
    det = a.experiment.detector
    q = quenching if quenching is not None else replace(det.quenching, k=jnp.asarray(k_nominal))
    a = replace(a, experiment=replace(a.experiment, detector=replace(det, quenching=q)))
    return with_nuisances(a, "quenching_k", "flux")


def objective(analyses, share: tuple = ()):
    return Objective(analyses, "sin2_theta_w", share=share)


def sm_poi(a) -> float:
    return float(resolve_standard_model(a.experiment).sin2_theta_w)


def k_label(obj: Objective) -> str:
    return next(label for label in obj.priors if label.endswith("quenching_k"))


def measure(obj: Objective, poi: float, k_nominal: float, grid) -> dict:
    """Best k, χ²_min, Δχ² on ``grid`` (absolute k) and the 68%/90% intervals of one objective."""
    label = k_label(obj)
    shift, chi2_min = fixed_minimum(obj, poi, label)
    curve = fixed_profile(obj, poi, label, np.asarray(grid) - k_nominal) - chi2_min
    out = {"label": label, "best": k_nominal + shift, "chi2_min": chi2_min, "curve": curve, "intervals": {}}
    for name, level in LEVELS.items():
        lo, hi = fixed_interval(obj, poi, label, shift, chi2_min, K_STEP, level=level)
        out["intervals"][name] = (k_nominal + lo.value, k_nominal + hi.value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--k-nominal", type=float, default=0.162, help="common nominal Lindhard k of both presets")
    parser.add_argument("--points", type=int, default=49, help="points of the plotted Δχ² curves (intervals are solved)")
    args = parser.parse_args()
    if args.points < 3 or not 0.0 < args.k_nominal < 1.0:
        parser.error("--points must be ≥ 3 and --k-nominal in (0, 1)")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    k0 = args.k_nominal
    parts = {name: analysis(name, k0) for name in ANALYSES}
    poi = sm_poi(parts["CONUS+-2025"])
    grid = np.linspace(0.08, 0.30, args.points)
    results = {name: measure(objective([a]), poi, k0, grid) for name, a in parts.items()}
    print(f"single fits done ({time.perf_counter() - start:.0f} s)", flush=True)
    joint = objective(list(parts.values()), SHARE)
    results["joint (one k)"] = measure(joint, poi, k0, grid)
    print(f"joint fit done ({time.perf_counter() - start:.0f} s)", flush=True)
    pg = results["joint (one k)"]["chi2_min"] - sum(results[n]["chi2_min"] for n in ANALYSES)
    p_pg = float(chi2_dist.sf(max(pg, 0.0), 1))

    # predicted SM counts at the k values in use and with the adiabatic (Scholz) curve, for the table
    counts = {}
    for name, a in parts.items():
        exp = a.experiment
        row = {f"k = {k:.3f}": float(total_cevns(replace(exp, detector=replace(exp.detector, quenching=replace(
            exp.detector.quenching, k=jnp.asarray(k)))))) for k in (0.157, 0.162, 0.179)}
        adiabatic = AdiabaticQuenching(k=jnp.asarray(0.179), xi_keV=jnp.asarray(0.16))
        row["adiabatic (k 0.179, ξ 0.16 keVnr)"] = float(total_cevns(replace(exp, detector=replace(exp.detector, quenching=adiabatic))))
        counts[name] = row

    colours = {"CONUS+-2025": "C0", "COHERENT-Ge-Mini-2025": "C1", "joint (one k)": "k"}
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    for name, r in results.items():
        ax.plot(grid, r["curve"], color=colours[name], lw=2.0 if name.startswith("joint") else 1.5,
                label=f"{name}: k = {r['best']:.3f} [{r['intervals']['68%'][0]:.3f}, {r['intervals']['68%'][1]:.3f}]")
        ax.plot([r["best"]], [0.0], "o", color=colours[name], ms=4, clip_on=False)
    for (name, (k, err)), ls in zip(K_IN_USE.items(), (":", "--", "-.")):
        if err:
            ax.axvspan(k - err, k + err, color="0.85", zorder=0)
        ax.axvline(k, color="0.35", ls=ls, lw=1.0, label=f"{name}: {k}" + (f" ± {err}" if err else ""))
    for level in LEVELS.values():
        ax.axhline(level, color="0.6", lw=0.7)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0, 10)
    ax.set_xlabel("germanium Lindhard k (one quenching curve for both sources)")
    ax.set_ylabel(r"profiled $\Delta\chi^2$")
    ax.set_title("CONUS+ 2025 (reactor) and COHERENT Ge-Mini 2025 (SNS): one-bin counts from published numbers;\n"
                 rf"flux priors profiled; lines at $\Delta\chi^2$ = 1, 2.71; parameter GoF $\chi^2_{{PG}}$ = {pg:.2f} (p = {p_pg:.2f})",
                 fontsize=8)
    legend_outside(ax, fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, args.out, "germanium_quenching")

    cell = lambda a, b: f"[{a:.4f}, {b:.4f}]"  # noqa: E731
    rows = "\n".join(f"| {n} | {r['best']:.4f} | {cell(*r['intervals']['68%'])} | {cell(*r['intervals']['90%'])} | {max(r['chi2_min'], 0.0):.3f} |"
                     for n, r in results.items())
    count_rows = "\n".join(f"| {n} | " + " | ".join(f"{v:.1f}" for v in row.values()) + " |" for n, row in counts.items())
    header = " | ".join(next(iter(counts.values())))
    text = f"""# One germanium quenching factor for reactor and SNS data? (scans/germanium_quenching.py)

Data (one bin each, docs/physics.md §5.10): CONUS+ 2025 (arXiv:2501.05206: 395 ± 106 fitted, 327 kg·d on, 60 kg·d
off; background from the published error) and COHERENT Ge-Mini 2025 (PRL 134, 231801: excess 20.6 +7.1 −6.3,
10.22 GWh·kg, 3.9σ; background 21.8 events from the published significance). Signal: each preset's SM CEvNS with a
Lindhard k common to both (nominal {k0}, the fit moves it; one shared nuisance in the joint fit). Profiled: the
reactor ν̄ yield (±2.5%), the SNS flux (±10%), the CONUS+ background (free, reactor-off count). Intervals: root-found
Δχ² = 1 and 2.706 crossings.

| data | best k | 68% | 90% | χ²_min |
|---|---|---|---|---|
{rows}

Parameter goodness of fit (one k for both against one each): χ²_PG = {pg:.3f}, 1 dof, p = {p_pg:.3f}.

Reading: CONUS+ (threshold ≈ 1 keVnr) measures k; Ge-Mini (threshold ≈ 6 keVnr) hardly depends on it (its SM count
moves by {100 * (counts["COHERENT-Ge-Mini-2025"]["k = 0.179"] / counts["COHERENT-Ge-Mini-2025"]["k = 0.157"] - 1):.1f}% from
k = 0.157 to 0.179, table below), so its low best k only expresses its deficit (20.6 observed against
{counts["COHERENT-Ge-Mini-2025"][f"k = {0.162:.3f}"]:.1f} predicted at k = 0.162, inside the flux prior and
Poisson error). The joint k is the CONUS+ one, and one k describes both data sets at p = {p_pg:.2f}.

k values in use: CONUS 0.162 ± 0.004 (Bonhomme et al., EPJC 82, 815 (2022)), 0.157 (Lindhard's formula), 0.179 ±
0.001 (Scholz et al., PRD 94, 122003 (2016), with their adiabatic correction).

SM CEvNS counts of the two presets (as fitted: CONUS+ on its 170 eVee–1 keVee region, Ge-Mini summed over its bins
with the 1.5 keVee efficiency):

| preset | {header} |
|---|---|---|---|---|
{count_rows}

Dresden-II-motivated curves (iron filter "Fef", photoneutron "YBe"; Collar et al., PRD 103, 122003 (2021)) are not
shipped (no machine-readable source, docs/physics.md §3.8.1), so they are not compared here; the adiabatic
(Scholz) curve above is the package's non-Lindhard alternative.

Caveats: one-bin likelihoods from published totals (no spectral shape); systematic uncertainties inside the
published CONUS+ error are counted as background (docs/physics.md §5.10); the CONUS+ preset has a flat
efficiency above one effective 170 eVee threshold. Total {time.perf_counter() - start:.0f} s.
"""
    (args.out / "germanium_quenching.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
