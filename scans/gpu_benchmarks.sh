#!/usr/bin/env bash
# The accelerator speed figures of the README (issues 12 and 15): one call on a GPU machine.
#
#     OUT=results/gpu bash scans/gpu_benchmarks.sh [toys scan forward coverage]
#
# Runs the package from this checkout (PYTHONPATH, no install: the machine's own jax/jaxlib with CUDA,
# numpy, scipy, optax, matplotlib, tqdm), float64 throughout, each benchmark under its own time limit so that
# one failure leaves the others' figures; every log and JSON report goes to $OUT.
set -u
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export CEVNS_JAX_COMPILATION_CACHE=${CEVNS_JAX_COMPILATION_CACHE:-/tmp/cevns_jax_cc}
steps=${*:-toys scan}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  python3 -c "import jax, jaxlib, numpy, scipy, optax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, \
'numpy', numpy.__version__, 'scipy', scipy.__version__, 'optax', optax.__version__); print(jax.devices())"
} 2>&1 | tee "$OUT/env.log"
for s in $steps; do
  case $s in
    toys) timeout 240 python3 scans/benchmark_toys.py --chunk 131072 --chunks 4 --fc-batch 60 \
            --json "$OUT/toys.json" 2>&1 | tee "$OUT/toys.log" ;;
    scan) timeout 200 python3 scans/benchmark_scan.py --grid 1000 --chunk 200000 \
            --json "$OUT/scan.json" 2>&1 | tee "$OUT/scan.log" ;;
    forward) timeout 330 python3 scans/benchmark_forward.py --repeat 10 \
            --json "$OUT/forward.json" 2>&1 | tee "$OUT/forward.log" ;;
    coverage)  # the FC construction with the global best fit: 60 × 60 × 1000 (COH-Ar-750), 30 × 30 × 500 (CsI-2021)
      timeout 330 python3 scans/coverage.py --planes COH-Ar-750 --grid 60 --toys 1000 --steps 6 --chunk 32768 \
        --results /tmp/coverage --out "$OUT" 2>&1 | grep -v "pt/s" | tee "$OUT/coverage.log"
      cp /tmp/coverage/summary.json "$OUT/coverage_summary.json"
      timeout 150 python3 scans/coverage.py --planes CsI-2021 --csi-grid 30 --csi-toys 500 --csi-steps 8 --chunk 32768 \
        --results /tmp/coverage --out "$OUT" 2>&1 | grep -v "pt/s" | tee -a "$OUT/coverage.log"
      cp /tmp/coverage/summary.json "$OUT/coverage_summary.json" ;;
    *) echo "unknown step $s (toys, scan, forward, coverage)" ;;
  esac
done
