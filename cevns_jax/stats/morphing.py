"""Linear template morphing: a template, its relative log-derivatives in the shape nuisances, the morph.

A *shape* nuisance (a shifted quenching, a pulled efficiency curve, a moved proton pulse;
:mod:`cevns_jax.nuisances`) changes how many counts each bin gets. Running the forward model at every
profiling step is expensive, so fits and forecasts store a template T₀ = T(ν = 0) and its relative
derivatives r_k = ∂ ln T/∂ν_k at ν = 0 (forward mode, one pass), and use

    T(ν) ≈ T₀ · (1 + Σ_k ν_k r_k)                                  (docs/physics.md §5.2)

(as the ±1σ templates of the COHERENT releases do). Normalisation nuisances are not morphed: they
multiply exactly (:func:`cevns_jax.nuisances.normalisation`). Accuracy: pulls in the release fits are
≲ 0.4σ, where the linear morph agrees with the exact model to 0.05% in counts for CsI 2021 and to
2.3% in the fitted count for CENNS-10 (the pulse timing is non-linear; ``tests/test_fits.py``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .._pytree import pytree_dataclass, static_field

__all__ = ["Morph", "log_derivatives", "channel_log_derivatives", "morph", "pulls"]


@pytree_dataclass
class Morph:
    """A template at ν = 0 (``nominal``, any shape) and its log-derivatives (``logd``, (K, *shape)) in
    the shape nuisances ``names`` (static)."""

    nominal: jnp.ndarray
    logd: jnp.ndarray
    names: tuple = static_field(default=())
    channel_fractions: jnp.ndarray | None = None
    """Optional (C, *shape): the fraction of each bin made by each of the components ``channel_names``
    (e.g. dark-matter production channels), each scaled exactly by e^ν of its log-normal nuisance."""
    channel_names: tuple = static_field(default=())

    def scaled(self, factor) -> "Morph":
        """The template × ``factor`` (log-derivatives and channel fractions unchanged)."""
        return Morph(self.nominal * factor, self.logd, self.names, self.channel_fractions, self.channel_names)

    def at(self, values: dict):
        """The morphed template at nuisance ``values`` (names absent from ``values`` at 0): linear in the
        shape nuisances, times 1 + Σ_c f_c (e^{ν_c} − 1) for the channel nuisances (exact)."""
        out = morph(self.nominal, self.logd, pulls(values, self.names))
        if self.channel_fractions is None or not self.channel_names:
            return out
        factors = jnp.exp(pulls(values, self.channel_names)) - 1.0
        return out * (1.0 + jnp.tensordot(factors, self.channel_fractions, axes=1))


def log_derivatives(counts_of: Callable[[dict], jnp.ndarray], names: tuple) -> Morph:
    """:class:`Morph` of ``counts_of(ν)`` at ν = 0 in ``names`` (zero where the template is 0)."""
    names = tuple(names)
    zero = {k: jnp.zeros((), dtype=jnp.float64) for k in names}
    if not names:
        nominal = counts_of(zero)
        return Morph(nominal, jnp.zeros((0,) + jnp.shape(nominal)), names)
    J, nominal = jax.jacfwd(lambda v: (counts_of(v),) * 2, has_aux=True)(zero)  # one forward pass
    positive = nominal > 0
    safe = jnp.where(positive, nominal, 1.0)
    return Morph(nominal, jnp.stack([jnp.where(positive, J[k] / safe, 0.0) for k in names]), names)


def channel_log_derivatives(counts_of: Callable[[dict], dict], names: tuple, channel_nuisances: dict) -> Morph:
    """:class:`Morph` of the sum of the components ``counts_of(ν)`` = {component: array} in the shape nuisances
    ``names``, with the fraction of each component listed in ``channel_nuisances`` ({component: nuisance
    name}) stored so that its nuisance scales it exactly (:meth:`Morph.at`). One forward pass."""
    names = tuple(names)
    zero = {k: jnp.zeros((), dtype=jnp.float64) for k in names}
    order = []  # the component names, in the order of the one trace of counts_of (below)

    def stacked(v):
        parts = counts_of(v)  # one evaluation of every component
        order[:] = list(parts)  # a second trace (an eval_shape first) would double the cost of building the program
        return jnp.stack([parts[k] for k in order])

    if names:
        J, nominal_c = jax.jacfwd(lambda v: (stacked(v),) * 2, has_aux=True)(zero)
    else:
        nominal_c, J = stacked(zero), {}
    nominal = jnp.sum(nominal_c, axis=0)
    positive = nominal > 0
    safe = jnp.where(positive, nominal, 1.0)
    logd = (jnp.stack([jnp.where(positive, jnp.sum(J[k], axis=0) / safe, 0.0) for k in names]) if names
            else jnp.zeros((0,) + jnp.shape(nominal)))
    chosen = [k for k in order if k in channel_nuisances]
    if not chosen:
        return Morph(nominal, logd, names)
    fractions = jnp.stack([jnp.where(positive, nominal_c[order.index(k)] / safe, 0.0) for k in chosen])
    return Morph(nominal, logd, names, fractions, tuple(channel_nuisances[k] for k in chosen))


def pulls(values: dict, names: tuple):
    """The vector (ν_k) in the order of ``names`` (0 for names absent from ``values``)."""
    return jnp.stack([jnp.asarray(values.get(k, 0.0), dtype=jnp.float64) for k in names]) if names else jnp.zeros((0,))


def morph(nominal, logd, pull_vector):
    """T₀ · (1 + Σ_k ν_k r_k): the one place where the linear morph is applied."""
    return nominal * (1.0 + jnp.tensordot(pull_vector, logd, axes=1))
