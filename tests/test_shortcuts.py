"""The forward model's shortcuts equal the computations they replace (docs/physics.md §3.4.1).

* normal CDF by one erfc against scipy's ndtr;
* closed-form JVPs (Gaussian antiderivatives, the sub-bin rule) against automatic differentiation of the
  same formulas (a plain callable efficiency takes the un-shortcut path);
* Poisson photoelectrons integrated per component against the rule on the summed mixture;
* one recoil grid shared by isotopes that quench alike against a grid per isotope;
* the response floor against the full recoil range.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from cevns_jax import rates, replace
from cevns_jax import response as R
from cevns_jax.binning import (Binning, assign_points, binned_with_efficiency, conditional_mean_rule,
                               gaussian_antiderivatives, normal_cdf)
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml
from cevns_jax.kinematics import max_recoil_energy
from cevns_jax import constants as C


def test_normal_cdf_equals_scipy_ndtr():
    z = np.concatenate([np.linspace(-38.0, 38.0, 20001), np.linspace(-1.0, 1.0, 2001)])
    got, want = np.asarray(jax.jit(normal_cdf)(jnp.asarray(z))), special.ndtr(z)
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-16)
    lower = (z < -1.0) & (z > -30.0)
    np.testing.assert_allclose(got[lower], want[lower], rtol=1e-12)  # relative accuracy of the lower tail


def _plain_gaussian(d, sigma):
    z = d / sigma
    Phi = special_ndtr(z)
    phi = jnp.exp(-0.5 * z**2) / jnp.sqrt(2.0 * jnp.pi)
    return Phi, d * Phi + sigma * phi, 0.5 * ((d**2 + sigma**2) * Phi + d * sigma * phi)


def special_ndtr(z):
    return jax.scipy.special.ndtr(z)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_gaussian_antiderivative_derivatives_equal_autodiff_of_the_formulas():
    d = jnp.linspace(-7.0, 7.0, 57)
    sigma = jnp.full_like(d, 0.7)
    for k in range(3):
        for argnum in (0, 1):
            mine = jax.vmap(jax.grad(lambda a, b: gaussian_antiderivatives(a, b)[k], argnum))(d, sigma)
            plain = jax.vmap(jax.grad(lambda a, b: _plain_gaussian(a, b)[k], argnum))(d, sigma)
            np.testing.assert_allclose(mine, plain, rtol=1e-12, atol=1e-15)
    # second order (the custom rule is itself differentiable)
    h1 = jax.vmap(jax.hessian(lambda a, b: gaussian_antiderivatives(a, b)[2], (0, 1)))(d, sigma)
    h2 = jax.vmap(jax.hessian(lambda a, b: _plain_gaussian(a, b)[2], (0, 1)))(d, sigma)
    for a, b in zip(jax.tree_util.tree_leaves(h1), jax.tree_util.tree_leaves(h2)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


class _Plain:
    """A logistic efficiency that is not a pytree: the rule differentiates its formula directly."""

    def __init__(self, eff):
        self.eff = eff

    def __call__(self, x):
        return self.eff(x)


@pytest.mark.slow  # a heavy cross-check (tens of seconds of compilation); a lighter one stays in the default tier
def test_sub_bin_rule_jvp_equals_autodiff_of_the_rule():
    """Gradient of a weighted response w.r.t. bin edges, resolution, E and every efficiency parameter:
    closed-form JVP (pytree efficiency) against autodiff through the rule (plain callable)."""
    edges = jnp.array([0.5, 1.0, 1.5, 2.5, 4.0, 8.0])
    E = jnp.linspace(0.2, 9.0, 23)
    weights = jnp.sin(jnp.arange(5.0 * 23).reshape(5, 23)) + 1.5
    point_bins = assign_points(R.LogisticEfficiency(0.9, 1.4, 0.12).points(), edges)

    def total(params, wrap):
        thr, width, top, a, edges, E = params
        eff = R.LogisticEfficiency(top, thr, width)
        smear = R.GaussianSmearing(jnp.asarray(0.05), a, jnp.asarray(0.0))
        eff_used = _Plain(eff) if wrap else eff
        resp = binned_with_efficiency(lambda x: smear.antiderivatives(x[:, None], E[None, :]), eff_used, edges, 2,
                                      points=eff.points(), point_bins=point_bins)
        return jnp.sum(weights * resp)

    params = (jnp.asarray(1.4), jnp.asarray(0.12), jnp.asarray(0.9), jnp.asarray(0.3), edges, E)
    fast = jax.jit(jax.grad(lambda p: total(p, False)))(params)
    slow = jax.jit(jax.grad(lambda p: total(p, True)))(params)
    assert float(total(params, False)) == pytest.approx(float(total(params, True)), rel=1e-14)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * float(jnp.max(jnp.abs(b))))


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_sub_bin_rule_clips_like_the_formula():
    """Sub-bins with negligible probability (centre and w²/12) and clipped moments take the same branch
    in value and derivative as the formula."""
    eff = R.LogisticEfficiency(jnp.asarray(0.9), jnp.asarray(1.0), jnp.asarray(0.2))
    prob = jnp.array([0.0, 1e-13, 0.3, 0.3, 0.3])
    m1 = jnp.array([0.0, 0.0, -1e-3, 0.2, 0.9])  # offsets below 0, inside, beyond w = 0.5
    m2 = jnp.array([0.0, 0.0, -1e-4, 0.2, 0.5])  # variance below 0 (clipped), inside, beyond w²/4
    lo, w = jnp.full(5, 0.8), jnp.full(5, 0.5)
    args = (prob, m1, m2, lo, w)
    fast = jax.jacfwd(lambda a: conditional_mean_rule(eff, *a))(args)
    slow = jax.jacfwd(lambda a: conditional_mean_rule(_Plain(eff), *a))(args)
    np.testing.assert_allclose(conditional_mean_rule(eff, *args), conditional_mean_rule(_Plain(eff), *args), rtol=1e-15)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_poisson_pe_per_component_equals_the_mixture_rule():
    """Σ_n r[i, n] P(n; λ) against the rule applied to the summed (F, G, H) of the mixture: equal within
    the rule's own error (both exact for a quadratic efficiency; tested with one)."""
    s = R.PoissonPESmearing(jnp.asarray(40.0), jnp.asarray(0.4), n_max=R.poisson_pe_terms(300.0, 0.4))
    E = jnp.geomspace(0.01, 7.0, 30)
    binning = Binning(jnp.array([4.0, 8.0, 12.0, 20.0, 60.0, 300.0]), jnp.array([0.0, 1.0]), n_sub_energy=3)

    class Quadratic:  # ε(x) = 0.5 + 1e-3 x − 1e-6 x²: the rule is exact for it, per component or not
        def __call__(self, x):
            return 0.5 + 1e-3 * x - 1e-6 * x**2

        def points(self, step=None):
            return jnp.zeros((0,))

    per_component = R.energy_response(s, Quadratic(), binning, E)
    mixture = binned_with_efficiency(lambda x: s.antiderivatives(x[:, None], E[None, :]), Quadratic(),
                                     binning.energy_edges, binning.n_sub_energy)
    np.testing.assert_allclose(per_component, mixture, rtol=1e-10, atol=1e-14)


@pytest.fixture(scope="module")
def ge():
    data = read_toml(PRESET_DIR / "COH-Ge-mini.toml", "experiment")
    data["bins"] = {"energy_edges": [1.0, 2.0, 4.0, 15.0], "time_edges_us": [0.0, 1.0, 6.0]}
    data["backgrounds"] = []
    return experiment_from_dict(data, label="COH-Ge-mini", base=PRESET_DIR)


def _counts_on(exp, shared: bool, floor: bool = True):
    M = exp.target.mass_MeV
    T_break, T_end = max_recoil_energy(C.E_NU_MU_PROMPT, M), max_recoil_energy(C.E_NU_MAX_MICHEL, M)
    det = exp.detector
    if not floor:  # the response floor can only rise above the lowest bin edge's tail: put x₀ at 0
        det = replace(det, binning=replace(det.binning, energy_edges=det.binning.energy_edges.at[0].set(0.0)))
    e = replace(exp, detector=det)
    T, w = rates.experiment_panels(e, T_break, T_end, shared=shared)
    from cevns_jax.xsec import component_rates, resolve_standard_model
    from cevns_jax.source import fluence_per_flavour
    from cevns_jax.nuclei import units_per_kg

    dRdT = component_rates(resolve_standard_model(e, None), None, e.target, T, det.baseline_m)
    scale = fluence_per_flavour(e.source, det.baseline_m) * units_per_kg(e.target) * det.mass_kg
    events = scale * e.target.atoms_per_unit[:, None] * w * dRdT
    Rm = rates.recoil_response(e, T, shared=shared)
    return jnp.einsum("cik,eik->ce", events, Rm)


def test_shared_recoil_grid_equals_a_grid_per_isotope(ge):
    assert rates.shares_response(ge) and ge.target.Z.shape[0] == 5
    shared = jax.jit(lambda e: _counts_on(e, True))(ge)
    per_isotope = jax.jit(lambda e: _counts_on(e, False))(ge)
    np.testing.assert_allclose(shared, per_isotope, rtol=1e-8)


def test_response_floor_drops_nothing(ge):
    """Counts of bins above 1 keVee with the floor under the 1 keVee edge, against the same bins with the
    lowest edge at 0 (the floor then at 10⁻⁵ T_break, the full range)."""
    with_floor = jax.jit(lambda e: _counts_on(e, True))(ge)
    full = jax.jit(lambda e: _counts_on(e, True, floor=False))(ge)
    np.testing.assert_allclose(with_floor[:, 1:], full[:, 1:], rtol=1e-8)
    T, _ = jax.jit(rates.neutrino_recoil_grid)(ge)
    assert float(T.min()) > 1e-3 * float(max_recoil_energy(C.E_NU_MU_PROMPT, ge.target.mass_MeV).min())
