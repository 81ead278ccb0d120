"""Expected sensitivities: the profiled Asimov Δχ² of a new-physics point against the SM (docs/physics.md §5.3).

    Δχ²(θ) = min_ν χ²(θ, ν; n = μ_SM),    χ² = Poisson deviance + Σ (ν/σ)²

for one or several experiments (joint: χ² summed; nuisances labelled and shared by the registry,
:func:`cevns_jax.nuisances.program_nuisances`). The pure core, usable under ``jit``, ``vmap`` and
``grad`` (also with respect to the experiments, i.e. a design):

* :func:`asimov_reference` — the θ-independent part (SM Asimov data, the SM CEvNS template and its
  log-derivatives in the shape nuisances, the backgrounds, the labels); each experiment's part
  (:func:`experiment_reference`) compiled once per experiment structure;
* :func:`signals` — the θ-dependent templates of one experiment (CEvNS under the model; dark matter
  with its own log-derivatives, so it follows quenching, efficiency and timing like CEvNS);
* :func:`expected` — μ(θ, ν) = S(θ)·(1 + Σ ν_k r_k)·N_S(ν) + D(θ)·(1 + Σ ν_k d_k)·N_D(ν) + Σ_b B_b N_b(ν)
  (linear morph of the shape nuisances, :mod:`cevns_jax.stats.morphing`; exact normalisation
  factors N, :func:`cevns_jax.nuisances.normalisation`);
* :func:`profiled_delta_chi2` and :func:`asimov_delta_chi2` — the profiled statistic.

:class:`AsimovForecast` is a thin wrapper holding a reference and a model map θ → model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp

from .._pytree import pytree_dataclass, run_once, static_field
from ..deuteron import deuteron_counts
from ..inelastic import inelastic_counts
from ..electron_rates import COMPONENT as ELECTRON
from ..electron_rates import electron_counts
from ..models.darkmatter import CHANNEL_NUISANCES, at_source
from ..provenance import content_hash
from ..nuisances import (apply_nuisances, check_share, neutrino_induced, normalisation, nuisance_priors, program_nuisances,
                         shape_names, zero_nuisances)
from ..rates import background_counts, cevns_counts, dark_matter_channel_counts
from .likelihood import BlockCounts, poisson_deviance, profiled_chi2
from .morphing import Morph, channel_log_derivatives, log_derivatives, pulls
from .coupling_scan import MAX_CROSSINGS, ROOT_ITERATIONS, affine_coupling_scan, dark_matter_coupling_scan

__all__ = ["ForecastSpec", "Signals", "AsimovReference", "program_labels", "experiment_reference", "asimov_reference", "signals",
           "dark_matter_template", "changes_neutrino_rates", "expected", "profiled_delta_chi2", "asimov_delta_chi2", "AsimovForecast",
           "shared_delta_chi2", "dark_matter_coupling_scan", "affine_coupling_scan", "ROOT_ITERATIONS", "MAX_CROSSINGS"]


@dataclass(frozen=True)
class ForecastSpec:
    """Static settings of a forecast (hashable): the nuisances kept (``include``: names, ``None`` for
    every declared prior), whether the model has dark matter (adds ``pi0``), profiling steps, and the
    width of the ``pi0`` prior (``None``: each experiment's declared value, else its facility's,
    :func:`cevns_jax.nuisances.pi0_prior`; a number overrides both for every experiment), and scope
    overrides of the nuisance registry (``share``: (name, scope) pairs, :func:`cevns_jax.nuisances.check_share`)."""

    include: tuple | None = None
    dark_matter: bool = False
    n_steps: int = 6
    pi0_prior: float | None = None
    share: tuple = ()


@pytree_dataclass
class Signals:
    """The θ-dependent templates of one experiment: CEvNS counts (n_E, n_t), all flux components
    summed, the dark-matter :class:`~cevns_jax.stats.morphing.Morph` (``None`` without dark matter) and,
    for a detector with ``electron_scattering``, the neutrino–electron counts (n_E, n_t) under the model
    (``None``: the SM ones of the reference, for signal builders that leave ν–e scattering unchanged)."""

    cevns: jnp.ndarray
    dark_matter: Morph | None = None
    electron: jnp.ndarray | None = None

    def scaled_dark_matter(self, factor) -> "Signals":
        return Signals(self.cevns, None if self.dark_matter is None else self.dark_matter.scaled(factor), self.electron)


@pytree_dataclass
class AsimovReference:
    """The θ-independent part of an Asimov forecast (a pytree: arrays are leaves, labels static)."""

    experiments: tuple
    data: jnp.ndarray
    cevns_shape: tuple
    backgrounds: tuple
    labels: tuple = static_field(default=())
    priors: tuple = static_field(default=())
    n_steps: int = static_field(default=6)

    def prior_dict(self) -> dict:
        return dict(self.priors)


def program_labels(experiments, spec: ForecastSpec) -> tuple[list[dict], dict]:
    """Per experiment {nuisance: label} and the joint {label: σ} of a forecast (the registry's labelling)."""
    declared = [nuisance_priors(e, spec.include, spec.dark_matter, spec.pi0_prior) for e in experiments]
    return program_nuisances(list(experiments), declared, spec.share)


def _cevns_template(exp, names, model=None) -> Morph:
    return log_derivatives(lambda nu: jnp.sum(cevns_counts(apply_nuisances(exp, nu), model=model), axis=0), names)


def dark_matter_template(exp, dm, names, cache: dict | None = None) -> Morph:
    """Dark-matter counts of ``exp`` (the facility's yields), their log-derivatives in ``names`` (shape
    nuisances) and the fraction of each production channel (scaled exactly by ``eta``, ``piminus``): a prompt signal with its own recoil spectrum responds differently to the
    quenching and timing nuisances than CEvNS, so these are computed for every dark-matter point.
    ``cache``: a dict shared by the evaluators of one model point; an experiment of equal content (e.g. a
    preset and a release analysis of the same detector) with the same ``names`` is then computed once."""
    key = ("dark_matter", _experiment_key(exp), tuple(names))
    if cache is not None and key in cache:
        return cache[key]
    dm = at_source(dm, exp.source)
    template = channel_log_derivatives(lambda nu: dark_matter_channel_counts(apply_nuisances(exp, nu), dm), names,
                                       CHANNEL_NUISANCES)
    if cache is not None:
        cache[key] = template
    return template


def _experiment_key(exp):
    """The content hash of an experiment (its identity if its leaves are traced, e.g. a design's gradient)."""
    try:
        return content_hash(exp)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return id(exp)


@partial(run_once, static_argnames="names")
def experiment_reference(exp, names: tuple) -> tuple:
    """The SM CEvNS template of one experiment with its log-derivatives in the shape nuisances ``names``,
    and its fixed templates: the backgrounds, for a ``deuteron_breakup`` detector the ν–d breakup counts
    (SM cross sections, independent of the model), the inelastic channels' counts (docs/physics.md §12) and, for a detector with ``electron_scattering``, the SM
    neutrino–electron counts (replaced by a model's own, :attr:`Signals.electron`); each scaled by its
    registry normalisations in :func:`expected`. Compiled once per experiment structure (so a detector that appears in several
    forecasts, alone and in combinations, is compiled once)."""
    electron = {ELECTRON: jnp.sum(electron_counts(exp), axis=0)} if exp.detector.electron_scattering else {}
    return _cevns_template(exp, names), {**deuteron_counts(exp), **inelastic_counts(exp), **electron, **background_counts(exp)}


def asimov_reference(experiments: tuple, spec: ForecastSpec) -> AsimovReference:
    """SM Asimov data, SM CEvNS templates with their log-derivatives and backgrounds of ``experiments``."""
    experiments = tuple(experiments)
    local, priors = program_labels(experiments, spec)
    shapes, bkgs, data = [], [], []
    for exp, names in zip(experiments, local):
        shape, bkg = experiment_reference(exp, shape_names(names))
        shapes.append(shape)
        bkgs.append(bkg)
        data.append(jnp.ravel(shape.nominal + sum(bkg.values(), jnp.zeros_like(shape.nominal))))
    labels = tuple(tuple(names.items()) for names in local)
    return AsimovReference(experiments, jnp.concatenate(data), tuple(shapes), tuple(bkgs), labels,
                           tuple(priors.items()), spec.n_steps)


def changes_neutrino_rates(model) -> bool:
    """Whether ``model`` changes the neutrino-induced counts (CEvNS, ν–e scattering): any sub-model but dark
    matter, whose χ adds its own counts and leaves the neutrinos' as in the SM."""
    return model is not None and any(v is not None for k, v in vars(model).items() if k != "dark_matter")


def signals(exp, model, names: tuple = (), cache: dict | None = None, sm_cevns=None) -> Signals:
    """The templates of ``model`` in ``exp`` (dark matter morphed in the shape nuisances ``names``; ``cache``: as
    in :func:`dark_matter_template`). ``sm_cevns``: the SM CEvNS template of ``exp`` (the reference's), taken
    as it is when the model leaves the neutrino rates unchanged (``electron`` then None: the SM's)."""
    if sm_cevns is not None and not changes_neutrino_rates(model):
        cevns, electron = sm_cevns, None
    else:
        cevns = jnp.sum(cevns_counts(exp, model=model), axis=0)
        electron = jnp.sum(electron_counts(exp, model=model), axis=0) if exp.detector.electron_scattering else None
    dm = None
    if model is not None and model.dark_matter is not None:
        dm = dark_matter_template(exp, model.dark_matter, names, cache)
    return Signals(cevns, dm, electron)


def reference_signals(reference: AsimovReference, model) -> list:
    """:func:`signals` of ``model`` for every experiment of ``reference``."""
    return [signals(exp, model, shape_names(dict(labels)), sm_cevns=shape.nominal)
            for exp, labels, shape in zip(reference.experiments, reference.labels, reference.cevns_shape)]


def expected(reference: AsimovReference, sigs: list, nu: dict):
    """Flat expected counts of every experiment at signals ``sigs`` and nuisances ``nu`` (no physics)."""
    return _counts(reference)((reference, sigs), nu)


def _expected_part(reference: AsimovReference, k: int, sig, values: dict):
    """Experiment ``k``'s flat expected counts at its own nuisances ``values`` ({local name: ν})."""
    exp, shape, bkg = reference.experiments[k], reference.cevns_shape[k], reference.backgrounds[k]
    total = sig.cevns * (1.0 + jnp.tensordot(pulls(values, shape.names), shape.logd, axes=1))
    total = total * normalisation(values, "cevns")
    if sig.dark_matter is not None:
        total = total + sig.dark_matter.at(values) * normalisation(values, "dark_matter")
    for name, counts in bkg.items():
        if name == ELECTRON and sig.electron is not None:
            counts = sig.electron  # ν–e scattering under the model (e.g. a magnetic moment)
        total = total + counts * normalisation(values, name, neutrino_induced(exp, name))
    return jnp.ravel(total)


def _counts(reference: AsimovReference) -> BlockCounts:
    """μ((reference, signals), ν) in blocks, one per experiment, each depending on its own labels only."""
    def part(k):
        local = dict(reference.labels[k])
        return lambda args, nu: _expected_part(args[0], k, args[1][k], {name: nu[label] for name, label in local.items()})
    return BlockCounts([part(k) for k in range(len(reference.experiments))],
                       [list(dict.fromkeys(label for _, label in names)) for names in reference.labels])


def profiled_delta_chi2(reference: AsimovReference, sigs: list, n_steps: int | None = None):
    """min_ν χ²(signals, ν; SM Asimov data): differentiable in the signals and the reference (envelope theorem)."""
    priors = reference.prior_dict()
    steps = reference.n_steps if n_steps is None else n_steps
    return profiled_chi2(_counts(reference), reference.data, (reference, list(sigs)), zero_nuisances(priors), priors, steps)


def asimov_delta_chi2(experiments, model, spec: ForecastSpec = ForecastSpec()):
    """Profiled Asimov Δχ² of ``model`` against the SM for ``experiments`` (pure; jit/vmap/grad)."""
    reference = asimov_reference(tuple(experiments), spec)
    return profiled_delta_chi2(reference, reference_signals(reference, model))


class AsimovForecast:
    """Profiled Asimov Δχ²(θ) of ``model_of(θ)`` against the SM for ``experiments`` (a thin wrapper).

    ``model_of`` maps the parameter dict θ (e.g. {"mass_MeV": …, "g": …}) to a
    :class:`cevns_jax.models.NewPhysics`. ``include`` restricts the nuisances (default: every prior
    declared by the experiments, plus ``pi0`` if ``dark_matter``, its width the facility's unless
    ``pi0_prior`` overrides it; see :class:`ForecastSpec`). ``reference``: its :func:`asimov_reference`, if
    already computed (checked against the experiments, by identity, and the settings).
    """

    def __init__(self, experiments: list, model_of: Callable, *, include: list[str] | None = None,
                 n_steps: int = 6, dark_matter: bool = False, pi0_prior: float | None = None, share: tuple = (),
                 reference: AsimovReference | None = None):
        self.experiments = list(experiments)
        self.model_of = model_of
        self.n_steps = n_steps
        self.spec = ForecastSpec(None if include is None else tuple(include), dark_matter, n_steps, pi0_prior,
                                 check_share(share))
        if reference is None:
            reference = asimov_reference(tuple(self.experiments), self.spec)
        else:  # computed before (e.g. in another process): it must be these experiments' under this spec
            local, priors = program_labels(tuple(self.experiments), self.spec)
            if (len(reference.experiments) != len(self.experiments)
                    or any(a is not b for a, b in zip(reference.experiments, self.experiments))
                    or reference.labels != tuple(tuple(n.items()) for n in local)
                    or reference.priors != tuple(priors.items()) or reference.n_steps != n_steps):
                raise ValueError("AsimovForecast: the reference given was computed for other experiments or settings")
        self.reference = reference
        self.priors = self.reference.prior_dict()
        self.data = self.reference.data

    def signals(self, theta: dict) -> list:
        """The θ-dependent templates, once per point."""
        return self.templates(self.model_of(theta))

    def combine(self, sigs: list, nuisances: dict):
        """Flat expected counts from :meth:`signals` at nuisances ν (cheap: no physics)."""
        return expected(self.reference, sigs, nuisances)

    def expected(self, theta: dict, nuisances: dict):
        return self.combine(self.signals(theta), nuisances)

    def delta_chi2(self, theta: dict):
        """Profiled Asimov Δχ² at θ (the SM gives 0)."""
        return self.profiled(self.signals(theta))

    def templates(self, model, cache: dict | None = None) -> list:
        """Per-experiment :class:`Signals` of ``model``, shared through ``cache`` (keyed by experiment)."""
        cache = {} if cache is None else cache
        for exp, labels, shape in zip(self.experiments, self.reference.labels, self.reference.cevns_shape):
            names = shape_names(dict(labels))
            if (id(exp), names) not in cache:
                cache[id(exp), names] = signals(exp, model, names, cache, shape.nominal)
        return [cache[id(exp), shape_names(dict(labels))] for exp, labels in zip(self.experiments, self.reference.labels)]

    @staticmethod
    def scale_dark_matter(sigs: list, factor) -> list:
        return [s.scaled_dark_matter(factor) for s in sigs]

    def profiled_from_templates(self, sigs: list, model=None):
        return self.profiled(sigs)

    def profiled(self, sigs: list):
        return profiled_delta_chi2(self.reference, sigs)

    def unprofiled_delta_chi2(self, theta: dict):
        """Δχ² with every nuisance at 0 (statistics only)."""
        return poisson_deviance(self.expected(theta, zero_nuisances(self.priors)), self.data)


def shared_delta_chi2(forecasts: dict, model_of: Callable) -> Callable:
    """Point function θ → {label: profiled Δχ²} for several forecasts of one model.

    Every distinct experiment's physics is computed once per point and shared by all forecasts that
    contain it, so a scan of all of them is one program. ``forecasts``: :class:`AsimovForecast` or
    :class:`cevns_jax.stats.limits.DataLimit` objects (``templates`` and ``profiled_from_templates``).
    """

    def point(theta):
        model, cache = model_of(theta), {}
        return {label: fc.profiled_from_templates(fc.templates(model, cache), model) for label, fc in forecasts.items()}

    return point
