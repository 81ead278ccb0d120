"""Toys and Neyman constructions run by the scan engine (docs/physics.md §5.11): chunked, sharded, resumable,
identified.

The statistics (:mod:`cevns_jax.stats.toys`, :mod:`cevns_jax.stats.neyman`) are pure functions of one toy
or one grid; this module, above :mod:`cevns_jax.scan` in the layering, runs them on hypothesis grids ×
toys with :func:`cevns_jax.scan.run_scan`, the toy index being the last grid axis:

* :func:`toy_program` — one compiled chunk program per model (seed, hypothesis index, generating point
  and its nuisances are inputs), to share between runs;
* :func:`run_toys` — toys on a grid, as a :class:`ToyRun` (values (grid…, n_toys), failure fractions);
* :func:`neyman_construction` — Feldman–Cousins critical values c(θ) from the toys and the region of the
  observed data, as a :class:`NeymanBelt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from .errors import CevnsInputError
from .scan import Axis, run_scan
from .scan_program import ScanProgram
from .stats.neyman import confidence_region, critical_values, observed_statistics
from .stats.toys import (TOY_AXIS, ToyModel, check_toy_model, failure_fraction, generating_batch,
                         toy_point_function)

__all__ = ["ToyRun", "toy_program", "run_toys", "NeymanBelt", "neyman_construction"]


@dataclass
class ToyRun:
    """Toys on a hypothesis grid: ``values[name]`` has shape (grid…, n_toys); ``hypotheses`` {poi: grid
    values, shape (grid…)}; ``failure_fraction`` (grid…): share of toys whose fits did not converge
    (kept in ``values``, flagged by ``values["converged"]`` = 0); ``scan``: the underlying
    :class:`cevns_jax.scan.ScanResult`."""

    values: dict
    hypotheses: dict
    failure_fraction: np.ndarray
    scan: Any


def toy_program(model: ToyModel):
    """A :class:`cevns_jax.scan_program.ScanProgram` of :func:`toy_point_function`: pass it to several
    :func:`run_toys` calls of one model (hypothesis grids, seeds, ``generate_at``) to compile once."""
    return ScanProgram(toy_point_function(model))


def run_toys(model: ToyModel, axes: list, n_toys: int, out_dir: str | Path, *, seed: int,
             generate_at: dict | None = None, program=None, chunk_size: int | None = None,
             memory_budget_bytes: float = 1e9, progress: bool = True, label: str | None = None,
             on_chunk=None) -> ToyRun:
    """``n_toys`` toys at every hypothesis of the grid ``axes`` (:class:`cevns_jax.scan.Axis` over the POIs),
    run under :func:`cevns_jax.scan.run_scan` into ``out_dir`` (chunked, resumable, identified).

    Toys are generated at the tested hypothesis (θ_gen = θ_test, the Neyman construction) unless
    ``generate_at`` ({poi: value}, e.g. the background-only point for CLs) fixes θ_gen for all of them;
    ν_gen is profiled on the observed data at θ_gen (module docstring). The toy index is the last grid
    axis (:data:`TOY_AXIS`); toy i of hypothesis h (C-order grid index) has key :func:`toy_key` (seed, h, i).
    ``program``: a :func:`toy_program` of this model, shared between runs (default: a new one).
    """
    check_toy_model(model)
    names = model.poi_names
    if sorted(a.name for a in axes) != sorted(names):
        raise CevnsInputError(f"toys: the hypothesis axes must be exactly the parameters of interest {list(names)}, "
                              f"got {[a.name for a in axes]}")
    if isinstance(n_toys, bool) or not isinstance(n_toys, int) or n_toys < 1:
        raise CevnsInputError(f"toys: n_toys must be a whole number ≥ 1, got {n_toys!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise CevnsInputError(f"toys: seed must be a whole number in [0, 2³²), got {seed!r}")
    if generate_at is not None and sorted(generate_at) != sorted(names):
        raise CevnsInputError(f"toys: generate_at must give every parameter of interest {list(names)}, "
                              f"got {sorted(generate_at)}")
    axes = list(axes)
    grid_axes = axes + [Axis(TOY_AXIS, 0.0, float(n_toys - 1), n_toys)]
    nu_names = model.nuisance_names

    def prepare(points: dict) -> dict:
        n_points = points[TOY_AXIS].size
        thetas = np.stack([points[k] for k in names], axis=-1)[::n_toys]  # one row per hypothesis
        gen = np.tile([float(generate_at[k]) for k in names], (thetas.shape[0], 1)) if generate_at else thetas
        uniq, inverse = np.unique(gen, axis=0, return_inverse=True)
        nus = np.asarray(generating_batch(model, jnp.asarray(uniq, dtype=jnp.float64))).reshape(len(uniq), -1)
        nus = nus[np.ravel(inverse)]
        out = {k: points[k] for k in names}
        out.update({TOY_AXIS: points[TOY_AXIS], "seed": np.full(n_points, float(seed)),
                    "hypothesis": (np.arange(n_points) // n_toys).astype(float)})
        out.update({f"gen:{k}": np.repeat(gen[:, i], n_toys) for i, k in enumerate(names)})
        out.update({f"nu:{k}": np.repeat(nus[:, j], n_toys) for j, k in enumerate(nu_names)})
        return out

    description = {"kind": "toys", "seed": int(seed), "n_toys": n_toys, "hypothesis_axes": [a.name for a in axes],
                   "generate_at": None if generate_at is None else {k: float(v) for k, v in generate_at.items()}}
    result = run_scan(toy_program(model) if program is None else program, grid_axes, out_dir,
                      memory_budget_bytes=memory_budget_bytes, chunk_size=chunk_size, description=description,
                      identity=model.identity(), label=label, progress=progress, on_chunk=on_chunk, prepare=prepare)
    values = dict(result.values)
    hyp = {a.name: m for a, m in zip(axes, np.meshgrid(*[a.values() for a in axes], indexing="ij"))}
    return ToyRun(values, hyp, failure_fraction(values), result)


@dataclass
class NeymanBelt:
    """A Neyman construction on a grid: ``hypotheses`` {poi: values (grid…)}, ``critical`` c(θ) (grid…),
    ``t_obs`` (grid…), ``accepted`` (grid…, bool), ``failure_fraction`` (grid…), the toy run and
    ``observed_converged`` (grid…, bool: both fits of the observed data converged at that hypothesis)."""

    hypotheses: dict
    critical: np.ndarray
    t_obs: np.ndarray
    accepted: np.ndarray
    failure_fraction: np.ndarray
    cl: float
    toys: Any
    observed_converged: Any = None


def neyman_construction(model: ToyModel, axes: list, n_toys: int, out_dir: str | Path, *, seed: int,
                        cl: float = 0.9, program=None, progress: bool = True, **scan_options) -> NeymanBelt:
    """Feldman–Cousins region of ``model.data`` at ``cl`` on the grid ``axes`` (one or two POIs, or more):
    ``n_toys`` toys per grid point generated there (:func:`cevns_jax.stats.toys.run_toys`, resumable in
    ``out_dir``), c(θ) their ``cl`` quantile, the region {θ : t_obs(θ) ≤ c(θ)}."""
    run = run_toys(model, axes, n_toys, out_dir, seed=seed, program=program, progress=progress, **scan_options)
    crit = critical_values(run.values["t"], cl, run.values["converged"])
    names = model.poi_names
    grid = np.stack([run.hypotheses[k] for k in names], axis=-1)
    shape = grid.shape[:-1]
    observed = observed_statistics(model, grid.reshape(-1, len(names)))
    t_obs = observed["t"].reshape(shape)
    return NeymanBelt(run.hypotheses, crit, t_obs, confidence_region(t_obs, crit), run.failure_fraction, cl, run,
                      observed["converged"].reshape(shape) > 0.5)
