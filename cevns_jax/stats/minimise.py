"""Box-bounded minimisation of the Poisson χ² by projected Fisher scoring, with a convergence flag.

The fits of toys (docs/physics.md §5.11) minimise χ²(p) = Poisson deviance + Σ ((p − p₀)/σ)² over a flat
vector p of parameters of interest and nuisances, some bounded (a signal strength ≥ 0). The step is the
damped Fisher-scoring step of :func:`cevns_jax.stats.likelihood.profile_nuisances`, made safe at bounds
in the manner of Bertsekas' projected Newton method (SIAM J. Control Optim. 20, 221 (1982)):

* a parameter at a bound, or within ε of it (Bertsekas' ε-active set, :data:`ACTIVE_MARGIN`), whose
  gradient points out of the box is *active*: its row and column of the expected Hessian are replaced by
  the identity and its gradient component by 0 for the Newton decrement;
* every active parameter, and every one whose full step would leave the box, moves exactly to its bound,
  and the others take the Newton step *given* that move (H_ff Δ_f = g_f − H_fb d_b: a second Cholesky
  solve), so no parameter follows a step that a bounded one cannot make; with two or more bound-hitting
  parameters that step can point uphill (gᵀΔ ≤ 0), and then the reduced step of the first bullet is taken.
  Before (session 19), the others took the unconstrained step while the bounded parameter was clipped:
  where that parameter is nearly unidentified (a sterile amplitude at small Δm²) its Newton step is huge,
  the clipped trial was refused and the step length shrank; such fits needed 16 steps instead of 4
  (``tests/test_minimise.py``);
* the trial point x − t·Δ is projected onto the box and taken only if it lowers χ², so χ² never
  increases; the step length t adapts per fit (1 at first, then the minimiser of the parabola through
  the last trial, within safeguards), and the one forward pass at the trial point also gives the
  Jacobian of the next step. (Before, six lengths were tried at every step and the best kept: six evaluations of
  χ² per step instead of one, for the same steps wherever the full step is taken; docs/physics.md §5.11.)

Convergence is judged at the end, never assumed: the Newton decrement λ²/2 = ½ gᵀH⁻¹g of the reduced
problem, plus the first-order gain g·(x − bound) of taking the ε-active parameters to their bound,
estimates χ²(p) − min χ² (Boyd & Vandenberghe, *Convex Optimization*, §9.5.1); a fit is converged when
it is finite and below ``tolerance`` (:data:`DECREMENT_TOLERANCE`, in χ² units). The number of steps is
fixed (``lax.fori_loop``), so the fit is ``jit``- and ``vmap``-able and costs the same for every toy.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .likelihood import MU_FLOOR, fisher_information, poisson_deviance

__all__ = ["DECREMENT_TOLERANCE", "STEP_GROW", "STEP_MIN_FRACTION", "STEP_MAX_REFUSED", "fit_box", "spd_solve"]

DECREMENT_TOLERANCE = 1e-4
"""A fit is converged when ½ gᵀH⁻¹g (the estimated distance to the minimum, in χ² units) is below this:
far below the 0.01 resolution of a Δχ² threshold (2.706 at 90% CL)."""


def spd_solve(H, g):
    """H⁻¹g for a small symmetric positive-definite ``H`` (n × n, n static) by a Cholesky factorisation
    unrolled into elementwise operations: under ``vmap`` over many toys these are a few hundred vector
    operations over the batch instead of a batched LAPACK call per toy, the cost that dominated toy fits
    of a few parameters on CPU (docs/physics.md §5.11). Not pivoted: H is the Fisher matrix plus priors
    plus 1e-12·I, or the identity on active rows, so it is positive definite; a non-positive pivot gives
    NaN, which the caller treats as a failed step (as it treats a singular ``jnp.linalg.solve``)."""
    n = g.shape[0]
    L = [[None] * n for _ in range(n)]
    for j in range(n):
        d = H[j, j] - sum(L[j][k] * L[j][k] for k in range(j))
        L[j][j] = jnp.sqrt(jnp.where(d > 0, d, jnp.nan))
        for i in range(j + 1, n):
            L[i][j] = (H[i, j] - sum(L[i][k] * L[j][k] for k in range(j))) / L[j][j]
    y = [None] * n
    for i in range(n):  # L y = g
        y[i] = (g[i] - sum(L[i][k] * y[k] for k in range(i))) / L[i][i]
    x = [None] * n
    for i in reversed(range(n)):  # Lᵀ x = y
        x[i] = (y[i] - sum(L[k][i] * x[k] for k in range(i + 1, n))) / L[i][i]
    return jnp.stack(x) if n else jnp.zeros_like(g)


def _evaluate(mu_fn, n, x, inv_var, centre):
    """Expected counts (floored at MU_FLOOR), their Jacobian, χ² and its gradient at ``x``: one forward pass
    of ``mu_fn`` with its tangents (``jax.jacfwd``)."""
    def mu_of(y):
        mu = jnp.maximum(mu_fn(y), MU_FLOOR)
        return mu, mu

    J, mu = jax.jacfwd(mu_of, has_aux=True)(x)
    value = poisson_deviance(mu, n) + jnp.sum(inv_var * (x - centre) ** 2)
    g = 2.0 * jnp.sum(J * (1.0 - n / mu)[:, None], axis=0) + 2.0 * inv_var * (x - centre)
    return J, mu, jnp.where(jnp.isfinite(value), value, jnp.inf), g


def _direction(J, mu, x, g, inv_var, lo, hi):
    """Reduced Fisher-scoring direction Δ, Newton decrement and slope gᵀΔ = −φ′(0) of χ²(x − tΔ) at ``x``
    (from its Jacobian ``J``, counts ``mu`` and gradient ``g``)."""
    H = 2.0 * fisher_information(J, mu) + 2.0 * jnp.diag(inv_var) + 1e-12 * jnp.eye(x.size)
    margin = jnp.minimum(ACTIVE_MARGIN, jnp.linalg.norm(x - jnp.clip(x - g, lo, hi)))
    near_lo, near_hi = (x <= lo + margin) & (g > 0), (x >= hi - margin) & (g < 0)
    active = near_lo | near_hi
    g_free = jnp.where(active, 0.0, g)
    delta = spd_solve(_fix_rows(H, active), g_free)
    # χ² still to gain: the reduced Newton decrement, plus the first-order gain g·(x − bound) ≥ 0 of taking the
    # ε-active parameters to their bound (zero for those on it), so a point ε short of a bound is not "converged"
    decrement = 0.5 * jnp.dot(g_free, delta) + jnp.dot(g, _to_bound(x, near_lo, near_hi, lo, hi))
    if _may_be_bounded(lo, hi):
        # a parameter that is active, or whose full step leaves the box, goes exactly to its bound; the others
        # take the Newton step given that move (H_ff Δ_f = g_f − H_fb d_b), not one it cannot make. With two or
        # more such parameters that step can point uphill (gᵀΔ ≤ 0): then the reduced step is kept
        to_lo, to_hi = near_lo | (~active & (x - delta < lo)), near_hi | (~active & (x - delta > hi))
        fixed = to_lo | to_hi
        d_fixed = _to_bound(x, to_lo, to_hi, lo, hi)
        delta_f = spd_solve(_fix_rows(H, fixed), jnp.where(fixed, 0.0, g - H @ d_fixed))
        bounded_step = jnp.where(fixed, d_fixed, delta_f)
        delta = jnp.where(jnp.dot(g, bounded_step) > 0, bounded_step, delta)
    ok = jnp.all(jnp.isfinite(delta)) & jnp.isfinite(decrement)
    delta = jnp.where(ok, delta, 0.0)  # singular H (μ at its floor): stay put
    decrement = jnp.where(ok, decrement, jnp.inf)
    return delta, decrement, jnp.dot(g, delta)


def _to_bound(x, to_lo, to_hi, lo, hi):
    """x − bound for the parameters flagged ``to_lo`` / ``to_hi``, 0 elsewhere (no inf enters the arithmetic)."""
    return jnp.where(to_lo, x - jnp.where(to_lo, lo, 0.0), jnp.where(to_hi, x - jnp.where(to_hi, hi, 0.0), 0.0))


def _may_be_bounded(lo, hi) -> bool:
    """False only when the bounds are known (not traced) and all infinite: the second solve is then skipped."""
    try:
        return bool(np.any(np.isfinite(np.asarray(lo))) or np.any(np.isfinite(np.asarray(hi))))
    except jax.errors.TracerArrayConversionError:
        return True


def _fix_rows(H, fixed):
    """``H`` with the rows and columns of ``fixed`` parameters replaced by the identity's."""
    return jnp.where(fixed[:, None] | fixed[None, :], jnp.eye(H.shape[0]), H)


ACTIVE_MARGIN = 1e-3
"""ε̄ of Bertsekas' ε-active set (SIAM J. Control Optim. 20, 221 (1982), eq. (33)): a parameter within
ε = min(ε̄, ‖x − P(x − g)‖) of a finite bound, its gradient pointing out, is active (in the parameter's own
units; only parameters with a finite bound can be)."""

STEP_GROW, STEP_MIN_FRACTION, STEP_MAX_REFUSED = 2.0, 0.1, 0.5
"""Safeguards of the step length of :func:`fit_box`: the next length is the minimiser of the parabola
through the last trial, kept within [0.1 t, min(1, 2 t)] after a step taken and [0.1 t, 0.5 t] after one
refused."""


def fit_box(mu_fn: Callable, n, x0, inv_var, centre, lo, hi, n_steps: int,
            tolerance: float = DECREMENT_TOLERANCE):
    """min over lo ≤ x ≤ hi of χ²(x) = deviance(``mu_fn(x)``, n) + Σ inv_var·(x − centre)².

    ``mu_fn``: flat parameters → expected counts; ``x0``, ``inv_var`` (1/σ², 0 for no prior), ``centre``,
    ``lo``, ``hi``: flat arrays (±inf for no bound). ``n_steps`` projected Fisher-scoring steps from
    ``clip(x0, lo, hi)``. Returns (x̂, χ²(x̂), converged, decrement): ``converged`` is True when χ² is
    finite and the Newton decrement at x̂ is below ``tolerance`` (module docstring).

    Each step tries one point, x − t·Δ projected onto the box, with t = 1 at first: it is taken if it lowers
    χ², else the fit stays. The next t is the minimiser of the parabola φ(s) through φ(0) = χ²(x),
    φ′(0) = −gᵀΔ and the trial's φ(t) (Nocedal & Wright, *Numerical Optimization*, 2nd ed., §3.5), kept
    within [0.1 t, min(1, 2 t)] after a step taken and [0.1 t, 0.5 t] after one refused (:data:`STEP_GROW`,
    :data:`STEP_MIN_FRACTION`, :data:`STEP_MAX_REFUSED`): where μ is close to linear it stays 1, where the
    full step overshoots (a non-linear nuisance such as the pulse timing) the next steps are shortened
    to what the last trial showed. The one forward pass at the trial point gives its χ², and its Jacobian
    and gradient for the next direction, so a step costs one evaluation of ``mu_fn`` with its tangents,
    one Fisher matrix and one solve.
    """
    def state_at(x):
        J, mu, value, g = _evaluate(mu_fn, n, x, inv_var, centre)
        delta, decrement, slope = _direction(J, mu, x, g, inv_var, lo, hi)
        return x, J, mu, value, g, delta, decrement, slope

    def step(_, carry):
        state, t = carry
        x, value, delta, slope = state[0], state[3], state[5], state[7]
        trial = state_at(jnp.clip(x - t * delta, lo, hi))
        better = trial[3] <= value  # (a non-finite χ² is +inf: never taken)
        curvature = 2.0 * (trial[3] - value + slope * t) / t**2
        convex = curvature > 0
        t_min = slope / jnp.where(convex, curvature, 1.0)
        upper = jnp.where(better, jnp.minimum(1.0, STEP_GROW * t), STEP_MAX_REFUSED * t)
        t_next = jnp.clip(jnp.where(convex, t_min, upper), STEP_MIN_FRACTION * t, upper)
        t_next = jnp.where(jnp.isfinite(t_next), t_next, STEP_MIN_FRACTION * t)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), trial, state)
        return state, t_next

    state, _ = jax.lax.fori_loop(0, n_steps, step, (state_at(jnp.clip(x0, lo, hi)), jnp.ones((), dtype=x0.dtype)))
    x, value, decrement = state[0], state[3], state[6]
    converged = jnp.isfinite(value) & (decrement < tolerance)
    return x, value, converged, decrement
