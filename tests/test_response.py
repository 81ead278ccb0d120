"""Detector response: quenching, smearing, efficiency and the binned response (PHYSICS.md §3, §6)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from cevns_jax import response as R
from cevns_jax.releases import data_path, read_table


def csi2021_quenching():
    rows = read_table(data_path("csi2021/scintRespCoefficients.txt"), 4)
    shifts = jnp.asarray(np.stack([rows[1] - rows[0], rows[3] - rows[0]]))
    return R.PolynomialQuenching(jnp.asarray(rows[0]), shifts, jnp.zeros(2))


def test_csi2021_quenching_polynomial():
    q = csi2021_quenching()
    got = q.electron_equivalent_keV(jnp.array([5.0, 10.0, 20.0, 30.0]), 55.0, 133.0)
    np.testing.assert_allclose(got, [0.3715, 0.8820, 2.0728, 3.2046], atol=1e-4)
    # the PCA directions reproduce the release's ±1σ models at z = ±1 (model 0: rows 1 and 2)
    rows = read_table(data_path("csi2021/scintRespCoefficients.txt"), 4)
    np.testing.assert_allclose(q.shifts[0], [0.0059004, -0.79134, 26.1515, -244.819], rtol=1e-4)
    plus = R.PolynomialQuenching(q.coefficients, q.shifts, jnp.array([1.0, 0.0]))
    T = 20.0
    ref = sum(rows[1][n] * (T * 1e-3) ** (n + 1) for n in range(4)) * 1e3
    assert float(plus.electron_equivalent_keV(T, 55.0, 133.0)) == pytest.approx(ref, rel=1e-12)
    # monotonic over 0–100 keVnr
    E = np.asarray(q.electron_equivalent_keV(jnp.linspace(0.0, 100.0, 1001), 55.0, 133.0))
    assert np.all(np.diff(E) > 0)


def test_lindhard_values():
    Z, A = 32.0, 74.0
    k = R.lindhard_k(Z, A)
    assert float(k) == pytest.approx(0.156, abs=1e-3)
    q = R.LindhardQuenching(k=jnp.asarray(k))
    assert float(q.electron_equivalent_keV(10.0, Z, A)) / 10.0 == pytest.approx(0.2328, rel=1e-3)
    T = jnp.array([1.0, 5.0, 10.0, 20.0, 50.0])
    for (Z, A), values in {
        (32.0, 74.0): (0.170, 0.211, 0.233, 0.258, 0.299),
        (18.0, 40.0): (0.192, 0.242, 0.271, 0.306, 0.370),
        (11.0, 23.0): (0.217, 0.283, 0.324, 0.378, 0.475),
    }.items():
        q = R.LindhardQuenching(k=jnp.asarray(R.lindhard_k(Z, A)))
        np.testing.assert_allclose(q.electron_equivalent_keV(T, Z, A) / T, values, atol=1.5e-3)


def test_csi2021_efficiency_values():
    rows = read_table(data_path("csi2021/effCoefficients.txt"), 4)
    eff = R.Coherent2021Efficiency(jnp.asarray(rows[0]), jnp.asarray(rows[1] - rows[0]), jnp.asarray(0.0))
    np.testing.assert_allclose(eff(jnp.array([11.77, 19.6, 27.7])), [0.412, 0.887, 0.976], atol=1e-3)
    # PHYSICS.md §3.3 quotes Δc = −1.01862; the release's rows give 9.84596 − 10.8646 = −1.01864
    np.testing.assert_allclose(eff.shift, [0.02345, -0.000613, -1.01864, -0.023042], atol=1e-6)
    assert float(eff(jnp.asarray(0.0))) == 0.0  # clipped at zero


def test_csi2017_efficiency_smooth_step():
    eff = R.Coherent2017Efficiency(jnp.asarray(0.6655), jnp.asarray(0.4942), jnp.asarray(10.8507), jnp.asarray(0.25))
    sig = lambda x: 0.6655 / (1 + np.exp(-0.4942 * (x - 10.8507)))  # noqa: E731
    assert float(eff(jnp.asarray(20.0))) == pytest.approx(sig(20.0), rel=1e-6)  # step fully on
    assert float(eff(jnp.asarray(5.5))) == pytest.approx(0.5 * sig(5.5), rel=2e-2)  # half step
    assert float(eff(jnp.asarray(3.0))) < 1e-3 * sig(3.0)  # logistic ramp: σ(−8)/2 ≈ 1.7e-4


def test_cenns10_efficiency_table():
    rows = read_table(data_path("cenns10_analysisA/CENNS10AnlAEfficiency.txt"), 3)
    eff = R.TabulatedEfficiency(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 2]))
    np.testing.assert_allclose(eff(jnp.array([2.25, 3.75, 5.75, 9.75])), [0.291, 0.500, 0.691, 0.898], atol=1e-3)
    assert float(eff(jnp.asarray(200.0))) == pytest.approx(rows[-1, 2])  # flat beyond the table


def test_gaussian_smearing_cdf():
    s = R.GaussianSmearing(jnp.asarray(0.0), jnp.asarray(0.58), jnp.asarray(0.0))
    E = 10.0
    sigma = 0.58 * np.sqrt(E)
    assert float(s.cdf(12.0, E)) == pytest.approx(stats.norm.cdf(12.0, E, sigma), rel=1e-6)


def test_gamma_pe_smearing_against_scipy():
    s = R.GammaPESmearing(jnp.asarray(13.35), jnp.asarray(9.56))
    E = 2.0
    k = 1 + 9.56 * E
    theta = 13.35 * E / k
    x = np.array([5.0, 20.0, 26.7, 40.0])
    np.testing.assert_allclose(s.cdf(jnp.asarray(x), E), stats.gamma.cdf(x, k, scale=theta), rtol=1e-10)
    assert k * theta == pytest.approx(13.35 * E)  # mean = light yield × E


def test_poisson_pe_smearing_limits():
    s = R.PoissonPESmearing(jnp.asarray(13.348), jnp.asarray(1e-3))
    lam = 13.348 * 1.5
    # with a negligible single-PE width, P(x < n + ½) is the Poisson CDF at n
    for n in (5, 15, 25):
        assert float(s.cdf(n + 0.5, 1.5)) == pytest.approx(stats.poisson.cdf(n, lam), rel=1e-10)


def test_response_is_a_probability():
    s = R.GammaPESmearing(jnp.asarray(13.35), jnp.asarray(9.56))
    flat = R.FlatEfficiency(jnp.asarray(1.0))
    E = jnp.array([0.5, 1.0, 2.0, 4.0])
    wide = R.Binning(jnp.array([0.0, 30.0, 1000.0]), jnp.array([0.0, 1.0]), n_sub_energy=4)
    np.testing.assert_allclose(R.energy_response(s, flat, wide, E).sum(axis=0), 1.0, rtol=1e-10)


def test_sub_bin_efficiency_sampling_converges():
    """Efficiency sampled on 8 sub-bins per bin agrees with 64 sub-bins to 5e-4 absolute (CsI 2021 response)."""
    s = R.GammaPESmearing(jnp.asarray(13.35), jnp.asarray(9.56))
    rows = read_table(data_path("csi2021/effCoefficients.txt"), 4)
    eff = R.Coherent2021Efficiency(jnp.asarray(rows[0]), jnp.asarray(rows[1] - rows[0]), jnp.asarray(0.0))
    edges = jnp.array([0.0, 8, 12, 16, 20, 24, 32, 40, 50, 60])
    E = jnp.linspace(0.3, 5.0, 20)
    coarse = R.energy_response(s, eff, R.Binning(edges, jnp.array([0.0, 1.0]), n_sub_energy=8), E)
    fine = R.energy_response(s, eff, R.Binning(edges, jnp.array([0.0, 1.0]), n_sub_energy=64), E)
    np.testing.assert_allclose(coarse.sum(0), fine.sum(0), atol=5e-4)
    np.testing.assert_allclose(coarse, fine, atol=2e-3)
