"""Detector design by gradient descent: two studies (issue 6).

    python scans/optimise_design.py [--out figures] [--quick]

(1) Threshold and mass of a CryoCsI-like detector (the COH-CryoCsI-10kg preset's response and per-kg
    backgrounds, one SNS year) that minimise the expected 90 % CL limit on the L_μ−L_τ coupling g′ at
    M_Z′ = 10 MeV for a fixed budget. The budget (400 cost units, ASSUMED cost model
    ``cost.cryogenic_csi_cost``) is imposed by parametrisation: the mass is what the money left after
    the threshold, cryogenic and fixed costs buys. One free variable: the threshold (logistic 50 %
    point, 6–30 PE). Backgrounds follow the designed efficiency (``background_policy="efficiency"``).
(2) How a fixed total mass (1000 kg, an assumption) is best split between Ar (COH-Ar-750), CsI
    (COH-CryoCsI-10kg), Ge (COH-Ge-mini) and NaI (NaIvETe), each with its preset's response and
    per-kg backgrounds for one SNS year, to constrain (ε^{uV}_{ee}, ε^{dV}_{ee}) jointly: minimise the
    area of the 2-D Fisher ellipse, every nuisance marginalised, the flux normalisation shared. Every
    count of a detector is proportional to its mass, so its Fisher block scales linearly
    (``design.scaled_fisher``; the script checks this against a full recomputation at the optimum).

Each study is optimised with optax (L-BFGS, one jitted step) and checked against a brute-force grid
of the same objective. Figures: figures/design_threshold_mass.{png,pdf}, figures/design_mass_split.{png,pdf};
summary: figures/design_summary.md; numbers: figures/design_results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import design as D  # noqa: E402
from cevns_jax.design.cost import ProgramCost, cryogenic_csi_cost  # noqa: E402
from cevns_jax.batches import in_batches  # noqa: E402
from figure_style import save_figure  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts

BUDGET = 400.0
THRESHOLD_BOX_PE = (6.0, 30.0)
Z_MASS_MEV = 10.0
TOTAL_MASS_KG = 1000.0
THRESHOLD_COSTS = (15.0, 30.0, 60.0, 120.0)  # the threshold-cost coefficient (60 in cost.cryogenic_csi_cost)
SPLIT = ["COH-Ar-750", "COH-CryoCsI-10kg", "COH-Ge-mini", "NaIvETe"]
SHORT = {"COH-Ar-750": "Ar", "COH-CryoCsI-10kg": "CsI", "COH-Ge-mini": "Ge", "NaIvETe": "NaI"}


def finish(fig, out: Path, name: str) -> None:
    save_figure(fig, out, name)


BATCH = 64
"""Points per call of a study's batched program (a fixed shape: compiled once, whatever the grid)."""


def on_grid(fn, *arrays) -> np.ndarray:
    """``fn`` (vmapped, jitted, positional) on broadcast ``arrays`` in batches of :data:`BATCH` points
    (:func:`cevns_jax.batches.in_batches`: one compiled shape), reshaped to the broadcast shape."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    columns = {str(i): a.ravel() for i, a in enumerate(arrays)}
    out = in_batches(lambda b: fn(*(jnp.asarray(b[str(i)]) for i in range(len(arrays)))), columns, BATCH)
    return out["value"].reshape(arrays[0].shape)


def keVnr_per_PE(exp) -> float:
    """Nuclear-recoil energy per photoelectron for constant quenching: 1/(LY·QF)."""
    return 1.0 / (float(exp.detector.smearing.light_yield_PE_per_keV) * float(exp.detector.quenching.factor))


# ----------------------------------------------------------------------------------------------
# Study 1
# ----------------------------------------------------------------------------------------------
def study_threshold_mass(out: Path, quick: bool) -> dict:
    exp = cevns_jax.load_experiment("COH-CryoCsI-10kg")
    fom = D.ExpectedLimit("lmu_ltau", mass_MeV=Z_MASS_MEV)
    cost = ProgramCost((cryogenic_csi_cost(),))
    box = D.Interval(*THRESHOLD_BOX_PE)
    design = D.make_design({"threshold": D.Variable("threshold", box)}, budget=D.Budget(BUDGET, cost))
    t0 = time.perf_counter()
    result = D.optimise_design(fom, design, [exp], max_steps=100)
    t_opt = time.perf_counter() - t0
    print(f"[1] optax: {result.summary()} ({t_opt:.1f} s incl. compilation)")

    # every grid below (along each budget line, the landscape, the preset) runs one compiled program: the
    # objective of the free (threshold, mass) design in fixed-size batches; a budget line's masses come from
    # the budget (the same designed experiments as the budget design's, so the same objective to ~1e-14)
    free = D.make_design({"threshold": D.Variable("threshold"), "mass_kg": D.Variable("mass_kg")})
    objective = D.make_objective(fom)
    on_free = jax.jit(jax.vmap(lambda th, m: objective({"threshold": th, "mass_kg": m}, free, [exp])))
    mass_bought = jax.jit(jax.vmap(lambda x, d: D.realise(d, {"threshold": box.inverse(x)}, [exp])[1]["budget_mass_kg"],
                                   in_axes=(0, None)))

    def along_budget(design_, xs):
        """(objective, mass) along a budget line at thresholds ``xs`` [PE]; +inf where the budget buys no mass."""
        masses = on_grid(lambda x: mass_bought(x, design_), xs)
        values = on_grid(on_free, xs, np.where(masses > 0, masses, 1.0))
        return np.where(masses > 0, values, np.inf), masses

    # brute-force grid along the budget line (same objective, physical threshold → u)
    n_grid = 49 if quick else 193
    thresholds = np.linspace(THRESHOLD_BOX_PE[0] + 0.05, THRESHOLD_BOX_PE[1] - 0.05, n_grid)
    t0 = time.perf_counter()
    line, masses_line = along_budget(design, thresholds)
    t_grid = time.perf_counter() - t0
    i_best = int(np.argmin(line))
    spacing = thresholds[1] - thresholds[0]
    th_opt, m_opt = float(result.physical["threshold"]), float(result.physical["budget_mass_kg"])
    print(f"[1] grid ({n_grid} points, spacing {spacing:.3f} PE, {t_grid:.1f} s): best threshold {thresholds[i_best]:.3f} PE, "
          f"g′ = {np.exp(line[i_best]):.5g}; optax {th_opt:.3f} PE, g′ = {np.exp(result.value):.5g}")

    # 2-D landscape: g′(threshold, mass) without the budget (mass set directly)
    th_axis = np.linspace(*THRESHOLD_BOX_PE, 13 if quick else 25)
    m_axis = np.geomspace(3.0, 80.0, 12 if quick else 24)
    t0 = time.perf_counter()
    landscape = on_grid(on_free, *np.meshgrid(th_axis, m_axis, indexing="ij"))  # (n_th, n_m)
    t_land = time.perf_counter() - t0
    preset_params = D.validate_design(free, [exp])  # the preset itself: 8 PE, 10 kg
    preset = float(on_grid(on_free, float(preset_params["threshold"]), float(preset_params["mass_kg"])))
    preset_budget, preset_budget_mass = (float(v[0]) for v in along_budget(design, np.array([8.0])))

    # how the optimum moves with the assumed threshold cost (grid along each budget line)
    sensitivity = []
    coarse_th = np.linspace(THRESHOLD_BOX_PE[0] + 0.05, 16.0, 21 if quick else 81)
    for coefficient in THRESHOLD_COSTS:
        cost_c = ProgramCost((D.replace(cryogenic_csi_cost(), threshold_cost=jnp.asarray(coefficient, dtype=float)),))
        values, masses = along_budget(D.make_design(design.variables, budget=D.Budget(BUDGET, cost_c)), coarse_th)
        k = int(np.argmin(values))
        sensitivity.append({"threshold_cost": coefficient, "threshold_PE": float(coarse_th[k]), "mass_kg": float(masses[k]),
                            "g_limit": float(np.exp(values[k])), "spacing_PE": float(coarse_th[1] - coarse_th[0]),
                            "edge": "box edge" if k == 0 else ("budget edge" if not np.isfinite(values[k - 1]) else "")})
    print(f"[1] threshold-cost sensitivity: {sensitivity}")
    print(f"[1] landscape {landscape.shape} in {t_land:.1f} s; preset (8 PE, 10 kg) g′ = {np.exp(preset):.4g}")

    kpe = keVnr_per_PE(exp)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ax = axes[0]
    mesh = ax.pcolormesh(th_axis, m_axis, np.log10(np.exp(landscape.T)), shading="gouraud", cmap="viridis_r")
    fig.colorbar(mesh, ax=ax, label=r"$\log_{10} g'$ (expected 90% CL, $M_{Z'} = 10$ MeV)")
    ax.contour(th_axis, m_axis, np.log10(np.exp(landscape.T)), levels=12, colors="w", linewidths=0.5, alpha=0.6)
    ax.plot(thresholds, masses_line, "r-", lw=1.5, label=f"budget {BUDGET:g} (mass bought by the money left)")
    ax.plot(result.path["threshold"], result.path["budget_mass_kg"], "o-", color="orange", ms=4, lw=1,
            label=f"optax L-BFGS path ({result.n_steps} steps)")
    ax.plot([th_opt], [m_opt], "*", color="gold", ms=16, mec="k", label="optimum")
    ax.plot([8.0], [10.0], "s", color="w", mec="k", label="COH-CryoCsI-10kg preset")
    ax.set_yscale("log")
    ax.set_xlabel("threshold (efficiency 50% point) [PE]")
    ax.set_ylabel("CsI mass [kg]")
    ax.set_title(r"$L_\mu - L_\tau$ expected limit over (threshold, mass); 1 SNS year", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    sec = ax.secondary_xaxis("top", functions=(lambda x: x * kpe, lambda y: y / kpe))
    sec.set_xlabel("threshold [keVnr] (QF 0.15, 40 PE/keVee)")
    ax = axes[1]
    ax.plot(thresholds, np.exp(line), "k-", lw=1.2, label=f"brute-force grid ({n_grid} points)")
    ax.plot(result.path["threshold"], np.exp(result.objective), "o", color="orange", ms=5, label="optax path")
    ax.axvline(th_opt, color="orange", ls="--", lw=1)
    ax.plot([thresholds[i_best]], [np.exp(line[i_best])], "x", color="r", ms=10, label="grid minimum")
    ax.set_xlabel("threshold [PE]  (mass from the budget)")
    ax.set_ylabel(r"$g'$ (expected 90% CL)")
    ax.set_title(f"Along the budget line: optimum {th_opt:.2f} PE ({th_opt * kpe:.2f} keVnr), {m_opt:.1f} kg", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    inset = ax.inset_axes([0.5, 0.08, 0.45, 0.4])
    near = np.abs(thresholds - th_opt) < 1.6
    inset.plot(thresholds[near], np.exp(line[near]) * 1e4, "k.-", lw=1)
    inset.plot(result.path["threshold"], np.exp(result.objective) * 1e4, "o-", color="orange", ms=4, lw=0.8)
    inset.plot([thresholds[i_best]], [np.exp(line[i_best]) * 1e4], "x", color="r", ms=8)
    inset.set_title(r"zoom: $g' \times 10^4$", fontsize=7)
    inset.tick_params(labelsize=6)
    finish(fig, out, "design_threshold_mass")

    return {
        "threshold_PE": th_opt, "threshold_keVnr": th_opt * kpe, "mass_kg": m_opt, "g_limit": float(np.exp(result.value)),
        "grid_threshold_PE": float(thresholds[i_best]), "grid_spacing_PE": float(spacing),
        "grid_mass_kg": float(masses_line[i_best]), "grid_g_limit": float(np.exp(line[i_best])),
        "preset_g_limit": float(np.exp(preset)), "preset_cost": float(cost([exp])),
        "preset_budget_g_limit": float(np.exp(preset_budget)), "preset_budget_mass_kg": preset_budget_mass, "steps": result.n_steps, "converged": result.converged,
        "reason": result.reason, "grad_norm": float(result.grad_norm[-1]),
        "time_optimise_s": t_opt, "time_grid_s": t_grid, "time_landscape_s": t_land,
        "cost_at_optimum": float(cost([D.realise(design, result.params, [exp])[0][0]])),
        "sensitivity": sensitivity,
    }


# ----------------------------------------------------------------------------------------------
# Study 2
# ----------------------------------------------------------------------------------------------
def simplex_grid(n_parts: int, n: int) -> np.ndarray:
    """All compositions of n into n_parts non-negative parts, as fractions (rows sum to 1)."""
    def rec(k, left):
        if k == 1:
            yield (left,)
            return
        for i in range(left + 1):
            for rest in rec(k - 1, left - i):
                yield (i,) + rest
    return np.array(list(rec(n_parts, n)), dtype=float) / n


def study_mass_split(out: Path, quick: bool) -> dict:
    exps = [cevns_jax.load_experiment(n) for n in SPLIT]
    params = ("eps_u_ee", "eps_d_ee")
    fom = D.FisherArea(params)
    labels = D.fisher_labels(exps, params)
    def blocks_fn(experiments):  # D.fisher_blocks is compiled once per program structure
        fb = D.fisher_blocks(tuple(experiments), params)
        return fb.blocks, fb.prior

    t0 = time.perf_counter()
    blocks, prior = blocks_fn(exps)
    t_blocks = time.perf_counter() - t0
    m0 = jnp.asarray([float(e.detector.mass_kg) for e in exps])
    simplex = D.Simplex(TOTAL_MASS_KG)

    def objective(u):
        masses = simplex.forward(u)
        return jnp.log(fom.reduce(labels, D.scaled_fisher(blocks, prior, masses / m0)))

    start = jnp.full(len(exps), TOTAL_MASS_KG / len(exps))
    t0 = time.perf_counter()
    result = D.optimise(objective, simplex.inverse(start), physical=lambda u: {"mass_kg": simplex.forward(u)}, max_steps=200)
    t_opt = time.perf_counter() - t0
    m_opt = result.physical["mass_kg"]
    print(f"[2] optax: {result.summary()} ({t_opt:.1f} s)")

    n = 40 if quick else 100
    fractions = simplex_grid(len(exps), n)
    by_masses = jax.jit(jax.vmap(lambda m: jnp.log(fom.reduce(labels, D.scaled_fisher(blocks, prior, m / m0)))))
    t0 = time.perf_counter()
    grid = np.asarray(by_masses(jnp.asarray(fractions * TOTAL_MASS_KG)))
    t_grid = time.perf_counter() - t0
    i_best = int(np.nanargmin(np.where(np.isfinite(grid), grid, np.inf)))
    print(f"[2] grid ({len(fractions)} points, spacing {TOTAL_MASS_KG / n:g} kg, {t_grid:.1f} s): best "
          f"{dict(zip(SHORT.values(), (fractions[i_best] * TOTAL_MASS_KG).round(1)))}, area √det C = {np.exp(grid[i_best]):.5g}; "
          f"optax {dict(zip(SHORT.values(), m_opt.round(1)))}, {np.exp(result.value):.5g}")

    # the scaling is exact: recompute the Fisher matrix of the realised optimum from scratch
    design = D.make_design({"split": D.Variable("mass_split", simplex)})
    realised, _ = D.realise(design, {"split": jnp.asarray(result.params)}, exps)
    full_blocks, full_prior = blocks_fn(realised)
    full = float(fom.reduce(labels, D.scaled_fisher(full_blocks, full_prior, jnp.ones(len(exps)))))
    print(f"[2] full recomputation at the optimum: √det C = {full:.8g} (scaled: {np.exp(result.value):.8g})")

    # reference designs
    def area(masses):
        return float(fom.reduce(labels, D.scaled_fisher(blocks, prior, jnp.asarray(masses) / m0)))

    singles = {SHORT[name]: area(np.where(np.arange(len(exps)) == k, TOTAL_MASS_KG, 1e-9)) for k, name in enumerate(SPLIT)}
    equal = area(start)

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    i_csi, i_ge = SPLIT.index("COH-CryoCsI-10kg"), SPLIT.index("COH-Ge-mini")
    others = [k for k in range(len(exps)) if k not in (i_csi, i_ge)]
    axis = np.linspace(0.0, 1.0, 41 if quick else 81)
    fa, fb = np.meshgrid(axis, axis, indexing="ij")
    ok = fa + fb <= 1.0 + 1e-12
    pts = np.zeros(fa.shape + (len(exps),))
    pts[..., i_csi], pts[..., i_ge] = fa, fb
    for k in others:
        pts[..., k] = np.clip(1.0 - fa - fb, 0.0, None) / len(others)
    vals = np.asarray(by_masses(jnp.asarray(pts.reshape(-1, len(exps)) * TOTAL_MASS_KG))).reshape(fa.shape)
    vals = np.where(ok, vals, np.nan)
    log_area = np.log10(np.exp(vals)).T
    floor = float(np.nanmin(log_area))
    mesh = ax.pcolormesh(axis * TOTAL_MASS_KG, axis * TOTAL_MASS_KG, log_area, shading="gouraud", cmap="viridis_r",
                         vmin=floor, vmax=floor + 1.0)
    fig.colorbar(mesh, ax=ax, label=r"$\log_{10} \sqrt{\det C(\varepsilon^{uV}_{ee}, \varepsilon^{dV}_{ee})}$ (1 decade shown)")
    ax.contour(axis * TOTAL_MASS_KG, axis * TOTAL_MASS_KG, log_area, levels=floor + np.linspace(0.02, 1.0, 12),
               colors="w", linewidths=0.5, alpha=0.7)
    ax.plot(result.path["mass_kg"][:, i_csi], result.path["mass_kg"][:, i_ge], "o-", color="orange", ms=4, lw=1,
            label="optax path (projected)")
    ax.plot([m_opt[i_csi]], [m_opt[i_ge]], "*", color="gold", ms=16, mec="k", label="optimum")
    ax.set_xlabel("CsI mass [kg]")
    ax.set_ylabel("Ge mass [kg]")
    ax.set_title(f"Slice: the rest of {TOTAL_MASS_KG:g} kg shared equally by Ar and NaI", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    steps = np.arange(result.n_steps + 1)
    for k, name in enumerate(SPLIT):
        ax.plot(steps, result.path["mass_kg"][:, k], "o-", ms=3, label=SHORT[name])
    ax.set_xlabel("optax step")
    ax.set_ylabel("mass [kg]")
    ax2 = ax.twinx()
    ax2.plot(steps, np.exp(result.objective), "k--", lw=1, label=r"$\sqrt{\det C}$")
    ax2.set_yscale("log")
    ax2.set_ylabel(r"$\sqrt{\det C}$ (dashed)")
    ax.set_title("Optimisation path (L-BFGS from the equal split)", fontsize=9)
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    ax = axes[2]
    half = np.zeros(len(exps))
    half[[i_csi, SPLIT.index("NaIvETe")]] = TOTAL_MASS_KG / 2
    # ellipses in the eigenbasis of the optimum's covariance: along and across the nearly degenerate band
    cov_opt = np.asarray(D.marginal_covariance(D.scaled_fisher(blocks, prior, jnp.asarray(m_opt) / m0), [0, 1]))
    _, basis = np.linalg.eigh(cov_opt)
    axes_sigma = {}
    for masses, label, style in ((start, "equal split", "-"), (m_opt, "optimum (CsI + Ge)", "-"),
                                 (np.maximum(half, 1e-9), "CsI + NaI, 500 kg each", "--")):
        cov = np.asarray(D.marginal_covariance(D.scaled_fisher(blocks, prior, jnp.asarray(masses) / m0), [0, 1]))
        rotated = basis.T @ cov @ basis
        vals2, vecs = np.linalg.eigh(rotated)
        phi = np.linspace(0, 2 * np.pi, 200)
        ell = vecs @ (np.sqrt(vals2 * 2.296)[:, None] * np.stack([np.cos(phi), np.sin(phi)]))
        ax.plot(ell[1], ell[0], style, label=label)
        axes_sigma[label] = np.sqrt(np.diag(rotated)).tolist()
    along, across = basis[:, 1], basis[:, 0]
    ax.set_xlabel(rf"along the band: ${along[0]:+.2f}\,\varepsilon^{{uV}}_{{ee}} {along[1]:+.2f}\,\varepsilon^{{dV}}_{{ee}}$")
    ax.set_ylabel(rf"across: ${across[0]:+.2f}\,\varepsilon^{{uV}}_{{ee}} {across[1]:+.2f}\,\varepsilon^{{dV}}_{{ee}}$")
    ax.set_title(r"Fisher $1\sigma$ regions ($\Delta\chi^2 = 2.30$); axes not to scale", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    finish(fig, out, "design_mass_split")

    return {
        "mass_kg": dict(zip(SHORT.values(), m_opt.tolist())), "area": float(np.exp(result.value)),
        "grid_mass_kg": dict(zip(SHORT.values(), (fractions[i_best] * TOTAL_MASS_KG).tolist())),
        "grid_area": float(np.exp(grid[i_best])), "grid_spacing_kg": TOTAL_MASS_KG / n, "grid_points": len(fractions),
        "full_recomputation_area": full, "sigma_across_along": axes_sigma, "equal_split_area": equal, "single_target_area": singles,
        "steps": result.n_steps, "converged": result.converged, "reason": result.reason,
        "grad_norm": float(result.grad_norm[-1]), "time_blocks_s": t_blocks, "time_optimise_s": t_opt, "time_grid_s": t_grid,
    }


def row(*cells) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def summary(r1: dict, r2: dict, total_s: float) -> str:
    kev = r1["threshold_keVnr"] / r1["threshold_PE"]  # keVnr per PE
    lbfgs1 = f"optax (L-BFGS, {r1['steps']} steps, ‖∇‖ = {r1['grad_norm']:.1e})"
    lbfgs2 = f"optax (L-BFGS, {r2['steps']} steps, ‖∇‖ = {r2['grad_norm']:.1e})"
    grid2 = f"brute-force grid ({r2['grid_points']} points, spacing {r2['grid_spacing_kg']:g} kg)"
    targets = list(r2["mass_kg"])
    lines = [
        "# Detector design by gradient descent (scans/optimise_design.py)",
        "",
        f"## (1) CryoCsI-like detector: threshold and mass for a budget of {BUDGET:g} cost units",
        "",
        f"Expected 90% CL limit on the L_μ−L_τ coupling g′ at M_Z′ = {Z_MASS_MEV:g} MeV (Asimov, Δχ² = 2.71, preset",
        "nuisances profiled), one SNS year, COH-CryoCsI-10kg response and per-kg backgrounds; mass bought by the money",
        "left under the ASSUMED cost model `cost.cryogenic_csi_cost` (threshold cost ∝ E_th⁻²); backgrounds follow the",
        "designed efficiency.",
        "",
        row("", "threshold [PE]", "threshold [keVnr]", "mass [kg]", "g′ (90% CL)"),
        row("---", "---", "---", "---", "---"),
        row(lbfgs1, f"{r1['threshold_PE']:.3f}", f"{r1['threshold_keVnr']:.3f}", f"{r1['mass_kg']:.2f}", f"{r1['g_limit']:.5g}"),
        row(f"brute-force grid (spacing {r1['grid_spacing_PE']:.3f} PE)", f"{r1['grid_threshold_PE']:.3f}",
            f"{r1['grid_threshold_PE'] * kev:.3f}", f"{r1['grid_mass_kg']:.2f}", f"{r1['grid_g_limit']:.5g}"),
        row("preset threshold on the budget line", 8, f"{8 * kev:.3f}", f"{r1['preset_budget_mass_kg']:.2f}",
            f"{r1['preset_budget_g_limit']:.5g}"),
        row(f"COH-CryoCsI-10kg preset (8 PE, 10 kg; cost {r1['preset_cost']:.0f})", 8, f"{8 * kev:.3f}", 10,
            f"{r1['preset_g_limit']:.4g}"),
        "",
        "The optimum moves with the assumed threshold cost c·(0.2 keVee/E_th)², c = 60 above (grid along each budget line):",
        "",
        row("threshold-cost coefficient c", "optimum threshold [PE]", "mass [kg]", "g′ (90% CL)"),
        row("---", "---", "---", "---"),
        *[row(f"{r['threshold_cost']:g}", f"{r['threshold_PE']:.2f} ± {r['spacing_PE'] / 2:.2f}"
              + (f" ({r['edge']})" if r["edge"] else ""), f"{r['mass_kg']:.1f}", f"{r['g_limit']:.4g}")
          for r in r1["sensitivity"]],
        "",
        f"## (2) Splitting {TOTAL_MASS_KG:g} kg between Ar, CsI, Ge and NaI for (ε^uV_ee, ε^dV_ee)",
        "",
        "Minimise √det of the marginalised 2×2 Fisher covariance (ellipse area = π Δχ² √det C); every preset nuisance",
        "marginalised, the flux normalisation shared; one SNS year; each detector keeps its preset's response and",
        "per-kg backgrounds.",
        "",
        row("", *[f"{k} [kg]" for k in targets], "√det C"),
        row(*["---"] * (len(targets) + 2)),
        row(lbfgs2, *[f"{v:.1f}" for v in r2["mass_kg"].values()], f"{r2['area']:.4g}"),
        row(grid2, *[f"{v:.1f}" for v in r2["grid_mass_kg"].values()], f"{r2['grid_area']:.4g}"),
        row("equal split", *[f"{TOTAL_MASS_KG / len(targets):.1f}"] * len(targets), f"{r2['equal_split_area']:.4g}"),
        *[row(f"all {name} (single detector: nearly degenerate)",
              *[f"{TOTAL_MASS_KG if k == name else 0.0:.1f}" for k in targets], f"{value:.4g}")
          for name, value in r2["single_target_area"].items()],
        "",
        f"Full recomputation of the Fisher matrix at the optimum: √det C = {r2['full_recomputation_area']:.6g} "
        f"(linear scaling: {r2['area']:.6g}).",
        "1σ across / along the nearly degenerate band: "
        + "; ".join(f"{k}: {v[0]:.4f} / {v[1]:.3f}" for k, v in r2["sigma_across_along"].items()) + ".",
        "",
        f"Timings (2 shared CPU cores, including compilation): study 1 optimisation {r1['time_optimise_s']:.0f} s, "
        f"grid {r1['time_grid_s']:.0f} s, landscape {r1['time_landscape_s']:.0f} s; study 2 Fisher blocks "
        f"{r2['time_blocks_s']:.0f} s, optimisation {r2['time_optimise_s']:.0f} s, grid {r2['time_grid_s']:.0f} s; "
        f"total {total_s:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--quick", action="store_true", help="coarser grids and landscape (smoke test)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    r1 = study_threshold_mass(args.out, args.quick)
    r2 = study_mass_split(args.out, args.quick)
    total = time.perf_counter() - start
    text = summary(r1, r2, total)
    (args.out / "design_summary.md").write_text(text)
    meta = {"jax": jax.__version__, "x64": bool(jax.config.jax_enable_x64), "version": cevns_jax.__version__,
            "quick": args.quick, "budget": BUDGET, "total_mass_kg": TOTAL_MASS_KG, "z_mass_MeV": Z_MASS_MEV}
    (args.out / "design_results.json").write_text(json.dumps({"meta": meta, "threshold_mass": r1, "mass_split": r2}, indent=2))
    print(text)


if __name__ == "__main__":
    from job import run_job

    run_job(main)
