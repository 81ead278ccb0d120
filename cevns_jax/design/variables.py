"""Design variables, budgets and designs, and their action on a program of experiments (:func:`realise`)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from .. import response as resp
from .._pytree import pytree_dataclass, replace, static_field
from ..errors import CevnsInputError
from .backgrounds import designed_backgrounds
from .transforms import Identity, Simplex

__all__ = ["PER_EXPERIMENT", "PROGRAM", "KINDS", "Variable", "Budget", "Design", "make_design", "get_value",
           "set_value", "members", "check_structure", "initial_physical", "initial_params", "to_physical",
           "budget_mass_kg", "apply_variables", "realise"]


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


PER_EXPERIMENT = ("threshold", "threshold_width", "mass_kg", "baseline_m", "light_yield", "resolution",
                  "resolution_floor", "energy_edges", "time_edges_ns", "exposure")
PROGRAM = ("mass_split", "exposure_split")
KINDS = PER_EXPERIMENT + PROGRAM


@pytree_dataclass
class Variable:
    """One design variable: its kind (see the module table), bijection and initial physical value.

    ``init`` = None takes the value from the experiment (splits: the members' masses, or exposure
    factors of 1 each). ``experiment`` indexes the program for per-experiment kinds; ``members``
    lists the experiments of a split (default: all). Splits need a :class:`Simplex` (default, total
    1: give ``init`` or a matching total); other kinds default to :class:`Identity`.
    """

    kind: str = static_field()
    bijection: Any = None
    init: Any = None
    experiment: int = static_field(default=0)
    members: tuple = static_field(default=())

    def __post_init__(self):
        if self.kind not in KINDS:
            raise CevnsInputError(f"unknown design variable kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.bijection is None:
            object.__setattr__(self, "bijection", Simplex() if self.kind in PROGRAM else Identity())
        if self.kind in PROGRAM and not isinstance(self.bijection, Simplex):
            raise CevnsInputError(f"a {self.kind} needs a Simplex bijection, got {type(self.bijection).__name__}")
        object.__setattr__(self, "members", tuple(int(m) for m in self.members))


@pytree_dataclass
class Budget:
    """A budget ``total`` (cost units) on ``cost(experiments)`` (e.g. :class:`cevns_jax.design.cost.ProgramCost`).

    ``method="mass"``: the mass of experiment ``experiment`` is derived from the money left (exact for a
    cost affine in that mass). ``method="penalty"``: the objective gains
    ``weight·(softplus((c/B − 1)/width)·width)²``, a smooth one-sided quadratic beyond the budget.
    """

    total: Any
    cost: Any
    experiment: int = static_field(default=0)
    method: str = static_field(default="mass")
    weight: Any = 100.0
    width: Any = 0.01

    def __post_init__(self):
        if self.method not in ("mass", "penalty"):
            raise CevnsInputError(f"budget method must be 'mass' or 'penalty', got {self.method!r}")


@pytree_dataclass
class Design:
    """Named design variables (a dict label → :class:`Variable`), an optional :class:`Budget` and the
    background policy (``"efficiency"`` or ``"fixed"``, see :func:`designed_backgrounds`)."""

    variables: dict
    budget: Any = None
    background_policy: str = static_field(default="efficiency")


def make_design(variables: dict, budget: Budget | None = None, background_policy: str = "efficiency") -> Design:
    """Build a :class:`Design`, rejecting conflicting variables (e.g. a mass set twice)."""
    if background_policy not in ("efficiency", "fixed"):
        raise CevnsInputError(f"background_policy must be 'efficiency' or 'fixed', got {background_policy!r}")
    if not variables:
        raise CevnsInputError("a design needs at least one variable")
    for label, var in variables.items():
        if not isinstance(var, Variable):
            raise CevnsInputError(f"design variable {label!r} must be a Variable, got {type(var).__name__}")
    return Design(dict(variables), budget, background_policy)


def _get_threshold_model(exp, kind):
    eff = exp.detector.efficiency
    if not isinstance(eff, resp.LogisticEfficiency):
        raise CevnsInputError(
            f"design variable {kind!r} needs a logistic efficiency; {exp.name} has {type(eff).__name__}"
        )
    return eff


def _light_yield_model(exp):
    smear = exp.detector.smearing
    if not hasattr(smear, "light_yield_PE_per_keV"):
        raise CevnsInputError(
            f"design variable 'light_yield' needs a PE smearing; {exp.name} has {type(smear).__name__}")
    return smear


def _gaussian_model(exp, kind):
    smear = exp.detector.smearing
    if not isinstance(smear, resp.GaussianSmearing):
        raise CevnsInputError(
            f"design variable {kind!r} needs Gaussian smearing; {exp.name} has {type(smear).__name__}")
    return smear


def get_value(exp, kind):
    """Current physical value of a per-experiment design variable ``kind`` of ``exp``."""
    det = exp.detector
    if kind == "threshold":
        return _get_threshold_model(exp, kind).threshold
    if kind == "threshold_width":
        return _get_threshold_model(exp, kind).width
    if kind == "mass_kg":
        return det.mass_kg
    if kind == "baseline_m":
        return det.baseline_m
    if kind == "light_yield":
        return _light_yield_model(exp).light_yield_PE_per_keV
    if kind == "resolution":
        return _gaussian_model(exp, kind).stochastic_sqrt_keV
    if kind == "resolution_floor":
        return _gaussian_model(exp, kind).sigma0_keV
    if kind == "energy_edges":
        return det.binning.energy_edges
    if kind == "time_edges_ns":
        return det.binning.time_edges_ns
    if kind == "exposure":
        return _f(1.0)
    raise CevnsInputError(f"no per-experiment value for design variable kind {kind!r}")


def set_value(exp, kind, value, nominal):
    """``exp`` with design variable ``kind`` set to ``value`` (``nominal``: the undesigned experiment)."""
    det = exp.detector
    if kind in ("threshold", "threshold_width"):
        eff = _get_threshold_model(exp, kind)
        eff = replace(eff, threshold=value) if kind == "threshold" else replace(eff, width=value)
        return replace(exp, detector=replace(det, efficiency=eff))
    if kind == "mass_kg":
        return replace(exp, detector=replace(det, mass_kg=value))
    if kind == "baseline_m":
        return replace(exp, detector=replace(det, baseline_m=value))
    if kind == "light_yield":
        smear = replace(_light_yield_model(exp), light_yield_PE_per_keV=value)
        return replace(exp, detector=replace(det, smearing=smear))
    if kind in ("resolution", "resolution_floor"):
        smear = _gaussian_model(exp, kind)
        smear = replace(smear, stochastic_sqrt_keV=value) if kind == "resolution" else replace(smear, sigma0_keV=value)
        return replace(exp, detector=replace(det, smearing=smear))
    if kind in ("energy_edges", "time_edges_ns"):
        old = get_value(nominal, kind)
        if jnp.shape(value) != old.shape:
            raise CevnsInputError(
                f"design variable {kind!r} of {exp.name} needs {old.shape[0]} edges, got shape {jnp.shape(value)}")
        key = "energy_edges" if kind == "energy_edges" else "time_edges_ns"
        return replace(exp, detector=replace(det, binning=replace(det.binning, **{key: value})))
    if kind == "exposure":
        return replace(exp, source=replace(exp.source, protons_on_target=nominal.source.protons_on_target * value))
    raise CevnsInputError(f"unknown design variable kind {kind!r}")


def members(var: Variable, n: int) -> tuple:
    members = var.members or tuple(range(n))
    if len(members) < 2 or len(set(members)) != len(members) or not all(0 <= m < n for m in members):
        raise CevnsInputError(
            f"a {var.kind} needs at least two distinct experiments of the program (0…{n - 1}), got {members}")
    return members


def check_structure(design: Design, n_experiments: int) -> None:
    """Reject designs that set one quantity twice or name experiments that do not exist."""
    owners = {}
    b = design.budget
    if b is not None and not 0 <= b.experiment < n_experiments:
        raise CevnsInputError(f"budget: experiment {b.experiment} not in the program (0…{n_experiments - 1})")
    if b is not None and b.method == "mass":
        owners[(b.experiment, "mass_kg")] = "the budget (method='mass')"
    for label, var in design.variables.items():
        if var.kind in PROGRAM:
            targets = [(m, "mass_kg" if var.kind == "mass_split" else "exposure") for m in members(var, n_experiments)]
        else:
            if not 0 <= var.experiment < n_experiments:
                raise CevnsInputError(f"design variable {label!r}: experiment {var.experiment} not in the "
                                      f"program (0…{n_experiments - 1})")
            targets = [(var.experiment, var.kind)]
        for t in targets:
            if t in owners:
                raise CevnsInputError(
                    f"design variable {label!r} sets {t[1]} of experiment {t[0]}, already set by {owners[t]}")
            owners[t] = label


def initial_physical(design: Design, experiments) -> dict:
    """Initial physical value of every variable (``init`` or the experiments' current value)."""
    out = {}
    for label, var in design.variables.items():
        if var.init is not None:
            out[label] = var.init
        elif var.kind == "mass_split":
            out[label] = jnp.stack([experiments[m].detector.mass_kg for m in members(var, len(experiments))])
        elif var.kind == "exposure_split":
            out[label] = jnp.ones(len(members(var, len(experiments))))
        else:
            out[label] = _f(get_value(experiments[var.experiment], var.kind))
    return out


def initial_params(design: Design, experiments) -> dict:
    """Unconstrained parameters u of the initial design; a value outside a bijection's range is an error."""
    u = {}
    for label, x in initial_physical(design, experiments).items():
        var = design.variables[label]
        value = var.bijection.inverse(x)
        if not bool(jnp.all(jnp.isfinite(value))):
            raise CevnsInputError(
                f"design variable {label!r}: initial value {np.asarray(x).tolist()} lies outside the range of its "
                f"{type(var.bijection).__name__} bijection"
            )
        if var.kind in PROGRAM and not np.isclose(float(jnp.sum(x)), float(var.bijection.total), rtol=1e-9):
            raise CevnsInputError(
                f"design variable {label!r}: initial parts sum to {float(jnp.sum(x)):g}, "
                f"the simplex total is {float(var.bijection.total):g}"
            )
        u[label] = value
    return u


def to_physical(design: Design, params: dict) -> dict:
    """Physical values {label: x} of the unconstrained ``params``."""
    return {label: var.bijection.forward(params[label]) for label, var in design.variables.items()}


def budget_mass_kg(budget: Budget, experiments):
    """Mass of the budget's experiment that spends the budget exactly: (B − c(0))/(c(1) − c(0))."""
    k = budget.experiment

    def cost_at(m):
        exps = list(experiments)
        exps[k] = replace(exps[k], detector=replace(exps[k].detector, mass_kg=_f(m)))
        return budget.cost(exps)

    c0, c1 = cost_at(0.0), cost_at(1.0)
    return (budget.total - c0) / (c1 - c0)


def apply_variables(design: Design, physical: dict, nominal: list) -> list:
    """The nominal experiments with every design variable set to its physical value (no budget, no
    background update)."""
    exps = list(nominal)
    for label, var in design.variables.items():
        x = physical[label]
        if var.kind in PROGRAM:
            kind = "mass_kg" if var.kind == "mass_split" else "exposure"
            for i, m in enumerate(members(var, len(exps))):
                exps[m] = set_value(exps[m], kind, x[i], nominal[m])
        else:
            exps[var.experiment] = set_value(exps[var.experiment], var.kind, x, nominal[var.experiment])
    return exps


def realise(design: Design, params: dict, experiments) -> tuple[list, dict]:
    """Designed experiments and physical values (including ``budget_mass_kg`` when derived) of ``params``."""
    nominal = list(experiments)
    physical = to_physical(design, params)
    exps = apply_variables(design, physical, nominal)
    b = design.budget
    if b is not None and b.method == "mass":
        m = budget_mass_kg(b, exps)
        physical = dict(physical, budget_mass_kg=m)
        exps[b.experiment] = set_value(exps[b.experiment], "mass_kg", m, nominal[b.experiment])
    exps = [designed_backgrounds(e, n, design.background_policy) for e, n in zip(exps, nominal)]
    return exps, physical
