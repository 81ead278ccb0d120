"""What knowing the SNS flux buys: σ(ŝ²), σ(R_n) and σ(flux) of the planned COHERENT detectors against the
flux prior (10% → 2%), with and without the COH-D2O flux monitor (docs/physics.md §11).

    python scans/flux_knowledge.py [--years 3] [--out figures]

One ``fisher_blocks`` program for COH-Ar-750, COH-CryoCsI-10kg, COH-Ge-mini, a Ge-2 variant (COH-Ge-mini's
detector with 50 kg at 22 m, the configuration of COHERENT's Snowmass projection) and COH-D2O, one data block
each on the registry's joint labels (one flux per SNS target station). Every count of a planned preset scales
with its exposure, so each combination and exposure is a weighting of the blocks (``FisherBlocks.fisher``);
the flux prior is the ``flux`` entry of the prior diagonal. Writes ``flux_knowledge.{png,pdf}`` and
``flux_knowledge.md``. Limits (L_μ−L_τ, dark matter) against the flux prior are not computed here.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cevns_jax  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts
from cevns_jax import constants as C  # noqa: E402
from cevns_jax.experiment import experiment_from_dict, load_experiment  # noqa: E402
from cevns_jax.experiment.load import PRESET_DIR  # noqa: E402
from cevns_jax.stats.fisher import Fisher, fisher_blocks  # noqa: E402
from figure_style import save_figure  # noqa: E402

PRIORS = np.array([0.10, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02])
"""Flux priors σ_flux scanned (relative)."""
NAMES = ("COH-Ar-750", "COH-CryoCsI-10kg", "COH-Ge-mini", "COH-Ge-2", "COH-D2O")
PRESET_YEARS = {"COH-D2O": 2.0}
"""Exposure of each preset in SNS years (the others: 1)."""
COMBOS = {
    "Ar-750 + CryoCsI-10kg + Ge-mini": ("COH-Ar-750", "COH-CryoCsI-10kg", "COH-Ge-mini"),
    "Ar-750 + CryoCsI-10kg + Ge-mini + D₂O": ("COH-Ar-750", "COH-CryoCsI-10kg", "COH-Ge-mini", "COH-D2O"),
    "Ar-750 + CryoCsI-10kg + Ge-2": ("COH-Ar-750", "COH-CryoCsI-10kg", "COH-Ge-2"),
    "Ar-750 + CryoCsI-10kg + Ge-2 + D₂O": ("COH-Ar-750", "COH-CryoCsI-10kg", "COH-Ge-2", "COH-D2O"),
}
LOOKS = dict(zip(COMBOS, (dict(color="#1f77b4", marker="o"), dict(color="#1f77b4", marker="s", mfc="none"),
                          dict(color="#d62728", marker="^"), dict(color="#d62728", marker="v", mfc="none"))))
"""Colour per Ge detector (blue Ge-mini, red Ge-2); open markers: with COH-D2O."""


def ge2():
    """COH-Ge-mini's detector as Ge-2: 50 kg at 22 m (COHERENT Snowmass, arXiv:2204.04575); everything else kept."""
    d = tomllib.loads((PRESET_DIR / "COH-Ge-mini.toml").read_text())
    d = copy.deepcopy(d)
    d["experiment"]["name"] = "COH-Ge-2"
    d["experiment"]["description"] = "COH-Ge-mini's detector scaled to 50 kg at 22 m (Ge-2)"
    d["detector"]["mass_kg"], d["detector"]["baseline_m"] = 50.0, 22.0
    return experiment_from_dict(d, label="COH-Ge-2 (scans/flux_knowledge.py)")


def program_fisher(blocks, members, years: float, flux_prior: float) -> Fisher:
    """The labelled Fisher matrix of the detectors ``members`` for ``years`` SNS years each, flux prior σ."""
    weights = np.array([years / PRESET_YEARS.get(n, 1.0) if n in members else 0.0 for n in NAMES])
    F = np.asarray(blocks.fisher(weights).matrix).copy()
    prior = np.asarray(blocks.prior)
    keep = [i for i, lab in enumerate(blocks.labels)
            if any(i in blocks.members[k] for k, n in enumerate(NAMES) if n in members)]
    i = blocks.labels.index("flux")
    F[i, i] += 1.0 / flux_prior**2 - prior[i]
    return Fisher(tuple(blocks.labels[k] for k in keep), F[np.ix_(keep, keep)])


def errors(F: Fisher) -> dict:
    """σ(ŝ²)/ŝ² with R_n free and fixed, σ(δR_n) [fm] of Ar and CsI (R_n free), σ(flux) (relative)."""
    rn = [lab for lab in F.labels if lab.endswith("delta_rn_fm")]
    free, fixed = F.marginalised_errors(), F.fix(rn).marginalised_errors()
    s2 = C.SIN2_THETA_W_LOW_ENERGY
    return {"s2_free": free["sin2_theta_w"] / s2, "s2_fixed": fixed["sin2_theta_w"] / s2,
            "rn_ar": free.get("Ar/delta_rn_fm", np.nan), "rn_csi": free.get("CsI/delta_rn_fm", np.nan),
            "flux": free["flux"]}


STEPS = (
    ("flux prior 2%, + D₂O", ()),
    ("flux known exactly", ("flux",)),
    ("+ mass and efficiency known", ("mass", "efficiency")),
    ("+ quenching known", ("quenching_a", "quenching_b_per_keVnr", "quenching_factor", "quenching_k")),
    ("+ nuclear radii (form_factor_radius) known", ("form_factor_radius",)),
    ("statistics only (every nuisance known)", None),
)
"""Cumulative steps of the 2.1% study: nuisance names fixed at each step (``None``: all)."""


def reproduction(blocks) -> dict:
    """{step: (3 y R_n free, 3 y R_n fixed, 5 y R_n free, 5 y R_n fixed)} of σ(ŝ²)/ŝ² (:data:`STEPS`)."""
    members = COMBOS["Ar-750 + CryoCsI-10kg + Ge-2 + D₂O"]
    out, fixed = {}, set()
    for label, names in STEPS:
        row = []
        for years in (3.0, 5.0):
            F = program_fisher(blocks, members, years, 0.02)
            params = {"sin2_theta_w"} | {lab for lab in F.labels if lab.endswith("delta_rn_fm")}
            if names is None:
                drop = [lab for lab in F.labels if lab not in params]
            else:
                fixed |= set(names)
                drop = [lab for lab in F.labels if lab.rsplit("/", 1)[-1] in fixed]
            F = F.fix(drop)
            e = errors_s2(F)
            row += [e[0], e[1]]
        out[label] = row
    return out


def errors_s2(F: Fisher) -> tuple:
    rn = [lab for lab in F.labels if lab.endswith("delta_rn_fm")]
    s2 = C.SIN2_THETA_W_LOW_ENERGY
    return F.marginalised_errors()["sin2_theta_w"] / s2, F.fix(rn).marginalised_errors()["sin2_theta_w"] / s2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=float, default=3.0, help="SNS years of every detector (default 3)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "figures"))
    args = ap.parse_args(argv)
    t0 = time.time()
    exps = {n: (ge2() if n == "COH-Ge-2" else load_experiment(n)) for n in NAMES}
    blocks = fisher_blocks(tuple(exps[n] for n in NAMES), ("sin2_theta_w", "delta_rn_fm"))
    res = {c: [errors(program_fisher(blocks, m, args.years, p)) for p in PRIORS] for c, m in COMBOS.items()}
    d2o = program_fisher(blocks, ("COH-D2O",), args.years, 1e3).marginalised_errors()["flux"]
    print(f"Fisher program: {time.time() - t0:.0f} s; COH-D2O alone, {args.years:g} y, no flux prior: "
          f"σ(flux) = {100 * d2o:.2f}%")

    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.9))
    x = 100 * PRIORS
    for c, rows in res.items():
        look = LOOKS[c]
        axes[0].plot(x, [100 * r["flux"] for r in rows], ls="-", **look, label=c)
        axes[1].plot(x, [100 * r["s2_free"] for r in rows], ls="-", **look)
        axes[1].plot(x, [100 * r["s2_fixed"] for r in rows], ls="--", **look)
        axes[2].plot(x, [r["rn_ar"] for r in rows], ls="-", **look)
        axes[2].plot(x, [r["rn_csi"] for r in rows], ls=":", **look)
    axes[0].plot(x, x, color="0.6", lw=0.8, ls=":", label="prior")
    axes[1].axhline(2.1, color="0.3", lw=0.8, ls="-.")
    axes[1].text(x[0], 2.1, "COHERENT: 2.1%", va="bottom", ha="left", fontsize=7.5, color="0.3")
    axes[0].set_ylabel(r"$\sigma(\mathrm{flux})$ after the fit [%]")
    axes[1].set_ylabel(r"$\sigma(\hat s^2_W)/\hat s^2_W$ [%]")
    axes[1].set_title(r"solid: $R_n$ free, dashed: $R_n$ fixed", fontsize=8)
    axes[2].set_ylabel(r"$\sigma(R_n)$ [fm]")
    axes[2].set_title(r"solid: Ar, dotted: CsI ($R_n$ free)", fontsize=8)
    for ax in axes:
        ax.set_xlabel(r"flux prior $\sigma_{\rm flux}$ [%]")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    fig.suptitle(rf"Fisher forecasts (nuisances marginalised), {args.years:g} SNS years per detector (SNS-PPU, 2 MW, 1.3 GeV); "
                 r"one flux nuisance per target station", fontsize=9.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, "flux_knowledge", tight=False)

    lines = [f"# What flux knowledge buys ({args.years:g} SNS years per detector; `scans/flux_knowledge.py`)", "",
             f"COH-D2O alone ({args.years:g} y, no flux prior, its own systematics): σ(flux) = {100 * d2o:.2f}%.", "",
             "| detectors | flux prior | σ(flux) after | σ(ŝ²)/ŝ², R_n free | σ(ŝ²)/ŝ², R_n fixed | σ(R_n Ar) [fm] | σ(R_n CsI) [fm] |",
             "|---|---|---|---|---|---|---|"]
    for c, rows in res.items():
        for p, r in zip(PRIORS, rows):
            lines.append(f"| {c} | {100 * p:.0f}% | {100 * r['flux']:.2f}% | {100 * r['s2_free']:.2f}% | "
                         f"{100 * r['s2_fixed']:.2f}% | {r['rn_ar']:.3f} | {r['rn_csi']:.3f} |")
    lines += ["", "## COHERENT's 2.1% (Ar-750 + CryoCsI + Ge-2): what it takes",
              "", "σ(ŝ²)/ŝ² of Ar-750 + CryoCsI-10kg + Ge-2 (+ D₂O where marked), each step fixing (knowing exactly) "
              "one more group of nuisances on top of the previous:", "",
              "| assumption | 3 y, R_n free | 3 y, R_n fixed | 5 y, R_n free | 5 y, R_n fixed |", "|---|---|---|---|---|"]
    for label, row in reproduction(blocks).items():
        lines.append(f"| {label} | " + " | ".join(f"{100 * v:.2f}%" for v in row) + " |")
    (out / "flux_knowledge.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    from job import run_job

    run_job(main)
