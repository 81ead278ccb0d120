"""Screening of a multi-modal best fit: which values of a gridded parameter to fit in full (docs/physics.md §5.11).

Feldman–Cousins' statistic needs, for every toy, the global minimum of χ² over a plane that is multi-modal along
one parameter (Δm² of an oscillation): the minimum over the plane's rows of profiled fits with the amplitude
free. With n rows that is n fits per toy. The screen estimates every row's profiled minimum from array
operations instead, so that only the few most promising rows are fitted (:class:`cevns_jax.stats.toys.ToyModel`
``best_fit_screen``). Two stages, each an estimate of min over (u, ν) of χ² for a row, u ∈ [0, 1] the
amplitude (scaled to its bounds) and ν the nuisances, around a *base*: the fit of the data at u = 0 (the
no-oscillation point, common to every row) with its nuisances ν_b, counts μ_b, nuisance Jacobian J of μ and
the ν–ν block A of the Fisher matrix (with the priors):

1. :func:`linear_screen` — every row, from its response d = μ(u = 1) − μ(u = 0) at nominal nuisances: the
   quadratic (Fisher) model of χ² in (u, ν) at the base, profiled over ν (Schur complement) and minimised
   over u ∈ [0, 1]. Matrix products over the rows; blind to the curvature of the Poisson deviance along u
   (a large signal), hence stage 2 on its best rows;
2. :func:`amplitude_screen` — the candidate rows, from μ at both ends of u at ν_b: the Poisson deviance
   minimised exactly along u (convex: :func:`amplitude_minimum`), minus the χ² that a joint (u, ν)
   Fisher-scoring step from there would still gain, the step kept within u's bounds.

Neither is a bound: the fits decide the value, the screen only which rows get one; the miss rate and its effect
on critical values are measured against fits of every row (``scans/coverage.py --check-screen``) and tested
(``tests/test_fc_screen.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .likelihood import MU_FLOOR, poisson_deviance

__all__ = ["SCREEN_ITERATIONS", "amplitude_minimum", "linear_screen", "amplitude_screen"]

SCREEN_ITERATIONS = 12
"""Safeguarded Newton iterations of :func:`amplitude_minimum` (bisection alone would bracket the minimum to
2⁻¹² of the amplitude's range; Newton converges quadratically inside the bracket)."""


def amplitude_minimum(mu_lo, mu_hi, n):
    """min over u ∈ [0, 1] of the Poisson deviance of μ(u) = μ_lo + u (μ_hi − μ_lo): (u*, deviance(u*)).

    The deviance is convex in u (second derivative 2 Σ n d²/μ² ≥ 0, d = μ_hi − μ_lo), so u* is 0 or 1 where the
    slope there points out of [0, 1], else the root of the slope 2 Σ d (1 − n/μ), found by Newton steps kept
    inside a bracket that shrinks every iteration (a step leaving it is replaced by bisection)."""
    d = mu_hi - mu_lo

    def slope(u):
        mu = jnp.maximum(mu_lo + u * d, MU_FLOOR)
        return jnp.sum(d * (1.0 - n / mu)), jnp.sum(n * d * d / mu**2)

    def iterate(_, carry):
        lo, hi, u = carry
        g, h = slope(u)
        lo, hi = jnp.where(g < 0, u, lo), jnp.where(g < 0, hi, u)
        newton = u - g / jnp.where(h > 0, h, 1.0)
        inside = (h > 0) & (newton > lo) & (newton < hi)
        return lo, hi, jnp.where(inside, newton, 0.5 * (lo + hi))

    _, _, u = jax.lax.fori_loop(0, SCREEN_ITERATIONS, iterate, (0.0, 1.0, 0.5))
    u = jnp.where(slope(0.0)[0] >= 0, 0.0, jnp.where(slope(1.0)[0] <= 0, 1.0, u))
    return u, poisson_deviance(mu_lo + u * d, n)


def _profiled_step(g_u, h_uu, h_unu, g_nu, A_inv, u):
    """χ² change of the quadratic model in (u, ν), profiled over ν and minimised over u′ ∈ [0, 1] from u:
    −½ g_νᵀA⁻¹g_ν + G δ + ½ h δ², with G = g_u − h_uνᵀA⁻¹g_ν, h = h_uu − h_uνᵀA⁻¹h_uν, δ = clip(−G/h, −u, 1 − u)."""
    Ag = A_inv @ g_nu
    G = g_u - h_unu @ Ag
    h = jnp.maximum(h_uu - jnp.sum((h_unu @ A_inv) * h_unu, axis=-1), 1e-300)
    step = jnp.clip(-G / h, -u, 1.0 - u)
    return -0.5 * jnp.dot(g_nu, Ag) + G * step + 0.5 * h * step**2


def linear_screen(D, mu0, J, n, g_nu, A_inv):
    """Stage 1: estimated χ² change (from the base's χ²) of each row's profiled minimum.

    ``D`` (rows, bins): each row's response μ(u = 1) − μ(u = 0); ``mu0`` (bins): the base's counts; ``J`` (bins,
    ν): ∂μ/∂ν there; ``n``: the counts; ``g_nu``: ∂χ²/∂ν at the base (≈ 0 when it is a converged fit);
    ``A_inv``: inverse of the ν–ν Fisher block (with priors). Fisher-model derivatives at u = 0."""
    resid = 1.0 - n / mu0
    g_u = 2.0 * D @ resid
    h_uu = 2.0 * (D * D) @ (1.0 / mu0)
    h_unu = 2.0 * D @ (J / mu0[:, None])
    return _profiled_step(g_u, h_uu, h_unu, g_nu, A_inv, jnp.zeros_like(g_u))


def amplitude_screen(mu_lo, mu_hi, n, J, g_nu_prior, A_inv):
    """Stage 2 for one row: (u*, estimated χ² of the row's profiled minimum, less the prior terms at the base).

    ``mu_lo``, ``mu_hi``: the row's counts at both ends of u at the base's nuisances; the deviance minimised
    along u (:func:`amplitude_minimum`), then the χ² change of one joint profiled step from (u*, ν_b)
    (:func:`_profiled_step`, gradient of the nuisances' priors ``g_nu_prior`` at the base included)."""
    u, dev = amplitude_minimum(mu_lo, mu_hi, n)
    d = mu_hi - mu_lo
    mu = jnp.maximum(mu_lo + u * d, MU_FLOOR)
    resid = 1.0 - n / mu
    g_nu = 2.0 * J.T @ resid + g_nu_prior
    change = _profiled_step(2.0 * jnp.dot(d, resid), 2.0 * jnp.sum(d * d / mu), 2.0 * J.T @ (d / mu), g_nu, A_inv, u)
    return u, dev + change
