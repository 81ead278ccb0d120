"""The figures of the main job (scans/snowmass.py): limit curves with their expected bands and the data's
exclusion, the NSI planes, the Fisher ellipses; every one drawn from numbers computed before (so a figure
whose inputs did not change is not drawn again, :class:`figure_style.FigureRecord`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cevns_jax.models.zprime import muon_g2_shift  # noqa: E402
from cevns_jax.stats.crossings import LimitCurves  # noqa: E402
from figure_style import legend_outside, plain_log_ticks, save_figure, style, wrap_math  # noqa: E402
from study_programs import BAND_CURVE, DATA, LEVEL_2D, PLANNED, REFERENCE, WITH_MONITOR  # noqa: E402

def draw_bands(ax, masses, bands: np.ndarray, label: str, swap: bool) -> None:
    """±2σ (yellow) and ±1σ (green) expected bands around a median limit (rows of :data:`BAND_LEVELS`)."""
    fill = ax.fill_betweenx if swap else ax.fill_between
    ok2, ok1 = np.isfinite(bands[0]) & np.isfinite(bands[3]), np.isfinite(bands[1]) & np.isfinite(bands[2])
    fill(masses, bands[0], bands[3], where=ok2, color="#ffdd33", lw=0, zorder=0.6, label=f"{label}: expected $\\pm2\\sigma$")
    fill(masses, bands[1], bands[2], where=ok1, color="#33cc33", lw=0, zorder=0.7, label=f"{label}: expected $\\pm1\\sigma$")


def excluded_bands(crossings: list, top: float) -> list:
    """Excluded coupling bands from the solved crossings at each mass: [(lower, upper) arrays, …], NaN where a
    band does not exist. Δχ² < level at the smallest coupling, so the 1st–2nd crossings bound an excluded
    band, the 2nd–3rd an allowed island, the 3rd–(4th or the top of the axis) the next excluded band."""
    bands = []
    for k in range(max((len(c) for c in crossings), default=0) // 2 + 1):
        lo, hi = np.full(len(crossings), np.nan), np.full(len(crossings), np.nan)
        for i, c in enumerate(crossings):
            ends = list(c) + [top]
            if 2 * k + 1 < len(ends):
                lo[i], hi[i] = ends[2 * k], ends[2 * k + 1]
        if np.any(np.isfinite(lo)):
            bands.append((lo, hi))
    return bands


def plot(ax, masses, curves, xlabel, ylabel, title, swap=False, data=None):
    """One curve per detector set. ``data`` = (solved crossings per mass, excluded at the smallest coupling,
    top of the coupling axis) of the CsI-2021 data: the region it excludes (Δχ² ≥ 2.71, so allowed
    islands stay white) is shaded from the solved crossings. ``swap``: coupling on x."""
    if data is not None:
        for lo, hi in excluded_bands(*data):
            (ax.fill_betweenx if swap else ax.fill_between)(masses, lo, hi, color="0.82", zorder=0, lw=0)
        ax.fill_between([], [], color="0.82", label="excluded by the CsI-2021 data,\n90% CL (this package)")
    for label, curve in curves.items():
        xy = (curve, masses) if swap else (masses, curve)
        if not np.any(np.isfinite(curve)):  # no limit anywhere in the scanned coupling range: no legend entry
            continue  # (the summary table says "—")
        if label == REFERENCE:
            ax.plot(*xy, **style(label), label=f"{REFERENCE} expected\n(released exposure)")
        elif label != DATA:  # the data are drawn as the shaded region above
            ax.plot(*xy, **style(label), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(ylabel if swap else xlabel)
    ax.set_ylabel(xlabel if swap else ylabel)
    plain_log_ticks(ax.yaxis if swap else ax.xaxis, masses)
    ax.set_title(title, fontsize=7.5)
    ax.grid(alpha=0.3, which="both")



def draw_fisher(numbers: dict, table: dict, years: list, out: Path) -> None:
    """The Fisher ellipses (sin²θ_W, δR_n) and σ(sin²θ_W) against exposure."""
    fig, ax = plt.subplots(figsize=(6.4, 5))
    for n, (xs, ys) in numbers["ellipses"].items():
        ax.plot(xs, ys, **{**style(n), "markevery": 0.1}, label=n)
    ax.set_xlabel(r"$\sin^2\theta_W$")
    ax.set_ylabel(r"$\delta R_n$ [fm] (shift of every neutron radius)")
    ax.set_title(r"Fisher $1\sigma$ ($\Delta\chi^2 = 2.30$) regions, 3 SNS years each, nuisances marginalised",
                 fontsize=9)
    legend_outside(ax, fontsize=8)
    ax.grid(alpha=0.3)
    finish(fig, out, "snowmass_fisher_ellipses")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for n in PLANNED + ["combined", WITH_MONITOR]:
        ax.plot(years, [table[(n, y)][0] for y in years], **{**style(n), "marker": "o", "markevery": 1}, label=n)
    ax.set_xlabel("exposure [SNS years per detector]")
    ax.set_ylabel(r"$\sigma(\sin^2\theta_W)$, marginalised")
    ax.set_yscale("log")
    ax.set_title(r"Fisher forecast of $\sin^2\theta_W$ ($R_n$ per nucleus and all preset nuisances marginalised;"
                 "\nflux per target station; + COH-D2O: the heavy-water flux monitor added, same exposure)", fontsize=9)
    legend_outside(ax, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    finish(fig, out, "snowmass_sin2w_vs_exposure")


def finish(fig, out: Path, name: str, tight: bool = True) -> None:
    """Save a figure as PNG and PDF and close it (:func:`figure_style.save_figure`)."""
    save_figure(fig, out, name, tight=tight)



def zprime_band(ax, masses):
    """(g−2)_μ band for L_μ−L_τ (2021 world average, 2σ), labelled with its status."""
    band_lo = np.sqrt(np.maximum((251e-11 - 2 * 59e-11) / np.asarray(muon_g2_shift(masses, 1.0)), 0))
    band_hi = np.sqrt((251e-11 + 2 * 59e-11) / np.asarray(muon_g2_shift(masses, 1.0)))
    ax.fill_between(masses, band_lo, band_hi, color="#e377c2", alpha=0.25,
                    label="$(g-2)_\\mu$ 2021 band ($2\\sigma$;\ntension $\\lesssim 1\\sigma$ after 2025)")



def draw_raster(study, masses, curves: dict, solved: LimitCurves, bands: dict, grid_masses, islands: dict,
                relic, years: float, out: Path) -> None:
    """The figure of one raster study (``study``: a ``snowmass.RasterStudy``; limits, expected bands, data exclusion, islands, relic or (g−2)_μ band)."""
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    for label, island in islands.items():
        if island and label not in (REFERENCE, DATA):
            m, lo, hi = np.array(island).T
            ax.fill_between(m, lo, hi, color=style(label)["color"], alpha=0.3, label=f"{label}: allowed island\n" + r"($Q_V \to -Q_V$)")
            ax.plot(m, np.sqrt(lo * hi), color=style(label)["color"], lw=0.6, alpha=0.6)
    if study.name == "lmutau":
        zprime_band(ax, masses)
    if relic is not None:
        ax.plot(masses, relic, "k:", lw=1.3, label=f"thermal relic ({study.relic}, " + r"$\Omega h^2 = 0.12$)")
    unresolved = (". Straight lines join the limits solved at the grid's Δm², too few to resolve the oscillations "
                  "(converged: figures/sterile_baselines.png, or --refine-curves)"
                  if study.mixing and len(masses) == len(grid_masses) else "")
    caption = wrap_math(f"{study.title}. {years:g} SNS years per planned detector; expected 90% CL (Asimov "
                        r"median, $\Delta\chi^2 = 2.71$ solved at each mass), every preset nuisance prior profiled; "
                        r"green/yellow: $\pm1\sigma$/$\pm2\sigma$ expected bands of the combination (asymptotic CLs, "
                        r"Cowan et al. 2011; solved at the grid masses); grey: "
                        "excluded by the CsI-2021 data (same statistic, fitted here)" + unresolved, 95)
    plot(ax, masses, curves, study.xlabel, study.ylabel, caption, swap=study.swap_axes,
         data=(solved.crossings[DATA], study.coupling.stop) if DATA in curves else None)
    if BAND_CURVE in bands:
        draw_bands(ax, grid_masses, bands[BAND_CURVE][:, :grid_masses.size], BAND_CURVE, study.swap_axes)
    (ax.set_xlim if study.swap_axes else ax.set_ylim)(study.coupling.start, study.coupling.stop)
    legend_outside(ax, fontsize=7)
    finish(fig, out, f"snowmass_{study.name}")



def draw_nsi(planes: dict, u, d, years: float, out: Path) -> None:
    """The two NSI planes: each detector set's 90% CL contour, the combination filled, the data's allowed region."""
    fig, axs = plt.subplots(1, 2, figsize=(11, 5.6))
    for ax, (flavour, grids) in zip(axs, planes.items()):
        for label, grid in grids.items():
            line = style(label)
            if label == DATA:  # allowed region from the data: Δχ² against the best point of the plane
                grid = grid - grid.min()
                ax.contourf(u, d, grid.T, levels=[grid.min() - 1, LEVEL_2D], colors=["0.82"], zorder=0)
                ax.fill_between([], [], color="0.82", label="CsI-2021 data, 90% CL allowed (this package)")
            elif label == "combined":  # filled, so the (small) combined region is visible under the lines
                ax.contourf(u, d, grid.T, levels=[grid.min() - 1, LEVEL_2D], colors=["k"], alpha=0.35, zorder=1)
                ax.contour(u, d, grid.T, levels=[LEVEL_2D], colors=["k"], linewidths=1.0, zorder=1)
                ax.fill_between([], [], color="k", alpha=0.35, label="combined")
            else:
                ax.contour(u, d, grid.T, levels=[LEVEL_2D], colors=[line["color"]], linewidths=line["lw"],
                           linestyles=[line["ls"]], zorder=2)
                ax.plot([], [], color=line["color"], lw=line["lw"], ls=line["ls"], label=label)
        ax.plot(0, 0, "k*", ms=9, label="SM")
        name = {"ee": "e", "mumu": r"\mu"}[flavour]
        ax.set_xlabel(rf"$\varepsilon^{{uV}}_{{{name}{name}}}$")
        ax.set_ylabel(rf"$\varepsilon^{{dV}}_{{{name}{name}}}$")
        ax.set_title("Expected 90% CL allowed regions " + r"($\Delta\chi^2 = 4.61$)" + f", {years:g} SNS years,\n"
                     "other NSI zero, preset nuisance priors profiled", fontsize=9)
        ax.grid(alpha=0.3)
    handles, names = axs[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=7.5)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    finish(fig, out, "snowmass_nsi", tight=False)
