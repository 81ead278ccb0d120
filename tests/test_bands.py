"""Expected-limit bands from the Asimov Δχ² (docs/physics.md §5.11): the levels of
:func:`cevns_jax.stats.teststats.asimov_band_levels` against an exact Gaussian CLs calculation (closed
form for the CLs of a Gaussian measurement, solved numerically) and against exact Poisson sums for one
bin with known background (scipy), with no JAX program (fast)."""

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq

from cevns_jax.errors import CevnsInputError
from cevns_jax.stats.teststats import BAND_SIGMAS, asimov_band_levels, expected_limit_asymptotic

ALPHA = 0.1  # 90% CL, the main job's
BANDS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def gaussian_cls_limit(x_over_sigma: float, alpha: float) -> float:
    """Exact CLs upper limit (in units of σ) of a Gaussian measurement x ~ N(μ, σ), μ ≥ 0, with q̃_μ:
    CLs+b = Φ(x − μ), CLb = Φ(x) (both in units of σ), solved for CLs = α."""
    return brentq(lambda m: stats.norm.cdf(x_over_sigma - m) / stats.norm.cdf(x_over_sigma) - alpha, 0.0, 20.0,
                  xtol=1e-12)


def test_levels_are_the_exact_gaussian_cls_limits():
    """For a Gaussian measurement q_A(μ) = (μ/σ)², so the band-N limit is σ·√level_N; the band-N data are
    x = Nσ (the Φ(N) quantile under μ = 0). The exact CLs limit of those data, solved numerically, agrees."""
    levels = asimov_band_levels(ALPHA, BANDS)
    for n, level in zip(BANDS, levels):
        assert np.sqrt(level) == pytest.approx(gaussian_cls_limit(n, ALPHA), rel=1e-9)
    assert levels[2] == pytest.approx(stats.chi2(1).ppf(0.9), rel=1e-12)  # median CLs at 90% = Wilks' 2.7055
    assert np.all(np.diff(levels) > 0)  # a larger N is a weaker limit


def test_levels_match_the_root_of_expected_limit_asymptotic():
    """The same limits by the existing root-finding path on an analytic q_A(μ) = μ²/σ², σ = 0.37."""
    sigma = 0.37
    levels = asimov_band_levels(ALPHA, BAND_SIGMAS)
    for n, level in zip(BAND_SIGMAS, levels):
        mu = expected_limit_asymptotic(lambda m: (m / sigma) ** 2, (1e-6, 10.0), alpha=ALPHA, n_sigma=n)
        assert mu == pytest.approx(sigma * np.sqrt(level), rel=1e-7)
    clsb = asimov_band_levels(0.05, (0.0, 1.0), cls=False)
    np.testing.assert_allclose(np.sqrt(clsb), stats.norm.isf(0.05) + np.array([0.0, 1.0]), rtol=1e-12)


def poisson_bands(b: float) -> tuple[np.ndarray, np.ndarray]:
    """(exact, asymptotic) expected CLs limits on the signal s of one Poisson bin with known background b.
    Exact: the band-N data are the Φ(N) quantile n_N of Poisson(b), and CLs(s) = P(n ≤ n_N | s + b) /
    P(n ≤ n_N | b) = α is solved for s. Asymptotic: the crossing of q_A(s) = 2[s − b ln(1 + s/b)] (the
    Poisson deviance of s + b on the Asimov data n = b) with each level."""
    exact, asym = [], []
    for n_sigma, level in zip(BANDS, asimov_band_levels(ALPHA, BANDS)):
        n_n = stats.poisson(b).ppf(stats.norm.cdf(n_sigma))
        cls = lambda s: stats.poisson(s + b).cdf(n_n) / stats.poisson(b).cdf(n_n) - ALPHA  # noqa: E731
        exact.append(brentq(cls, 1e-9, 20 * np.sqrt(b) + 20, xtol=1e-10))
        asym.append(brentq(lambda s: 2 * (s - b * np.log1p(s / b)) - level, 1e-9, 20 * np.sqrt(b) + 20, xtol=1e-10))
    return np.array(exact), np.array(asym)


def test_levels_against_exact_poisson_bands():
    """One bin, known background: the asymptotic bands approach the exact Poisson ones as b grows (the
    corrections, skewness and the integer quantile, fall like 1/√b): within 2% at b = 2000 and 0.5% at
    b = 50 000 (measured 1.0% and 0.18%), and the worst error shrinks by at least 3× between them."""
    err = {}
    for b in (2000.0, 50000.0):
        exact, asym = poisson_bands(b)
        assert np.all(np.diff(exact) > 0)
        err[b] = np.max(np.abs(asym / exact - 1))
    assert err[2000.0] < 0.02 and err[50000.0] < 0.005
    assert err[50000.0] < err[2000.0] / 3


def test_bad_band_requests_are_refused():
    with pytest.raises(CevnsInputError, match="alpha"):
        asimov_band_levels(1.5)
    with pytest.raises(CevnsInputError, match="no positive limit"):
        asimov_band_levels(0.05, (-2.0,), cls=False)  # 1.645 − 2 < 0
