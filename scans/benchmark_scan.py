"""Benchmark: points per second of the profiled Asimov Δχ² scan (issue 5's speed figures; not a test).

    python scans/benchmark_scan.py [--grid 200] [--experiment COH-Ar-750] [--host-devices 2]
                                   [--chunk 10000] [--json results/bench_scan.json]

The L_μ−L_τ Z′ (mass × coupling, log axes) on COH-Ar-750 binned in energy and time, every preset
nuisance profiled: ``AsimovForecast.delta_chi2`` under ``jit(vmap(...))``. Reported separately:

* compile: lowering + XLA compilation of one chunk's program;
* run: the whole grid through the compiled program, chunk by chunk (points/s after compilation);
* scaling: the same at a quarter of the grid (cost should be linear in grid size);
* memory: XLA's memory analysis of one chunk (flat in grid size: chunks are fixed size);
* end to end: ``run_scan`` into a temporary folder (chunking, sharding, atomic writes).

``--host-devices N`` simulates N CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
set before JAX starts) and checks the sharded result equals one device's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=int, default=200, help="points per axis (grid is N × N)")
    p.add_argument("--experiment", default="COH-Ar-750")
    p.add_argument("--chunk", type=int, default=8000, help="points per chunk")
    p.add_argument("--host-devices", type=int, default=1, help="simulated CPU devices")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args()


def main() -> None:
    args = _parse()
    if args.host_devices > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.host_devices}")
    import jax
    import jax.numpy as jnp
    import numpy as np

    import cevns_jax
    from cevns_jax.stats.forecast import AsimovForecast
    from cevns_jax.models import NewPhysics, lmu_minus_ltau
    from cevns_jax.scan import Axis, grid_points, run_scan

    cevns_jax.enable_x64()
    cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts
    exp = cevns_jax.load_experiment(args.experiment)
    fc = AsimovForecast([exp], lambda p: NewPhysics(zprime=lmu_minus_ltau(p["mass_MeV"], p["g"])))
    axes = [Axis("mass_MeV", 1.0, 1000.0, args.grid, "log"), Axis("g", 1e-6, 1e-2, args.grid, "log")]
    points = grid_points(axes)
    n_points = points["g"].size
    chunk = min(args.chunk, n_points)
    n_bins = int(fc.data.size)
    dev = jax.devices()
    print(f"# {args.experiment}: {n_bins} bins (energy × time), {len(fc.priors)} nuisances profiled "
          f"({fc.n_steps} steps); {n_points} points; chunk {chunk}; devices: {len(dev)} × {dev[0].device_kind}; "
          f"JAX {jax.__version__}", flush=True)

    fn = jax.jit(jax.vmap(fc.delta_chi2))
    batch = {k: jnp.asarray(v[:chunk]) for k, v in points.items()}
    t0 = time.perf_counter()
    compiled = fn.lower(batch).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    chunk_bytes = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    compiled(batch).block_until_ready()  # warm-up

    def run_all(n):
        t = time.perf_counter()
        out = []
        for lo in range(0, n, chunk):
            part = {k: np.pad(v[lo:min(lo + chunk, n)], (0, lo + chunk - min(lo + chunk, n)), mode="edge")
                    for k, v in points.items()}
            out.append(np.asarray(compiled({k: jnp.asarray(v) for k, v in part.items()}))[: min(chunk, n - lo)])
        return time.perf_counter() - t, np.concatenate(out)

    run_s, values = run_all(n_points)
    quarter = chunk * max(1, n_points // 4 // chunk)  # whole chunks, so no padding enters the rate
    quarter_s, _ = run_all(quarter)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_scan(fc.delta_chi2, axes, tmp, chunk_size=chunk, progress=False)
        e2e_s = time.perf_counter() - t0
    same = bool(np.allclose(result.values["value"].reshape(-1), values, rtol=1e-9, atol=1e-9))
    report = {
        "experiment": args.experiment, "bins": n_bins, "nuisances": len(fc.priors), "points": n_points,
        "chunk": chunk, "devices": len(dev), "device_kind": dev[0].device_kind, "jax": jax.__version__,
        "compile_s": round(compile_s, 2), "run_s": round(run_s, 2), "points_per_s": round(n_points / run_s),
        "quarter_grid_points_per_s": round(quarter / quarter_s),
        "chunk_memory_MB": round(chunk_bytes / 1e6, 1), "run_scan_end_to_end_s": round(e2e_s, 2),
        "run_scan_equals_direct": same,
    }
    for k, v in report.items():
        print(f"{k:>28}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    if not same:
        sys.exit("run_scan result differs from the direct evaluation")


if __name__ == "__main__":
    from job import run_job

    run_job(main)
