"""Poisson likelihood, profiling and Fisher matrices: exactness, consistency and transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from cevns_jax import rates
from cevns_jax import replace
from cevns_jax.stats.fisher import Fisher, fisher_matrix
from cevns_jax.stats.likelihood import chi2, poisson_deviance, profile_nuisances, profiled_chi2

# A toy binned model: signal strength θ on a fixed signal, two background normalisations (priors 10%, 30%)
SIG = jnp.array([5.0, 20.0, 40.0, 20.0, 5.0, 1.0])
B1 = jnp.array([30.0, 25.0, 20.0, 15.0, 10.0, 5.0])
B2 = jnp.array([1.0, 2.0, 5.0, 10.0, 20.0, 30.0])
PRIORS = {"b1": 0.10, "b2": 0.30}


def toy_mu(theta, nu):
    # b2 enters non-linearly (exponential), to exercise the damped steps
    return theta["s"] * SIG + (1 + nu["b1"]) * B1 + jnp.exp(nu["b2"]) * B2


ZERO = {"b1": jnp.asarray(0.0), "b2": jnp.asarray(0.0)}
DATA = jnp.array([40.0, 41.0, 70.0, 52.0, 30.0, 40.0])


def test_deviance_matches_poisson_log_likelihood_and_is_safe_at_zero():
    mu = np.array([0.5, 3.0, 10.0, 1e-9])
    n = np.array([0.0, 4.0, 7.0, 0.0])
    saturated = stats.poisson.logpmf(n, np.maximum(n, 1e-300)).sum()
    expected = -2 * (stats.poisson.logpmf(n, mu).sum() - saturated)
    assert float(poisson_deviance(jnp.asarray(mu), jnp.asarray(n))) == pytest.approx(expected, rel=1e-10)
    assert float(poisson_deviance(jnp.asarray(n + 1.0), jnp.asarray(n + 1.0))) == 0.0
    g = jax.grad(lambda m: poisson_deviance(m, jnp.asarray(n)))(jnp.asarray(mu))
    assert np.all(np.isfinite(g))


def test_profiling_agrees_with_scipy():
    theta = {"s": jnp.asarray(1.3)}
    nu = profile_nuisances(toy_mu, DATA, theta, ZERO, PRIORS, n_steps=20)
    f = lambda x: float(chi2(toy_mu, DATA, theta, {"b1": x[0], "b2": x[1]}, PRIORS))  # noqa: E731
    ref = optimize.minimize(f, [0.0, 0.0], method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-12))
    assert float(nu["b1"]) == pytest.approx(ref.x[0], abs=1e-5)
    assert float(nu["b2"]) == pytest.approx(ref.x[1], abs=1e-5)
    assert float(profiled_chi2(toy_mu, DATA, theta, ZERO, PRIORS, 20)) == pytest.approx(ref.fun, abs=1e-8)


def test_profiled_chi2_jit_vmap_and_gradient():
    f = lambda s: profiled_chi2(toy_mu, DATA, {"s": s}, ZERO, PRIORS, 20)  # noqa: E731
    s = jnp.array([0.5, 1.0, 1.7])
    eager = np.array([float(f(x)) for x in s])
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(s), eager, rtol=1e-12)
    np.testing.assert_allclose([float(jax.jit(f)(x)) for x in s], eager, rtol=1e-12)
    h = 1e-5
    for x in (0.5, 1.7):
        fd = (float(f(x + h)) - float(f(x - h))) / (2 * h)
        assert float(jax.grad(f)(jnp.asarray(x))) == pytest.approx(fd, rel=1e-6)


@pytest.fixture(scope="module")
def ge():
    """COH-Ge-mini on 3 energy × 2 time bins (the statements below hold for any binning; few bins keep
    the Hessian and Jacobians of the full model cheap)."""
    from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml

    data = read_toml(PRESET_DIR / "COH-Ge-mini.toml", "experiment")
    data["bins"] = {"energy_edges": [1.0, 2.0, 4.0, 15.0], "time_edges_us": [0.0, 1.0, 6.0], "energy_subdivisions": 2}
    return experiment_from_dict(data, label="COH-Ge-mini", base=PRESET_DIR)


def counts_of(exp, flux_scale, s2):
    from cevns_jax.xsec import StandardModel

    exp = replace(exp, source=replace(exp.source, nu_per_proton=exp.source.nu_per_proton * flux_scale))
    out = rates.expected_counts(exp, sm=StandardModel(sin2_theta_w=s2, couplings="rc"))
    return jnp.ravel(sum(out.values()))


@pytest.mark.parametrize("name", [pytest.param("flux", marks=pytest.mark.slow), "s2"])
def test_fisher_sigma_equals_asimov_scan_half_width(ge, name):
    p0 = {"flux": jnp.asarray(1.0), "s2": jnp.asarray(0.23857)}
    mu = lambda p: counts_of(ge, p["flux"], p["s2"])  # noqa: E731
    F = fisher_matrix(lambda p: mu({**p0, **p}), {name: p0[name]}).matrix[0, 0]
    sigma = 1 / np.sqrt(F)
    asimov = jax.jit(lambda p: mu(p))(p0)
    dchi2 = jax.jit(lambda x: poisson_deviance(mu({**p0, name: x}), asimov))
    # Δχ² = 1 crossings by bisection on each side
    half = []
    for sign in (+1, -1):
        lo, hi = 0.0, 3 * sigma
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if float(dchi2(p0[name] + sign * mid)) < 1 else (lo, mid)
        half.append(0.5 * (lo + hi))
    assert np.mean(half) == pytest.approx(sigma, rel=0.02)


@pytest.mark.slow  # a heavy cross-check (tens of seconds of compilation); a lighter one stays in the default tier
def test_fisher_equals_hessian_of_asimov_chi2(ge):
    p0 = {"flux": jnp.asarray(1.0), "s2": jnp.asarray(0.23857)}
    mu = lambda p: counts_of(ge, p["flux"], p["s2"])  # noqa: E731
    asimov = mu(p0)
    F = fisher_matrix(mu, p0, {"flux": 0.1})
    hess = jax.hessian(lambda x: 0.5 * poisson_deviance(mu({"flux": x[0], "s2": x[1]}), asimov) + 0.5 * ((x[0] - 1) / 0.1) ** 2)
    H = np.asarray(hess(jnp.array([1.0, 0.23857])))
    assert F.labels == ("flux", "s2")
    np.testing.assert_allclose(F.matrix, H, rtol=1e-6)


def test_schur_complement_equals_inverse_block():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    F = Fisher(tuple("abcde"), A @ A.T + 5 * np.eye(5))
    prof = F.profile(["b", "d"])
    cov = np.linalg.inv(F.matrix)[np.ix_([1, 3], [1, 3])]
    np.testing.assert_allclose(np.linalg.inv(prof.matrix), cov, rtol=1e-10)
    assert F.marginalised_errors()["b"] == pytest.approx(np.sqrt(cov[0, 0]))
    assert F.fixed_errors()["b"] == pytest.approx(1 / np.sqrt(F.matrix[1, 1]))
    # the 1σ ellipse of (b, d) touches ±σ_b
    pts = F.ellipse("b", "d", delta_chi2=1.0, n_points=4001)
    assert np.max(pts[0]) == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-5)
    both = F + Fisher(("b", "z"), np.eye(2))
    assert both.labels == tuple("abcdez") and both.matrix[1, 1] == F.matrix[1, 1] + 1


def test_nuisances_at_zero_reproduce_the_nominal_prediction_and_forecast(ge):
    from cevns_jax.nuisances import nuisance_priors, predicted_counts, zero_nuisances

    priors = nuisance_priors(ge)
    assert {"flux", "form_factor_radius", "quenching_k", "background:brn"} <= set(priors)
    nominal = jax.jit(rates.expected_counts)(ge)  # compiled programs: eager would compile every op
    at_zero = jax.jit(predicted_counts)(ge, zero_nuisances(priors))
    for key in nominal:
        np.testing.assert_allclose(at_zero[key], nominal[key], rtol=1e-14)
    F = fisher_matrix(lambda p: jnp.ravel(sum(predicted_counts(ge, p).values())), zero_nuisances(priors), priors)
    assert set(F.labels) == set(priors)
    assert np.all(np.linalg.eigvalsh(F.matrix) > 0)
    errors = F.marginalised_errors()
    # data can only tighten a prior: every marginalised error is at most its prior width
    for name, sigma in priors.items():
        assert errors[name] <= sigma * (1 + 1e-9)


def test_block_profiling_equals_the_dense_fisher_matrix():
    """Counts in blocks (each on its own nuisances, one shared) profile to the same ν̂ and χ² block by block as
    through the dense Jacobian of the concatenated counts (a second construction of the same Fisher matrix)."""
    from cevns_jax.stats.likelihood import BlockCounts

    priors = {"b1": 0.10, "b2": 0.30, "shared": 0.05, "b3": 0.2}
    zero = {k: jnp.asarray(0.0) for k in priors}
    blocks = BlockCounts([lambda th, nu: toy_mu(th, nu) * (1 + nu["shared"]),
                          lambda th, nu: (1 + nu["shared"]) * th["s"] * B1 + jnp.exp(nu["b3"]) * B2,
                          lambda th, nu: th["s"] * SIG],  # a block without nuisances
                         [("b1", "b2", "shared"), ("shared", "b3"), ()])
    data = jnp.concatenate([DATA, 1.1 * B1 + B2, 1.2 * SIG])
    theta = {"s": jnp.asarray(1.3)}
    dense = lambda th, nu: blocks(th, nu)  # noqa: E731  (a plain function: the dense path)
    by_blocks = profile_nuisances(blocks, data, theta, zero, priors, n_steps=12)
    by_dense = profile_nuisances(dense, data, theta, zero, priors, n_steps=12)
    for k in priors:
        assert float(by_blocks[k]) == pytest.approx(float(by_dense[k]), rel=1e-10, abs=1e-13)
    assert float(profiled_chi2(blocks, data, theta, zero, priors, 12)) == pytest.approx(
        float(profiled_chi2(dense, data, theta, zero, priors, 12)), rel=1e-12)


def test_forecast_takes_a_precomputed_reference_only_for_its_own_experiments(ge):
    from cevns_jax.models import NewPhysics, nsi_couplings
    from cevns_jax.stats.forecast import AsimovForecast

    model_of = lambda th: NewPhysics(nsi=nsi_couplings(ee_u=th["u"]))  # noqa: E731
    first = AsimovForecast([ge], model_of)
    assert AsimovForecast([ge], model_of, reference=first.reference).reference is first.reference
    with pytest.raises(ValueError, match="other experiments"):
        AsimovForecast([replace(ge, source=replace(ge.source, protons_on_target=2 * ge.source.protons_on_target))], model_of,
                       reference=first.reference)
    with pytest.raises(ValueError, match="other experiments"):
        AsimovForecast([ge], model_of, reference=first.reference, n_steps=3)
