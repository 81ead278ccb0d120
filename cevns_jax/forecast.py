"""Expected sensitivities: profiled Asimov Δχ² of a new-physics point against the SM (docs/physics.md §5.3).

    Δχ²(θ) = min_ν χ²(θ, ν; n = μ_SM),    χ² = Poisson deviance + Σ (ν/σ)²

for one or several experiments (joint: χ² summed, the ``flux`` and ``pi0`` nuisances shared by all
experiments at the source, every other nuisance per experiment). The nuisances act on the prediction
through linear template morphing around the SM (their log-derivatives computed once):
μ(θ, ν) = μ_sig(θ)·(1 + Σ_k ν_k r_k) + Σ_b (1 + ν_b) μ_b, so each grid point costs one forward
evaluation (:meth:`AsimovForecast.signals`) plus a few profiling steps on arrays
(:meth:`AsimovForecast.combine`); the profiled value stays differentiable in θ.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .likelihood import poisson_deviance, profiled_chi2
from .models.darkmatter import at_source
from .nuisances import neutrino_induced, nuisance_priors, predicted_counts
from .rates import cevns_counts, dark_matter_counts
from .source import COMPONENTS

SHARED = ("flux", "pi0")


def experiment_signal(exp, model) -> tuple:
    """Flat CEvNS counts (all components summed) and dark-matter counts (None without dark matter)."""
    signal = jnp.ravel(jnp.sum(cevns_counts(exp, model=model), axis=0))
    dm = None
    if model is not None and model.dark_matter is not None:
        dm = jnp.ravel(dark_matter_counts(exp, at_source(model.dark_matter, exp.source)))  # facility's π⁰ yield
    return signal, dm


def shared_delta_chi2(forecasts: dict, model_of: Callable) -> Callable:
    """Point function θ → {label: profiled Δχ²} for several forecasts of one model.

    Every distinct experiment's physics is computed once per point and shared by all forecasts that
    contain it (e.g. each detector alone and their combination), so a scan of all of them is one
    program: one compilation, and the combination costs only its profiling. ``forecasts``:
    :class:`AsimovForecast` or :class:`cevns_jax.fits.DataLimit` objects (anything with ``templates``
    and ``profiled_from_templates``).
    """

    def point(theta):
        model, cache = model_of(theta), {}
        return {label: fc.profiled_from_templates(fc.templates(model, cache), model) for label, fc in forecasts.items()}

    return point


def dark_matter_coupling_scan(evaluators: dict, model_of: Callable, coupling: str, couplings, power: float) -> Callable:
    """Point function θ (without the coupling) → {label: Δχ² at each of ``couplings``} for dark matter.

    At fixed masses the dark-matter counts are an exact power of the coupling (∝ ε⁴ ∝ Y² for a dark
    photon at fixed α_D and m_V/m_χ, ∝ α_B² for a leptophobic mediator): the physics is computed once per
    mass at coupling 1 and rescaled by coupling^``power``, so a raster over n couplings costs one
    forward evaluation plus n profilings. ``evaluators``: :class:`AsimovForecast` or
    :class:`cevns_jax.fits.DataLimit` objects (anything with ``templates``, ``scale_dark_matter`` and
    ``profiled_from_templates``); experiments shared between them are computed once.
    """
    couplings = jnp.asarray(couplings, dtype=jnp.float64)

    def point(theta):
        model, cache = model_of({**theta, coupling: 1.0}), {}
        out = {}
        for label, ev in evaluators.items():
            t = ev.templates(model, cache)
            out[label] = jax.vmap(lambda c, t=t, ev=ev: ev.profiled_from_templates(
                ev.scale_dark_matter(t, c**power), model))(couplings)
        return out

    return point


@jax.jit
def _nominal_and_jacobian(exp, nu0: dict):
    """SM signal, every nominal count and ∂signal/∂ν at ν = 0. Compiled at module level, so forecasts
    of the same experiment reuse the program (op by op, forward-mode derivatives take tens of seconds)."""

    def signal_of(nu):
        counts = predicted_counts(exp, nu)
        return sum(counts[c] for c in COMPONENTS), counts

    S0, nominal = signal_of(nu0)
    return S0, nominal, (jax.jacfwd(lambda v: signal_of(v)[0])(nu0) if nu0 else {})


class AsimovForecast:
    """Profiled Asimov Δχ²(θ) of ``model_of(θ)`` against the SM for ``experiments``.

    ``model_of`` maps the parameter dict θ (e.g. {"mass_MeV": …, "g": …}) to a
    :class:`cevns_jax.models.NewPhysics`. ``include`` restricts the nuisances (default: every prior
    declared by the experiments, plus ``pi0`` if the model has dark matter).
    """

    def __init__(self, experiments: list, model_of: Callable, *, include: list[str] | None = None,
                 n_steps: int = 6, dark_matter: bool = False, pi0_prior: float = 0.15):
        self.experiments = list(experiments)
        self.model_of = model_of
        self.n_steps = n_steps
        self.priors, self._local = {}, []
        for exp in self.experiments:
            local = {}
            for name, sigma in nuisance_priors(exp).items():
                if include is not None and name not in include:
                    continue
                key = name if name in SHARED or len(self.experiments) == 1 else f"{exp.name}/{name}"
                self.priors[key] = sigma
                local[name] = key
            self._local.append(local)
        if dark_matter:
            self.priors["pi0"] = pi0_prior
        zero = {k: jnp.zeros((), dtype=jnp.float64) for k in self.priors}
        self._zero = zero
        # SM Asimov data and the log-derivatives of the signal in the detector nuisances
        self._data, self._bkg, self._logd = [], [], []
        for exp, local in zip(self.experiments, self._local):
            names = [n for n in local if not n.startswith("background:")]

            nu0 = {n: jnp.zeros((), dtype=jnp.float64) for n in names}
            S0, nominal, J = _nominal_and_jacobian(exp, nu0)
            safe = jnp.where(S0 > 0, S0, 1.0)
            self._logd.append({n: jnp.where(S0 > 0, J[n] / safe, 0.0) for n in names})
            bkg = {k: v for k, v in nominal.items() if k not in COMPONENTS}
            self._bkg.append(bkg)
            self._data.append(jnp.ravel(S0 + sum(bkg.values(), jnp.zeros_like(S0))))
        self.data = jnp.concatenate(self._data)

    def signals(self, theta: dict) -> list:
        """The θ-dependent pieces, once per point: per experiment (CEvNS signal, dark-matter counts or None)."""
        return self.templates(self.model_of(theta))

    def combine(self, signals: list, nuisances: dict):
        """Flat expected counts of all experiments from :meth:`signals` at nuisances ν (cheap: no physics)."""
        parts = []
        for exp, (signal, dm), local, logd, bkg in zip(self.experiments, signals, self._local, self._logd, self._bkg):
            factor = 1.0 + sum((nuisances[local[n]] * jnp.ravel(r) for n, r in logd.items()), jnp.zeros_like(signal))
            total = signal * factor
            if dm is not None:
                total = total + dm * (1.0 + nuisances.get("pi0", 0.0))
            for name, counts in bkg.items():
                key = local.get(f"background:{name}")
                scale = 1.0 + (nuisances[key] if key is not None else 0.0)
                flux = 1.0 + nuisances.get(local.get("flux", "flux"), 0.0) if neutrino_induced(exp, name) else 1.0
                total = total + jnp.ravel(counts) * scale * flux
            parts.append(total)
        return jnp.concatenate(parts)

    def expected(self, theta: dict, nuisances: dict):
        """Flat expected counts of all experiments at (θ, ν)."""
        return self.combine(self.signals(theta), nuisances)

    def delta_chi2(self, theta: dict):
        """Profiled Asimov Δχ² at θ (the SM gives 0)."""
        return self.profiled(self.signals(theta))  # the physics once; profiling only rescales it

    # -- the interface of dark_matter_coupling_scan -----------------------------------------------
    def templates(self, model, cache: dict | None = None) -> list:
        """Per-experiment signals of ``model``, shared through ``cache`` (keyed by experiment) when given."""
        cache = {} if cache is None else cache
        for exp in self.experiments:
            if id(exp) not in cache:
                cache[id(exp)] = experiment_signal(exp, model)
        return [cache[id(exp)] for exp in self.experiments]

    @staticmethod
    def scale_dark_matter(signals: list, factor) -> list:
        """Signals with every dark-matter count × ``factor``."""
        return [(s, None if dm is None else dm * factor) for s, dm in signals]

    def profiled_from_templates(self, signals: list, model=None):
        """Profiled Asimov Δχ² from :meth:`templates` (``model`` unused: the nuisances are fixed at construction)."""
        return self.profiled(signals)

    def profiled(self, signals: list):
        """Profiled Asimov Δχ² from precomputed :meth:`signals`."""
        return profiled_chi2(self.combine, self.data, signals, self._zero, self.priors, self.n_steps)

    def unprofiled_delta_chi2(self, theta: dict):
        """Δχ² with every nuisance at 0 (statistics only)."""
        return poisson_deviance(self.expected(theta, self._zero), self.data)
