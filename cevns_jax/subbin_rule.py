"""Efficiency-weighted probability of one sub-bin from the smearing's exact moments (docs/physics.md §3.4.1).

For a sub-bin [lo, lo + w] the smearing gives the probability P, and the first two moments of
u = x − lo inside the sub-bin, m1 = ∫ u dF and m2 = ∫ u² dF (from the CDF and its antiderivatives).
The rule

    ∫_sub-bin ε(x) dF(x) ≈ P ε(x̄) + ½ ε''(x̄) P v,   x̄ = lo + m1/P,  v = m2/P − (m1/P)²,

is exact for an efficiency quadratic on the sub-bin whatever the smearing. :func:`conditional_mean_rule`
evaluates it elementwise with a closed-form JVP: the tangent is a linear combination of the input
tangents with coefficients built from ε, ε', ε'', ε''' at x̄ (nested forward-mode derivatives of the
efficiency), plus the efficiency-parameter tangent at fixed x̄. Reverse mode then multiplies the
cotangent by those coefficients instead of re-tracing the division, the clips and the nested
derivatives of the primal (which XLA split into ~60 elementwise passes over the sub-bin × node array).

An efficiency that is linear between its feature points (``piecewise_linear = True``: a table, a flat
efficiency) has every kink on a sub-bin edge, so it is linear on each sub-bin and the rule reduces to
P ε(lo) + m1 (ε(lo + w) − ε(lo))/w, exact, with ε evaluated per sub-bin edge only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["PROBABILITY_FLOOR", "conditional_mean_rule", "linear_rule", "is_piecewise_linear"]

PROBABILITY_FLOOR = 1e-12
"""Below this sub-bin probability the moments are round-off: the sub-bin centre and the uniform variance
w²/12 are used instead (the contribution is < 1e-12 of a unit-probability event)."""


def is_piecewise_linear(efficiency) -> bool:
    """Whether ``efficiency`` is linear between its feature points (class attribute ``piecewise_linear``)."""
    return bool(getattr(efficiency, "piecewise_linear", False))


def linear_rule(eff_edges, prob, m1, w):
    """P ε(lo) + m1 Δε/w for an efficiency linear on each sub-bin; ``eff_edges`` (n_sub + 1,) at the edges.

    ``prob``, ``m1`` have shape (n_sub, ...) and ``w`` broadcasts to them; exact for such an efficiency.
    """
    batch = (1,) * (prob.ndim - 1)
    e_lo = eff_edges[:-1].reshape((-1,) + batch)
    slope = ((eff_edges[1:] - eff_edges[:-1]).reshape((-1,) + batch)) / w
    return prob * e_lo + m1 * slope


def _moments(prob, m1, m2, w):
    """Conditional offset x̄ − lo and variance inside the sub-bin, clipped to their possible ranges."""
    ok = prob > PROBABILITY_FLOOR
    safe = jnp.where(ok, prob, 1.0)
    raw_offset = m1 / safe
    offset = jnp.where(ok, jnp.clip(raw_offset, 0.0, w), 0.5 * w)
    second = m2 / safe
    raw_var = second - offset**2
    var = jnp.where(ok, jnp.clip(raw_var, 0.0, 0.25 * w**2), w**2 / 12.0)
    return ok, safe, raw_offset, offset, second, raw_var, var


def _derivatives(efficiency, x):
    """ε, ε', ε'', ε''' at x (nested forward-mode derivatives of an elementwise efficiency)."""
    ones = jnp.ones_like(x)

    def d1(y):
        return jax.jvp(efficiency, (y,), (ones,))

    def d2(y):
        return jax.jvp(lambda z: d1(z)[1], (y,), (ones,))

    def d3(y):
        return jax.jvp(lambda z: d2(z)[1], (y,), (ones,))

    e0, e1 = d1(x)
    e2, e3 = d3(x)
    return e0, e1, e2, e3


def _curvature(efficiency, x):
    """ε''(x) by nested forward-mode differentiation."""
    ones = jnp.ones_like(x)
    first = lambda y: jax.jvp(efficiency, (y,), (ones,))[1]  # noqa: E731
    return jax.jvp(first, (x,), (ones,))[1]


@jax.custom_jvp
def conditional_mean_rule(efficiency, prob, m1, m2, lo, w):
    """P ε(x̄) + ½ ε''(x̄) P v per sub-bin (elementwise; ``lo`` and ``w`` broadcast to ``prob``)."""
    _, _, _, offset, _, _, var = _moments(prob, m1, m2, w)
    x = lo + offset
    return prob * (efficiency(x) + 0.5 * _curvature(efficiency, x) * var)


@conditional_mean_rule.defjvp
def _conditional_mean_rule_jvp(primals, tangents):
    efficiency, prob, m1, m2, lo, w = primals
    d_eff, d_prob, d_m1, d_m2, d_lo, d_w = tangents
    ok, safe, raw_offset, offset, second, raw_var, var = _moments(prob, m1, m2, w)
    x = lo + offset
    e0, e1, e2, e3 = _derivatives(efficiency, x)
    value = prob * (e0 + 0.5 * e2 * var)
    # tangents of the clipped offset and variance (the branch that the primal took)
    inside = ok & (raw_offset > 0.0) & (raw_offset < w)
    d_offset = jnp.where(inside, (d_m1 - raw_offset * d_prob) / safe,
                         jnp.where(ok, jnp.where(raw_offset >= w, d_w, 0.0), 0.5 * d_w))
    quarter = 0.25 * w**2
    inside_v = ok & (raw_var > 0.0) & (raw_var < quarter)
    d_var = jnp.where(inside_v, (d_m2 - second * d_prob) / safe - 2.0 * offset * d_offset,
                      jnp.where(ok, jnp.where(raw_var >= quarter, 0.5 * w * d_w, 0.0), w * d_w / 6.0))
    # efficiency parameters at fixed x̄
    _, (de0, de2) = jax.jvp(lambda e: (e(x), _curvature(e, x)), (efficiency,), (d_eff,))
    tangent = (d_prob * (e0 + 0.5 * e2 * var)
               + prob * ((e1 + 0.5 * e3 * var) * (d_lo + d_offset) + 0.5 * e2 * d_var + de0 + 0.5 * de2 * var))
    return value, tangent
