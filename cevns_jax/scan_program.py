"""A point function compiled over chunks of grid points: the program that :func:`cevns_jax.scan.run_scan`
runs, reusable across scans (docs/physics.md §5.9).

    program = ScanProgram(point_fn)           # compiled at first use, for one chunk size
    run_scan(program, axes_a, "results/a", prepare=to_inputs_a)
    run_scan(program, axes_b, "results/b", prepare=to_inputs_b)   # compiles nothing more

``point_fn(inputs: dict[str, scalar]) -> dict of arrays`` is vmapped over the chunk's points and each
chunk is split over this process's devices (``shard_map`` on a 1-D mesh: no communication, grid points
are independent). A program is compiled for one set of input names and one chunk size; any number of
points is run in whole chunks (the last one padded by repeating its last point, and trimmed).
Several scans of one model family share a program when a host-side ``prepare`` maps each scan's axes to
the same inputs (e.g. every Z′ family, sterile mixing and NSI as leaves of one model): XLA compilation,
most of a cold start, then happens once.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .batches import pad_points
from .errors import CevnsInputError

__all__ = ["ScanProgram", "PytreeInputs"]


def _as_dict(fn):
    """Outputs as a dict of arrays (a bare array becomes {"value": array})."""

    def wrapped(params):
        out = fn(params)
        return out if isinstance(out, dict) else {"value": out}

    return wrapped


class ScanProgram:
    """``point_fn`` over one chunk of points, split over ``devices`` (default: this process's), compiled
    once per (input names, chunk size): ``program(points)`` → {output: NumPy array} for any number of
    points (padded to whole chunks). ``before_compile()`` runs before each compilation, outside the
    trace (to build, only when needed, what ``point_fn`` closes over)."""

    def __init__(self, point_fn: Callable, devices: list | None = None, before_compile: Callable | None = None):
        self.before_compile = before_compile
        devices = jax.local_devices() if devices is None else devices
        self.mesh = Mesh(np.array(devices), ("points",))
        self.n_devices = len(devices)
        self.sharding = NamedSharding(self.mesh, PartitionSpec("points"))
        spec = PartitionSpec("points")
        # shard_map: each device runs vmap(point_fn) on its own slice of the chunk, with no communication
        # (grid points are independent; letting the SPMD partitioner split the program instead can insert
        # collectives inside the profiling loop, which deadlocked on two simulated CPU devices)
        self.jitted = jax.jit(jax.shard_map(jax.vmap(_as_dict(point_fn)), mesh=self.mesh, in_specs=spec,
                                            out_specs=spec, check_vma=False))
        self.chunk_size, self.compiled, self.compiled_size, self.names = None, None, None, None

    def compile(self, names, chunk_size: int) -> float:
        """Compile for ``chunk_size`` points of the named inputs; returns XLA's memory estimate per device
        [bytes] (0 where the backend gives none)."""
        if self.before_compile is not None:  # e.g. build what the point function closes over, not under a trace
            self.before_compile()
        spec = jax.ShapeDtypeStruct((chunk_size,), jnp.float64, sharding=self.sharding)
        self.compiled = self.jitted.lower({k: spec for k in names}).compile()
        self.chunk_size = self.compiled_size = chunk_size
        self.names = tuple(sorted(names))
        try:
            mem = self.compiled.memory_analysis()
            return float(mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes)
        except Exception:  # backends without memory analysis: unknown, assume it fits
            return 0.0

    def check_inputs(self, names) -> None:
        """A compiled program takes exactly its own inputs: a named error otherwise."""
        if self.names is not None and tuple(sorted(names)) != self.names:
            raise CevnsInputError(f"scan program: compiled for the inputs {list(self.names)}, given {sorted(names)}")

    def run_chunk(self, chunk: dict) -> dict:
        self.check_inputs(chunk)
        if self.compiled is None or self.compiled_size != self.chunk_size:
            self.compile(list(chunk), self.chunk_size)
        out = self.compiled({k: jax.device_put(jnp.asarray(chunk[k], dtype=jnp.float64), self.sharding)
                             for k in self.names})
        return {k: np.asarray(v) for k, v in out.items()}

    def run_slice(self, points: dict, lo: int, hi: int) -> dict:
        """Points ``lo:hi`` (at most one chunk), padded to a whole chunk, run, and trimmed back."""
        chunk = pad_points({k: v[lo:hi] for k, v in points.items()}, self.chunk_size)
        return {k: v[: hi - lo] for k, v in self.run_chunk(chunk).items()}

    def __call__(self, points: dict) -> dict:
        points = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in points.items()}
        n = next(iter(points.values())).size
        if self.chunk_size is None:  # never compiled: one chunk of these points
            self.chunk_size = n + (-n) % self.n_devices
        parts = [self.run_slice(points, lo, min(lo + self.chunk_size, n)) for lo in range(0, n, self.chunk_size)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class PytreeInputs:
    """Named scalar inputs of a program from batches of one pytree structure, and back.

    ``template`` fixes the structure (e.g. a :class:`~cevns_jax.models.NewPhysics` with every sub-model
    present at its null values). :meth:`columns` turns a batch (leaves with a leading point axis; any
    sub-tree that is ``None`` takes the template's values) into ``{name: (n,) array}``, one column per
    leaf element, named by the leaf's path; :meth:`build` (traceable) rebuilds one point's pytree. So
    models of different families become inputs of one compiled :class:`ScanProgram`.
    """

    def __init__(self, template):
        self.template = template
        leaves, self.treedef = jax.tree_util.tree_flatten_with_path(template)
        self.slots = [(jax.tree_util.keystr(path), np.shape(leaf)) for path, leaf in leaves]
        self.names = [f"{p}[{i}]" if s else p for p, s in self.slots for i in range(int(np.prod(s, dtype=int)))]

    def columns(self, batch, n: int) -> dict:
        """``{name: (n,) float64 array}`` of a batch of ``n`` points."""
        filled = _fill(batch, self.template)
        leaves = jax.tree_util.tree_leaves(filled)
        if len(leaves) != len(self.slots):
            raise CevnsInputError(f"PytreeInputs: the batch has {len(leaves)} leaves, the template {len(self.slots)}")
        out = {}
        for (path, shape), leaf in zip(self.slots, leaves):
            flat = np.broadcast_to(np.asarray(leaf, dtype=float), (n, *shape)).reshape(n, -1)
            if shape:
                out.update({f"{path}[{i}]": flat[:, i].copy() for i in range(flat.shape[1])})
            else:
                out[path] = flat[:, 0].copy()
        return out

    def build(self, inputs: dict):
        """One point's pytree from its scalar inputs (traceable: used inside the compiled program)."""
        leaves = []
        for path, shape in self.slots:
            if shape:
                size = int(np.prod(shape, dtype=int))
                leaves.append(jnp.stack([inputs[f"{path}[{i}]"] for i in range(size)]).reshape(shape))
            else:
                leaves.append(jnp.asarray(inputs[path]))
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _fill(batch, template):
    """``batch`` with every ``None`` sub-tree replaced by the template's (dataclass pytrees, recursively)."""
    if batch is None:
        return template
    if dataclasses.is_dataclass(template) and dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **{f.name: _fill(getattr(batch, f.name), getattr(template, f.name))
                                             for f in dataclasses.fields(template) if f.init})
    return batch
