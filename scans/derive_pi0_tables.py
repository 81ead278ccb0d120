"""Derive the shipped π⁰ tables (``cevns_jax/data/mesons/pi0_rapidity_<key>.txt``) from the GEANT4 π⁰ lists of
pyCEvNS (github.com/athompson-tamu/pyCEvNS, ``data/{coherent,ccm,jsns}/Pi0_Info.txt`` at commit ead392a, MIT
licence; the simulation of B. Dutta et al., PRL 124, 121802 (2020), arXiv:1906.10745 and arXiv:2006.09386).

    python scans/derive_pi0_tables.py DIR      # DIR holds coherent.txt, ccm.txt, jsns.txt (the three lists)

Each list has one π⁰ per line: angle to the proton beam [deg], p_x, p_y, p_z, E, T [MeV] (the beam runs along −z:
the angle is acos(−p_z/|p|), checked here to 1e-4). Per bin of rapidity y = asinh(|p|/m_π⁰) (width 0.02) the
table gives the π⁰ count and, for l = 1 … :data:`LEGENDRE_ORDERS`, the sum over the bin's π⁰ of P_l(cos θ), θ the
angle to the beam: the Legendre moments of the π⁰ directions that the dark-matter flux at a detector's angle
needs (docs/physics.md §4.3, "Mesons in flight"; :mod:`cevns_jax.models.dm_flight`). Only counting: no fit, no
smoothing.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from numpy.polynomial import legendre

M_PI0 = 134.9768
BIN = 0.02
LEGENDRE_ORDERS = 8
TABLES = {  # key: (list file, target description, beam, experiment named in the header)
    "SNS": ("coherent.txt", "the SNS mercury target, ~1 GeV protons (COHERENT)", "data/coherent/Pi0_Info.txt"),
    "Lujan": ("ccm.txt", "the LANSCE Lujan tungsten target, 800 MeV protons (CCM)", "data/ccm/Pi0_Info.txt"),
    "JPARC-MLF": ("jsns.txt", "the J-PARC MLF mercury target, 3 GeV protons (JSNS2)", "data/jsns/Pi0_Info.txt"),
}


def table(rows: np.ndarray) -> np.ndarray:
    """(n_bins, 3 + LEGENDRE_ORDERS): y_low, y_high, count, Σ P_1(cos θ) … Σ P_L(cos θ)."""
    angle, p = rows[:, 0], np.linalg.norm(rows[:, 1:4], axis=1)
    cos = np.cos(np.radians(angle))
    if np.max(np.abs(cos + rows[:, 3] / p)) > 1e-4:
        raise SystemExit("the angle column is not acos(-p_z/|p|)")
    y = np.arcsinh(p / M_PI0)
    n_bins = int(np.floor(y.max() / BIN)) + 1
    index = np.floor(y / BIN).astype(int)
    out = np.zeros((n_bins, 3 + LEGENDRE_ORDERS))
    out[:, 0] = np.arange(n_bins) * BIN
    out[:, 1] = out[:, 0] + BIN
    np.add.at(out[:, 2], index, 1.0)
    for l in range(1, LEGENDRE_ORDERS + 1):
        np.add.at(out[:, 2 + l], index, legendre.legval(cos, np.eye(l + 1)[l]))
    return out


def write(key: str, source_dir: Path, out_dir: Path) -> None:
    name, target, origin = TABLES[key]
    raw = (source_dir / name).read_bytes()
    rows = np.loadtxt(source_dir / name)
    t = table(rows)
    mean_cos = t[:, 3].sum() / t[:, 2].sum()
    header = f"""# pi0 produced by protons on {target}: per bin of rapidity y = asinh(|p|/m_pi0) (the speed of a pi0
# relative to the target, whatever its direction; bins [y_low, y_high) of width {BIN}) the number of pi0 and, for l = 1 ... {LEGENDRE_ORDERS},
# the sum over the bin's pi0 of the Legendre polynomial P_l(cos theta), theta the pi0 direction's angle to the proton beam.
# Derived from a GEANT4 simulation of the target: the list of pi0 momenta (one line per pi0; columns angle to the beam [deg],
# p_x, p_y, p_z, E, T [MeV]; the beam along -z) in github.com/athompson-tamu/pyCEvNS, {origin} (commit ead392a, 2020-05-23;
# MIT licence; sha256 {hashlib.sha256(raw).hexdigest()}), the simulation used by B. Dutta et al., PRL 124, 121802 (2020),
# arXiv:1906.10745 and arXiv:2006.09386 (COHERENT, CCM and JSNS2). Counted by scans/derive_pi0_tables.py (no fit, no smoothing),
# m_pi0 = {M_PI0} MeV. {int(t[:, 2].sum())} pi0 in all (the repository's scripts treat a file as 1e5 protons; only the shape is used here);
# mean cosine of the pi0 direction to the beam {mean_cos:.3f}.
# columns: y_low  y_high  pi0_count  {'  '.join(f'sum_P{l}' for l in range(1, LEGENDRE_ORDERS + 1))}
"""
    lines = [f"{r[0]:.2f}  {r[1]:.2f}  {int(r[2])}  " + "  ".join(f"{v:.6f}" for v in r[3:]) for r in t]
    (out_dir / f"pi0_rapidity_{key}.txt").write_text(header + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source_dir", type=Path, help="folder with coherent.txt, ccm.txt, jsns.txt")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "cevns_jax/data/mesons")
    args = parser.parse_args()
    for key in TABLES:
        write(key, args.source_dir, args.out)


if __name__ == "__main__":
    main()
