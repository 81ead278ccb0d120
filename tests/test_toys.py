"""Toys, test statistics, CLs and Feldman–Cousins (docs/physics.md §5.11), each against an independent source:
closed forms, the asymptotic laws of Cowan, Cranmer, Gross & Vitells (arXiv:1007.1727), exact Poisson sums
(scipy) and the table of Feldman & Cousins (PRD 57, 3873 (1998)). Tiny models (one to three Poisson bins)
and one real experiment through the package's own forecast μ."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq

from cevns_jax.errors import CevnsInputError
from cevns_jax.scan import Axis
from cevns_jax.stats.forecast import ForecastSpec, asimov_reference, reference_signals
from cevns_jax.stats.neyman import (confidence_region, critical_values, interval, observed_statistics,
                                    weighted_critical_values)
from cevns_jax.stats.teststats import (cls_asymptotic, cls_from_toys, expected_cls_from_toys, expected_limit_asymptotic,
                                       limit_from_cls, q0, q_mu)
from cevns_jax.stats.toys import (ToyModel, fit_counts, forecast_toy_model, generate, generating_nuisances, toy_key,
                                  toy_outcome)
from cevns_jax.toyscan import neyman_construction, run_toys, toy_program

KS_LEVEL = 0.01
"""Asymptotic-law tests pass when the KS (or binomial) p-value exceeds this, with fixed seeds."""


def one_bin(args, theta, nu):
    return jnp.atleast_1d(theta["s"] + args["b"])


def three_bins(args, theta, nu):
    return theta["mu"] * args["signal"] + (1.0 + nu["bkg"]) * args["background"]


def two_signals(args, theta, nu):
    return theta["a"] * args["sa"] + theta["b"] * args["sb"] + args["background"]


B_KNOWN = 3.0


def crossing(x, cls, level=0.05):
    """Where CLs on a grid first falls below ``level``: ln CLs interpolated linearly between the two grid
    points around the crossing."""
    i = int(np.argmax(np.asarray(cls) < level))
    assert i > 0 and cls[i - 1] >= level, "no crossing on the grid"
    return float(np.interp(np.log(level), np.log([cls[i], cls[i - 1]]), [x[i], x[i - 1]]))


@pytest.fixture(scope="module")
def small():
    """One Poisson bin, known background b = 3, signal s ≥ 0 (Feldman & Cousins' example)."""
    model = ToyModel({"b": jnp.asarray(B_KNOWN)}, jnp.asarray([3.0]), {}, one_bin, (), (("s", 0.0, None),))
    return model, toy_program(model)


@pytest.fixture(scope="module")
def large():
    """Three bins of 400–1600 background events (5% normalisation prior) and a 120-event signal μ·s,
    μ unbounded (q_μ, t_μ and q₀ as in CCGV without the tilde)."""
    args = {"signal": jnp.asarray([60.0, 40.0, 20.0]), "background": jnp.asarray([400.0, 900.0, 1600.0])}
    model = ToyModel(args, args["background"], {"bkg": jnp.zeros(())}, three_bins, (("bkg", 0.05),),
                     (("mu", None, None),))
    return model, toy_program(model)


@pytest.fixture(scope="module")
def dfit():
    """jit(vmap) of fit_counts for the one-bin model over (s, n) pairs."""
    return jax.jit(jax.vmap(lambda model, s, n: fit_counts(model, jnp.atleast_1d(n), jnp.zeros(0), jnp.atleast_1d(s),
                                                           jnp.zeros(0)), (None, 0, 0)))


def test_fit_statistic_is_the_closed_form_likelihood_ratio(small, dfit):
    model, _ = small
    s, n = np.repeat([0.0, 0.7, 2.0, 6.5], 12), np.tile(np.arange(12.0), 4)
    out = dfit(model, jnp.asarray(s), jnp.asarray(n))
    s_hat = np.maximum(n - B_KNOWN, 0.0)  # FC's best physical fit
    dev = lambda mu: 2 * (mu - n + np.where(n > 0, n * np.log(np.maximum(n, 1) / mu), 0.0))  # noqa: E731
    np.testing.assert_allclose(out["t"], dev(s + B_KNOWN) - dev(s_hat + B_KNOWN), atol=1e-9)
    np.testing.assert_allclose(out["hat:s"], s_hat, atol=1e-7)
    assert np.all(out["converged"] == 1.0)


@pytest.fixture(scope="module")
def large_toys(large, tmp_path_factory):
    model, program = large
    root = tmp_path_factory.mktemp("large")
    at_one = run_toys(model, [Axis("mu", 1.0, 1.0, 1)], 3000, root / "mu1", seed=11, program=program, progress=False)
    at_zero = run_toys(model, [Axis("mu", 0.0, 0.0, 1)], 3000, root / "mu0", seed=12, program=program, progress=False)
    return at_one, at_zero


def test_toy_statistics_follow_their_asymptotic_laws(large_toys):
    """Large counts: t_μ ~ χ²₁; q_μ and q₀ ~ ½δ(0) + ½χ²₁ (Wilks; CCGV eqs. 49, 52–59)."""
    at_one, at_zero = large_toys
    assert at_one.failure_fraction.max() == 0.0 and at_zero.failure_fraction.max() == 0.0
    t = at_one.values["t"][0]
    assert stats.kstest(t, stats.chi2(1).cdf).pvalue > KS_LEVEL
    q = np.asarray(q_mu(t, at_one.values["hat:mu"][0], 1.0))
    for stat in (q, np.asarray(q0(at_zero.values["t"][0], at_zero.values["hat:mu"][0]))):
        zero = stat <= 0.0
        assert stats.binomtest(int(zero.sum()), stat.size, 0.5).pvalue > KS_LEVEL
        assert stats.kstest(stat[~zero], stats.chi2(1).cdf).pvalue > KS_LEVEL


def test_cls_limit_and_bands_from_toys_match_the_asymptotic_formulas(large, tmp_path):
    """Background-only Asimov data (q_obs = q_A): the asymptotic CLs limit equals the median expected
    limit of CCGV eq. 91 (two code paths), and toys give the same median and ±1σ limits within their
    statistical error (4000 toys per point: ~3% on a limit; asserted at 6%)."""
    model, program = large
    data = model.args["background"]  # μ = 0, ν = 0 Asimov

    def q_obs(mu):
        o = observed_statistics(model, np.atleast_1d(mu)[:, None], counts=data)
        return np.asarray(q_mu(o["t"], o["hat:mu"], np.atleast_1d(mu)))

    limit = limit_from_cls(lambda m: cls_asymptotic(q_obs(m)[0], q_obs(m)[0], tilde=False)["cls"], (0.05, 10.0))
    bands = {n: expected_limit_asymptotic(lambda m: q_obs(m)[0], (0.05, 10.0), n_sigma=n) for n in (-1, 0, 1)}
    assert limit == pytest.approx(bands[0], rel=1e-6)
    grid = Axis("mu", 0.6 * limit, 1.5 * limit, 10)
    sb = run_toys(model, [grid], 4000, tmp_path / "sb", seed=21, program=program, progress=False)
    b = run_toys(model, [grid], 4000, tmp_path / "b", seed=22, generate_at={"mu": 0.0}, program=program, progress=False)
    mus = grid.values()
    q_sb = q_mu(sb.values["t"], sb.values["hat:mu"], mus[:, None])
    q_b = q_mu(b.values["t"], b.values["hat:mu"], mus[:, None])
    for n in (-1, 0, 1):
        cls = expected_cls_from_toys(q_sb, q_b, n, sb.values["converged"], b.values["converged"])
        assert crossing(mus, cls) == pytest.approx(bands[n], rel=0.06), n
    observed = cls_from_toys(q_obs(mus), q_sb, q_b, sb.values["converged"], b.values["converged"])
    assert observed["failed_sb"].max() == 0.0 and observed["failed_b"].max() == 0.0


def test_cls_small_count_matches_the_exact_poisson_limit(small, dfit, tmp_path):
    """One bin, b = 3, n_obs = 2: CLs(s) = P(n ≤ 2 | s + b) / P(n ≤ 2 | b) (q̃ decreases with n below s + b),
    solved with scipy. The fits reproduce it exactly when the outcomes are enumerated with their Poisson
    weights; toys (16 000 per point) reproduce CLs(s) within 4 binomial σ (≈ 5% each) and the limit within
    the 4σ that implies."""
    model, program = small
    n_obs = 2.0
    exact = brentq(lambda s: stats.poisson.cdf(n_obs, s + B_KNOWN) / stats.poisson.cdf(n_obs, B_KNOWN) - 0.05, 0.1, 20)
    n = np.arange(40.0)

    def enumerated_cls(s):
        o = dfit(model, jnp.full(n.size + 1, s), jnp.asarray(np.append(n, n_obs)))
        q = np.asarray(q_mu(o["t"], o["hat:s"], s))
        extreme = q[:-1] >= q[-1] - 1e-9
        return np.sum(stats.poisson.pmf(n, s + B_KNOWN) * extreme) / np.sum(stats.poisson.pmf(n, B_KNOWN) * extreme)

    assert limit_from_cls(enumerated_cls, (1.0, 10.0), xtol=1e-10) == pytest.approx(exact, abs=1e-6)
    grid = Axis("s", exact - 0.4, exact + 0.4, 3)
    sb = run_toys(model, [grid], 16000, tmp_path / "sb", seed=31, program=program, progress=False)
    b = run_toys(model, [grid], 16000, tmp_path / "b", seed=32, generate_at={"s": 0.0}, program=program, progress=False)
    s = grid.values()
    q_ob = observed_statistics(model, s[:, None], counts=[n_obs])
    res = cls_from_toys(q_mu(q_ob["t"], q_ob["hat:s"], s), q_mu(sb.values["t"], sb.values["hat:s"], s[:, None]),
                        q_mu(b.values["t"], b.values["hat:s"], s[:, None]))
    rel = np.sqrt((res["clsb_error"] / res["clsb"]) ** 2 + (res["clb_error"] / res["clb"]) ** 2)
    truth = stats.poisson.cdf(n_obs, s + B_KNOWN) / stats.poisson.cdf(n_obs, B_KNOWN)
    assert np.all(np.abs(np.log(res["cls"] / truth)) < 4 * rel)
    on_grid = crossing(s, truth)  # the exact CLs interpolated on the same grid (0.4 apart)
    assert on_grid == pytest.approx(exact, abs=0.02)
    slope = np.gradient(np.log(truth), s)[1]  # d ln CLs / ds at the limit
    assert crossing(s, res["cls"]) == pytest.approx(on_grid, abs=4 * rel[1] / abs(slope))  # 4σ of the toys (≈ 0.35)


# Feldman & Cousins (1998), Table IV, b = 3.0, 90% CL, n₀ = 0…14, as transcribed in the tests of
# github.com/mxmeier/feldman_cousins (feldman_cousins/tests/test_feldman_cousins.py).
FC_LOWER = [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.15, 0.89, 1.51, 1.88, 2.63, 3.04, 4.01, 4.42, 5.50]
FC_UPPER = [1.08, 1.88, 3.04, 4.42, 5.60, 6.99, 8.47, 9.53, 10.99, 12.30, 13.50, 14.81, 16.00, 17.05, 18.50]


def _belt(model, dfit, s, b, n):
    """t(s, n) of every outcome and FC's exact critical values at each s (Poisson weights)."""
    m = ToyModel({"b": jnp.asarray(b)}, model.data, {}, one_bin, (), model.poi)
    ss, nn = np.meshgrid(s, n, indexing="ij")
    t = np.asarray(dfit(m, jnp.asarray(ss.ravel()), jnp.asarray(nn.ravel()))["t"]).reshape(ss.shape)
    return t, weighted_critical_values(t, stats.poisson.pmf(n[None, :], s[:, None] + b), 0.9)


def test_feldman_cousins_exact_belt_reproduces_the_published_table(small, dfit):
    """The construction on a 0.005 grid in s with the outcomes' exact probabilities: every end of Table IV
    within the table's 0.01. The n₀ = 0 upper end: the plain construction gives 0.95 (an independent NumPy
    enumeration agrees); the table's upper limits do not increase with b — the value at b is the largest
    over b′ ≥ b, the treatment of the discreteness pathology in the reference implementation cited above —
    which the same fits reproduce (1.075 on this grid, 1.08 in the table)."""
    model, _ = small
    s, n = np.round(np.arange(0.0, 19.0, 0.005), 6), np.arange(45.0)
    t, crit = _belt(model, dfit, s, B_KNOWN, n)
    for k in range(15):
        lo, hi, contiguous = interval(s, confidence_region(t[:, k], crit))
        assert contiguous and lo == pytest.approx(FC_LOWER[k], abs=0.01), k
        if k > 0:
            assert hi == pytest.approx(FC_UPPER[k], abs=0.01), k
    assert interval(s, confidence_region(t[:, 0], crit))[1] == pytest.approx(0.95, abs=0.005)
    s0, n0 = np.round(np.arange(0.8, 1.2, 0.005), 6), np.arange(20.0)
    uppers = []
    for b in np.arange(B_KNOWN, B_KNOWN + 1.0, 0.01):
        t0, crit0 = _belt(model, dfit, s0, b, n0)
        uppers.append(interval(s0, confidence_region(t0[:, 0], crit0))[1])
    assert max(uppers) == pytest.approx(FC_UPPER[0], abs=0.01)


def test_feldman_cousins_from_toys(small, dfit, tmp_path):
    """The belt with critical values from 2000 toys per point (0.1 grid) against the exact distribution of t:
    t is discrete, so the toys' 90% quantile c is one of its levels, and it must be a 90% quantile of the
    exact distribution up to the toys' binomial error, P(t < c) ≤ 0.9 + 4σ and P(t ≤ c) ≥ 0.9 − 4σ
    (σ = √(0.9·0.1/2000)), at every grid point."""
    model, program = small
    belt = neyman_construction(model, [Axis("s", 0.0, 10.0, 101)], 2000, tmp_path / "fc", seed=41, program=program,
                               progress=False)
    assert belt.failure_fraction.max() == 0.0
    s, n = belt.hypotheses["s"], np.arange(45.0)
    t, exact = _belt(model, dfit, s, B_KNOWN, n)
    w = stats.poisson.pmf(n[None, :], s[:, None] + B_KNOWN)
    c = belt.critical[:, None]
    below, upto = np.sum(w * (t < c - 1e-9), axis=1), np.sum(w * (t <= c + 1e-9), axis=1)
    margin = 4 * np.sqrt(0.9 * 0.1 / 2000)
    assert np.all(below <= 0.9 + margin) and np.all(upto >= 0.9 - margin)
    assert np.mean(np.isclose(belt.critical, exact, atol=1e-9)) > 0.5  # and most are the exact value itself
    t_obs = observed_statistics(model, s[:, None], counts=[3.0])["t"]  # n₀ = 3: [0, 4.42] in the table
    lo, hi, _ = interval(s, confidence_region(t_obs, belt.critical))
    assert lo == 0.0 and hi == pytest.approx(FC_UPPER[3], abs=0.2)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_two_dimensional_construction_matches_chi2_two_dof(tmp_path):
    """Two unbounded signal strengths, 200 background events per bin: t ~ χ²₂, so the 90% critical values
    approach 4.605; the mean over a 3 × 3 grid of 1000-toy quantiles has a standard error ≈ 0.07."""
    args = {"sa": jnp.asarray([50.0, 30.0, 10.0]), "sb": jnp.asarray([10.0, 30.0, 50.0]),
            "background": jnp.full(3, 200.0)}
    data = args["sa"] + args["sb"] + args["background"]  # Asimov at a = b = 1
    model = ToyModel(args, data, {}, two_signals, (), (("a", None, None), ("b", None, None)))
    belt = neyman_construction(model, [Axis("a", 0.5, 1.5, 3), Axis("b", 0.5, 1.5, 3)], 1000, tmp_path / "2d", seed=5,
                               progress=False)
    assert belt.critical.shape == (3, 3) and belt.failure_fraction.max() == 0.0
    assert np.mean(belt.critical) == pytest.approx(stats.chi2(2).ppf(0.9), abs=0.25)
    assert belt.accepted[1, 1] and belt.t_obs[1, 1] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(belt.accepted, belt.t_obs <= belt.critical + 1e-9)


def test_critical_values_count_failed_toys_as_extreme():
    t = np.arange(10.0)
    assert critical_values(t, 0.9) == 8.0
    assert critical_values(t, 0.9, converged=np.r_[np.ones(8), 0, 0]) == np.inf
    with pytest.raises(CevnsInputError, match="confidence level"):
        critical_values(t, 1.5)


@pytest.fixture(scope="module")
def argon(presets):
    reference = asimov_reference((presets["COH-Ar-750"],), ForecastSpec())
    return forecast_toy_model(reference, reference_signals(reference, None))


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_real_experiment_toys_resume_bit_identical(argon, tmp_path):
    """COH-Ar-750 (63 energy × time bins, 7 nuisances profiled, the forecast's μ with a CEvNS strength):
    toys converge (failure fraction reported: 0), an interrupted run resumes to the same bits, and the
    statistic at the true strength follows χ²₁ (65 000 events: the asymptotic regime)."""
    model, program = argon, toy_program(argon)
    axes = [Axis("mu", 1.0, 1.0, 1)]

    def stop(c):
        if c == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_toys(model, axes, 200, tmp_path / "cut", seed=7, chunk_size=50, program=program, progress=False,
                 on_chunk=stop)
    resumed = run_toys(model, axes, 200, tmp_path / "cut", seed=7, chunk_size=50, program=program, progress=False)
    assert resumed.scan.computed_chunks == [2, 3]
    fresh = run_toys(model, axes, 200, tmp_path / "fresh", seed=7, chunk_size=50, program=program, progress=False)
    for k in fresh.values:
        np.testing.assert_array_equal(resumed.values[k], fresh.values[k])
    assert fresh.failure_fraction.tolist() == [0.0]
    assert stats.kstest(fresh.values["t"][0], stats.chi2(1).cdf).pvalue > KS_LEVEL


def test_any_toy_is_reproduced_from_its_index(large, large_toys):
    """Toy i of hypothesis h is a function of (seed, h, i) alone: regenerated outside the scan, its counts
    are the same bits and its fit gives the scan's statistic (to rounding: another compiled program)."""
    model, _ = large
    at_one, _ = large_toys
    i, mu = 1234, jnp.asarray([1.0])
    nu_gen = generating_nuisances(model, mu)
    counts, centre = generate(model, mu, nu_gen, toy_key(11, 0, i))
    again, centre_again = generate(model, mu, nu_gen, toy_key(11, 0, i))
    np.testing.assert_array_equal(counts, again)
    np.testing.assert_array_equal(centre, centre_again)
    assert not np.array_equal(counts, generate(model, mu, nu_gen, toy_key(11, 0, i + 1))[0])
    one = toy_outcome(model, mu, mu, nu_gen, toy_key(11, 0, i))
    assert float(one["t"]) == pytest.approx(float(at_one.values["t"][0, i]), abs=1e-8)
    assert float(one["hat:mu"]) == pytest.approx(float(at_one.values["hat:mu"][0, i]), abs=1e-5)


def test_bad_toy_inputs_are_named(small, tmp_path):
    model, _ = small
    with pytest.raises(CevnsInputError, match="parameters of interest"):
        run_toys(model, [Axis("x", 0.0, 1.0, 2)], 10, tmp_path / "a", seed=1)
    with pytest.raises(CevnsInputError, match="n_toys"):
        run_toys(model, [Axis("s", 0.0, 1.0, 2)], 0, tmp_path / "b", seed=1)
    with pytest.raises(CevnsInputError, match="seed"):
        run_toys(model, [Axis("s", 0.0, 1.0, 2)], 10, tmp_path / "c", seed=-1)
    bad = ToyModel({}, jnp.zeros(1), {"x": jnp.zeros(())}, one_bin, (("y", 0.1),), (("s", 0.0, None),))
    with pytest.raises(CevnsInputError, match="'y'"):
        run_toys(bad, [Axis("s", 0.0, 1.0, 2)], 10, tmp_path / "d", seed=1)


def test_spd_solve_equals_a_general_solver_and_refuses_indefinite_matrices():
    """The unrolled Cholesky step of the toy fits (stats.minimise.spd_solve) against LAPACK's general solve
    on random symmetric positive-definite matrices (also under vmap), and NaN for an indefinite one."""
    from cevns_jax.stats.minimise import spd_solve

    rng = np.random.default_rng(7)
    A = rng.standard_normal((5, 8, 8))
    H = np.einsum("bij,bkj->bik", A, A) + 1e-3 * np.eye(8)
    g = rng.standard_normal((5, 8))
    got = np.asarray(jax.jit(jax.vmap(spd_solve))(H, g))
    np.testing.assert_allclose(got, np.linalg.solve(H, g[..., None])[..., 0], rtol=1e-9, atol=1e-12)
    assert np.all(np.isnan(np.asarray(spd_solve(jnp.diag(jnp.array([1.0, -1.0, 2.0])), jnp.ones(3)))[1:]))


def test_fit_box_refuses_overshooting_steps_and_reaches_the_scipy_minimum():
    """stats.minimise.fit_box on a strongly non-linear one-parameter model, μ_b = 10·e^{k_b x} + 2: from
    x₀ = −3 the full Fisher-scoring step overshoots and is refused (the fit stays and shortens its step),
    from x₀ = +3 it crawls; χ² never increases along the steps, and both reach scipy's minimum (Brent,
    independent), flagged converged — and a fit cut after 3 steps is flagged not converged."""
    from scipy.optimize import minimize_scalar
    from scipy.special import xlogy

    from cevns_jax.stats.minimise import fit_box

    k, n = jnp.array([1.0, 2.0, 3.0]), jnp.array([12.0, 30.0, 5.0])
    mu = lambda x: 10.0 * jnp.exp(x[0] * k) + 2.0  # noqa: E731
    zero, inf = jnp.zeros(1), jnp.full(1, jnp.inf)
    fit = jax.jit(fit_box, static_argnums=0)  # n_steps traced: one program for every step count

    def chi2(x):  # NumPy only (a JAX array here would make scipy's minimum a JAX array)
        m, n_np = 10.0 * np.exp(x * np.asarray(k)) + 2.0, np.asarray(n)
        return float(2.0 * np.sum(m - n_np + xlogy(n_np, n_np) - xlogy(n_np, m)))

    best = minimize_scalar(chi2, bracket=(-1.0, 0.0, 1.0), tol=1e-12)
    for x0 in (-3.0, 3.0):
        path = [fit(mu, n, jnp.array([x0]), zero, zero, -inf, inf, s) for s in (1, 2, 3, 25)]
        values = [float(p[1]) for p in path]
        assert all(b <= a for a, b in zip(values, values[1:])), values
        x, value, ok, _ = path[-1]
        assert bool(ok) and float(x[0]) == pytest.approx(float(best.x), abs=1e-6)
        assert float(value) == pytest.approx(float(best.fun), abs=1e-9)
        assert not bool(path[2][2])  # 3 steps: not converged, and flagged so
    refused = fit(mu, n, jnp.array([-3.0]), zero, zero, -inf, inf, 1)
    assert float(refused[0][0]) == -3.0  # the first (full) step from −3 raised χ²: not taken
