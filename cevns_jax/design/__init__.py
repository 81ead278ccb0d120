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
  neutron rms radius of a target; one per nucleus, e.g. ``"CsI/delta_rn_fm"``) or an NSI coupling
  ``eps_u_ee`` …, or of a direction in a pair of them; every nuisance marginalised, shared as the
  nuisance registry says (flux per target station).
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

Modules (imports flow downward): ``transforms`` (bijections) → ``backgrounds`` → ``variables``
(variables, budget, :func:`realise`) → ``validate`` → ``merit`` (Fisher FoMs), ``limit``
(:class:`ExpectedLimit`) → ``optimise``; ``cost`` is the replaceable cost model.
"""

from __future__ import annotations

from .._pytree import replace
from .backgrounds import designed_backgrounds
from .limit import ExpectedLimit
from .merit import FisherArea, FisherSigma, fisher_information
from .optimise import (DesignObjective, DesignResult, budget_penalty, default_optimizer, make_objective, optimise,
                       optimise_design)
from .transforms import Identity, Increasing, Interval, LogInterval, LogPositive, Positive, Simplex
from .validate import check_experiments, largest_signal_keVee, validate_design
from .variables import (KINDS, PER_EXPERIMENT, PROGRAM, Budget, Design, Variable, get_value, initial_params,
                        initial_physical, make_design, realise, set_value, to_physical)
from ..stats.fisher import fisher_blocks, fisher_labels, marginal_covariance, profiled_fisher, scaled_fisher

__all__ = ["replace", "designed_backgrounds", "ExpectedLimit", "FisherArea", "FisherSigma", "fisher_information",
           "DesignObjective", "DesignResult", "budget_penalty", "default_optimizer", "make_objective", "optimise",
           "optimise_design", "Identity", "Increasing", "Interval", "LogInterval", "LogPositive", "Positive",
           "Simplex", "check_experiments", "largest_signal_keVee", "validate_design", "KINDS", "PER_EXPERIMENT",
           "PROGRAM", "Budget", "Design", "Variable", "get_value", "initial_params", "initial_physical",
           "make_design", "realise", "set_value", "to_physical", "fisher_blocks", "fisher_labels", "marginal_covariance",
           "profiled_fisher", "scaled_fisher"]
