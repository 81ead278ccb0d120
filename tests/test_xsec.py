"""SM cross section, nuclear data, form factors and flux folding (docs/physics.md §2 and §6)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import roots_legendre
import pytest

from cevns_jax import constants as C
from cevns_jax import form_factors as ff
from cevns_jax import xsec
from cevns_jax.kinematics import max_recoil_energy, min_neutrino_energy, momentum_transfer
from cevns_jax.nuclei import ISOTOPES, make_target, units_per_kg
from cevns_jax.source import MICHEL_NUE, MICHEL_NUMUBAR

TREE, RC = xsec.standard_model("tree"), xsec.standard_model("rc")
GL_X, GL_W = np.polynomial.legendre.leggauss(400)


def iso_target(sym, form_factor="helm"):
    return make_target({sym: 1}, form_factor=form_factor)


def sigma_total(E, sym, sm, *, flavour=1, unit_ff=False, form_factor="helm"):
    """∫ dσ/dT dT over [0, T_max] with 400-node Gauss–Legendre [cm²]."""
    t = iso_target(sym, form_factor)
    M = t.mass_MeV[0]
    Tm = max_recoil_energy(E, M)
    T = 0.5 * Tm * (GL_X + 1)
    gvp, gvn = xsec.nucleon_couplings(sm)
    Fp, Fn = (1.0, 1.0) if unit_ff else ff.nucleon_form_factors(t, momentum_transfer(T, M))
    Q = xsec.weak_charge(gvp[flavour], gvn, t.Z[0], t.N[0], Fp, Fn)
    return float(jnp.sum(0.5 * Tm * GL_W * xsec.dsigma_dT(E, T, M, Q)))


def flux_averaged(sym, sm):
    """Prompt σ(E_νμ), ⟨σ⟩_νe, ⟨σ⟩_ν̄μ by 2-D Gauss–Legendre over (E, T) — independent of the analytic moments."""
    out = [sigma_total(C.E_NU_MU_PROMPT, sym, sm, flavour=1)]
    x, w = np.polynomial.legendre.leggauss(100)
    E = 0.5 * C.E_NU_MAX_MICHEL * (x + 1)
    for (a, b), fl in ((MICHEL_NUE, 0), (MICHEL_NUMUBAR, 1)):
        sig = np.array([sigma_total(e, sym, sm, flavour=fl) for e in E])
        out.append(float(np.sum(0.5 * C.E_NU_MAX_MICHEL * w * (a * E**2 + b * E**3) * sig)))
    return out


def test_nuclear_masses():
    expected = {"133Cs": 123772.54, "127I": 118183.68, "40Ar": 37215.53, "23Na": 21409.21, "74Ge": 68840.79}
    for sym, mass in expected.items():
        assert ISOTOPES[sym].nuclear_mass_MeV == pytest.approx(mass, abs=0.01)


@pytest.mark.parametrize(
    "E,values",
    [
        (C.E_NU_MU_PROMPT, {"133Cs": 14.335, "127I": 15.013, "40Ar": 47.623, "23Na": 82.685, "74Ge": 25.764}),
        (30.0, {"133Cs": 14.536, "40Ar": 48.289}),
        (52.829189, {"133Cs": 45.059, "40Ar": 149.562}),
    ],
)
def test_maximum_recoil(E, values):
    for sym, keV in values.items():
        assert 1e3 * float(max_recoil_energy(E, ISOTOPES[sym].nuclear_mass_MeV)) == pytest.approx(keV, abs=1e-3)


def test_min_energy_inverts_max_recoil():
    M = ISOTOPES["133Cs"].nuclear_mass_MeV
    E = jnp.linspace(5.0, 60.0, 50)
    np.testing.assert_allclose(min_neutrino_energy(max_recoil_energy(E, M), M), E, rtol=1e-12)


def test_cross_section_prefactor():
    assert C.G_FERMI**2 / (2 * np.pi) * C.MEV2_TO_CM2 == pytest.approx(8.43087e-45, rel=1e-5)


def test_total_cross_sections_30MeV():
    assert sigma_total(30.0, "40Ar", TREE, unit_ff=True) == pytest.approx(1.6987e-39, rel=1e-3)
    assert sigma_total(30.0, "40Ar", TREE) == pytest.approx(1.5130e-39, rel=1e-3)
    assert sigma_total(30.0, "40Ar", RC, flavour=1) == pytest.approx(1.5511e-39, rel=1e-3)
    assert sigma_total(30.0, "40Ar", TREE, form_factor="klein_nystrand") == pytest.approx(1.4914e-39, rel=1e-3)
    for sym, value in {"133Cs": 1.7209e-38, "127I": 1.5568e-38, "23Na": 4.5781e-40, "74Ge": 5.2984e-39}.items():
        assert sigma_total(30.0, sym, TREE) == pytest.approx(value, rel=1e-3)


def test_large_mass_limit_of_total_cross_section():
    """σ → G_F² E² Q_V²/π for M → ∞ with F = 1 (analytic limit, docs/physics.md §2.2)."""
    E, M, Q = 30.0, 1e9, -10.0
    Tm = max_recoil_energy(E, M)
    T = 0.5 * Tm * (GL_X + 1)
    sig = float(jnp.sum(0.5 * Tm * GL_W * xsec.dsigma_dT(E, T, M, Q)))
    assert sig == pytest.approx(C.G_FERMI**2 * E**2 * Q**2 / np.pi * C.MEV2_TO_CM2, rel=1e-6)


@pytest.mark.parametrize(
    "sym,sm,values",
    [
        ("133Cs", TREE, (1.7022e-38, 1.8815e-38, 2.3104e-38)),
        ("127I", TREE, (1.5398e-38, 1.7069e-38, 2.1000e-38)),
        ("40Ar", TREE, (1.4944e-39, 1.7496e-39, 2.2302e-39)),
        ("40Ar", RC, (1.5321e-39, 1.7443e-39, 2.2864e-39)),
    ],
)
def test_flux_averaged_cross_sections(sym, sm, values):
    np.testing.assert_allclose(flux_averaged(sym, sm), values, rtol=2e-3)


@jax.jit
def _analytic_rate(sm, t, x, w):
    M = t.mass_MeV[0]
    Tm = max_recoil_energy(C.E_NU_MAX_MICHEL, M)
    T = 0.5 * Tm * (x + 1)
    Q = xsec.sm_component_charges(sm, t, T[None, :])[:, 0]
    return jnp.sum(0.5 * Tm * w * xsec.differential_rate_per_fluence(Q, T, M), axis=-1)


def analytic_flux_averaged(sym, sm):
    """∫ dT (G_F²M/π) Q² K_c(T) from the analytic moments (the library's route; one compiled program)."""
    x, w = roots_legendre(2000)  # scipy: O(n²); numpy's leggauss is O(n³), 6–36 s at n = 2000
    return np.asarray(_analytic_rate(sm, iso_target(sym), jnp.asarray(x), jnp.asarray(w)))


def test_csi_average_flux_averaged_cross_section():
    for sm, value in ((TREE, 1.873e-38), (RC, 1.912e-38)):
        avg = np.mean([analytic_flux_averaged(s, sm).mean() for s in ("133Cs", "127I")])
        assert avg == pytest.approx(value, rel=3e-3)


def test_delayed_integral_equals_flux_averaged_sum():
    rate = analytic_flux_averaged("133Cs", TREE)
    assert rate[1] + rate[2] == pytest.approx(4.1919e-38, rel=1e-4)


def test_analytic_folding_matches_quadrature_pointwise():
    t = iso_target("133Cs")
    M = t.mass_MeV[0]
    T = jnp.array([1e-3, 10e-3, 20e-3, 40e-3])
    K = np.asarray(xsec.folded_kinematic_factors(T, M))
    x, w = np.polynomial.legendre.leggauss(512)
    for c, (a, b) in ((1, MICHEL_NUE), (2, MICHEL_NUMUBAR)):
        for k, Tk in enumerate(np.asarray(T)):
            E1 = float(min_neutrino_energy(Tk, M))
            E = E1 + 0.5 * (C.E_NU_MAX_MICHEL - E1) * (x + 1)
            integrand = (a * E**2 + b * E**3) * np.asarray(xsec.kinematic_factor(E, Tk, M))
            assert K[c, k] == pytest.approx(np.sum(0.5 * (C.E_NU_MAX_MICHEL - E1) * w * integrand), rel=1e-6)


def test_delayed_differential_rate_on_cesium():
    t = iso_target("133Cs")
    T = jnp.array([1e-3, 10e-3, 20e-3, 40e-3])[None, :]
    dR = xsec.differential_rate_per_fluence(xsec.sm_component_charges(TREE, t, T), T, t.mass_MeV[:, None])
    np.testing.assert_allclose(np.asarray(dR[1] + dR[2])[0], [5.1401e-36, 1.5062e-36, 3.3786e-37, 2.3005e-39], rtol=1e-3)


def test_cross_section_is_nonnegative_and_vanishes_at_endpoint():
    M = ISOTOPES["133Cs"].nuclear_mass_MeV
    E = 30.0
    Tm = float(max_recoil_energy(E, M))
    T = jnp.linspace(0.0, 2 * Tm, 101)
    s = xsec.dsigma_dT(E, T, M, -38.0)
    assert np.all(np.asarray(s) >= 0)
    assert float(xsec.dsigma_dT(E, Tm, M, -38.0)) == pytest.approx(0.0, abs=1e-60)
    assert np.all(np.asarray(s)[T > Tm] == 0)
    # the delayed folding is zero above T_max(m_μ/2) with finite gradients
    Tend = float(max_recoil_energy(C.E_NU_MAX_MICHEL, M))
    g = jax.grad(lambda T: xsec.folded_kinematic_factors(T, M)[1])(1.01 * Tend)
    assert float(xsec.folded_kinematic_factors(jnp.asarray(1.01 * Tend), M)[1]) == 0.0
    assert np.isfinite(float(g))


def test_form_factor_values():
    expected = {
        "133Cs": (0.96108, 0.77532, 0.31874),
        "127I": (0.96215, 0.78108, 0.33150),
        "40Ar": (0.98040, 0.88259, 0.59534),
        "23Na": (0.98507, 0.90976, 0.67904),
        "74Ge": (0.97251, 0.83780, 0.46959),
    }
    for sym, values in expected.items():
        A = ISOTOPES[sym].A
        got = ff.helm(jnp.array([20.0, 50.0, 100.0]), ff.lewin_smith_radius_fm(A))
        np.testing.assert_allclose(got, values, atol=1e-4)
    assert float(ff.klein_nystrand(50.0, 133.0)) == pytest.approx(0.75517, abs=1e-4)
    assert float(ff.klein_nystrand(50.0, 40.0)) == pytest.approx(0.86863, abs=1e-4)


def test_form_factor_small_q_series_is_continuous_and_normalised():
    x = jnp.array([0.0, 9.999e-3, 1.0001e-2])
    v = ff.spherical_bessel_ratio(x)
    assert float(v[0]) == 1.0
    assert float(v[1]) == pytest.approx(float(v[2]), abs=1e-8)
    assert np.isfinite(float(jax.grad(ff.spherical_bessel_ratio)(0.0)))


def test_helm_rms_radius_relation():
    """Helm with R₀ from an rms radius has that rms radius: −6 dF/d(q²) at q → 0 = R_rms²."""
    r_rms = 4.8
    R0 = ff.helm_radius_from_rms_fm(r_rms)
    q2 = 1e-6
    F = ff.helm(jnp.sqrt(q2) * C.HBARC_MEV_FM, R0)
    assert -6 * (float(F) - 1.0) / q2 == pytest.approx(r_rms**2, rel=1e-4)


def test_charge_radius_shifts_and_couplings():
    d = xsec.charge_radius_shift(jnp.asarray(xsec.LEPTON_MASSES))
    np.testing.assert_allclose(d, [0.019691, 0.011435, 0.0070643], atol=1e-5)
    gvp, gvn = xsec.nucleon_couplings(RC)
    np.testing.assert_allclose(gvp, [0.03805, 0.02979, 0.02542], atol=1e-5)
    assert float(xsec.nucleon_couplings(TREE)[0][0]) == pytest.approx(0.02286, abs=1e-5)


def test_weak_charge_examples():
    for sym, values in {"133Cs": (-37.743, -38.274, -37.820), "40Ar": (-10.589, -10.721, None)}.items():
        t = iso_target(sym)
        g_tree, n_tree = xsec.nucleon_couplings(TREE)
        g_rc, n_rc = xsec.nucleon_couplings(RC)
        Z, N = float(t.Z[0]), float(t.N[0])
        assert float(xsec.weak_charge(g_tree[1], n_tree, Z, N, 1, 1)) == pytest.approx(values[0], abs=1e-3)
        assert float(xsec.weak_charge(g_rc[1], n_rc, Z, N, 1, 1)) == pytest.approx(values[1], abs=1e-3)
        if values[2] is not None:
            assert float(xsec.weak_charge(g_rc[0], n_rc, Z, N, 1, 1)) == pytest.approx(values[2], abs=1e-3)


def test_weak_mixing_angle_sensitivity():
    """d ln N/dŝ² for ν_μ with RC couplings, by autodiff (N ∝ Q_V², F cancels at q → 0)."""
    for sym, value in (("133Cs", 5.748), ("40Ar", 6.716)):
        t = iso_target(sym)

        def log_rate(s2):
            gvp, gvn = xsec.nucleon_couplings(xsec.StandardModel(sin2_theta_w=s2, couplings="rc"))
            return jnp.log(xsec.weak_charge(gvp[1], gvn, t.Z[0], t.N[0], 1.0, 1.0) ** 2)

        assert float(jax.grad(log_rate)(jnp.asarray(C.SIN2_THETA_W_LOW_ENERGY))) == pytest.approx(value, rel=1e-3)


def test_target_units_per_kg():
    for name, value in {"CsI": 2.3179e24, "NaI": 4.0176e24, "Ar": 1.5075e25, "Ge": 8.2915e24}.items():
        assert float(units_per_kg(make_target(name))) == pytest.approx(value, rel=1e-3)
    csi = make_target("CsI")
    assert csi.isotopes == ("133Cs", "127I")
    np.testing.assert_allclose(csi.atoms_per_unit, [1.0, 1.0])
    ge = make_target("Ge")
    assert float(jnp.sum(ge.atoms_per_unit)) == pytest.approx(1.0, abs=1e-3)
