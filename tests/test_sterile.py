"""3+1 oscillation averaging over the baseline spread (docs/physics.md §4.1): point limit, a second method
(direct quadrature over the baseline), the averaged limit, and jit/vmap/grad through the spread."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import constants as C
from cevns_jax.models import sterile, sterile_mixing

L, E = 19.3, C.E_NU_MU_PROMPT  # m, MeV (COH-CryoCsI-1 baseline, prompt ν_μ line)


def test_zero_spread_is_the_point_baseline():
    dm2 = np.array([0.3, 1.0, 3.7, 12.0, 55.0, 240.0])
    point = np.sin(1.26693 * dm2 * L / E) ** 2  # the textbook phase constant (PDG), not C.OSCILLATION_PHASE
    got = np.array([float(sterile.averaged_sin2(sterile_mixing(m, Umu4_sq=0.1, baseline_spread_m=0.0), E, L)) for m in dm2])
    np.testing.assert_allclose(got, point, atol=2e-5 * dm2.max() * L / E)  # 1.26693 is quoted to 6 digits
    exact = np.sin(C.OSCILLATION_PHASE * dm2 * L / E) ** 2
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-14)  # identical up to rounding: no damping at d = 0


@pytest.mark.parametrize("d", [0.3, 0.5, 1.2])
def test_uniform_baseline_average_matches_quadrature(d):
    """⟨sin²Δ⟩ over L' uniform in [L − d/2, L + d/2], by 4000-point midpoint quadrature (error < 1e-6 here)."""
    n = 4000
    Lp = L - d / 2 + d * (np.arange(n) + 0.5) / n
    for dm2 in (1.0, 8.0, 40.0, 150.0, 900.0):
        direct = np.mean(np.sin(C.OSCILLATION_PHASE * dm2 * Lp / E) ** 2)
        model = sterile_mixing(dm2, Umu4_sq=0.1, baseline_spread_m=d)
        assert float(sterile.averaged_sin2(model, E, L)) == pytest.approx(direct, abs=2e-6)


def test_fast_oscillations_average_to_one_half():
    model = sterile_mixing(1e5, Umu4_sq=0.1, baseline_spread_m=0.5)
    assert float(sterile.averaged_sin2(model, E, L)) == pytest.approx(0.5, abs=2e-3)  # |sinc| ≤ 1/x, x ≈ 3300


def test_jit_vmap_grad_through_the_spread():
    f = jax.jit(lambda dm2, d: sterile.averaged_sin2(sterile_mixing(dm2, Umu4_sq=0.1, baseline_spread_m=d), E, L))
    dm2 = jnp.array([2.0, 20.0, 80.0])
    values = jax.vmap(f, in_axes=(0, None))(dm2, 0.5)
    np.testing.assert_allclose(values, [float(f(m, 0.5)) for m in dm2], rtol=1e-14)
    for m in (2.0, 20.0, 80.0):
        for d in (0.0, 0.5):
            g_dm2, g_d = jax.grad(f, argnums=(0, 1))(m, d)
            h = 1e-6
            assert float(g_dm2) == pytest.approx((float(f(m + h, d)) - float(f(m - h, d))) / (2 * h), rel=1e-5, abs=1e-8)
            if d > 0:
                assert float(g_d) == pytest.approx((float(f(m, d + h)) - float(f(m, d - h))) / (2 * h), rel=1e-5, abs=1e-8)
            else:  # sinc is even: the spread enters at second order, zero slope at d = 0 (and no NaN)
                assert float(g_d) == pytest.approx(0.0, abs=1e-12)
