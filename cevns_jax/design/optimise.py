"""Objectives and the optimiser: ln FoM of a realised design (plus a smooth budget penalty), minimised
with any optax transformation (default L-BFGS) by one compiled step per iteration; the path is recorded
(:class:`DesignResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .validate import validate_design
from .variables import Budget, Design, realise

__all__ = ["budget_penalty", "DesignObjective", "make_objective", "DesignResult", "default_optimizer", "optimise",
           "optimise_design"]


def budget_penalty(budget: Budget, cost):
    """weight·(softplus((cost/B − 1)/width)·width)²: ≈ 0 inside the budget (a smooth corner of relative
    width ``width``), ≈ weight·(cost/B − 1)² beyond."""
    excess = jax.nn.softplus((cost / budget.total - 1.0) / budget.width) * budget.width
    return budget.weight * excess**2


@dataclass(frozen=True)
class DesignObjective:
    """objective(params, design, experiments): ln FoM (or FoM) of the realised design, plus the budget
    penalty for ``Budget(method="penalty")``. Pure and jit/grad/vmap-able in ``params``; hashable (a
    static argument of the compiled optimiser step) when the FoM is."""

    fom: Callable
    log: bool = True

    def __call__(self, params, design, experiments):
        exps, _ = realise(design, params, experiments)
        value = self.fom(exps)
        value = jnp.log(value) if self.log else value
        b = design.budget
        if b is not None and b.method == "penalty":
            value = value + budget_penalty(b, b.cost(exps))
        return value


def make_objective(fom: Callable, *, log: bool = True) -> DesignObjective:
    """The :class:`DesignObjective` of ``fom``."""
    return DesignObjective(fom, log)


@dataclass(frozen=True)
class DesignResult:
    """Outcome of :func:`optimise`: the final point and the whole path.

    ``path[name]`` holds each recorded physical value (for a design: every variable and
    ``budget_mass_kg``) at every step (row 0 is the start, the last row the final point);
    ``objective``, ``grad_norm`` (2-norm of the gradient in the unconstrained coordinates) and
    ``change`` (objective change from the previous row) have one entry per row.
    """

    params: dict
    physical: dict
    value: float
    path: dict
    objective: np.ndarray
    grad_norm: np.ndarray
    change: np.ndarray
    converged: bool
    reason: str
    n_steps: int

    def summary(self) -> str:
        values = ", ".join(f"{k} = {np.asarray(v).round(5).tolist()}" for k, v in self.physical.items())
        return (f"{'converged' if self.converged else 'stopped'} after {self.n_steps} steps ({self.reason}); "
                f"objective {self.value:.6g}, |∇| {self.grad_norm[-1]:.2e}; {values}")


def default_optimizer():
    """L-BFGS with a zoom line search (``optax.lbfgs()``): the objectives here are smooth and
    deterministic, so a quasi-Newton method converges in tens of steps. Adam
    (``optax.adam(...)``) works too and needs more steps."""
    return _LBFGS


_LBFGS = optax.lbfgs()  # one object, so the compiled optimiser step is reused across calls


def _params_as_physical(params, *args):
    return params


def _realised_physical(params, design, experiments):
    return realise(design, params, experiments)[1]


@partial(jax.jit, static_argnums=(0, 1, 2))
def _step(objective, optimizer, physical, params, state, args):
    """One optimiser step (value, gradient, update, gradient norm, recorded values); compiled once per
    objective, optimiser, recorder and argument structure."""
    value, grad = jax.value_and_grad(objective)(params, *args)
    updates, state = optimizer.update(grad, state, params, value=value, grad=grad,
                                      value_fn=lambda p: objective(p, *args))
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grad)))
    return optax.apply_updates(params, updates), state, value, norm, physical(params, *args)


def _strongly_typed(leaf):
    """A weakly typed scalar of an optimiser's initial state (optax's L-BFGS line-search info) as a
    strongly typed one of the same dtype: the states the step returns are strongly typed, and a state whose
    types change after the first step would compile the step twice."""
    return jnp.asarray(leaf, dtype=leaf.dtype) if getattr(leaf, "weak_type", False) else leaf


def optimise(objective: Callable, params, args: tuple = (), *, physical: Callable | None = None, optimizer=None,
             max_steps: int = 200, gtol: float = 1e-6, ftol: float = 1e-10, patience: int = 3) -> DesignResult:
    """Minimise ``objective(params, *args)`` with optax; one jitted step (value, gradient, update) per iteration.

    ``physical(params, *args) -> dict`` gives the values recorded on the path (default: the params).
    Stops when the gradient norm falls below ``gtol``, when the objective changes by less than
    ``ftol``·(1 + |f|) for ``patience`` steps in a row, or after ``max_steps`` steps. Default
    optimiser: :func:`default_optimizer`. Any optax transformation works, including ``optax.lbfgs()``
    (the step passes ``value``, ``grad`` and ``value_fn`` to ``update``).
    """
    optimizer = default_optimizer() if optimizer is None else optimizer
    physical = physical if physical is not None else _params_as_physical
    state = jax.tree_util.tree_map(_strongly_typed, optimizer.init(params))

    path_x, values, norms = [], [], []
    converged, reason, quiet = False, f"max_steps = {max_steps} reached", 0
    for i in range(max_steps + 1):
        new_params, new_state, value, norm, phys = _step(objective, optimizer, physical, params, state, tuple(args))
        path_x.append(phys)
        values.append(float(value))
        norms.append(float(norm))
        if not (np.isfinite(values[-1]) and np.isfinite(norms[-1])):
            reason = f"non-finite objective or gradient at step {i}"
            break
        if norms[-1] < gtol:
            converged, reason = True, f"|∇| < {gtol:g}"
            break
        if i > 0 and abs(values[-1] - values[-2]) < ftol * (1.0 + abs(values[-1])):
            quiet += 1
            if quiet >= patience:
                converged, reason = True, f"objective change < {ftol:g} for {patience} steps"
                break
        else:
            quiet = 0
        if i == max_steps:
            break
        params, state = new_params, new_state
    path = {k: np.stack([np.asarray(p[k]) for p in path_x]) for k in path_x[0]}
    objective_path = np.array(values)
    return DesignResult(
        params=jax.tree_util.tree_map(np.asarray, params), physical={k: np.asarray(v) for k, v in path_x[-1].items()},
        value=values[-1], path=path, objective=objective_path, grad_norm=np.array(norms),
        change=np.concatenate([[np.nan], np.diff(objective_path)]), converged=converged, reason=reason,
        n_steps=len(path_x) - 1,
    )


def optimise_design(fom: Callable, design: Design, experiments, *, log: bool = True, **kwargs) -> DesignResult:
    """Validate ``design`` on ``experiments`` and minimise ln ``fom`` (or ``fom``) over it with
    :func:`optimise` (keyword arguments pass through); the path records the physical values."""
    experiments = list(experiments)
    params = validate_design(design, experiments)
    return optimise(make_objective(fom, log=log), params, (design, tuple(experiments)),
                    physical=_realised_physical, **kwargs)
