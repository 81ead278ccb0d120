"""Benchmark: toy fits per second (issue 15's speed figures; not a test).

    python scans/benchmark_toys.py [--experiment COH-Ar-750] [--chunk 4096] [--chunks 4] [--steps 4]
                                   [--check-steps 8] [--t-tolerance 1e-3]
                                   [--fc-grid 60] [--fc-toys 1000] [--json results/bench_toys.json]

Toys of COH-Ar-750 binned in energy and time with every preset nuisance profiled: the forecast's μ
(:func:`cevns_jax.stats.toys.forecast_toy_model`, one parameter of interest, the CEvNS strength μ ≥ 0)
at μ = 1. Each toy is a Poisson draw of every bin, a draw of the auxiliary measurements, and two
profiled fits (conditional, μ fixed; unconditional, μ free), ``--steps`` projected Fisher-scoring steps
each (:mod:`cevns_jax.stats.minimise`). Reported separately:

* compile: one chunk program (the toys' :class:`~cevns_jax.scan_program.ScanProgram`);
* run: ``--chunks`` chunks through the compiled program (toys/s and fits/s = 2 × toys/s, after compilation);
* memory: XLA's memory analysis of one chunk, and the process's peak RSS after 1 and after all chunks
  (flat in the number of toys: chunks are fixed size and nothing is kept on the device between them);
* convergence: the failure fraction of the fits (Newton decrement ≥ 10⁻⁴), and the step count tested:
  the toys of one chunk refitted with ``--check-steps`` (default 2 × ``--steps``) steps, the largest change
  of t = χ²_cond − χ²_free against its stated target ``--t-tolerance`` (10⁻³ in χ², a tenth of the 0.01
  resolution of a critical value) — the benchmark fails if it is exceeded or more than 1% of fits fail;
* Feldman–Cousins estimate (an extrapolation, not a measurement of the full construction): a
  ``--fc-grid``² sterile plane (Δm²₄₁ × |U_μ4|²) with ``--fc-toys`` toys per point costs the sterile
  templates of each of its ``--fc-grid`` Δm² (measured on a batch; along |U_μ4|² they are the exact affine
  combination of those at |U|² = ½ and the SM, as scans/coverage.py builds them, docs/physics.md §5.9) plus
  ``--fc-toys`` toys per point at the rate above (the toys at a point reuse its templates). It counts two fits per toy: conditional at the
  point and one unconditional fit started there — a local best fit. The global best fit over the plane
  that FC's ordering asks for in an oscillation analysis (one fit per Δm² row: 1 + ``--fc-grid`` fits per
  toy, ``ToyModel.best_fit_grid``) is what ``scans/coverage.py`` runs; its cost is measured there
  (docs/physics.md §5.11).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="COH-Ar-750")
    p.add_argument("--chunk", type=int, default=4096, help="toys per chunk")
    p.add_argument("--chunks", type=int, default=4, help="chunks timed")
    p.add_argument("--steps", type=int, default=4, help="Fisher-scoring steps per fit (the failure fraction and the "
                   "--check-steps refit say if enough)")
    p.add_argument("--fc-grid", type=int, default=60, help="points per axis of the sterile plane (estimate)")
    p.add_argument("--fc-toys", type=int, default=1000, help="toys per plane point (estimate)")
    p.add_argument("--fc-batch", type=int, default=32, help="sterile points timed for the template cost")
    p.add_argument("--check-steps", type=int, default=None, help="steps of the refit that tests --steps (default 2×)")
    p.add_argument("--t-tolerance", type=float, default=1e-3, help="allowed |Δt| (χ²) between --steps and --check-steps")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args()


def _rss_MB() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def main() -> None:
    args = _parse()
    import jax
    import jax.numpy as jnp
    import numpy as np

    import cevns_jax
    from cevns_jax.models import NewPhysics, sterile_mixing
    from cevns_jax.stats.forecast import AsimovForecast, ForecastSpec, asimov_reference, reference_signals
    from cevns_jax.stats.toys import TOY_AXIS, forecast_toy_model, generating_nuisances, toy_point_function
    from cevns_jax.toyscan import toy_program

    cevns_jax.enable_x64()
    cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts
    exp = cevns_jax.load_experiment(args.experiment)
    t0 = time.perf_counter()
    reference = asimov_reference((exp,), ForecastSpec())
    model = forecast_toy_model(reference, reference_signals(reference, None), n_steps=args.steps)
    setup_s = time.perf_counter() - t0
    dev = jax.devices()
    print(f"# {args.experiment}: {reference.data.size} bins (energy × time), {len(model.nuisances)} nuisances "
          f"profiled, {args.steps} steps per fit; chunk {args.chunk} toys; devices: {len(dev)} × {dev[0].device_kind}; "
          f"JAX {jax.__version__} (reference built in {setup_s:.1f} s)", flush=True)

    program = toy_program(model)
    nu_gen = np.asarray(jax.jit(generating_nuisances)(model, jnp.asarray([1.0])))
    base = {"mu": 1.0, "gen:mu": 1.0, "seed": 1.0, "hypothesis": 0.0}
    base.update({f"nu:{k}": float(v) for k, v in zip(model.nuisance_names, nu_gen)})

    def chunk_inputs(c: int) -> dict:
        out = {k: np.full(args.chunk, v) for k, v in base.items()}
        out[TOY_AXIS] = np.arange(c * args.chunk, (c + 1) * args.chunk, dtype=float)
        return out

    t0 = time.perf_counter()
    chunk_bytes = program.compile(list(chunk_inputs(0)), args.chunk)
    compile_s = time.perf_counter() - t0
    program.run_chunk(chunk_inputs(0))  # warm-up
    rss_one = _rss_MB()
    t0 = time.perf_counter()
    converged = []
    for c in range(args.chunks):
        converged.append(program.run_chunk(chunk_inputs(c + 1))["converged"])
    run_s = time.perf_counter() - t0
    rss_all = _rss_MB()
    n_toys = args.chunks * args.chunk
    toys_per_s = n_toys / run_s

    # the step count tested: the last chunk's toys refitted with more steps (same toys: same keys)
    check_steps = 2 * args.steps if args.check_steps is None else args.check_steps
    finer = forecast_toy_model(reference, reference_signals(reference, None), n_steps=check_steps)
    last = {k: jnp.asarray(v) for k, v in chunk_inputs(args.chunks).items()}
    t_coarse = jax.jit(jax.vmap(toy_point_function(model)))(last)["t"]
    t_fine = jax.jit(jax.vmap(toy_point_function(finer)))(last)["t"]
    max_dt = float(jnp.max(jnp.abs(t_coarse - t_fine)))

    # Feldman–Cousins estimate: sterile templates per Δm² row (batched) + toys per point at the rate above
    fc = AsimovForecast([exp], lambda th: NewPhysics(sterile=sterile_mixing(th["dm2_eV2"], Umu4_sq=th["Umu4_sq"])))
    templates = jax.jit(jax.vmap(fc.signals))
    thetas = {"dm2_eV2": jnp.geomspace(0.1, 100.0, args.fc_batch), "Umu4_sq": jnp.full(args.fc_batch, 0.05)}
    jax.block_until_ready(templates(thetas))  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(templates({k: v * 1.0001 for k, v in thetas.items()}))
    template_s = (time.perf_counter() - t0) / args.fc_batch
    n_plane = args.fc_grid ** 2
    fc_s = args.fc_grid * template_s + n_plane * args.fc_toys / toys_per_s
    report = {
        "experiment": args.experiment, "bins": int(reference.data.size), "nuisances": len(model.nuisances),
        "steps_per_fit": args.steps, "chunk_toys": args.chunk, "devices": len(dev), "device_kind": dev[0].device_kind,
        "jax": jax.__version__, "compile_s": round(compile_s, 2), "toys_timed": n_toys, "run_s": round(run_s, 2),
        "toys_per_s": round(toys_per_s), "fits_per_s": round(2 * toys_per_s),
        "failure_fraction": float(1.0 - np.mean(np.concatenate(converged))),
        f"max_abs_dt_vs_{check_steps}_steps": float(f"{max_dt:.3g}"), "t_tolerance": args.t_tolerance,
        "chunk_memory_MB": round(chunk_bytes / 1e6, 1), "peak_rss_after_1_chunk_MB": round(rss_one),
        f"peak_rss_after_{args.chunks + 1}_chunks_MB": round(rss_all),
        "sterile_template_s_per_dm2": round(template_s, 4),
        "fc_plane_points": n_plane, "fc_toys_per_point": args.fc_toys,
        "fc_fits": 2 * n_plane * args.fc_toys, "fc_estimate_min (extrapolated)": round(fc_s / 60, 1),
    }
    for k, v in report.items():
        print(f"{k:>36}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    if report["failure_fraction"] > 0.01:
        sys.exit(f"failure fraction {report['failure_fraction']:.3g} above 1%")
    if not max_dt <= args.t_tolerance:
        sys.exit(f"{args.steps} steps not converged: t moves by {max_dt:.3g} > {args.t_tolerance} with {check_steps} steps")


if __name__ == "__main__":
    from job import run_job

    run_job(main)
