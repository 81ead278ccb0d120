"""Benchmark: compile time and run time of one jitted binned prediction per preset (not a test).

    python scans/benchmark_forward.py [--repeat 20] [--presets NAME ...] [--json results/bench_forward.json]

Reports, for each preset, the time to trace and compile ``jax.jit(expected_counts)``, the median wall
time of one call after compilation, and the same for the gradient of the total CEvNS count with respect
to the whole experiment pytree, with the gradient's scratch memory as XLA plans it (``temp_size_in_bytes``
of the compiled program; 0 where the backend does not report it). Device and JAX version are printed.

Run it from the repository root with the package on the path (``PYTHONPATH=$PWD`` in a git worktree), or it
times whichever ``cevns_jax`` is installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import cevns_jax
from cevns_jax import rates

cevns_jax.enable_x64()
cevns_jax.fast_cpu_compilation()  # before the first computation: XLA reads its flags when it starts


def _block(tree):
    return jax.tree_util.tree_map(lambda x: x.block_until_ready(), tree)


def time_function(fn, arg, repeat: int) -> tuple[float, float, float]:
    """(compile seconds, median run seconds, scratch MB) of a jitted function of one pytree argument."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    temp_MB = 1e-6 * getattr(memory, "temp_size_in_bytes", 0) if memory is not None else 0.0
    _block(compiled(arg))
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        _block(compiled(arg))
        runs.append(time.perf_counter() - start)
    return compile_s, statistics.median(runs), temp_MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--presets", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    names = args.presets or cevns_jax.list_presets()
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, python {platform.python_version()}")
    print(f"{'preset':<24s} {'bins':>7s} {'compile [s]':>12s} {'run [ms]':>10s} {'grad compile [s]':>17s} "
          f"{'grad run [ms]':>14s} {'grad temp [MB]':>15s}")
    rows = []
    for name in names:
        exp = cevns_jax.load_experiment(name)
        compile_s, run_s, _ = time_function(rates.expected_counts, exp, args.repeat)
        grad_fn = jax.grad(lambda e: jnp.sum(rates.cevns_counts(e)))
        g_compile_s, g_run_s, g_temp_MB = time_function(grad_fn, exp, args.repeat)
        n_bins = (exp.detector.binning.energy_edges.size - 1) * (exp.detector.binning.time_edges_ns.size - 1)
        rows.append(dict(preset=name, bins=n_bins, compile_s=compile_s, run_ms=1e3 * run_s,
                         grad_compile_s=g_compile_s, grad_run_ms=1e3 * g_run_s, grad_temp_MB=g_temp_MB))
        print(f"{name:<24s} {n_bins:7d} {compile_s:12.2f} {1e3 * run_s:10.2f} {g_compile_s:17.2f} "
              f"{1e3 * g_run_s:14.2f} {g_temp_MB:15.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(device=device.device_kind, platform=device.platform, jax=jax.__version__)
        args.json.write_text(json.dumps(dict(meta=meta, results=rows), indent=2))


if __name__ == "__main__":
    from job import run_job

    run_job(main)
