"""Grid scans at scale: chunked, sharded, resumable evaluation of any function over a parameter grid.

    axes = [Axis("mass_MeV", 1.0, 1000.0, 60, "log"), Axis("g", 1e-6, 1e-2, 80, "log")]
    result = run_scan(point_fn, axes, "results/lmutau", memory_budget_bytes=2e9)

* ``point_fn(params: dict[str, scalar]) -> pytree of arrays`` is evaluated with ``jit(vmap(...))``
  over chunks of grid points. The chunk size comes from a memory budget: the chunk program is
  compiled for the whole grid (up to :data:`MAX_CHUNK_POINTS` per device) and kept if XLA's memory
  analysis of it fits the budget, else recompiled once for the largest chunk that fits (scaled
  linearly). The scan's compiled program is returned with the result (:meth:`ScanResult.evaluate`),
  so root finding on the same function compiles nothing more.
* Each chunk is split over this process's devices (a 1-D ``Mesh`` over ``jax.local_devices()``, the
  chunk's point axis sharded), so the same code runs on one CPU, one GPU or several. On a cluster,
  call ``jax.distributed.initialize()`` first (under SLURM it reads the job's environment): each
  process then takes every ``process_count``-th chunk of one shared results folder, and all wait for
  each other before assembling.
* Every finished chunk is written atomically (``.npz`` written to a temporary name, then renamed)
  with its index, its grid coordinates, the scan's identity and a checksum; a rerun with the same
  output folder verifies the chunks on disk, recomputes any that is truncated, corrupt or misplaced
  (named on stderr) and computes only the rest, so an interrupted scan loses nothing. ``meta.json``
  records axes, description, the scan identity (hashes of the grid, the description, the inputs
  the point function closes over, the package version and source: :func:`scan_identity`), JAX
  version, device kind and float precision; a rerun of another identity is refused, naming what
  changed, so results are never reused for other inputs. A finished scan rerun compiles nothing
  (the chunking is read back from ``meta.json``).
* Progress: the compile phase is announced, then a ``tqdm`` bar (points, rate and time left measured
  after compilation) names the scan.
* Results load in one call as a labelled dataset: ``load(out_dir)`` verifies every chunk and returns a
  :class:`~cevns_jax.results.LabelledScan` (named axes with their values and units, named outputs with
  their dimensions, provenance from ``meta.json``; ``.sel(mass_MeV=10.0)``, ``.to_dict()``, and
  ``.to_xarray()`` where xarray is installed). Units come from ``run_scan(..., units={name: "MeV"})``
  and the outputs' own trailing axes from ``output_axes``; neither is part of the scan's identity (they
  label the values, they do not change them), so a rerun may add or correct them in ``meta.json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .errors import CevnsInputError
from .provenance import content_hash, source_hash
from .results import LabelledScan, labelled_scan
from .scan_program import ScanProgram
from .stats.crossings import raster_crossings  # noqa: F401  (re-exported: scan.raster_crossings)

__all__ = ["Axis", "ScanResult", "validate_axes", "grid_points", "run_scan", "assemble",
           "raster_crossings", "scan_identity", "load", "LabelledScan", "ScanProgram", "CPU_MULTI_DEVICE_POINTS", "MAX_CHUNK_POINTS"]

SCALES = ("linear", "log")
CPU_MULTI_DEVICE_POINTS = 256
"""Points per device per chunk when a scan runs on several CPU devices (see :func:`run_scan`)."""
MAX_CHUNK_POINTS = 4096
"""Points per device in the first chunk program tried when no chunk size is given (kept if it fits the
memory budget): a chunk's compile time barely depends on its size, so one program for a small grid."""


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
    program: ScanProgram | None = field(default=None, repr=False, compare=False)
    prepare: Callable | None = field(default=None, repr=False, compare=False)

    def axis_values(self, name: str) -> np.ndarray:
        return next(a for a in self.axes if a.name == name).values()

    def evaluate(self, points: dict) -> dict:
        """The scan's point function at any points {axis name: 1-D array}, with the scan's own compiled
        chunk program (compiled now if the scan was already finished): {output: array}."""
        if self.program is None:
            raise CevnsInputError("this scan result carries no program (assembled from disk)")
        names = [a.name for a in self.axes]
        if sorted(points) != sorted(names):
            raise CevnsInputError(f"scan evaluate: give exactly the axes {names}, got {sorted(points)}")
        points = {k: np.atleast_1d(np.asarray(points[k], dtype=float)) for k in names}
        return self.program(self.prepare(points) if self.prepare else points)

    def labelled(self) -> LabelledScan:
        """These values as a :class:`~cevns_jax.results.LabelledScan` (what :func:`load` returns)."""
        return _labelled(self.values, self.meta)


def run_scan(
    point_fn: Callable[[dict], dict] | ScanProgram,
    axes: list[Axis],
    out_dir: str | Path,
    *,
    memory_budget_bytes: float = 1e9,
    chunk_size: int | None = None,
    description: dict | None = None,
    identity=None,
    label: str | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    units: dict[str, str] | None = None,
    output_axes: list[Axis] | None = None,
    prepare: Callable[[dict], dict] | None = None,
) -> ScanResult:
    """Evaluate ``point_fn`` on every grid point, chunk by chunk, resuming from ``out_dir``.

    ``point_fn`` maps a dict of scalars (one per axis) to a dict of arrays. ``description`` (JSON
    serialisable: model, experiments, nuisance settings…) is stored in ``meta.json``. ``identity`` is
    any pytree the values depend on that ``point_fn`` closes over (experiments, fixed model
    parameters, priors): its :func:`~cevns_jax.provenance.content_hash`, with the description's, the
    grid's and the package's source hash, identifies the scan (:func:`scan_identity`). A folder
    holding a scan of another identity is refused with an error naming what differs; chunks that are
    truncated, corrupt, or hold other points or another scan are named on stderr and recomputed
    alone. ``label`` names the scan in progress output (default: the folder's name): the compile phase
    is announced, then a progress bar counts points with a rate and ETA measured after compilation.
    ``on_chunk`` is called with each finished chunk's index (used by tests to interrupt a scan).
    ``units`` ({axis or output name: unit text, "1" for dimensionless}) and ``output_axes`` (the axes of
    the outputs' own trailing dimensions, e.g. a coupling raster computed per point) label the results
    for :func:`load`; they are stored in ``meta.json`` outside the scan identity (a rerun updates them).

    ``point_fn`` may be a :class:`~cevns_jax.scan_program.ScanProgram` already compiled by another scan:
    it is reused with its chunk size (nothing is compiled). ``prepare`` maps the grid's points (a dict
    of NumPy arrays named by the axes) to the point function's inputs on the host, so scans over
    different axes can share one program; the prepared inputs are hashed into the scan's identity.
    """
    validate_axes(axes)
    labels = _annotations(units, output_axes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = grid_points(axes)
    n_points = next(iter(points.values())).size
    inputs = _prepared(prepare, points, n_points)
    devices = jax.local_devices()  # this process's devices; other processes take other chunks
    n_dev = len(devices)
    meta_path = out / "meta.json"
    previous = _read_meta(meta_path)
    ident = scan_identity(axes, description, identity if prepare is None else (identity, inputs))
    if previous:  # refuse another scan's folder before compiling anything
        if previous["axes"] != [asdict(a) for a in axes]:
            raise CevnsInputError(f"{out}: holds a scan with other axes or chunking; use a new folder")
        if previous.get("description", {}) != json.loads(json.dumps(description or {})):
            raise CevnsInputError(f"{out}: holds a scan with another description (model, experiments or "
                                  "nuisances); use a new folder")
        _check_identity(out, previous.get("identity"), ident)
    if chunk_size is None and previous and previous["chunk_size"] % n_dev == 0:  # (same axes: checked above)
        chunk_size = previous["chunk_size"]  # resuming: keep the chunking (and compile nothing if all is done)
    program = point_fn if isinstance(point_fn, ScanProgram) else ScanProgram(point_fn, devices)
    program.check_inputs(inputs)
    if chunk_size is None and program.compiled is not None:  # a shared program: its own chunking
        chunk_size = program.compiled_size
    if chunk_size is not None and chunk_size % n_dev:
        chunk_size += n_dev - chunk_size % n_dev
    multi_cpu = n_dev > 1 and devices[0].platform == "cpu"
    cap = CPU_MULTI_DEVICE_POINTS if multi_cpu else MAX_CHUNK_POINTS
    # (several simulated CPU devices share one thread pool; with JAX 0.10.2 a profiled-Δχ² program of
    # ≳ 800 points per device never returned on 2 cores, ≤ 400 ran, with or without shard_map)
    if chunk_size is None:  # the whole grid (up to the cap) in one program if it fits the memory budget
        first = min(n_points + (-n_points) % n_dev, cap * n_dev)
        if progress:
            print(f"[scan] {label or out.name}: compiling the chunk program ({first} points)", file=sys.stderr, flush=True)
        need = program.compile(list(inputs), first)
        chunk_size = first
        if need > memory_budget_bytes:  # per device: recompile (once) for the largest chunk that fits
            chunk_size = max(1, int(memory_budget_bytes // (need * n_dev / first))) * n_dev
    if multi_cpu:  # a chunk size given for one device or for accelerators is kept (its memory: the caller's call)
        chunk_size = min(chunk_size, cap * n_dev)
    program.chunk_size = chunk_size
    n_chunks = math.ceil(n_points / chunk_size)
    meta = {"axes": [asdict(a) for a in axes], "chunk_size": chunk_size, "n_chunks": n_chunks,
            "n_points": n_points, "description": description or {}, "identity": ident, **_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **labels}
    if previous:
        if previous["chunk_size"] != chunk_size:
            raise CevnsInputError(f"{out}: holds a scan with other axes or chunking; use a new folder")
        meta.pop("created")  # the first run's time, if it recorded one
        if previous.get("created"):
            meta["created"] = previous["created"]
        if any(previous.get(k) != v for k, v in labels.items()):  # labels only: never the identity
            if jax.process_index() == 0:
                _atomic_write(meta_path, json.dumps({**previous, **labels}, indent=2).encode())
        meta.update({k: previous.get(k) for k in ("units", "output_axes") if k not in labels})
    else:
        _atomic_write(meta_path, json.dumps(meta, indent=2).encode())

    mine = [c for c in range(n_chunks) if c % jax.process_count() == jax.process_index()]
    todo = [c for c in mine if not _chunk_ok(out, c, points, chunk_size, ident["scan"])]
    computed, bar = [], None
    n_todo = sum(min((c + 1) * chunk_size, n_points) - c * chunk_size for c in todo)
    name = label or out.name
    if progress and todo and program.compiled_size != chunk_size:
        print(f"[scan] {name}: compiling ({n_todo:,} points to compute in {len(todo)} chunks of {chunk_size})",
              file=sys.stderr, flush=True)
    start = time.perf_counter()
    for c in todo:
        lo, hi = c * chunk_size, min((c + 1) * chunk_size, n_points)
        arrays = program.run_slice(inputs, lo, hi)
        _atomic_savez(_chunk_path(out, c), _stamped(arrays, c, {k: v[lo:hi] for k, v in points.items()}, ident["scan"]))
        computed.append(c)
        if progress and bar is None:  # the first chunk includes compilation: the bar's rate starts after it
            print(f"[scan] {name}: compiled and ran the first chunk in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr, flush=True)
            if len(todo) > 1:
                bar = tqdm(total=n_todo, initial=hi - lo, desc=f"[scan] {name}", unit="pt", file=sys.stderr,
                           dynamic_ncols=True, mininterval=1.0)
        elif bar is not None:
            bar.update(hi - lo)
        if on_chunk is not None:
            on_chunk(c)
    if bar is not None:
        bar.close()
    if jax.process_count() > 1:  # every process's chunks are on disk before anyone assembles
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"cevns_jax scan {ident['scan']}")
    return ScanResult(axes, assemble(out), meta, computed, program, prepare)


def _prepared(prepare, points: dict, n_points: int) -> dict:
    """The point function's inputs on the grid: ``prepare(points)`` checked (same point count, finite)."""
    if prepare is None:
        return points
    inputs = {k: np.broadcast_to(np.asarray(v, dtype=float), (n_points,)).copy() for k, v in prepare(dict(points)).items()}
    bad = sorted(k for k, v in inputs.items() if not np.all(np.isfinite(v)))
    if bad:
        raise CevnsInputError(f"scan: prepare gave non-finite inputs {bad}")
    return inputs


def _annotations(units, output_axes) -> dict:
    """The labels ``run_scan`` stores beside the identity, checked before any compute."""
    out = {}
    if units is not None:
        if not isinstance(units, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in units.items()):
            raise CevnsInputError(f"scan units: expected a dict of name → unit text, got {units!r}")
        out["units"] = dict(units)
    if output_axes is not None:
        validate_axes(list(output_axes))
        out["output_axes"] = [asdict(a) for a in output_axes]
    return out


def load(out_dir: str | Path) -> LabelledScan:
    """A finished scan as a labelled dataset, in one call (see :mod:`cevns_jax.results`).

    Reads ``meta.json`` and every chunk (verified as by :func:`assemble`); a missing folder, a missing,
    truncated, corrupt or misplaced chunk is a :class:`~cevns_jax.errors.CevnsInputError` naming the file."""
    out = Path(out_dir)
    values = assemble(out)
    return _labelled(values, _read_meta(out / "meta.json"), out)


def _labelled(values: dict, meta: dict, path: Path | None = None) -> LabelledScan:
    grid = {a["name"]: Axis(**a).values() for a in meta["axes"]}
    extra = {a["name"]: Axis(**a).values() for a in meta.get("output_axes") or []}
    return labelled_scan(values, grid, meta, extra, path)


def _read_meta(path: Path) -> dict | None:
    """A previous scan's ``meta.json`` (``None`` if absent); an unreadable one is an error naming the file."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as err:
        raise CevnsInputError(f"{path}: unreadable scan metadata ({err}); remove the folder to start afresh") from err


def assemble(out_dir: str | Path) -> dict:
    """Read every chunk of a finished scan and reshape to the grid: {output name: array}.

    Every chunk is verified (checksum, grid coordinates, scan identity); a missing, truncated,
    corrupt or misplaced chunk is an error naming the file (rerun the scan to recompute it)."""
    out = Path(out_dir)
    meta = _read_meta(out / "meta.json")
    if meta is None:
        what = "meta.json missing" if out.is_dir() else "no such folder"
        raise CevnsInputError(f"{out / 'meta.json'}: no scan here ({what})")
    shape = tuple(a["num"] for a in meta["axes"])
    missing = [c for c in range(meta["n_chunks"]) if not _chunk_path(out, c).exists()]
    if missing:
        raise CevnsInputError(f"{_chunk_path(out, missing[0])}: missing; scan incomplete, {len(missing)} of "
                              f"{meta['n_chunks']} chunks missing (rerun the scan to compute them)")
    points = grid_points([Axis(**a) for a in meta["axes"]])
    scan_id = (meta.get("identity") or {}).get("scan")
    parts = []
    for c in range(meta["n_chunks"]):
        try:
            parts.append(_read_chunk(out, c, points, meta["chunk_size"], scan_id))
        except _BadChunk as err:
            raise CevnsInputError(f"{_chunk_path(out, c)}: {err}; rerun the scan to recompute it") from None
    return {k: np.concatenate([p[k] for p in parts]).reshape(shape + parts[0][k].shape[1:]) for k in parts[0]}


def _chunk_path(out: Path, c: int) -> Path:
    return out / f"chunk_{c:06d}.npz"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file named for this process: processes of a multi-host scan write the same
    ``meta.json`` at once, and a shared temporary name let one rename the other's file away (session 21)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_savez(path: Path, arrays: dict) -> None:
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ---------------------------------------------------------------- identity and chunk integrity

STAMP = "__cevns__"
"""Prefix of the bookkeeping arrays stored in every chunk (index, scan identity, coordinates, checksum)."""


def scan_identity(axes: list[Axis], description: dict | None, identity=None) -> dict:
    """What a scan's values are computed from, as hashes: ``{"scan": overall, "parts": {…}}``.

    Parts: the grid (axes), the description, the ``identity`` pytree (experiments, model parameters,
    priors…; :func:`~cevns_jax.provenance.content_hash`), the package version and its source hash.
    Two runs share ``scan`` exactly when every part is equal."""
    from . import __version__

    parts = {"grid": content_hash([asdict(a) for a in axes]), "description": content_hash(description or {}),
             "inputs": content_hash(identity), "version": __version__, "source": source_hash()}
    return {"scan": content_hash(parts), "parts": parts}


_PART_WORDS = {"grid": "the grid", "description": "the description", "inputs": "the inputs (experiments, model, "
               "priors)", "version": "the package version", "source": "the package source code"}


def _check_identity(out: Path, previous: dict | None, ident: dict) -> None:
    """Refuse to resume a scan computed for other inputs, naming what differs."""
    if not previous or "parts" not in previous:
        raise CevnsInputError(f"{out}: holds a scan without an identity record (written by an older version); "
                              "remove the folder or use a new one")
    if previous["scan"] != ident["scan"]:
        differ = [_PART_WORDS.get(k, k) for k in ident["parts"] if previous["parts"].get(k) != ident["parts"][k]]
        raise CevnsInputError(f"{out}: holds a scan computed for other inputs ({', '.join(differ) or 'identity'} "
                              "changed); its results cannot be reused: remove the folder or use a new one")


class _BadChunk(Exception):
    pass


def _checksum(arrays: dict) -> str:
    return content_hash({k: np.asarray(arrays[k]) for k in sorted(arrays)})


def _stamped(arrays: dict, c: int, coords: dict, scan_id: str) -> dict:
    """A chunk's outputs with its index, scan identity, grid coordinates and a checksum of all of them."""
    stamped = {**arrays, f"{STAMP}chunk": np.asarray(c), f"{STAMP}scan": np.asarray(scan_id)}
    stamped.update({f"{STAMP}point:{k}": np.asarray(v) for k, v in coords.items()})
    stamped[f"{STAMP}sha256"] = np.asarray(_checksum(stamped))
    return stamped


def _read_chunk(out: Path, c: int, points: dict, chunk_size: int, scan_id: str | None) -> dict:
    """Chunk ``c``'s outputs, verified; raises :class:`_BadChunk` with the reason."""
    path = _chunk_path(out, c)
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # our handle: closed on any error
            data = {k: z[k] for k in z.files}
    except Exception as err:  # zero-byte, truncated, not a zip, bad member: all mean "recompute"
        raise _BadChunk(f"unreadable chunk ({type(err).__name__}: {err})") from None
    stored = data.pop(f"{STAMP}sha256", None)
    if stored is None:
        raise _BadChunk("chunk has no checksum (written by an older version)")
    if str(stored) != _checksum(data):
        raise _BadChunk("checksum mismatch (corrupt chunk)")
    index, scan = data.get(f"{STAMP}chunk"), data.get(f"{STAMP}scan")
    if index is None or scan is None or int(index) != c or (scan_id is not None and str(scan) != scan_id):
        raise _BadChunk(f"holds chunk {index} of scan {str(scan)[:12]}…, not chunk {c} of this scan (misplaced)")
    lo = c * chunk_size
    for k, v in points.items():
        mine = v[lo:lo + chunk_size]
        got = data.get(f"{STAMP}point:{k}")
        if got is None or got.shape != mine.shape or not np.array_equal(got, mine):
            raise _BadChunk(f"grid coordinates of axis {k!r} differ from this scan's (misplaced)")
    return {k: v for k, v in data.items() if not k.startswith(STAMP)}


def _chunk_ok(out: Path, c: int, points: dict, chunk_size: int, scan_id: str) -> bool:
    """Whether chunk ``c`` is on disk and valid; an invalid one is named on stderr and removed."""
    path = _chunk_path(out, c)
    if not path.exists():
        return False
    try:
        _read_chunk(out, c, points, chunk_size, scan_id)
        return True
    except _BadChunk as err:
        print(f"[scan] {path}: {err}; recomputing it", file=sys.stderr)
        path.unlink()
        return False
