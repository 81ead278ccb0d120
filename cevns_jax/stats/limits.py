"""New-physics limits from a release's data: profiled Δχ²(θ) of a model against the SM best fit.

    Δχ²(θ) = min_ν χ²(θ, ν; n_obs) − χ²_min,   χ²_min = min_ν χ²(SM, ν; n_obs)

The reference is the SM best fit with every nuisance profiled (ŝ² fixed at the SM value, flux prior
10% as in the ``sin2_theta_w`` fit; no free CEvNS normalisation): the null hypothesis of a limit.
Where the model fits the data better than the SM, Δχ² < 0 (the CsI-2021 data sit ≈1σ below the SM
prediction, so a small destructive Z′ does); it is *not* clipped here. A 90% CL raster limit is the
crossing of Δχ² = 2.706 at each mass (:func:`cevns_jax.scan.raster_crossings`).

The pure core: :func:`data_reference` (the SM best fit; compiled once per release) and
:func:`data_delta_chi2` (jit/vmap/grad in the model). :class:`DataLimit` is a thin wrapper with a
model map θ → model, mirroring :class:`cevns_jax.stats.forecast.AsimovForecast`.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp

from .._pytree import pytree_dataclass, static_field
from ..errors import CevnsInputError
from ..nuisances import DM_CHANNEL_NUISANCES, PI0_PRIOR
from ..xsec import StandardModel
from .analyses import BinnedAnalysis, flat_means, has_dark_matter, load_analysis, morphed_counts, morphing_templates
from .analyses import observed_vector, poisson_terms
from .fits import fit_priors
from .likelihood import chi2, profile_nuisances

__all__ = ["DataReference", "data_reference", "data_templates", "data_delta_chi2", "DataLimit", "model_test"]


@pytree_dataclass
class DataReference:
    """The SM best fit to one release: analysis, observed counts, best-fit nuisances ν̂ and χ²_min;
    static: prior widths (without ``pi0``), the ``pi0`` prior, profiling steps per model point."""

    analysis: BinnedAnalysis
    observed: jnp.ndarray
    nuisances: dict
    chi2_min: jnp.ndarray
    priors: tuple = static_field(default=())
    pi0_prior: float = static_field(default=PI0_PRIOR)
    n_steps: int = static_field(default=6)
    channel_priors: tuple = static_field(default=())
    """((``eta``, σ), (``piminus``, σ)): the production-channel nuisances of dark matter (the facility's)."""

    def priors_for(self, model) -> dict:
        """Prior widths of the profiled nuisances under ``model`` (adds ``pi0``, ``eta``, ``piminus`` with dark matter)."""
        if not has_dark_matter(model):
            return dict(self.priors)
        return {**dict(self.priors), "pi0": self.pi0_prior, **dict(self.channel_priors)}


def _mu(analysis: BinnedAnalysis, sm):
    """μ(args, ν): from linear-morphing templates, or the exact model (``args`` = the model)."""
    if analysis.signal_shape is not None:
        return lambda templates, nu: flat_means(analysis, morphed_counts(analysis, {}, templates, nu))
    return lambda m, nu: poisson_terms(analysis, {}, nu, sm, m)


def data_templates(analysis: BinnedAnalysis, model, sm: StandardModel | None = None):
    """The per-model pieces computed once, outside the profiling steps (templates, or the model itself
    for the exact analysis)."""
    if sm is not None and model is None:  # non-default SM inputs: recompute the signal
        from ..models import NewPhysics

        model = NewPhysics()
    return morphing_templates(analysis, {}, sm, model) if analysis.signal_shape is not None else model


def _profile(analysis, observed, sm, args, priors, nu0, n_steps):
    mu = _mu(analysis, sm)
    nu_hat = jax.lax.stop_gradient(profile_nuisances(mu, observed, jax.lax.stop_gradient(args), nu0, priors, n_steps))
    return nu_hat, chi2(mu, observed, args, nu_hat, priors)


@partial(jax.jit, static_argnames=("pi0_prior", "n_steps", "reference_steps"))
def data_reference(analysis: BinnedAnalysis, reference_sm: StandardModel | None = None, *, pi0_prior: float = PI0_PRIOR,
                   n_steps: int = 6, reference_steps: int = 40) -> DataReference:
    """The SM best fit (``reference_steps`` Fisher-scoring steps from ν = 0; ``reference_sm``: SM inputs)."""
    priors = fit_priors(analysis)
    observed = observed_vector(analysis)
    zero = {k: jnp.zeros((), dtype=jnp.float64) for k in priors}
    args = data_templates(analysis, None, reference_sm)
    nu_hat, value = _profile(analysis, observed, reference_sm, args, priors, zero, reference_steps)
    channels = {k: v for k, v in fit_priors(analysis, dark_matter=True).items() if k in DM_CHANNEL_NUISANCES}
    return DataReference(analysis, observed, nu_hat, value, tuple(priors.items()), pi0_prior, n_steps,
                         tuple(channels.items()))


def data_delta_chi2(reference: DataReference, model, sm: StandardModel | None = None, templates=None, n_steps=None):
    """Δχ² of ``model`` (a :class:`cevns_jax.models.NewPhysics`) against the SM best fit (may be < 0;
    differentiable in the model via the envelope theorem). ``templates``: precomputed
    :func:`data_templates`; ``n_steps``: profiling steps (default the reference's; 0: none)."""
    priors = reference.priors_for(model)
    start = {k: reference.nuisances.get(k, jnp.zeros((), dtype=jnp.float64)) for k in priors}
    args = data_templates(reference.analysis, model, sm) if templates is None else templates
    steps = reference.n_steps if n_steps is None else n_steps
    return _profile(reference.analysis, reference.observed, sm, args, priors, start, steps)[1] - reference.chi2_min


_data_delta_chi2 = jax.jit(data_delta_chi2, static_argnames="n_steps")


class DataLimit:
    """Profiled Δχ²(θ) of ``model_of(θ)`` against the SM fitted to a release's data (module docstring).

    ``model_of`` maps θ (a dict of scalars) to a :class:`cevns_jax.models.NewPhysics`. With dark matter
    the ``pi0`` nuisance (prior ``pi0``, default: the experiment's, else its facility's,
    :func:`cevns_jax.nuisances.pi0_prior`: 15% for the SNS eras of the releases) is profiled too. ``sm`` sets the SM inputs under the
    hypothesis; the reference uses ``reference_sm``. ``analysis`` (a prebuilt
    :class:`~cevns_jax.stats.analyses.BinnedAnalysis`) overrides ``release`` and ``morphing``.
    :meth:`delta_chi2` is a pure function of θ (``jit``/``vmap``/``grad``). ``reference``: the SM best fit
    (:func:`data_reference`), if already computed; it holds the analysis (the arguments that would build one are
    then unused).
    """

    def __init__(self, model_of: Callable, release: str = "COHERENT-CsI-2021", *, analysis: BinnedAnalysis | None = None,
                 morphing: str = "linear", n_steps: int = 6, reference_steps: int = 40, pi0: float | None = None,
                 sm: StandardModel | None = None, reference_sm: StandardModel | None = None,
                 reference: DataReference | None = None):
        self.model_of = model_of
        self.sm = sm
        if reference is None:
            analysis = analysis if analysis is not None else load_analysis(release, morphing=morphing)
            pi0 = float(pi0 if pi0 is not None else fit_priors(analysis, dark_matter=True)["pi0"])
            reference = data_reference(analysis, reference_sm, pi0_prior=pi0, n_steps=n_steps,
                                       reference_steps=reference_steps)
        self.analysis, self.reference = reference.analysis, reference
        self.priors = dict(self.reference.priors)
        self.observed = self.reference.observed
        self.reference_nuisances = self.reference.nuisances
        self.chi2_min = float(self.reference.chi2_min)

    def priors_for(self, model) -> dict:
        return self.reference.priors_for(model)

    def delta_chi2(self, theta: dict):
        """Δχ²(θ) = min_ν χ²(model_of(θ), ν) − χ²_min."""
        return data_delta_chi2(self.reference, self._model(theta), self.sm)

    # -- the interface of cevns_jax.stats.forecast.dark_matter_coupling_scan (linear morphing only) --
    def templates(self, model, cache: dict | None = None):
        if self.analysis.signal_shape is None:
            raise CevnsInputError("DataLimit.templates needs an analysis with linear morphing")
        return morphing_templates(self.analysis, {}, self.sm, model, cache)

    @staticmethod
    def scale_dark_matter(templates: dict, factor):
        return {**templates, "dark_matter": templates["dark_matter"].scaled(factor)}

    def profiled_from_templates(self, templates: dict, model):
        return data_delta_chi2(self.reference, model, self.sm, templates)

    def _model(self, theta: dict):
        from ..models import NewPhysics

        model = self.model_of(theta)
        if not isinstance(model, NewPhysics):
            raise CevnsInputError(f"model_of must return a cevns_jax.models.NewPhysics, got {type(model).__name__}")
        return model

    def unprofiled_delta_chi2(self, theta: dict):
        """Δχ² with the nuisances held at the SM best fit (no re-profiling)."""
        return data_delta_chi2(self.reference, self._model(theta), self.sm, n_steps=0)


def model_test(release: str, model, sm: StandardModel | None = None, morphing: str = "linear") -> dict:
    """Δχ² of one new-physics point against the SM on a release's data (``cevns fit RELEASE --model FILE``)."""
    limit = DataLimit(lambda _: model, release, morphing=morphing, sm=sm)
    value = float(_data_delta_chi2(limit.reference, model, sm))
    return {"release": release, "chi2_sm": limit.chi2_min, "chi2_model": limit.chi2_min + value, "delta_chi2": value,
            "n_bins": int(limit.observed.size), "nuisances_sm": {k: float(v) for k, v in limit.reference_nuisances.items()}}
