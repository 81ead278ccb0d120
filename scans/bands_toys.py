"""Cross-check of the main job's asymptotic expected-limit bands with toys, for one curve at one mass.

    python scans/bands_toys.py [--experiment COH-Ar-750] [--m-chi 5] [--toys 2000] [--grid 12] [--years 3]
                               [--json results/bands_toys.json]

Scalar dark matter (α_D = 0.5, m_V = 3 m_χ) in one planned detector, as in the main job's ``dark_matter``
study: the parameter of interest is μ = (Y/Y₀)², to which the dark-matter counts are exactly proportional
(docs/physics.md §5.11), with Y₀ the median asymptotic limit (so μ = 1 there), every preset nuisance
(and the π⁰ yield) profiled, Asimov SM data. Asymptotic: the crossings of the profiled Asimov Δχ² with
the CLs band levels (:func:`cevns_jax.stats.teststats.asimov_band_levels`, 90% CL). Toys: q̃_μ (μ̂ ≥ 0)
from ``--toys`` toys at each of ``--grid`` μ values under s+b and under b only
(:func:`cevns_jax.toyscan.run_toys`), the expected CLs of band N the CLs of the Φ(−N) quantile of the
background-only q̃_μ (:func:`cevns_jax.stats.teststats.expected_cls_from_toys`), its crossing of 0.1
interpolated in ln CLs. Prints both as Y limits and their ratio (the statistical error of a toy band
is a few per cent at 2000 toys).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="COH-Ar-750")
    p.add_argument("--m-chi", type=float, default=5.0, help="dark-matter mass [MeV]")
    p.add_argument("--years", type=float, default=3.0)
    p.add_argument("--toys", type=int, default=2000)
    p.add_argument("--grid", type=int, default=12)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path("results/bands_toys"))
    p.add_argument("--json", type=Path, default=Path("results/bands_toys.json"))
    return p.parse_args()


def dark_matter_mu(args, theta, nu):
    """Expected counts with the dark-matter templates ``args[1]`` (at Y₀) scaled by μ = (Y/Y₀)²."""
    from cevns_jax.stats.forecast import expected

    reference, sigs = args
    return expected(reference, [s.scaled_dark_matter(theta["mu"]) for s in sigs], nu)


def main() -> None:
    args = _parse()
    import jax
    import jax.numpy as jnp
    import numpy as np

    import cevns_jax
    from cevns_jax import replace
    from cevns_jax.models import NewPhysics, dark_matter, epsilon_from_Y
    from cevns_jax.scan import Axis
    from cevns_jax.stats.forecast import ForecastSpec, asimov_reference, profiled_delta_chi2, reference_signals
    from cevns_jax.stats.teststats import asimov_band_levels, expected_cls_from_toys, q_mu
    from cevns_jax.stats.toys import ToyModel
    from cevns_jax.toyscan import run_toys, toy_program

    cevns_jax.enable_x64()
    cevns_jax.fast_cpu_compilation()
    exp = cevns_jax.load_experiment(args.experiment)
    if exp.info.status == "planned":
        exp = replace(exp, source=replace(exp.source, protons_on_target=exp.source.protons_on_target * args.years),
                      backgrounds={k: replace(b, counts=b.counts * args.years) for k, b in exp.backgrounds.items()})
    reference = asimov_reference((exp,), ForecastSpec(dark_matter=True))
    eps = epsilon_from_Y(1.0, args.m_chi)  # templates at Y = 1; counts ∝ Y²
    sigs = reference_signals(reference, NewPhysics(dark_matter=dark_matter(args.m_chi, 3 * args.m_chi, eps, 0.5)))
    q_a = jax.jit(lambda mu: profiled_delta_chi2(reference, [s.scaled_dark_matter(mu) for s in sigs]))
    from scipy.optimize import brentq

    levels = asimov_band_levels(0.1, (-2.0, -1.0, 0.0, 1.0, 2.0))
    asym_Y2 = [brentq(lambda m: float(q_a(m)) - lev, 1e-30, 1e-10, xtol=1e-40, rtol=1e-12) for lev in levels]
    y0_sq = asym_Y2[2]  # μ = Y²/Y₀²; counts at Y₀ as the toy model's templates
    model = ToyModel((reference, [s.scaled_dark_matter(y0_sq) for s in sigs]), reference.data,
                     {k: jnp.zeros(()) for k in reference.prior_dict()}, dark_matter_mu,
                     tuple(sorted(reference.prior_dict().items())), (("mu", 0.0, None),))
    program = toy_program(model)
    asym_mu = np.asarray(asym_Y2) / y0_sq
    axis = Axis("mu", 0.8 * asym_mu[0], 1.2 * asym_mu[-1], args.grid, "log")
    mus = axis.values()
    sb = run_toys(model, [axis], args.toys, args.out / "sb", seed=args.seed, program=program, label="s+b toys")
    b = run_toys(model, [axis], args.toys, args.out / "b", seed=args.seed + 1, program=program, generate_at={"mu": 0.0},
                 label="b-only toys")
    q_sb = np.asarray(q_mu(sb.values["t"], sb.values["hat:mu"], mus[:, None]))
    q_b = np.asarray(q_mu(b.values["t"], b.values["hat:mu"], mus[:, None]))
    toy_mu = []
    for n in (-2.0, -1.0, 0.0, 1.0, 2.0):
        cls = expected_cls_from_toys(q_sb, q_b, n, sb.values["converged"], b.values["converged"])
        i = int(np.argmax(cls < 0.1))
        toy_mu.append(float(np.exp(np.interp(np.log(0.1), np.log([cls[i], cls[i - 1]]), np.log([mus[i], mus[i - 1]]))))
                      if i > 0 and cls[i - 1] >= 0.1 else float("nan"))
    report = {"experiment": args.experiment, "years": args.years, "m_chi_MeV": args.m_chi, "toys_per_point": args.toys,
              "grid": mus.tolist(), "bands": [-2, -1, 0, 1, 2], "levels": levels.tolist(),
              "Y_asymptotic": np.sqrt(asym_Y2).tolist(), "Y_toys": (np.sqrt(np.asarray(toy_mu) * y0_sq)).tolist(),
              "ratio_toys_over_asymptotic": (np.sqrt(np.asarray(toy_mu) / asym_mu)).tolist(),
              "failure_fraction": [float(sb.failure_fraction.max()), float(b.failure_fraction.max())]}
    print(json.dumps(report, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
