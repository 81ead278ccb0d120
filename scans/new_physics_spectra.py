"""Recoil-energy and arrival-time spectra of new-physics benchmark points against the SM (figures/).

    python scans/new_physics_spectra.py [--experiment COH-Ar-750] [--out figures]

One figure per model (universal Z′, B−L, L_μ−L_τ, NSI, magnetic moment, sterile ν, dark matter):
the observed-energy and time spectra of the benchmark point and of the SM, with the ratio, on fine
illustration bins (the preset's response and exposure; signals only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import rates  # noqa: E402
from cevns_jax.binning import Binning  # noqa: E402
from cevns_jax.models import (NewPhysics, b_minus_l, dark_matter, em_properties, epsilon_from_Y,  # noqa: E402
                              lmu_minus_ltau, nsi_couplings, sterile_mixing, universal)
from cevns_jax.source import COMPONENTS  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts

BENCHMARKS = {
    "zprime_universal": ("universal Z′: M = 10 MeV, g = 6e-5", NewPhysics(zprime=universal(10.0, 6e-5))),
    "zprime_b_minus_l": ("B−L Z′: M = 10 MeV, g = 6e-5", NewPhysics(zprime=b_minus_l(10.0, 6e-5))),
    "zprime_lmu_ltau": ("L_μ−L_τ Z′: M = 10 MeV, g′ = 5e-4", NewPhysics(zprime=lmu_minus_ltau(10.0, 5e-4))),
    "nsi": ("NSI: ε^{uV}_ee = 0.2, ε^{dV}_μμ = −0.1", NewPhysics(nsi=nsi_couplings(ee_u=0.2, mumu_d=-0.1))),
    "magnetic_moment": ("magnetic moment μ_νμ = 2e-9 μ_B", NewPhysics(em=em_properties(magnetic_moment_muB=[0.0, 2e-9, 0.0]))),
    "sterile": ("3+1 sterile: Δm² = 2 eV², |U_μ4|² = 0.05", NewPhysics(sterile=sterile_mixing(2.0, Umu4_sq=0.05))),
    "dark_matter": ("scalar DM: m_χ = 10 MeV, m_V = 30 MeV, α_D = 0.5, Y = 5e-11",
                    NewPhysics(dark_matter=dark_matter(10.0, 30.0, float(epsilon_from_Y(5e-11, 10.0)), 0.5))),
}


def illustration_binning(exp):
    det = exp.detector
    hi = float(det.binning.energy_edges[-1])
    edges = jnp.linspace(0.0, hi, 41)
    times = jnp.linspace(float(det.binning.time_edges_ns[0]), float(det.binning.time_edges_ns[-1]), 61)
    # backgrounds are binned when a preset is loaded, so the re-binned illustration shows signals only
    binning = Binning(edges, times, 4, 4)
    return cevns_jax.replace(exp, detector=cevns_jax.replace(det, binning=binning), backgrounds={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="COH-Ar-750")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    exp = illustration_binning(cevns_jax.load_experiment(args.experiment))
    counts = jax.jit(lambda m: rates.expected_counts(exp, model=m))
    sm = counts(None)
    sm_signal = np.asarray(sum(sm[c] for c in COMPONENTS))
    e_edges = np.asarray(exp.detector.binning.energy_edges)
    t_edges = np.asarray(exp.detector.binning.time_edges_ns) / 1e3
    unit = exp.detector.observable
    for key, (label, model) in BENCHMARKS.items():
        out = counts(model)
        signal = np.asarray(sum(out[c] for c in COMPONENTS))
        dm = np.asarray(out.get("dark_matter", np.zeros_like(signal)))
        fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex="col", gridspec_kw={"height_ratios": [3, 1]})
        for col, (axis, edges, xlabel) in enumerate(((1, e_edges, f"observed energy [{unit}]"), (0, t_edges, "arrival time [μs]"))):
            ax, rx = axes[0, col], axes[1, col]
            s_sm, s_new, s_dm = sm_signal.sum(axis), signal.sum(axis), dm.sum(axis)
            ax.stairs(s_sm, edges, color="k", lw=1.5, label="CEvNS, SM")
            ax.stairs(s_new + s_dm, edges, color="#d62728", lw=1.5, label="CEvNS + new physics")
            if s_dm.sum() > 0:
                ax.stairs(s_dm, edges, color="#9467bd", lw=1.2, ls="--", label="dark matter alone")
            ax.set_yscale("log")
            ax.set_ylim(max(1e-2, 1e-3 * s_sm.max()), 3 * max(s_sm.max(), (s_new + s_dm).max()))
            ax.set_ylabel("events per bin")
            ratio = np.divide(s_new + s_dm, s_sm, out=np.ones_like(s_sm), where=s_sm > 1e-9)
            rx.stairs(ratio, edges, color="#d62728")
            rx.axhline(1.0, color="k", lw=0.7)
            rx.set_ylabel("ratio to SM")
            rx.set_xlabel(xlabel)
        axes[0, 0].legend(fontsize=8)
        total_sm, total_new = sm_signal.sum(), signal.sum() + dm.sum()
        fig.suptitle(f"{exp.name}, 1 SNS-PPU year — {label}: {total_new:.0f} events vs {total_sm:.0f} (SM CEvNS)", fontsize=10)
        fig.tight_layout()
        for ext in ("png", "pdf"):
            fig.savefig(args.out / f"bsm_{key}.{ext}", dpi=110)
        plt.close(fig)
        print(f"{key:18s} {label:60s} total {total_new:9.1f} (SM {total_sm:.1f})")


if __name__ == "__main__":
    from job import run_job

    run_job(main)
