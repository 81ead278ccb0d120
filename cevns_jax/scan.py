"""Grid scans at scale: chunked, sharded, resumable evaluation of any function over a parameter grid.

    axes = [Axis("mass_MeV", 1.0, 1000.0, 60, "log"), Axis("g", 1e-6, 1e-2, 80, "log")]
    result = run_scan(point_fn, axes, "results/lmutau", memory_budget_bytes=2e9)

* ``point_fn(params: dict[str, scalar]) -> pytree of arrays`` is evaluated with ``jit(vmap(...))``
  over chunks of grid points. The chunk size comes from a memory budget: the compiled program's own
  memory analysis at a trial batch size (XLA's ``memory_analysis``), scaled linearly.
* Each chunk is split over all local devices (a 1-D ``Mesh`` over ``jax.devices()``, the chunk's
  point axis sharded), so the same code runs on one CPU, one GPU or several. On a cluster, call
  ``jax.distributed.initialize()`` first: each process then takes every ``process_count``-th chunk.
* Every finished chunk is written atomically (``.npz`` written to a temporary name, then renamed);
  a rerun with the same output folder skips the chunks on disk and computes only the rest, so an
  interrupted scan loses nothing. ``meta.json`` records axes, description, package and JAX versions,
  device kind and float precision, and a rerun with different axes or description is refused. A
  finished scan rerun compiles nothing (the chunking is read back from ``meta.json``).
* Progress (points done, rate, time left) is printed after each chunk.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .errors import CevnsInputError

SCALES = ("linear", "log")
CPU_MULTI_DEVICE_POINTS = 256
"""Points per device per chunk when a scan runs on several CPU devices (see :func:`run_scan`)."""


@dataclass(frozen=True)
class Axis:
    """One grid axis: ``num`` values from ``start`` to ``stop`` (inclusive), linear or log spaced."""

    name: str
    start: float
    stop: float
    num: int
    scale: str = "linear"

    def values(self) -> np.ndarray:
        if self.scale == "log":
            return np.geomspace(self.start, self.stop, self.num)
        return np.linspace(self.start, self.stop, self.num)


def validate_axes(axes: list[Axis], known: set[str] | None = None) -> None:
    """Reject a bad grid before any compute: empty axis, unknown name, log axis through zero, NaN."""
    if not axes:
        raise CevnsInputError("scan grid has no axes")
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise CevnsInputError(f"scan grid repeats an axis: {names}")
    for a in axes:
        if known is not None and a.name not in known:
            raise CevnsInputError(f"scan axis {a.name!r}: unknown parameter; known: {', '.join(sorted(known))}")
        if not isinstance(a.num, int) or a.num < 1:
            raise CevnsInputError(f"scan axis {a.name!r}: needs at least one point, got num = {a.num!r}")
        if not (math.isfinite(a.start) and math.isfinite(a.stop)):
            raise CevnsInputError(f"scan axis {a.name!r}: start and stop must be finite, got {a.start}, {a.stop}")
        if a.scale not in SCALES:
            raise CevnsInputError(f"scan axis {a.name!r}: scale must be 'linear' or 'log', got {a.scale!r}")
        if a.scale == "log" and (a.start <= 0 or a.stop <= 0):
            raise CevnsInputError(f"scan axis {a.name!r}: a log axis cannot reach zero or negative values ({a.start} to {a.stop})")


def grid_points(axes: list[Axis]) -> dict[str, np.ndarray]:
    """Flattened grid (C order over the axes): {name: values of shape (n_points,)}."""
    mesh = np.meshgrid(*[a.values() for a in axes], indexing="ij")
    return {a.name: m.reshape(-1) for a, m in zip(axes, mesh)}


def _bytes_per_point(fn, example: dict, trial: int = 8) -> float:
    """Device memory per grid point of ``vmap(fn)``, from XLA's memory analysis at a trial batch."""
    batch = {k: jnp.full((trial,), v, dtype=jnp.float64) for k, v in example.items()}
    compiled = jax.jit(jax.vmap(_as_dict(fn))).lower(batch).compile()
    try:
        mem = compiled.memory_analysis()
        total = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
    except Exception:  # backends without memory analysis: count outputs ×100 as a conservative guess
        out = jax.eval_shape(jax.vmap(_as_dict(fn)), batch)
        total = 100 * sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(out))
    return max(total / trial, 1.0)


def chunk_size_for(fn, example: dict, memory_budget_bytes: float, n_devices: int, n_points: int) -> int:
    """Points per chunk: as many as fit the memory budget per device, a multiple of the device count."""
    per_point = _bytes_per_point(fn, example)
    size = int(memory_budget_bytes // per_point) * n_devices
    size = max(n_devices, min(size, n_points + (-n_points) % n_devices))
    return size - size % n_devices


def _versions() -> dict:
    from . import __version__

    dev = jax.devices()[0]
    return {"cevns_jax": __version__, "jax": jax.__version__, "device_kind": dev.device_kind,
            "platform": dev.platform, "n_devices": jax.device_count(), "x64": bool(jax.config.jax_enable_x64),
            "float_dtype": str(jnp.zeros(()).dtype)}


@dataclass
class ScanResult:
    """Assembled scan: ``values[name]`` has the grid shape (n₁, n₂, …) (+ the output's own shape)."""

    axes: list[Axis]
    values: dict
    meta: dict
    computed_chunks: list[int]

    def axis_values(self, name: str) -> np.ndarray:
        return next(a for a in self.axes if a.name == name).values()


def run_scan(
    point_fn: Callable[[dict], dict],
    axes: list[Axis],
    out_dir: str | Path,
    *,
    memory_budget_bytes: float = 1e9,
    chunk_size: int | None = None,
    description: dict | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> ScanResult:
    """Evaluate ``point_fn`` on every grid point, chunk by chunk, resuming from ``out_dir``.

    ``point_fn`` maps a dict of scalars (one per axis) to a dict of arrays. ``description`` (JSON
    serialisable: model, experiments, nuisance settings…) is stored in ``meta.json``. ``on_chunk``
    is called with each finished chunk's index (used by tests to interrupt a scan).
    """
    validate_axes(axes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = grid_points(axes)
    n_points = next(iter(points.values())).size
    devices = jax.devices()
    n_dev = len(devices)
    example = {k: float(v[0]) for k, v in points.items()}
    meta_path = out / "meta.json"
    previous = _read_meta(meta_path)
    if chunk_size is None and previous and previous["axes"] == [asdict(a) for a in axes] \
            and previous["chunk_size"] % n_dev == 0:
        chunk_size = previous["chunk_size"]  # resuming: keep the chunking (and compile nothing if all is done)
    if chunk_size is None:
        chunk_size = chunk_size_for(point_fn, example, memory_budget_bytes, n_dev, n_points)
    elif chunk_size % n_dev:
        chunk_size += n_dev - chunk_size % n_dev
    if n_dev > 1 and devices[0].platform == "cpu":
        # Several (simulated) CPU devices share one thread pool; with JAX 0.10.2 a profiled-Δχ² program
        # of ≳ 800 points per device never returned on 2 cores (≤ 400 ran), with or without shard_map.
        chunk_size = min(chunk_size, CPU_MULTI_DEVICE_POINTS * n_dev)
    n_chunks = math.ceil(n_points / chunk_size)
    meta = {"axes": [asdict(a) for a in axes], "chunk_size": chunk_size, "n_chunks": n_chunks,
            "n_points": n_points, "description": description or {}, **_versions()}
    if previous:
        if previous["axes"] != meta["axes"] or previous["chunk_size"] != chunk_size:
            raise CevnsInputError(f"{out}: holds a scan with other axes or chunking; use a new folder")
        if previous.get("description", {}) != json.loads(json.dumps(meta["description"])):
            raise CevnsInputError(f"{out}: holds a scan with another description (model, experiments or "
                                  "nuisances); use a new folder")
    else:
        _atomic_write(meta_path, json.dumps(meta, indent=2).encode())

    mesh = Mesh(np.array(devices), ("points",))
    sharding = NamedSharding(mesh, PartitionSpec("points"))
    # shard_map: each device runs vmap(point_fn) on its own slice of the chunk, with no communication
    # (grid points are independent; letting the SPMD partitioner split the program instead can insert
    # collectives inside the profiling loop, which deadlocked on two simulated CPU devices)
    spec = PartitionSpec("points")
    batched = jax.jit(jax.shard_map(jax.vmap(_as_dict(point_fn)), mesh=mesh, in_specs=spec, out_specs=spec,
                                      check_vma=False))
    mine = [c for c in range(n_chunks) if c % jax.process_count() == jax.process_index()]
    todo = [c for c in mine if not _chunk_path(out, c).exists()]
    start, done_points = time.perf_counter(), 0
    computed = []
    for c in todo:
        lo, hi = c * chunk_size, min((c + 1) * chunk_size, n_points)
        chunk = {k: np.pad(v[lo:hi], (0, chunk_size - (hi - lo)), mode="edge") for k, v in points.items()}
        result = batched({k: jax.device_put(jnp.asarray(v), sharding) for k, v in chunk.items()})
        arrays = {k: np.asarray(v)[: hi - lo] for k, v in result.items()}
        _atomic_savez(_chunk_path(out, c), arrays)
        computed.append(c)
        done_points += hi - lo
        if progress:
            rate = done_points / (time.perf_counter() - start)
            left = sum(min((k + 1) * chunk_size, n_points) - k * chunk_size for k in todo if k not in computed)
            print(f"[scan] chunk {c + 1}/{n_chunks}: {done_points} points in this run, {rate:,.0f} points/s, "
                  f"≈{left / rate:,.0f} s left", file=sys.stderr)
        if on_chunk is not None:
            on_chunk(c)
    return ScanResult(axes, assemble(out), meta, computed)


def _read_meta(path: Path) -> dict | None:
    """A previous scan's ``meta.json`` (``None`` if absent); an unreadable one is an error naming the file."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as err:
        raise CevnsInputError(f"{path}: unreadable scan metadata ({err}); remove the folder to start afresh") from err


def _as_dict(fn):
    """Outputs as a dict of arrays (a bare array becomes {"value": array})."""

    def wrapped(params):
        out = fn(params)
        return out if isinstance(out, dict) else {"value": out}

    return wrapped


def assemble(out_dir: str | Path) -> dict:
    """Read every chunk of a finished scan and reshape to the grid: {output name: array}."""
    out = Path(out_dir)
    meta = json.loads((out / "meta.json").read_text())
    shape = tuple(a["num"] for a in meta["axes"])
    missing = [c for c in range(meta["n_chunks"]) if not _chunk_path(out, c).exists()]
    if missing:
        raise CevnsInputError(f"{out}: scan incomplete, {len(missing)} of {meta['n_chunks']} chunks missing")
    parts = [np.load(_chunk_path(out, c)) for c in range(meta["n_chunks"])]
    return {k: np.concatenate([p[k] for p in parts]).reshape(shape + parts[0][k].shape[1:]) for k in parts[0].files}


def raster_crossings(couplings: np.ndarray, delta_chi2: np.ndarray, level: float = 2.706) -> list[list[float]]:
    """All crossings of Δχ² = level along the coupling axis, for each row (mass) of ``delta_chi2``.

    Returns one list per mass (ascending couplings; interpolation in log coupling for positive axes).
    The first crossing is the usual exclusion limit; more appear where Δχ² is not monotonic (e.g. the
    universal Z′'s allowed island).
    """
    x = np.log(couplings) if np.all(couplings > 0) else np.asarray(couplings, dtype=float)
    out = []
    for row in np.atleast_2d(delta_chi2):
        d = row - level
        idx = np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) < 0)[0]
        cross = [x[i] + (x[i + 1] - x[i]) * (-d[i]) / (d[i + 1] - d[i]) for i in idx]
        out.append([float(np.exp(c)) if np.all(couplings > 0) else float(c) for c in cross])
    return out


def _chunk_path(out: Path, c: int) -> Path:
    return out / f"chunk_{c:06d}.npz"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_savez(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
