"""Box-bounded minimisation of the Poisson χ² by projected Fisher scoring, with a convergence flag.

The fits of toys (docs/physics.md §5.11) minimise χ²(p) = Poisson deviance + Σ ((p − p₀)/σ)² over a flat
vector p of parameters of interest and nuisances, some bounded (a signal strength ≥ 0). The step is the
damped Fisher-scoring step of :func:`cevns_jax.stats.likelihood.profile_nuisances`, made safe at bounds
in the manner of Bertsekas' projected Newton method (SIAM J. Control Optim. 20, 221 (1982)):

* a parameter at a bound whose gradient points out of the box is *active*: its row and column of the
  expected Hessian are replaced by the identity and its gradient component by 0, so it does not move
  and does not drag the others;
* the trial points x − t·Δ (t in :data:`cevns_jax.stats.likelihood.STEP_LENGTHS`) are projected onto the
  box and the lowest χ² is kept, so χ² never increases.

Convergence is judged at the end, never assumed: the Newton decrement λ²/2 = ½ gᵀH⁻¹g of the reduced
problem estimates χ²(p) − min χ² (Boyd & Vandenberghe, *Convex Optimization*, §9.5.1); a fit is
converged when it is finite and below ``tolerance`` (:data:`DECREMENT_TOLERANCE`, in χ² units). The
number of steps is fixed (``lax.fori_loop``), so the fit is ``jit``- and ``vmap``-able and costs the
same for every toy.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .likelihood import MU_FLOOR, STEP_LENGTHS, poisson_deviance

__all__ = ["DECREMENT_TOLERANCE", "fit_box", "spd_solve"]

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


def _direction(mu_fn, n, x, inv_var, centre, lo, hi):
    """Gradient, reduced Fisher-scoring direction and Newton decrement at ``x``."""
    def mu_of(y):
        mu = jnp.maximum(mu_fn(y), MU_FLOOR)
        return mu, mu

    J, mu = jax.jacfwd(mu_of, has_aux=True)(x)
    g = 2.0 * J.T @ (1.0 - n / mu) + 2.0 * inv_var * (x - centre)
    H = 2.0 * (J.T / mu) @ J + 2.0 * jnp.diag(inv_var) + 1e-12 * jnp.eye(x.size)
    active = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
    H = jnp.where(active[:, None] | active[None, :], jnp.eye(x.size), H)
    g = jnp.where(active, 0.0, g)
    delta = spd_solve(H, g)
    ok = jnp.all(jnp.isfinite(delta))
    delta = jnp.where(ok, delta, 0.0)  # singular H (μ at its floor): stay put
    decrement = jnp.where(ok, 0.5 * jnp.dot(g, delta), jnp.inf)
    return delta, decrement


def fit_box(mu_fn: Callable, n, x0, inv_var, centre, lo, hi, n_steps: int,
            tolerance: float = DECREMENT_TOLERANCE):
    """min over lo ≤ x ≤ hi of χ²(x) = deviance(``mu_fn(x)``, n) + Σ inv_var·(x − centre)².

    ``mu_fn``: flat parameters → expected counts; ``x0``, ``inv_var`` (1/σ², 0 for no prior), ``centre``,
    ``lo``, ``hi``: flat arrays (±inf for no bound). ``n_steps`` projected Fisher-scoring steps from
    ``clip(x0, lo, hi)``. Returns (x̂, χ²(x̂), converged, decrement): ``converged`` is True when χ² is
    finite and the Newton decrement at x̂ is below ``tolerance`` (module docstring).
    """
    lengths = jnp.asarray(STEP_LENGTHS)

    def objective(x):
        return poisson_deviance(mu_fn(x), n) + jnp.sum(inv_var * (x - centre) ** 2)

    def step(_, x):
        delta, _ = _direction(mu_fn, n, x, inv_var, centre, lo, hi)
        trials = jnp.clip(x[None, :] - lengths[:, None] * delta[None, :], lo, hi)
        values = jax.vmap(objective)(trials)
        values = jnp.where(jnp.isfinite(values), values, jnp.inf)
        return trials[jnp.argmin(values)]

    x = jax.lax.fori_loop(0, n_steps, step, jnp.clip(x0, lo, hi))
    value = objective(x)
    _, decrement = _direction(mu_fn, n, x, inv_var, centre, lo, hi)
    converged = jnp.isfinite(value) & (decrement < tolerance)
    return x, value, converged, decrement
