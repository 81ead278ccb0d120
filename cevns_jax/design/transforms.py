"""Bijections of design variables: unconstrained u ↔ constrained physical x (positivity, boxes,
simplices, increasing edges). Small pytrees with ``forward(u)`` and ``inverse(x)``; every one is smooth
so ``jax.grad`` of a figure of merit in u is finite everywhere (docs/physics.md §7)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .._pytree import pytree_dataclass

__all__ = ["Identity", "Positive", "LogPositive", "Interval", "LogInterval", "Simplex", "Increasing"]


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


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
