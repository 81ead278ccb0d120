"""π-DAR source: spectra, timing PDFs/CDFs, exposure and fluence (docs/physics.md §1 and §6)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import roots_legendre
import pytest

from cevns_jax import constants as C
from cevns_jax import source as S
from cevns_jax.facilities import FACILITIES, make_source
from cevns_jax.releases import data_path, read_table


def pulse(mean_ns, sigma_ns=150.0):
    return S.ProtonPulse(jnp.asarray(mean_ns), jnp.asarray(sigma_ns), jnp.asarray([0.0]), jnp.asarray([1.0]))


def test_line_and_endpoint_energies():
    assert C.E_NU_MU_PROMPT == pytest.approx(29.79214, rel=1e-5)
    assert C.E_NU_MAX_MICHEL == pytest.approx(52.8291888, rel=1e-6)


def test_michel_spectra_normalisation_and_means():
    # Independent quadrature: 2000-node Gauss-Legendre over [0, m_mu/2] (integrand is a cubic).
    x, w = roots_legendre(2000)  # scipy: O(n²); numpy's leggauss is O(n³), 6–36 s at n = 2000
    E = 0.5 * C.E_NU_MAX_MICHEL * (x + 1)
    w = 0.5 * C.E_NU_MAX_MICHEL * w
    for f, mean in ((S.michel_spectrum_nue, 31.6975), (S.michel_spectrum_numubar, 36.9804)):
        y = np.asarray(f(jnp.asarray(E)))
        assert np.sum(w * y) == pytest.approx(1.0, abs=1e-12)
        assert np.sum(w * y * E) == pytest.approx(mean, rel=1e-4)
    # polynomial coefficients used by the analytic folding describe the same spectra
    for f, (a, b) in ((S.michel_spectrum_nue, S.MICHEL_NUE), (S.michel_spectrum_numubar, S.MICHEL_NUMUBAR)):
        np.testing.assert_allclose(np.asarray(f(jnp.asarray(E))), a * E**2 + b * E**3, rtol=1e-12, atol=1e-15)


def test_delayed_pdf_normalisation_and_mean():
    t = np.linspace(-3000.0, 60000.0, 400001)
    p = np.asarray(S.delayed_time_pdf(jnp.asarray(t), pulse(0.0)))
    norm = np.trapezoid(p, t)
    assert norm == pytest.approx(1.0, rel=1e-6)
    assert np.trapezoid(p * t, t) / norm == pytest.approx(C.TAU_PION_NS + C.TAU_MUON_NS, rel=1e-6)
    assert C.TAU_PION_NS + C.TAU_MUON_NS == pytest.approx(2223.0141, rel=1e-9)


def test_cdf_is_integral_of_pdf():
    t = np.linspace(-1500.0, 8000.0, 200001)
    P = pulse(440.0)
    for pdf, cdf in ((S.prompt_time_pdf, S.prompt_time_cdf), (S.delayed_time_pdf, S.delayed_time_cdf)):
        p = np.asarray(pdf(jnp.asarray(t), P))
        integral = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(t))])
        np.testing.assert_allclose(np.asarray(cdf(jnp.asarray(t), P)), integral, atol=2e-7)


def test_time_fractions_published_sanity_values():
    P = pulse(680.0)
    frac = lambda cdf, lo, hi, Pu: float(cdf(jnp.asarray(hi), Pu) - cdf(jnp.asarray(lo), Pu))  # noqa: E731
    assert frac(S.prompt_time_cdf, 0.0, 1000.0, P) == pytest.approx(0.9730, abs=1e-3)
    assert frac(S.delayed_time_cdf, 0.0, 1000.0, P) == pytest.approx(0.1239, abs=1e-3)
    assert frac(S.delayed_time_cdf, 0.0, 6000.0, pulse(440.0)) == pytest.approx(0.9192, abs=1e-3)


def test_analytic_timing_matches_csi2017_release_pdfs():
    """The release's tabulated arrival-time PDFs (0.5 μs bins) against the analytic model at μ_p = 0.70 μs."""
    edges = jnp.arange(0.0, 12001.0, 500.0)
    P = pulse(700.0)
    for name, cdf in (("promptNeutrinos", S.prompt_time_cdf), ("delayedNeutrinos", S.delayed_time_cdf)):
        table = read_table(data_path(f"csi2017/arrivalTimePDF_{name}.txt"), 2)
        ours = np.diff(np.asarray(cdf(edges, P)))
        np.testing.assert_allclose(ours, table[:, 1], atol=0.015)


def test_timing_is_finite_with_finite_gradients_far_from_the_pulse():
    t = jnp.linspace(-5000.0, 50000.0, 2001)
    for fn in (S.prompt_time_pdf, S.delayed_time_pdf, S.prompt_time_cdf, S.delayed_time_cdf):
        values = fn(t, pulse(0.0))
        grads = jax.vmap(jax.grad(lambda tt, m: fn(tt, pulse(m)), argnums=(0, 1)), in_axes=(0, None))(t, 0.0)
        assert np.all(np.isfinite(values))
        assert all(np.all(np.isfinite(g)) for g in grads)


def test_protons_on_target():
    assert C.protons_on_target(1.0, 1.0) == pytest.approx(2.24694e22, rel=1e-5)
    assert C.protons_on_target_from_power(1.4, 1.0, 1.0 / 3600) == pytest.approx(8.738e15, rel=1e-3)
    assert C.protons_on_target_from_power(1.4, 1.0, 5000) == pytest.approx(1.573e23, rel=1e-3)
    assert C.protons_on_target_from_power(2.0, 1.3, 5000) == pytest.approx(1.728e23, rel=1e-3)
    # CENNS-10 release: 13.8e22 POT is 6.12 GWh, i.e. 0.9965 GeV protons
    assert C.protons_on_target(6.12, 0.9965) == pytest.approx(13.8e22, rel=1e-3)
    assert FACILITIES["SNS-PPU"].protons_per_year() == pytest.approx(1.728e23, rel=1e-3)


def test_fluence_csi2021():
    src = make_source(FACILITIES["SNS-2021"], 3.198e23)
    assert float(S.fluence_per_flavour(src, 19.3)) == pytest.approx(5.794e14, rel=1e-3)
    # instantaneous flux at 20 m, 1.4 MW, 1 GeV, r = 0.09: 1.56e7 per flavour per cm² per s
    src = make_source(FACILITIES["SNS-2020"], C.protons_on_target_from_power(1.4, 1.0, 1 / 3600), nu_per_proton=0.09)
    assert float(S.fluence_per_flavour(src, 20.0)) == pytest.approx(1.56e7, rel=5e-3)  # quoted to 3 digits


def _scipy_time_pdfs(P):
    """Arrival-time densities [1/ns] built from scipy.stats (independent of the package's closed forms):
    exGaussians per bunch, the delayed one by partial fractions of the two lifetimes."""
    from scipy import stats

    w = np.asarray(P.bunch_weights) / np.sum(np.asarray(P.bunch_weights))
    mus = float(P.mean_ns) + np.asarray(P.bunch_offsets_ns)
    s = float(P.sigma_ns)
    tp, tm = C.TAU_PION_NS, C.TAU_MUON_NS

    def exg(t, tau):
        return sum(wb * stats.exponnorm.pdf(t, tau / s, loc=mu, scale=s) for wb, mu in zip(w, mus))

    return {
        "pulse": lambda t: sum(wb * stats.norm.pdf(t, loc=mu, scale=s) for wb, mu in zip(w, mus)),
        "prompt": lambda t: exg(t, tp),
        "delayed": lambda t: (tm * exg(t, tm) - tp * exg(t, tp)) / (tm - tp),
    }


def test_time_antiderivatives_against_quad_and_moments():
    """(F, G, H) of every time profile: F = ∫p, G(t) = ∫(t − s)p(s)ds, H(t) = ½∫(t − s)²p(s)ds by
    scipy.integrate.quad of scipy.stats densities (two bunches), and far after the pulse G → t − E[t],
    H → ½[(t − E[t])² + Var t] with the mean μ̄ + Σ τ and variance σ² + Σ τ² + bunch spread."""
    from scipy import integrate

    P = S.ProtonPulse(jnp.asarray(440.0), jnp.asarray(150.0), jnp.asarray([0.0, 300.0]), jnp.asarray([1.0, 0.5]))
    pdfs = _scipy_time_pdfs(P)
    functions = {"pulse": S.pulse_antiderivatives, "prompt": S.prompt_time_antiderivatives,
                 "delayed": S.delayed_time_antiderivatives}
    lifetimes = {"pulse": (), "prompt": (C.TAU_PION_NS,), "delayed": (C.TAU_PION_NS, C.TAU_MUON_NS)}
    w = np.array([1.0, 0.5]) / 1.5
    mus = 440.0 + np.array([0.0, 300.0])
    for name, fn in functions.items():
        p = pdfs[name]
        for t in (300.0, 600.0, 1500.0, 6000.0):
            got = [float(v) for v in fn(jnp.asarray(t), P)]
            want = [integrate.quad(lambda s, k=k: (t - s) ** k / (1.0 if k < 2 else 2.0) * p(s), -3000.0, t,
                                   points=[440.0, 740.0] if t > 740.0 else None, epsabs=0.0, epsrel=1e-12,
                                   limit=400)[0] for k in (0, 1, 2)]
            np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=f"{name} at {t} ns")
        mean = w @ mus + sum(lifetimes[name])
        var = 150.0**2 + sum(tau**2 for tau in lifetimes[name]) + w @ (mus - w @ mus) ** 2
        t = 1e5  # e^{−t/τμ} ≈ 1e-20: the profile is complete; Var is 1e-3 of H there
        F, G, H = (float(v) for v in fn(jnp.asarray(t), P))
        assert F == pytest.approx(1.0, abs=1e-14)
        assert G == pytest.approx(t - mean, rel=1e-12)
        assert H == pytest.approx(0.5 * ((t - mean) ** 2 + var), rel=1e-12)


def flat_pulse(width_ns, sigma_ns=1000.0, mean_ns=0.0):
    return S.ProtonPulse(jnp.asarray(mean_ns), jnp.asarray(sigma_ns), jnp.asarray([0.0]), jnp.asarray([1.0]),
                         flat_top_ns=width_ns)


@pytest.mark.parametrize("profile", [S.pulse_cdf, S.prompt_time_cdf, S.delayed_time_cdf])
def test_flat_top_timing_equals_numerical_convolution(profile):
    # second method: the Gaussian-bunch CDF (its own closed form) averaged over the flat top by quad
    from scipy.integrate import quad

    W = FACILITIES["ESS"].pulse_flat_top_ns
    t = np.array([-1.6e6, -1.43e6, -1.2e6, 0.0, 1.425e6, 1.44e6, 1.6e6])
    closed = np.asarray(profile(jnp.asarray(t), flat_pulse(W)))
    gaussian = jax.jit(lambda x: profile(x, flat_pulse(0.0)))
    for ti, c in zip(t, closed):  # quad on pieces that resolve the ns–μs structure at s ≈ t inside the 2.86 ms top
        cuts = [s for s in ti + np.array([-1e5, -3e4, -1e4, -3e3, -1e3, 0.0, 1e3, 3e3, 1e4]) if -W / 2 < s < W / 2]
        edges = [-W / 2, *cuts, W / 2]
        value = sum(quad(lambda s: float(gaussian(jnp.asarray(ti - s))), a, b, limit=500, epsabs=1e-15)[0]
                    for a, b in zip(edges[:-1], edges[1:]))
        assert c == pytest.approx(value / W, abs=1e-13), ti


def test_flat_top_antiderivatives_moments_and_gradients():
    W = 2.86e6
    P = flat_pulse(W)
    t = jnp.asarray(1.0e6)
    F, G, H = S.delayed_time_antiderivatives(t, P)
    assert float(jax.grad(lambda x: S.delayed_time_antiderivatives(x, P)[2])(t)) == pytest.approx(float(G), rel=1e-12)
    assert float(jax.grad(lambda x: S.delayed_time_antiderivatives(x, P)[1])(t)) == pytest.approx(float(F), rel=1e-12)
    assert float(jax.grad(lambda x: S.delayed_time_cdf(x, P))(t)) == pytest.approx(float(S.delayed_time_pdf(t, P)), rel=1e-10)
    # far after the pulse: G → t − mean, 2H − G² → variance (uniform W²/12 + edges σ² + both lifetimes²)
    late = jnp.asarray(5e7)
    F, G, H = S.delayed_time_antiderivatives(late, P)
    assert float(F) == pytest.approx(1.0, abs=1e-15)
    assert float(G) == pytest.approx(5e7 - C.TAU_PION_NS - C.TAU_MUON_NS, abs=1e-3)
    variance = W**2 / 12 + 1000.0**2 + C.TAU_PION_NS**2 + C.TAU_MUON_NS**2
    assert float(2 * H - G**2) == pytest.approx(variance, rel=1e-9)
    # the pulse mean is a nuisance: finite gradient on and off the edges
    for ti in (-1.43e6, 0.0, 1.5e6):
        g = jax.grad(lambda m: S.delayed_time_cdf(jnp.asarray(ti), flat_pulse(W, mean_ns=m)))(0.0)
        assert np.isfinite(float(g))


def test_ess_pulse_is_a_flat_top_in_toml(tmp_path):
    from cevns_jax.errors import CevnsInputError
    from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml

    data = read_toml(PRESET_DIR / "COH-Ar-750.toml", "experiment")
    data["source"] = {"facility": "ESS", "years": 1.0}
    exp = experiment_from_dict(data, label="Ar at the ESS", base=PRESET_DIR)
    assert exp.source.pulse.flat_top_ns == 2.86e6
    data["source"]["pulse_flat_top_us"] = -1.0
    with pytest.raises(CevnsInputError, match="pulse_flat_top_us"):
        experiment_from_dict(data, label="Ar at the ESS", base=PRESET_DIR)
