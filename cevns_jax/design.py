"""Detector design by gradient descent (issue 6): design variables, figures of merit, budget, optimiser.

A *design* maps a vector of unconstrained numbers u to physical detector parameters through
bijections (positivity, boxes, simplices, increasing edges), writes them into the leaves of a list of
:class:`~cevns_jax.experiment.Experiment` pytrees (a program of one or more detectors) and evaluates a
*figure of merit* (FoM) on the result. Everything is a pure function of pytrees, so
``jax.grad(objective)(u, design, experiments)`` is exact and one optax step is one jitted call:

    design = make_design({"threshold": Variable("threshold", Interval(6.0, 30.0))},
                         budget=Budget(400.0, ProgramCost((cryogenic_csi_cost(),))))
    fom = ExpectedLimit("lmu_ltau", mass_MeV=10.0)
    result = optimise_design(fom, design, [load_experiment("COH-CryoCsI-10kg")])
    result.physical, result.path["threshold"], result.objective, result.grad_norm

Design variables (``Variable.kind``; units are those of the experiment's leaves):

=================  =========================================================================
``threshold``      50 % point of a :class:`~cevns_jax.response.LogisticEfficiency` (PE or keVee)
``threshold_width`` its width (same unit)
``mass_kg``        target mass [kg]
``baseline_m``     source–detector distance [m]
``light_yield``    photoelectrons per keVee (Poisson- or gamma-PE smearing)
``resolution``     stochastic term a [keVee^½] of Gaussian smearing σ² = σ₀² + a²E + b²E²
``resolution_floor`` σ₀ [keVee] of Gaussian smearing
``energy_edges``   analysis-bin edges in the observed variable (a vector; the bin count is fixed)
``time_edges_ns``  timing-window / time-bin edges [ns] (a vector)
``exposure``       factor on the experiment's nominal exposure (protons on target and backgrounds)
``mass_split``     program level: masses of the ``members`` = total × simplex fractions [kg]
``exposure_split`` program level: exposure factors of the ``members`` = total × simplex fractions
=================  =========================================================================

Backgrounds follow the design (documented assumptions, :func:`designed_backgrounds`): every
background scales with mass × exposure (the presets normalise them per kg and per beam time); a
background's energy density is held fixed *before* efficiency in the observed variable and re-binned
onto moved energy edges; with ``background_policy="efficiency"`` (default) it is weighted by the
designed efficiency exactly like the signal (so lowering a threshold also admits more background),
with ``"fixed"`` the preset's efficiency-weighted counts are kept; a background's counts in the
timing window scale with the window's share of its time profile. The baseline, light yield and
resolution do not move backgrounds.

Budget (:class:`Budget`): ``method="mass"`` imposes it by parametrisation — the mass of one detector is
what the money left after every other cost buys, m = (B − c(m=0))/(c(m=1) − c(m=0)), exact for a cost
affine in that mass; ``method="penalty"`` adds w·(softplus((c/B − 1)/δ)·δ)² to the objective instead.

Figures of merit (callable frozen dataclasses ``fom(experiments) -> scalar``):

* :class:`FisherSigma`: marginalised Fisher σ of ``sin2_theta_w``, ``delta_rn_fm`` (shift of every
  neutron rms radius; Helm form factors from rms radii) or an NSI coupling ``eps_u_ee`` …, or of a
  direction in a pair of them; every nuisance marginalised, ``flux`` shared by the program.
* :class:`FisherArea`: √det of the marginalised 2×2 covariance of two parameters (the Fisher ellipse
  area is π Δχ² √det C).
* :class:`ExpectedLimit`: expected (Asimov) 90 % CL limit on the L_μ−L_τ coupling g′ at fixed M_Z′ or
  on the dark-matter Y at fixed m_χ (α_D = 0.5, m_V = 3 m_χ), with the nuisances profiled. The
  root of Δχ²(g) = level is found by a fixed number of bisections in ln g, and its gradient by the
  implicit-function theorem, dg/dd = −∂_dΔχ²/∂_gΔχ²; ∂_dΔχ² itself passes through
  the profiling by the envelope theorem (ν̂ held fixed, as in ``likelihood.profiled_chi2``).

The optimiser (:func:`optimise`, or :func:`optimise_design` for a design) runs any optax
transformation (default L-BFGS) with one jitted step (value, gradient, update, gradient norm) and
records the path (:class:`DesignResult`). For designs that only rescale masses or exposures,
:func:`fisher_blocks` + :func:`scaled_fisher` give the Fisher matrix exactly without recomputing the
model (counts are proportional to mass × exposure), which makes grid searches over splits cheap.

Validation (:func:`validate_design`, :func:`check_experiments`) runs on concrete values before an
optimisation: zero masses or exposures, thresholds above the kinematic endpoint, unmeetable budgets
and conflicting variables raise :class:`~cevns_jax.errors.CevnsInputError`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from . import constants as C
from . import response as resp
from ._pytree import pytree_dataclass, replace, require_x64, static_field
from .errors import CevnsInputError
from .kinematics import max_recoil_energy
from .likelihood import chi2, profile_nuisances
from .nuisances import apply_nuisances, neutrino_induced, nuisance_priors, predicted_counts
from .rates import background_counts, cevns_counts, dark_matter_counts, electron_equivalent_keV
from .rates import events_per_recoil_node, neutrino_time_fractions
from .response import energy_response, subdivide, sum_sub_bins
from .source import component_time_cdfs, pulse_cdf
from .xsec import resolve_standard_model


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def _concrete(x) -> bool:
    """True unless some leaf is being traced (checks on values run only on concrete inputs)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


# ----------------------------------------------------------------------------------------------
# Bijections: unconstrained u ↔ constrained x. Small pytrees with forward(u) and inverse(x).
# ----------------------------------------------------------------------------------------------
def _softplus_inverse(y):
    """log(eˣ − 1) written stably for y > 0."""
    return y + jnp.log(-jnp.expm1(-y))


@pytree_dataclass
class Identity:
    """x = u (no constraint)."""

    def forward(self, u):
        return u

    def inverse(self, x):
        return _f(x)


@pytree_dataclass
class Positive:
    """x = scale·softplus(u) > 0 (linear for large x, so the optimiser's steps stay in x units)."""

    scale: Any = 1.0

    def forward(self, u):
        return _f(self.scale) * jax.nn.softplus(u)

    def inverse(self, x):
        return _softplus_inverse(_f(x) / _f(self.scale))


@pytree_dataclass
class LogPositive:
    """x = scale·exp(u) > 0 (steps in relative units)."""

    scale: Any = 1.0

    def forward(self, u):
        return _f(self.scale) * jnp.exp(u)

    def inverse(self, x):
        return jnp.log(_f(x) / _f(self.scale))


@pytree_dataclass
class Interval:
    """x = lower + (upper − lower)·sigmoid(u) ∈ (lower, upper)."""

    lower: Any
    upper: Any

    def forward(self, u):
        lo, hi = _f(self.lower), _f(self.upper)
        return lo + (hi - lo) * jax.nn.sigmoid(u)

    def inverse(self, x):
        lo, hi = _f(self.lower), _f(self.upper)
        p = (_f(x) - lo) / (hi - lo)
        return jnp.log(p) - jnp.log1p(-p)


@pytree_dataclass
class LogInterval:
    """x = exp(ln lower + (ln upper − ln lower)·sigmoid(u)) ∈ (lower, upper), lower > 0."""

    lower: Any
    upper: Any

    def forward(self, u):
        lo, hi = jnp.log(_f(self.lower)), jnp.log(_f(self.upper))
        return jnp.exp(lo + (hi - lo) * jax.nn.sigmoid(u))

    def inverse(self, x):
        lo, hi = jnp.log(_f(self.lower)), jnp.log(_f(self.upper))
        p = (jnp.log(_f(x)) - lo) / (hi - lo)
        return jnp.log(p) - jnp.log1p(-p)


@pytree_dataclass
class Simplex:
    """x = total·softmax((u, 0)): n positive parts summing to ``total`` from n − 1 free coordinates."""

    total: Any = 1.0

    def forward(self, u):
        return _f(self.total) * jax.nn.softmax(jnp.concatenate([u, jnp.zeros((1,), u.dtype)]))

    def inverse(self, x):
        x = _f(x)
        return jnp.log(x[:-1]) - jnp.log(x[-1])


@pytree_dataclass
class Increasing:
    """Strictly increasing edges: x₀ = lower + scale·softplus(u₀), then
    xᵢ = xᵢ₋₁ + min_gap + scale·softplus(uᵢ)."""

    lower: Any
    min_gap: Any = 0.0
    scale: Any = 1.0

    def _gaps(self, n):
        return jnp.concatenate([jnp.zeros((1,)), jnp.full((n - 1,), _f(self.min_gap))])

    def forward(self, u):
        return _f(self.lower) + jnp.cumsum(_f(self.scale) * jax.nn.softplus(u) + self._gaps(u.shape[0]))

    def inverse(self, x):
        x = _f(x)
        steps = jnp.diff(jnp.concatenate([_f(self.lower)[None], x])) - self._gaps(x.shape[0])
        return _softplus_inverse(steps / _f(self.scale))


# ----------------------------------------------------------------------------------------------
# Design variables and their action on experiments
# ----------------------------------------------------------------------------------------------
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
    """A budget ``total`` (cost units) on ``cost(experiments)`` (e.g. :class:`cevns_jax.cost.ProgramCost`).

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


def _members(var: Variable, n: int) -> tuple:
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
            targets = [(m, "mass_kg" if var.kind == "mass_split" else "exposure") for m in _members(var, n_experiments)]
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
            out[label] = jnp.stack([experiments[m].detector.mass_kg for m in _members(var, len(experiments))])
        elif var.kind == "exposure_split":
            out[label] = jnp.ones(len(_members(var, len(experiments))))
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


def _apply_variables(design: Design, physical: dict, nominal: list) -> list:
    """The nominal experiments with every design variable set to its physical value (no budget, no
    background update)."""
    exps = list(nominal)
    for label, var in design.variables.items():
        x = physical[label]
        if var.kind in PROGRAM:
            kind = "mass_kg" if var.kind == "mass_split" else "exposure"
            for i, m in enumerate(_members(var, len(exps))):
                exps[m] = set_value(exps[m], kind, x[i], nominal[m])
        else:
            exps[var.experiment] = set_value(exps[var.experiment], var.kind, x, nominal[var.experiment])
    return exps


def realise(design: Design, params: dict, experiments) -> tuple[list, dict]:
    """Designed experiments and physical values (including ``budget_mass_kg`` when derived) of ``params``."""
    nominal = list(experiments)
    physical = to_physical(design, params)
    exps = _apply_variables(design, physical, nominal)
    b = design.budget
    if b is not None and b.method == "mass":
        m = budget_mass_kg(b, exps)
        physical = dict(physical, budget_mass_kg=m)
        exps[b.experiment] = set_value(exps[b.experiment], "mass_kg", m, nominal[b.experiment])
    exps = [designed_backgrounds(e, n, design.background_policy) for e, n in zip(exps, nominal)]
    return exps, physical


# ----------------------------------------------------------------------------------------------
# Backgrounds of a designed experiment
# ----------------------------------------------------------------------------------------------
_EFFICIENCY_FLOOR = 1e-3


def _piecewise_cdf(edges, counts):
    """Cumulative counts of a histogram with flat density inside each bin, as a function of x."""
    cum = jnp.concatenate([jnp.zeros((1,)), jnp.cumsum(counts)])
    return lambda x: jnp.interp(x, edges, cum)


def _window_probability(exp, profile, edges_ns):
    """Share of a background's time profile inside [first, last] time edge (flat: the window length)."""
    t = jnp.stack([edges_ns[0], edges_ns[-1]])
    pulse = exp.source.pulse
    if profile == "flat":
        p = t
    elif profile == "beam":
        p = pulse_cdf(t, pulse)
    else:
        p = component_time_cdfs(t, pulse)[0 if profile == "prompt" else 1]
    return p[1] - p[0]


_BACKGROUND_SUB_BINS = 32
"""Fixed, equal sub-bins per energy bin on which designed backgrounds are re-weighted by the efficiency
(midpoint rule). Fixed nodes keep the backgrounds smooth in the threshold: nodes that moved with the
turn-on would cross the preset bin edges, where the assumed background density jumps."""


def designed_backgrounds(exp, nominal, policy: str = "efficiency"):
    """``exp`` with its backgrounds moved from ``nominal`` to the design (the module docstring says how).

    Per background with a computed time profile: counts scale with mass × exposure and with the
    timing window's share of the profile; the energy distribution is the preset's, read as a flat
    density inside each preset bin, divided by the preset's mean efficiency in that bin
    (``policy="efficiency"``; floored at 1e-3) and re-integrated over the designed sub-bins times the
    designed efficiency. At the preset design this reproduces the preset's counts exactly. Tabulated
    (energy × time) templates only scale, and are refused when their bin edges are designed.
    """
    if not exp.backgrounds:
        return exp
    det, det0 = exp.detector, nominal.detector
    scale = (det.mass_kg / det0.mass_kg) * (exp.source.protons_on_target / nominal.source.protons_on_target)
    bins, bins0 = det.binning, det0.binning

    def mean_efficiency(efficiency, binning):
        fine, segments = subdivide(binning.energy_edges, _BACKGROUND_SUB_BINS)
        width = fine[1:] - fine[:-1]
        eff = efficiency(0.5 * (fine[1:] + fine[:-1]))
        n = binning.energy_edges.shape[0] - 1
        return sum_sub_bins(eff * width, segments, n) / sum_sub_bins(width, segments, n)

    def rebinned(energy_counts):
        """Counts per designed energy bin of a preset per-bin distribution."""
        if policy == "efficiency":
            raw = energy_counts / jnp.maximum(mean_efficiency(det0.efficiency, bins0), _EFFICIENCY_FLOOR)
        else:
            raw = energy_counts
        fine, segments = subdivide(bins.energy_edges, _BACKGROUND_SUB_BINS)
        cdf = _piecewise_cdf(bins0.energy_edges, raw)
        sub = cdf(fine[1:]) - cdf(fine[:-1])
        if policy == "efficiency":
            sub = sub * det.efficiency(0.5 * (fine[1:] + fine[:-1]))
        return sum_sub_bins(sub, segments, bins.energy_edges.shape[0] - 1)

    out = {}
    for name, bkg in exp.backgrounds.items():
        if bkg.time_profile == "table":
            shape = bkg.shape
            if policy == "efficiency":
                ratio = mean_efficiency(det.efficiency, bins) / jnp.maximum(
                    mean_efficiency(det0.efficiency, bins0), _EFFICIENCY_FLOOR)
                shape = shape * ratio[:, None]
            out[name] = replace(bkg, counts=bkg.counts * scale, shape=shape)
            continue
        energy = rebinned(bkg.counts * bkg.shape)  # the shape is normalised: counts·shape sums to counts
        window = _window_probability(exp, bkg.time_profile, bins.time_edges_ns) / _window_probability(
            nominal, bkg.time_profile, bins0.time_edges_ns)
        total = jnp.sum(energy)
        out[name] = replace(bkg, counts=total * scale * window, shape=energy / jnp.where(total > 0, total, 1.0))
    return replace(exp, backgrounds=out)


def _check_tables(design: Design, experiments) -> None:
    for label, var in design.variables.items():
        if var.kind in ("energy_edges", "time_edges_ns"):
            exp = experiments[var.experiment]
            tables = [n for n, b in exp.backgrounds.items() if b.time_profile == "table"]
            if tables:
                raise CevnsInputError(
                    f"design variable {label!r}: {exp.name} has tabulated (energy × time) background templates "
                    f"({', '.join(tables)}) that cannot be re-binned; design the edges of a preset with "
                    "computed profiles"
                )


# ----------------------------------------------------------------------------------------------
# Validation on concrete values (never inside a trace)
# ----------------------------------------------------------------------------------------------
def largest_signal_keVee(exp):
    """Largest quenched recoil energy [keVee]: T_max at E_ν = m_μ/2 on the lightest isotope."""
    T_end = max_recoil_energy(C.E_NU_MAX_MICHEL, exp.target.mass_MeV)
    return float(jnp.max(electron_equivalent_keV(exp, T_end[:, None])))


def check_experiments(experiments) -> None:
    """Concrete checks of designed experiments: masses and exposures > 0, thresholds below the
    kinematic endpoint (less than 1e-9 of the largest CEvNS signal above them is refused)."""
    for k, exp in enumerate(experiments):
        if not _concrete(exp):
            return
        det = exp.detector
        mass = float(det.mass_kg)
        if not np.isfinite(mass) or mass <= 0:
            raise CevnsInputError(f"experiment {k} ({exp.name}): target mass must be > 0 kg, got {mass:g}")
        pot = float(exp.source.protons_on_target)
        if not np.isfinite(pot) or pot <= 0:
            raise CevnsInputError(f"experiment {k} ({exp.name}): exposure must be > 0, got {pot:g} protons on target")
        E_max = largest_signal_keVee(exp)
        unit = det.observable

        def unreachable(x):
            smear = det.smearing
            if isinstance(smear, resp.PoissonPESmearing):
                # the photoelectron sum is truncated for the analysis bins; extend it past x for this check
                smear = replace(smear, n_max=int(np.ceil(float(x) + 10.0 * np.sqrt(max(float(x), 1.0)) + 20.0)))
            return float(1.0 - smear.cdf(jnp.asarray(x), jnp.asarray(E_max))) < 1e-9

        edges = np.asarray(det.binning.energy_edges)
        if unreachable(edges[0]):
            raise CevnsInputError(
                f"experiment {k} ({exp.name}): the lowest energy edge {edges[0]:g} {unit} is above the largest CEvNS "
                f"signal (E_ee = {E_max:.3g} keVee at E_ν = m_μ/2)"
            )
        if isinstance(det.efficiency, resp.LogisticEfficiency) and unreachable(det.efficiency.threshold):
            raise CevnsInputError(
                f"experiment {k} ({exp.name}): threshold {float(det.efficiency.threshold):g} {unit} is above the "
                f"largest CEvNS signal (E_ee = {E_max:.3g} keVee at E_ν = m_μ/2); no signal would be seen"
            )


def _box_corners(design: Design, base: dict) -> list[dict]:
    """Physical points at the corners of the scalar bounded variables (others at ``base``)."""
    boxed = [(label, var.bijection) for label, var in design.variables.items()
             if isinstance(var.bijection, (Interval, LogInterval)) and jnp.ndim(base[label]) == 0]
    corners = []
    for choice in itertools.product(*[(b.lower, b.upper) for _, b in boxed[:8]]):
        point = dict(base)
        point.update({label: value for (label, _), value in zip(boxed, choice)})
        corners.append(point)
    return corners


def validate_design(design: Design, experiments, params: dict | None = None) -> dict:
    """Check a design on concrete values and return its initial unconstrained parameters.

    Raises :class:`CevnsInputError` for conflicting variables, initial values outside a bijection's
    range, zero masses or exposures, thresholds beyond the kinematic endpoint, re-binned tabulated
    backgrounds, and a budget that cannot be met: with ``method="mass"`` the derived mass must be > 0
    at the initial point and at every corner of the boxed scalar variables (the extremes of a cost
    monotone in them), and the cost must be affine in that mass.
    """
    require_x64()
    experiments = list(experiments)
    check_structure(design, len(experiments))
    _check_tables(design, experiments)
    u = initial_params(design, experiments) if params is None else params
    exps, phys = realise(design, u, experiments)
    b = design.budget
    if b is not None:
        cost_now = float(b.cost(exps))
        if b.method == "mass":
            k = b.experiment

            def cost_at(m):
                e = list(exps)
                e[k] = replace(e[k], detector=replace(e[k].detector, mass_kg=_f(m)))
                return float(b.cost(e))

            c0, c1, c2 = cost_at(0.0), cost_at(1.0), cost_at(2.0)
            if not c1 > c0:
                raise CevnsInputError(f"budget: the cost must rise with the mass of experiment {k} "
                                      f"(got {c0:g} at 0 kg, {c1:g} at 1 kg)")
            if abs(c2 - 2 * c1 + c0) > 1e-9 * max(abs(c1), 1.0):
                raise CevnsInputError(
                    "budget: method='mass' needs a cost affine in the derived mass; use method='penalty'")
            start = to_physical(design, u)
            for point in [start] + _box_corners(design, start):
                # corners lie on the box boundary (u = ±∞): evaluate at the physical values directly
                m = float(_corner_mass(design, point, experiments))
                if not m > 0:
                    where = ", ".join(f"{lab} = {np.asarray(v).round(6).tolist()}" for lab, v in point.items())
                    raise CevnsInputError(
                        f"budget {float(b.total):g} cannot be met: at {where} the other costs leave {m:g} kg for "
                        f"experiment {k}; raise the budget or narrow the variables' ranges"
                    )
        elif not np.isfinite(cost_now):
            raise CevnsInputError("budget: the cost of the initial design is not finite")
    check_experiments(exps)
    return u


def _corner_mass(design: Design, physical: dict, experiments):
    """Budget-derived mass at physical values ``physical`` (which may lie on a box boundary)."""
    return budget_mass_kg(design.budget, _apply_variables(design, physical, list(experiments)))


# ----------------------------------------------------------------------------------------------
# Figures of merit: Fisher
# ----------------------------------------------------------------------------------------------
NSI_FLAVOURS = ("ee", "mumu", "tautau", "emu", "etau", "mutau")
PHYSICS_DEFAULTS = {"sin2_theta_w": C.SIN2_THETA_W_LOW_ENERGY, "delta_rn_fm": 0.0,
                    **{f"eps_{q}_{fl}": 0.0 for q in "ud" for fl in NSI_FLAVOURS}}
"""Physics parameters a Fisher FoM can take, with the point (the SM) at which F is evaluated."""


def _physics_point(exp, name: str):
    """Value of a physics parameter at the experiment's SM point (float64 array; traceable): ŝ² from
    its own electroweak configuration (``[physics]``), the rest from :data:`PHYSICS_DEFAULTS`."""
    if name == "sin2_theta_w":
        return jnp.asarray(resolve_standard_model(exp).sin2_theta_w, dtype=jnp.float64)
    return _f(PHYSICS_DEFAULTS[name])


def _check_parameters(parameters) -> tuple[str, ...]:
    parameters = tuple(parameters)
    unknown = [p for p in parameters if p not in PHYSICS_DEFAULTS]
    if unknown or not parameters or len(set(parameters)) != len(parameters):
        raise CevnsInputError(
            f"Fisher parameters must be distinct names among {', '.join(PHYSICS_DEFAULTS)}; got {parameters}"
        )
    return parameters


def _model_counts(exp, theta: dict, nuisances: dict):
    """Flat expected counts of ``exp`` at physics parameters ``theta`` and nuisances (full model)."""
    from .models import NewPhysics
    from .models.nsi import couplings as nsi_couplings

    sm = resolve_standard_model(exp)  # the experiment's own electroweak configuration (TOML [physics])
    if "sin2_theta_w" in theta:
        sm = replace(sm, sin2_theta_w=theta["sin2_theta_w"])
    # names eps_<quark>_<flavours> → nsi_couplings(<flavours>_<quark>=…)
    eps = {f"{k[6:]}_{k[4]}": v for k, v in theta.items() if k.startswith("eps_")}
    model = NewPhysics(nsi=nsi_couplings(**eps)) if eps else None
    target = exp.target
    if "delta_rn_fm" in theta:
        shifted = target.neutron_radius_fm + theta["delta_rn_fm"]
        target = replace(target, form_factor="helm_rms", neutron_radius_fm=shifted)
    counts = predicted_counts(replace(exp, target=target), nuisances, sm=sm, model=model)
    return jnp.ravel(sum(counts.values()))


def _program_nuisances(experiments, include, shared) -> tuple[list[dict], dict]:
    """Per-experiment {local name: global label} and the global {label: σ}."""
    local, priors = [], {}
    for k, exp in enumerate(experiments):
        names = {}
        for name, sigma in nuisance_priors(exp).items():
            if include is not None and name not in include:
                continue
            key = name if name in shared else f"{k}/{name}"
            names[name] = key
            priors[key] = sigma
        local.append(names)
    return local, priors


def fisher_labels(experiments, parameters, *, include=None, shared=("flux",)) -> tuple[str, ...]:
    """Labels of :func:`fisher_blocks` / :func:`fisher_information` (static; no computation)."""
    _, priors = _program_nuisances(experiments, include, tuple(shared))
    return _check_parameters(parameters) + tuple(priors)


def fisher_blocks(experiments, parameters, *, include=None, shared=("flux",)):
    """Per-experiment data Fisher matrices of a program at the SM point, on common labels.

    Returns (labels, blocks, prior): labels are the physics ``parameters`` followed by the nuisances
    (``flux`` shared by the program, every other one labelled ``"<experiment index>/<name>"``);
    ``blocks[k] = Jₖᵀ diag(1/μₖ) Jₖ`` (full model, ``jax.jacfwd``) embedded in those labels, shape
    (n_experiments, P, P); ``prior`` = 1/σ² per label (0 for physics parameters).

    Every count of an experiment is proportional to its mass × exposure (backgrounds included, see
    :func:`designed_backgrounds`), so its block scales linearly with them at fixed response:
    F(w) = Σₖ wₖ blocksₖ + diag(prior) (:func:`scaled_fisher`) is exact for mass and exposure designs.
    """
    parameters = _check_parameters(parameters)
    local, priors = _program_nuisances(experiments, include, tuple(shared))
    labels = list(parameters) + list(priors)
    index = {lab: i for i, lab in enumerate(labels)}
    blocks = []
    for exp, names in zip(experiments, local):
        p0 = {**{p: _physics_point(exp, p) for p in parameters}, **{n: _f(0.0) for n in names}}
        flat0, unravel = ravel_pytree(p0)

        def mu(x, exp=exp, names=names):
            p = unravel(x)
            counts = _model_counts(exp, {k: p[k] for k in parameters}, {n: p[n] for n in names})
            return counts, counts

        J, mu0 = jax.jacfwd(mu, has_aux=True)(flat0)
        safe = jnp.where(mu0 > 0, mu0, 1.0)
        Jw = jnp.where(mu0[:, None] > 0, J / jnp.sqrt(safe)[:, None], 0.0)
        # ravel_pytree orders a dict of scalars by sorted key
        idx = np.array([index[k if k in parameters else names[k]] for k in sorted(p0)])
        blocks.append(jnp.zeros((len(labels), len(labels))).at[np.ix_(idx, idx)].add(Jw.T @ Jw))
    prior = jnp.asarray([0.0] * len(parameters) + [1.0 / priors[k] ** 2 for k in priors])
    return tuple(labels), jnp.stack(blocks), prior


def scaled_fisher(blocks, prior, weights):
    """F = Σₖ wₖ blocksₖ + diag(prior): the program's Fisher matrix with experiment k's mass × exposure
    scaled by wₖ (exact; see :func:`fisher_blocks`)."""
    return jnp.tensordot(weights, blocks, axes=1) + jnp.diag(prior)


def fisher_information(experiments, parameters, *, include=None, shared=("flux",)):
    """(labels, F): the program's joint Fisher matrix (JAX array), data plus Gaussian nuisance priors."""
    labels, blocks, prior = fisher_blocks(experiments, parameters, include=include, shared=shared)
    return labels, scaled_fisher(blocks, prior, jnp.ones(blocks.shape[0]))


def profiled_fisher(F, keep) -> jnp.ndarray:
    """Fisher matrix of the parameters at indices ``keep`` with every other one marginalised: the Schur
    complement F_kk − F_kr F_rr⁻¹ F_rk (``jnp.linalg.solve``; the rest includes the nuisances, whose
    priors keep F_rr regular)."""
    keep = list(keep)
    rest = [i for i in range(F.shape[0]) if i not in keep]
    A = F[np.ix_(keep, keep)]
    if rest:
        B, D = F[np.ix_(keep, rest)], F[np.ix_(rest, rest)]
        A = A - B @ jnp.linalg.solve(D, B.T)
    return A


def marginal_covariance(F, keep) -> jnp.ndarray:
    """Covariance of the parameters at indices ``keep``, every other one marginalised."""
    return jnp.linalg.inv(profiled_fisher(F, keep))


def _inverse_sqrt(x):
    """1/√x for x > 0 and +∞ otherwise (no information), with finite gradients in both branches."""
    positive = x > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, x, 1.0)), jnp.inf)


def _indices(labels, names):
    try:
        return [labels.index(n) for n in names]
    except ValueError:
        raise CevnsInputError(f"Fisher matrix has no parameter among {names}; it has {labels}") from None


@dataclass(frozen=True)
class FisherSigma:
    """Marginalised Fisher 1σ of ``parameter`` (one name), or of the combination n·θ along a
    ``direction`` n (normalised) in two parameters (a tuple of names), e.g. an NSI direction.

    ``others``: further physics parameters to marginalise (e.g. ``("delta_rn_fm",)`` for ŝ²); every
    nuisance is marginalised. :meth:`reduce` applies the same reduction to any labelled Fisher matrix.
    A design without information on the parameter (e.g. a threshold near the kinematic endpoint)
    gives σ = +∞ (a documented boundary result, never NaN).
    """

    parameter: str | tuple = "sin2_theta_w"
    direction: tuple | None = None
    others: tuple = ()
    include: tuple | None = None
    shared: tuple = ("flux",)

    def __post_init__(self):
        names = self.names
        if self.direction is None and len(names) != 1:
            raise CevnsInputError("FisherSigma of several parameters needs a direction")
        if self.direction is not None and (len(names) != 2 or len(self.direction) != 2):
            raise CevnsInputError(
                f"a FisherSigma direction takes two parameters and two components, got {names}, {self.direction}")
        _check_parameters(names + tuple(self.others))

    @property
    def names(self) -> tuple:
        return (self.parameter,) if isinstance(self.parameter, str) else tuple(self.parameter)

    def reduce(self, labels, F):
        P = profiled_fisher(F, _indices(list(labels), self.names))
        if self.direction is None:
            return _inverse_sqrt(P[0, 0])
        n = _f(self.direction) / jnp.linalg.norm(_f(self.direction))
        # σ² = nᵀ P⁻¹ n = nᵀ adj(P) n / det P for the 2×2 profiled matrix
        det = P[0, 0] * P[1, 1] - P[0, 1] * P[1, 0]
        adj = n[0] ** 2 * P[1, 1] - 2.0 * n[0] * n[1] * P[0, 1] + n[1] ** 2 * P[0, 0]
        ok = (det > 0) & (adj > 0)
        return jnp.where(ok, jnp.sqrt(jnp.where(ok, adj, 1.0)) * _inverse_sqrt(jnp.where(ok, det, 1.0)), jnp.inf)

    def __call__(self, experiments):
        check_experiments(experiments)
        return self.reduce(*fisher_information(experiments, self.names + tuple(self.others),
                                               include=self.include, shared=self.shared))


@dataclass(frozen=True)
class FisherArea:
    """√det of the marginalised covariance of two parameters, 1/√det of their profiled Fisher matrix
    (the Δχ² ellipse has area π Δχ² √det C); +∞ without information (boundary result, never NaN)."""

    parameters: tuple = ("eps_u_ee", "eps_d_ee")
    others: tuple = ()
    include: tuple | None = None
    shared: tuple = ("flux",)

    def __post_init__(self):
        if len(self.parameters) != 2:
            raise CevnsInputError(f"FisherArea needs two parameters, got {self.parameters}")
        _check_parameters(tuple(self.parameters) + tuple(self.others))

    def reduce(self, labels, F):
        P = profiled_fisher(F, _indices(list(labels), self.parameters))
        return _inverse_sqrt(P[0, 0] * P[1, 1] - P[0, 1] * P[1, 0])

    def __call__(self, experiments):
        check_experiments(experiments)
        return self.reduce(*fisher_information(experiments, tuple(self.parameters) + tuple(self.others),
                                               include=self.include, shared=self.shared))


# ----------------------------------------------------------------------------------------------
# Figures of merit: expected limit with profiled nuisances and an implicit-function gradient
# ----------------------------------------------------------------------------------------------
_DM_Y_REF = 1e-10


def _fold(events, R, tau):
    """CEvNS counts (n_E, n_t) from events per recoil node (3, n_iso, n_T), response (n_E, n_iso, n_T)
    and time fractions (3, n_t), summed over the flux components (as ``rates.cevns_counts``)."""
    spectrum = jnp.einsum("cik,eik->ce", events, R)
    return jnp.sum(spectrum[:, :, None] * tau[:, None, :], axis=0)


@dataclass(frozen=True)
class ExpectedLimit:
    """Expected 90 % CL (Asimov, Δχ² = ``level``) limit on a coupling at fixed mass.

    ``signal="lmu_ltau"``: g′ of gauged L_μ−L_τ at M_Z′ = ``mass_MeV``; ``signal="dark_matter"``: Y of
    scalar dark matter at m_χ = ``mass_MeV`` (α_D = 0.5, m_V = 3 m_χ; N_DM ∝ Y² exactly at fixed masses,
    so one template at Y = 1e-10 is rescaled). Nuisances: every preset prior (or ``include``), ``flux``
    (and ``pi0`` for dark matter, prior ``pi0_prior``) shared; detector nuisances act by linear
    template morphing around the SM (their log-derivatives from ``jax.jacfwd``, as in
    ``forecast.AsimovForecast``); profiled with ``n_profile`` Fisher-scoring steps.

    Root finding: ``n_bisect`` bisections of t = ln g on ``bracket`` (default 1e-6–1e-2 for g′,
    1e-14–1e-6 for Y; 50 bisections narrow ln(10⁴) to 1e-14), then one Newton step
    g = exp(t* − (Δχ²(t*) − level)/∂_tΔχ²) with t* and the slope held constant: its value is t* to
    solver precision and its gradient the implicit-function theorem's. The first crossing is found
    when Δχ² rises monotonically through the level inside the bracket (true for these signals; the
    linear template morphing saturates Δχ² far above the level, so keep the bracket's upper end
    within a few decades of the limit).

    Boundary results (documented, never NaN): if Δχ² stays below the level over the bracket (no
    sensitivity, e.g. a threshold near the kinematic endpoint) the upper bracket end is returned, if
    it is above the level already at the lower end the lower end; both with zero gradient.
    :meth:`diagnose` reports which case applies.
    """

    signal: str = "lmu_ltau"
    mass_MeV: float = 10.0
    level: float = 2.706
    bracket: tuple | None = None
    n_bisect: int = 50
    n_profile: int = 8
    include: tuple | None = None
    pi0_prior: float = 0.15

    def __post_init__(self):
        if self.signal not in ("lmu_ltau", "dark_matter"):
            raise CevnsInputError(f"ExpectedLimit signal must be 'lmu_ltau' or 'dark_matter', got {self.signal!r}")
        if self.bracket is None:
            object.__setattr__(self, "bracket", (1e-6, 1e-2) if self.signal == "lmu_ltau" else (1e-14, 1e-6))
        lo, hi = self.bracket
        if not 0 < lo < hi:
            raise CevnsInputError(f"ExpectedLimit bracket must satisfy 0 < low < high, got {self.bracket}")
        if not self.mass_MeV > 0:
            raise CevnsInputError(f"ExpectedLimit mass must be > 0 MeV, got {self.mass_MeV}")

    # -- per-design ingredients ------------------------------------------------------------
    def terms(self, experiments) -> list[dict]:
        """Per experiment: response, time fractions, SM signal S₀, log-derivatives, backgrounds."""
        local, _ = self._nuisances(experiments)
        out = []
        for exp, names in zip(experiments, local):
            detector_names = [n for n in names if not n.startswith("background:")]

            def signal_of(nu, exp=exp):
                shifted, factor, _ = apply_nuisances(exp, nu)
                det = shifted.detector
                T, events = events_per_recoil_node(shifted)
                R = energy_response(det.smearing, det.efficiency, det.binning, electron_equivalent_keV(shifted, T))
                tau = neutrino_time_fractions(shifted)
                S = _fold(events, R, tau) * factor
                return S, (S, R, tau)

            nu0 = {n: _f(0.0) for n in detector_names}
            J, (S0, R, tau) = jax.jacfwd(signal_of, has_aux=True)(nu0) if nu0 else ({}, signal_of({})[1])
            positive = S0 > 0
            safe = jnp.where(positive, S0, 1.0)
            logd = {n: jnp.where(positive, J[n] / safe, 0.0) for n in detector_names}
            term = dict(S0=S0, logd=logd, bkg=background_counts(exp))
            if self.signal == "lmu_ltau":  # the recoil grid does not depend on the model: R serves every coupling
                term["R"], term["tau"] = R, tau
            else:
                from .models import dark_matter, epsilon_from_Y
                from .models.darkmatter import at_source

                eps = epsilon_from_Y(_f(_DM_Y_REF), self.mass_MeV)
                dm = at_source(dark_matter(self.mass_MeV, 3.0 * self.mass_MeV, eps, 0.5), exp.source)
                term["dm"] = dark_matter_counts(exp, dm)
            out.append(term)
        return out

    def _nuisances(self, experiments):
        local, priors = _program_nuisances(experiments, self.include, ("flux", "pi0"))
        if self.signal == "dark_matter":
            priors = dict(priors, pi0=self.pi0_prior)
        return local, priors

    def _signals(self, experiments, terms, t):
        """(CEvNS signal, dark-matter signal or None) per experiment at coupling e^t."""
        out = []
        if self.signal == "lmu_ltau":
            from .models import NewPhysics, lmu_minus_ltau

            model = NewPhysics(zprime=lmu_minus_ltau(self.mass_MeV, jnp.exp(t)))
            for exp, term in zip(experiments, terms):
                _, events = events_per_recoil_node(exp, model=model)
                out.append((_fold(events, term["R"], term["tau"]), None))
        else:
            for term in terms:
                out.append((term["S0"], term["dm"] * (jnp.exp(t) / _DM_Y_REF) ** 2))
        return out

    def _delta_chi2_from_signals(self, experiments, terms, signals):
        """Profiled Δχ² (envelope theorem: ν̂ is found on constants, χ² re-evaluated on traced inputs)."""
        local, priors = self._nuisances(experiments)
        induced = [[neutrino_induced(exp, name) for name in term["bkg"]] for exp, term in zip(experiments, terms)]

        def mu_fn(theta, nu):
            parts = []
            for names, flags, (S, D), logd, bkg in zip(local, induced, theta["signals"], theta["logd"], theta["bkg"]):
                factor = 1.0 + sum((nu[names[n]] * r for n, r in logd.items()), jnp.zeros_like(S))
                total = S * factor
                if D is not None:
                    eff = 1.0 + (nu[names["efficiency"]] if "efficiency" in names else 0.0)
                    total = total + D * (1.0 + nu["pi0"]) * eff
                flux = 1.0 + (nu[names["flux"]] if "flux" in names else 0.0)
                for (name, counts), neutrino_induced in zip(bkg.items(), flags):
                    key = names.get(f"background:{name}")
                    scale = 1.0 + (nu[key] if key is not None else 0.0)
                    total = total + counts * scale * (flux if neutrino_induced else 1.0)
                parts.append(jnp.ravel(total))
            return jnp.concatenate(parts)

        theta = {"signals": signals, "logd": [t["logd"] for t in terms], "bkg": [t["bkg"] for t in terms]}
        data = jnp.concatenate([jnp.ravel(t["S0"] + sum(t["bkg"].values())) for t in terms])
        zero = {k: _f(0.0) for k in priors}
        # no tangent enters the profiling loop: it runs on constants, and its result is held fixed
        nu_hat = jax.lax.stop_gradient(profile_nuisances(
            mu_fn, jax.lax.stop_gradient(data), jax.lax.stop_gradient(theta), zero, priors, self.n_profile))
        return chi2(mu_fn, data, theta, nu_hat, priors)

    def delta_chi2(self, experiments, coupling, terms=None):
        """Profiled Asimov Δχ² of the coupling (g′ or Y) against the SM."""
        terms = self.terms(experiments) if terms is None else terms
        t = jnp.log(_f(coupling))
        return self._delta_chi2_from_signals(experiments, terms, self._signals(experiments, terms, t))

    def _solve(self, experiments, terms):
        """(t*, f(lo), f(hi)) with f = Δχ² − level: bisection of t = ln g (no gradient flows).

        One loop evaluates f at the two bracket ends (iterations 0 and 1) and then bisects, so the
        profiled Δχ² is compiled once."""
        terms = jax.lax.stop_gradient(terms)
        experiments = jax.lax.stop_gradient(experiments)

        def f(t):
            return self._delta_chi2_from_signals(experiments, terms, self._signals(experiments, terms, t)) - self.level

        lo, hi = jnp.log(_f(self.bracket[0])), jnp.log(_f(self.bracket[1]))

        def body(i, state):
            a, b, f_lo, f_hi = state
            t = jnp.where(i == 0, lo, jnp.where(i == 1, hi, 0.5 * (a + b)))
            value = f(t)
            f_lo = jnp.where(i == 0, value, f_lo)
            f_hi = jnp.where(i == 1, value, f_hi)
            above = ~(value <= 0)  # NaN (only at absurdly large couplings) counts as above
            bisecting = i >= 2
            return (jnp.where(bisecting & ~above, t, a), jnp.where(bisecting & above, t, b), f_lo, f_hi)

        a, b, f_lo, f_hi = jax.lax.fori_loop(0, self.n_bisect + 2, body, (lo, hi, _f(0.0), _f(0.0)))
        return 0.5 * (a + b), f_lo, f_hi

    def __call__(self, experiments):
        check_experiments(experiments)
        terms = self.terms(experiments)
        t_star, f_lo, f_hi = self._solve(experiments, terms)
        t_star = jax.lax.stop_gradient(t_star)
        inside = (f_lo < 0) & ~(f_hi <= 0)

        def g(t):
            return self._delta_chi2_from_signals(experiments, terms, self._signals(experiments, terms, t))

        # one Newton step from t*: its value is t* to solver precision and its gradient with respect to
        # the design is the implicit-function theorem's −∂_dΔχ²/∂_tΔχ² (slope held constant)
        value, slope = jax.jvp(g, (t_star,), (jnp.ones_like(t_star),))
        slope = jax.lax.stop_gradient(slope)
        ok = inside & (slope > 0)
        t = t_star - jnp.where(ok, (value - self.level) / jnp.where(ok, slope, 1.0), 0.0)
        lo, hi = jnp.log(_f(self.bracket[0])), jnp.log(_f(self.bracket[1]))
        t = jnp.where(inside, t, jnp.where(f_hi <= 0, hi, lo))
        return jnp.exp(t)

    def diagnose(self, experiments) -> dict:
        """Concrete diagnostics: Δχ² at the bracket ends, the limit and which regime applies."""
        check_experiments(experiments)

        @jax.jit
        def run(exps):
            _, f_lo, f_hi = self._solve(exps, self.terms(exps))
            return self(exps), f_lo, f_hi

        value, f_lo, f_hi = run(experiments)
        if float(f_hi) <= 0:
            regime = "no crossing in the bracket: limit above the upper end (boundary result)"
        elif float(f_lo) >= 0:
            regime = "Δχ² above the level at the lower end: limit below the bracket (boundary result)"
        else:
            regime = "crossing inside the bracket"
        return {"limit": float(value), "delta_chi2_low": float(f_lo) + self.level,
                "delta_chi2_high": float(f_hi) + self.level, "regime": regime}


# ----------------------------------------------------------------------------------------------
# Objectives and the optimiser
# ----------------------------------------------------------------------------------------------
def budget_penalty(budget: Budget, cost):
    """weight·(softplus((cost/B − 1)/width)·width)²: ≈ 0 inside the budget (a smooth corner of relative
    width ``width``), ≈ weight·(cost/B − 1)² beyond."""
    excess = jax.nn.softplus((cost / budget.total - 1.0) / budget.width) * budget.width
    return budget.weight * excess**2


def make_objective(fom: Callable, *, log: bool = True) -> Callable:
    """objective(params, design, experiments): ln FoM (or FoM) of the realised design, plus the budget
    penalty for ``Budget(method="penalty")``. Pure and jit/grad/vmap-able in ``params``."""

    def objective(params, design, experiments):
        exps, _ = realise(design, params, experiments)
        value = fom(exps)
        value = jnp.log(value) if log else value
        b = design.budget
        if b is not None and b.method == "penalty":
            value = value + budget_penalty(b, b.cost(exps))
        return value

    return objective


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
    return optax.lbfgs()


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
    physical = physical if physical is not None else (lambda p, *a: p)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, args):
        value, grad = jax.value_and_grad(objective)(params, *args)
        updates, state = optimizer.update(grad, state, params, value=value, grad=grad,
                                          value_fn=lambda p: objective(p, *args))
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grad)))
        return optax.apply_updates(params, updates), state, value, norm, physical(params, *args)

    path_x, values, norms = [], [], []
    converged, reason, quiet = False, f"max_steps = {max_steps} reached", 0
    for i in range(max_steps + 1):
        new_params, new_state, value, norm, phys = step(params, state, args)
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
    return optimise(make_objective(fom, log=log), params, (design, experiments),
                    physical=lambda p, d, e: realise(d, p, e)[1], **kwargs)
