"""Projected Fisher scoring at bounds (cevns_jax.stats.minimise.fit_box): fits whose minimum lies on a bound
converge in three steps and agree with SciPy's L-BFGS-B on the same χ² (an independent minimiser) to the
fits' stated target (DECREMENT_TOLERANCE in χ²). Before the ε-active set and the bound-hitting step (session
19) the last three cases needed four steps, and a sterile-plane row fit with seven nuisances sixteen."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from cevns_jax.stats.minimise import DECREMENT_TOLERANCE, fit_box

NULL = np.array([120.0, 100.0, 80.0, 60.0, 45.0, 30.0])
PATTERN = np.array([0.02, 0.015, 0.01, 0.012, 0.008, 0.005])  # a weak, nearly normalisation-like signal
SIGMA = 0.1


def _mu(x, strength):
    """Counts: the null times (1 + flux) minus ``strength``·pattern·s, s ∈ [0, 1] the first parameter."""
    return (1.0 + x[1]) * NULL * (1.0 - strength * x[0] * PATTERN / PATTERN.max())


def _chi2(x, n, strength):
    mu = _mu(x, strength)
    return 2.0 * np.sum(mu - n + n * np.log(n / mu)) + (x[1] / SIGMA) ** 2


@pytest.mark.parametrize("strength, flux_true, start", [
    (1e-3, 0.03, 0.5),   # s almost unidentified: its Newton step is far outside [0, 1]
    (0.3, 0.05, 0.9),    # the data ask for s < 0: the minimum is on the bound s = 0, coupled to the flux
    (0.3, -0.08, 0.05),  # the data ask for s > 1: the minimum is on the bound s = 1
])
def test_bounded_minimum_in_few_steps(strength, flux_true, start):
    s_true = {0.05: 1.6, 0.5: 0.0, 0.9: -0.8}[start]
    n = np.round(_mu(np.array([s_true, flux_true]), strength))
    ref = min((minimize(_chi2, [s0, 0.0], args=(n, strength), method="L-BFGS-B", bounds=[(0.0, 1.0), (-0.5, 0.5)],
                        options={"ftol": 1e-15, "gtol": 1e-12}) for s0 in (0.01, 0.5, 0.99)), key=lambda r: r.fun)
    fit = jax.jit(lambda x0: fit_box(lambda x: _mu(x, strength), jnp.asarray(n), x0, jnp.asarray([0.0, 1 / SIGMA**2]),
                                     jnp.zeros(2), jnp.asarray([0.0, -jnp.inf]), jnp.asarray([1.0, jnp.inf]), 3))
    x, value, converged, _ = fit(jnp.asarray([start, 0.0]))
    assert bool(converged)
    assert abs(float(value) - ref.fun) < DECREMENT_TOLERANCE
    assert abs(float(x[0]) - ref.x[0]) < 1e-3 and abs(float(x[1]) - ref.x[1]) < 1e-4
