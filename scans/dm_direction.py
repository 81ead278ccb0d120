"""The dark-matter flux from π⁰ decaying in flight as a function of the detector's angle to the proton beam, at the
three targets whose GEANT4 π⁰ samples are shipped (docs/physics.md §4.3, "The detector's angle to the beam").

    python scans/dm_direction.py [--out figures]

For each target and (m_χ, m_V = 3m_χ), the π⁰ → γχχ̄ lab spectrum at the detector's direction
(:func:`cevns_jax.models.darkmatter.chi_boxes` with ``pi0_beam_cos`` set) relative to the direction average: all χ, and
χ with kinetic energy above 50 MeV (the fast χ that pass a heavy target's threshold). Writes
figures/dm_direction.{png,pdf} and figures/dm_direction.md. Runs in ~30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cevns_jax  # noqa: E402
from cevns_jax import replace  # noqa: E402
from cevns_jax.facilities import FACILITIES  # noqa: E402
from cevns_jax.models import darkmatter as dmod  # noqa: E402
from cevns_jax.models import dark_matter  # noqa: E402

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()

TARGETS = {"SNS-2021": "SNS, Hg, ~1 GeV", "Lujan": "Lujan, W, 800 MeV", "J-PARC-MLF": "J-PARC MLF, Hg, 3 GeV"}
MASSES = (5.0, 20.0, 40.0)
"""m_χ [MeV] (m_V = 3m_χ, on shell below m_π⁰)."""
ANGLES = np.linspace(0.0, 180.0, 37)
T_FAST = 50.0
"""Kinetic energy [MeV] above which a χ counts as fast in the second panel."""


def factors(facility: str, m_chi: float):
    """(all χ, χ with T > T_FAST) at every angle of ANGLES, relative to the direction average."""
    dm = dmod.at_source(dark_matter(m_chi, 3 * m_chi, epsilon=1e-4), FACILITIES[facility])

    def flux(dm):
        """(all χ, χ with T > T_FAST) of the π⁰ lab boxes (flat inside a box)."""
        b = dmod.chi_boxes(dm, "pi0")
        above = jnp.clip((b.upper_MeV - (m_chi + T_FAST)) / (b.upper_MeV - b.lower_MeV), 0.0, 1.0)
        return jnp.sum(b.weight), jnp.sum(b.weight * above)

    run = jax.jit(jax.vmap(lambda cos: flux(replace(dm, pi0_beam_cos=cos))))
    total, fast = (np.asarray(v) for v in run(jnp.cos(jnp.deg2rad(jnp.asarray(ANGLES)))))
    avg_total, avg_fast = (float(v) for v in flux(dm))
    return total / avg_total, fast / avg_fast


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures")
    args = parser.parse_args(argv)
    t0 = time.time()
    results = {(f, m): factors(f, m) for f in TARGETS for m in MASSES}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.9), sharey=True)
    colours = {"SNS-2021": "#1f77b4", "Lujan": "#2ca02c", "J-PARC-MLF": "#d62728"}
    dashes = {5.0: "-", 20.0: (0, (5, 2)), 40.0: (0, (1, 1.5))}
    for (f, m), (total, fast) in results.items():
        for ax, v in zip(axes, (total, fast)):
            ax.plot(ANGLES, v, color=colours[f], ls=dashes[m], lw=1.5, label=f"{TARGETS[f]}, $m_\\chi$ = {m:g} MeV")
    for ax, title in zip(axes, ("all χ", f"χ with $T_\\chi > {T_FAST:g}$ MeV")):
        ax.axhline(1.0, color="0.5", lw=0.8)
        for angle in (90.0, 137.0):
            ax.axvline(angle, color="0.8", lw=0.8, zorder=0)
        ax.set(xlabel=r"detector angle to the proton beam $\theta_d$ [deg]", xlim=(0, 180), ylim=(0, 6.3), title=title)
        ax.set_xticks(np.arange(0, 181, 30))
        ax.grid(alpha=0.3, which="both", lw=0.4)
    axes[0].set_ylabel(r"χ flux / direction average ($m_V = 3m_\chi$)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(r"$\pi^0\to\gamma\chi\bar\chi$ with the $\pi^0$ in flight (GEANT4 samples); grey lines: CsI 90°, CENNS-10 137°",
                 fontsize=9)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"dm_direction.{ext}", dpi=150, bbox_inches="tight")
    pick = [0.0, 45.0, 90.0, 137.0, 180.0]
    rows = ["# Dark-matter flux at the detector's angle to the beam (scans/dm_direction.py)", "",
            "π⁰ → γχχ̄ (m_V = 3m_χ, on shell), π⁰ decaying in flight with each target's GEANT4 speeds and directions "
            "(Legendre moments l ≤ 8); the χ flux at the detector's direction relative to the direction average, all χ "
            f"/ χ with kinetic energy above {T_FAST:g} MeV (docs/physics.md §4.3). The 8 orders are within 1.5% from 15° "
            "to 165° and ≈ 4% low on the beam axis (0°).", "",
            "| target | m_χ [MeV] | " + " | ".join(f"{a:g}°" for a in pick) + " |", "|---|---|" + "---|" * len(pick)]
    for (f, m), (total, fast) in results.items():
        cells = [f"{np.interp(a, ANGLES, total):.2f} / {np.interp(a, ANGLES, fast):.2f}" for a in pick]
        rows.append(f"| {TARGETS[f]} | {m:g} | " + " | ".join(cells) + " |")
    rows += ["", f"Run time: {time.time() - t0:.0f} s (2 CPU cores)."]
    (out / "dm_direction.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
