"""Neutrino–electron elastic scattering (cevns_jax.electron, cevns_jax.electron_rates) and the neutrino
millicharge (cevns_jax.models.em): docs/physics.md §4.4, §10."""

import math
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from cevns_jax import constants as C
from cevns_jax import electron as el
from cevns_jax import rates, xsec
from cevns_jax import replace
from cevns_jax.electron_rates import COMPONENT, electron_counts
from cevns_jax.errors import CevnsInputError
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict
from cevns_jax.kinematics import min_neutrino_energy
from cevns_jax.models import NewPhysics, em_properties, sterile_mixing
from cevns_jax.source import michel_spectrum_nue, michel_spectrum_numubar

K_CM2_PER_GEV = C.G_FERMI**2 * C.M_ELECTRON / (2 * math.pi) * C.MEV2_TO_CM2 * 1e3
"""G_F² m_e/2π [cm²/GeV]: σ/E of the closed forms below."""


def _with_electrons(name: str, **detector):
    data = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())
    data["detector"].update({"electron_scattering": True, **detector})
    return experiment_from_dict(data, label=name, base=PRESET_DIR)


@pytest.fixture(scope="module")
def reactor():
    return _with_electrons("CONUS+-2025")


@pytest.fixture(scope="module")
def total_electron():
    return jax.jit(lambda exp, model: jnp.sum(electron_counts(exp, model=model)))


# --- SM cross sections --------------------------------------------------------------------------------------
def _numerical_sigma(E, gV, gA, anti):
    Tm = 2 * E**2 / (C.M_ELECTRON + 2 * E)
    x, w = np.polynomial.legendre.leggauss(64)
    T = 0.5 * Tm * (x + 1)
    return float(np.sum(0.5 * Tm * w * np.asarray(el.dsigma_dT(E, T, gV, gA, anti))))


@pytest.mark.parametrize("flavour, anti, bracket", [
    (1, False, lambda x: 1 - 4 * x + 16 * x**2 / 3),          # ν_μ e
    (1, True, lambda x: 1 / 3 - 4 * x / 3 + 16 * x**2 / 3),   # ν̄_μ e
    (0, False, lambda x: 1 + 4 * x + 16 * x**2 / 3),          # ν_e e
    (0, True, lambda x: 1 / 3 + 4 * x / 3 + 16 * x**2 / 3),   # ν̄_e e
])
def test_tree_level_total_cross_sections_match_the_textbook_closed_forms(flavour, anti, bracket):
    """σ/E = (G_F² m_e/2π)[…] at E ≫ m_e with x = sin²θ_W ('t Hooft 1971; Gandhi, Quigg, Reno & Sarcevic,
    Astropart. Phys. 5, 81 (1996), hep-ph/9512364, Eqs. (A1)–(A4)); m_e/E corrections are 5e-5 at 10 GeV."""
    x, E = 0.2312, 1e4
    gV, gA = el.electron_couplings(xsec.standard_model("tree", x))
    numeric = _numerical_sigma(E, gV[flavour], gA[flavour], anti)
    assert numeric / (E / 1e3) == pytest.approx(K_CM2_PER_GEV * bracket(x), rel=2e-4)
    # the closed-form integral of the library is a second method for the same number
    assert float(el.total_cross_section(E, gV[flavour], gA[flavour], anti)) == pytest.approx(numeric, rel=1e-12)


def test_sm_couplings_and_cross_sections_against_measurements():
    """Default ("rc") couplings against published measurements: CHARM-II g_V^{νe} = −0.035 ± 0.017,
    g_A^{νe} = −0.503 ± 0.017 (Vilain et al., PLB 335, 246 (1994)); LSND σ(ν_e e) = (10.1 ± 1.5) × 10⁻⁴⁵ E/MeV
    cm² (Auerbach et al., PRD 63, 112001 (2001)); σ(ν_μ e)/E ≈ 1.6 × 10⁻⁴² cm²/GeV (PDG; Formaggio & Zeller,
    RMP 84, 1307 (2012)), within the 4% of the radiative corrections this scheme leaves out."""
    gV, gA = el.electron_couplings(xsec.standard_model())
    assert abs(float(gV[1]) - (-0.035)) < 0.017 and abs(float(gA[1]) - (-0.503)) < 0.017
    E = 1e4
    nue = float(el.total_cross_section(E, gV[0], gA[0])) / E
    assert abs(nue / 1e-45 - 10.1) < 1.5
    numu = float(el.total_cross_section(E, gV[1], gA[1])) / (E / 1e3)
    assert numu == pytest.approx(1.6e-42, rel=0.05)
    # ν_e's charged current interferes destructively (LSND's I = −1.01 ± 0.18 vs the SM −1.09): NC-only ν_e
    # would give the ν_μ-like value, CC-only (g_V = g_A = 1) 4/E·K; the sum is below their sum
    assert nue < float(el.total_cross_section(E, 1.0, 1.0)) / E


def test_magnetic_moment_term_is_the_analytic_form():
    """(πα²/m_e²) = 2.495 × 10⁻²⁵ cm² (Vogel & Engel 1989; e.g. GEMMA, Beda et al. 2012), × μ²(1/T − 1/E)."""
    assert math.pi * C.ALPHA_EM**2 / C.M_ELECTRON**2 * C.MEV2_TO_CM2 == pytest.approx(2.495e-25, rel=2e-4)
    gV, gA = el.electron_couplings(xsec.standard_model())
    E, T, mu = 10.0, np.array([1e-3, 0.01, 1.0]), 3e-11
    extra = el.dsigma_dT(E, T, gV[0], gA[0], mu2_muB2=mu**2) - el.dsigma_dT(E, T, gV[0], gA[0])
    np.testing.assert_allclose(extra, 2.4946e-25 * mu**2 * (1 / T - 1 / E), rtol=1e-4)


def test_millicharge_on_electrons_leading_order_and_charge_radius_equivalence():
    """Pure millicharge term → 2πα² q²/(m_e T²) for T ≪ E (Giunti & Studenikin, RMP 87, 531 (2015)); and the
    millicharge at recoil T acts exactly as a charge radius ⟨r²⟩ = 6q/q² = −3q/(m_e T) (F(q²) = q + q²⟨r²⟩/6)."""
    sm = xsec.standard_model()
    E, T, q = 50.0, jnp.asarray([2e-4]), 1e-12
    rates_at = lambda model: el.electron_source_rates(sm, model, T, _Line(E))  # noqa: E731
    plus = rates_at(NewPhysics(em=em_properties(millicharge_e=q)))
    minus = rates_at(NewPhysics(em=em_properties(millicharge_e=-q)))
    even = 0.5 * (plus + minus) - rates_at(None)
    lo = 2 * math.pi * C.ALPHA_EM**2 * q**2 / (C.M_ELECTRON * float(T[0]) ** 2) * C.MEV2_TO_CM2
    np.testing.assert_allclose(even, lo, rtol=2e-5)  # corrections O(T/E) = 4e-6
    r2 = -3.0 * q / (C.M_ELECTRON * float(T[0])) * C.MEV2_TO_CM2  # [cm²]
    np.testing.assert_allclose(plus, rates_at(NewPhysics(em=em_properties(charge_radius_cm2=r2))), rtol=1e-10)


def test_millicharge_in_cevns_is_the_charge_radius_at_the_same_recoil(reactor):
    target, T0, q = reactor.target, 3e-4, 2e-9
    T = jnp.full((target.Z.size, 1), T0)
    sm = xsec.standard_model()
    Q_q, _, _ = xsec.flavour_charges(sm, NewPhysics(em=em_properties(millicharge_e=q)), target, T)
    r2 = -3.0 * q / (float(target.mass_MeV[0]) * T0) * C.MEV2_TO_CM2
    Q_r, _, _ = xsec.flavour_charges(sm, NewPhysics(em=em_properties(charge_radius_cm2=r2)), target, T)
    Q_0, _, _ = xsec.flavour_charges(sm, None, target, T)
    np.testing.assert_allclose(Q_q[:, 0], Q_r[:, 0], rtol=1e-12)
    assert np.all(np.abs(np.asarray(Q_q - Q_0)) > 1e-3 * np.abs(np.asarray(Q_0)))  # a visible shift
    np.testing.assert_array_equal(xsec.flavour_charges(sm, NewPhysics(em=em_properties()), target, T)[0], Q_0)


class _Line:
    """A steady monochromatic ν_e line at E [MeV] (unit fluence), as a source for the fold."""

    def __init__(self, E):
        self.E = E
        self.components, self.flavours, self.steady = ("line",), (0,), True
        self.energy_breaks_MeV = (E * (1 - 1e-9), E)
        self.energy_nodes_per_panel = 1

    def spectrum_per_MeV(self, E_MeV):
        return jnp.ones((1,) + jnp.shape(E_MeV)) / (self.E * 1e-9)


def test_pion_dar_closed_form_fold_matches_quadrature():
    """The Michel-moment fold (M = m_e) against scipy quadrature of the spectra times dσ/dT."""
    from cevns_jax.source import Source

    sm = xsec.standard_model()
    T = np.array([1e-3, 0.05, 2.0, 30.0])
    folded = np.asarray(el.electron_source_rates(sm, NewPhysics(em=em_properties(magnetic_moment_muB=1e-10)),
                                                 jnp.asarray(T), Source))
    gV, gA = el.electron_couplings(sm)
    for c, (f, anti, spectrum) in enumerate(((0, False, michel_spectrum_nue), (1, True, michel_spectrum_numubar)), start=1):
        for k, Tk in enumerate(T):
            Emin = float(min_neutrino_energy(Tk, C.M_ELECTRON))
            integrand = lambda E: float(spectrum(E)) * float(el.dsigma_dT(E, Tk, gV[f], gA[f], anti, 1e-20))  # noqa: E731
            ref, _ = integrate.quad(integrand, min(Emin, C.E_NU_MAX_MICHEL), C.E_NU_MAX_MICHEL, epsabs=0, epsrel=1e-11)
            assert folded[c, k] == pytest.approx(ref, rel=1e-9, abs=1e-60)
    prompt = el.dsigma_dT(C.E_NU_MU_PROMPT, T, gV[1], gA[1], False, 1e-20)
    np.testing.assert_allclose(folded[0], prompt, rtol=1e-13)


# --- atomic binding -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("element, T_keV, expected", [
    ("Ge", 11.2, 32), ("Ge", 11.0, 30), ("Ge", 1.3, 28), ("Ge", 1.0, 22), ("Ge", 0.1, 14),
    ("Xe", 35.0, 54), ("Xe", 30.0, 52), ("Xe", 1.0, 40), ("Ar", 3.0, 16), ("Ar", 0.2, 8),
    ("Si", 0.5, 12), ("Na", 1.1, 11), ("Cs", 36.0, 55), ("Cs", 1.0, 41), ("I", 1.0, 41), ("I", 0.9, 39),
])
def test_stepping_function_against_the_binding_energy_tables(element, T_keV, expected):
    """Counted by hand from X-ray Data Booklet Table 1-1 (Ge K 11.103, L1 1.4143, L2 1.2478, L3 1.2167, M ≤ 0.18;
    Xe K 34.56, M1 1.149, M2 1.002; Ar K 3.206, L 0.326–0.249; Si L ≤ 0.149; Cs M1 1.217, M2 1.065; I M1 1.072, M2 0.931, M3 0.875 keV)."""
    assert float(el.stepping_electrons(element, T_keV * 1e-3)) == expected


def test_electrons_per_unit_of_a_compound(presets):
    csi = presets["COHERENT-CsI-2021"].target
    assert float(el.electrons_per_unit(csi, 0.1)) == pytest.approx(108.0, rel=1e-9)  # Cs 55 + I 53
    assert float(el.electrons_per_unit(csi, 0.034)) == pytest.approx(108.0 - 2, rel=1e-9)  # Cs K (35.98 keV) bound
    assert float(el.electrons_per_unit(csi, 0.033)) == pytest.approx(108.0 - 2 * 2, rel=1e-9)  # and I K (33.17 keV)


# --- the rate path --------------------------------------------------------------------------------------------
def test_null_models_equal_the_sm_and_sterile_is_refused(reactor, total_electron):
    sm = float(total_electron(reactor, None))
    assert sm > 0
    assert float(total_electron(reactor, NewPhysics(em=em_properties()))) == pytest.approx(sm, rel=1e-13)
    with pytest.raises(CevnsInputError, match="sterile"):
        electron_counts(reactor, model=NewPhysics(sterile=sterile_mixing(1.0, 0.1)))


def test_expected_counts_gains_the_channel_only_when_switched_on(presets, reactor):
    """Traced only (``eval_shape``): the keys and shapes, no compute."""
    assert COMPONENT not in jax.eval_shape(rates.expected_counts, presets["CONUS+-2025"])
    shapes = jax.eval_shape(rates.expected_counts, reactor)
    assert shapes[COMPONENT].shape == shapes["reactor_nuebar"].shape


@pytest.mark.parametrize("field, null, away", [("magnetic_moment_muB", 0.0, 1e-10), ("millicharge_e", 0.0, 1e-13)])
def test_gradients_match_finite_differences(reactor, total_electron, field, null, away):
    f = lambda x: total_electron(reactor, NewPhysics(em=em_properties(**{field: x})))  # noqa: E731
    g = jax.jit(jax.grad(lambda x: jnp.sum(electron_counts(reactor, model=NewPhysics(em=em_properties(**{field: x}))))))
    assert np.isfinite(float(g(jnp.asarray(null))))
    x0, h = jnp.asarray(away), 1e-4 * away
    fd = (float(f(x0 + h)) - float(f(x0 - h))) / (2 * h)
    assert float(g(x0)) == pytest.approx(fd, rel=1e-5)


def test_cevns_millicharge_gradient_matches_finite_differences(reactor):
    q0, h = 3e-10, 3e-14
    # one compiled program: value and gradient at q = 0, q0 and q0 ± h
    f, g = jax.jit(jax.vmap(jax.value_and_grad(
        lambda q: rates.total_cevns(reactor, model=NewPhysics(em=em_properties(millicharge_e=q))))))(
        jnp.asarray([0.0, q0, q0 + h, q0 - h]))
    assert float(f[0]) == pytest.approx(float(jax.jit(rates.total_cevns)(reactor)), rel=1e-14)
    fd = (float(f[2]) - float(f[3])) / (2 * h)
    assert float(g[1]) == pytest.approx(fd, rel=1e-5)
    assert abs(float(f[1]) / float(f[0]) - 1) > 1e-3  # the point is away from the SM


def test_vmap_over_magnetic_moments_equals_a_loop(reactor, total_electron):
    mus = jnp.array([0.0, 1e-11, 5e-11])
    one = lambda m: jnp.sum(electron_counts(reactor, model=NewPhysics(em=em_properties(magnetic_moment_muB=m))))  # noqa: E731
    batched = jax.jit(jax.vmap(one))(mus)
    loop = [float(total_electron(reactor, NewPhysics(em=em_properties(magnetic_moment_muB=m)))) for m in mus]
    np.testing.assert_allclose(batched, loop, rtol=1e-12)
    assert float(batched[2] - batched[0]) == pytest.approx(25 * float(batched[1] - batched[0]), rel=1e-9)  # ∝ μ²


@pytest.mark.parametrize("name", ["CONUS+-2025", pytest.param("COH-Ge-mini", marks=pytest.mark.slow)])
def test_halving_the_recoil_and_energy_steps_changes_no_bin_by_more_than_the_target(name):
    exp = _with_electrons(name)
    fine = replace(exp, detector=replace(exp.detector, binning=replace(exp.detector.binning, refine=2)))
    mu = NewPhysics(em=em_properties(magnetic_moment_muB=1e-11, millicharge_e=1e-14))
    per_bin = jax.jit(lambda e: jnp.sum(electron_counts(e, model=mu), axis=0))  # compiled (eagerly: ~300 programs)
    a, b = (np.asarray(per_bin(e)) for e in (exp, fine))
    assert np.max(np.abs(a - b)) < 1e-4 * np.max(a)


# --- bad input ----------------------------------------------------------------------------------------------
def test_bad_electromagnetic_parameters_name_the_field():
    with pytest.raises(CevnsInputError, match="magnetic_moment_muB"):
        em_properties(magnetic_moment_muB=-1e-10)
    with pytest.raises(CevnsInputError, match="millicharge_e"):
        em_properties(millicharge_e=float("nan"))
    with pytest.raises(CevnsInputError, match="magnetic_moment_muB"):
        em_properties(magnetic_moment_muB=[1e-10, float("nan"), 0.0])
    traced = jax.jit(lambda m: em_properties(magnetic_moment_muB=m).magnetic_moment_muB)(-1.0)
    assert np.all(np.isnan(np.asarray(traced)))


def test_bad_detector_switch_and_unsupported_detectors():
    with pytest.raises(CevnsInputError, match="electron_scattering"):
        _with_electrons("CONUS+-2025", electron_scattering="yes")
    data = tomllib.loads((PRESET_DIR / "COH-Ge-mini.toml").read_text())
    for key in ("quenching", "smearing", "efficiency"):
        data["detector"].pop(key, None)
    data["detector"].update(response="none", electron_scattering=True)
    with pytest.raises(CevnsInputError, match="electron_scattering.*keVnr"):
        experiment_from_dict(data, label="ideal.toml", base=PRESET_DIR)


def test_asimov_forecast_carries_the_channel_under_the_model(reactor):
    """A forecast of a detector with ν–e scattering predicts what the forward model predicts (second route:
    ``rates.expected_counts``, every component summed) in the SM and at a magnetic moment, whose ν–e counts
    change with the model; the SM point gives Δχ² = 0 and the flux nuisance scales the ν–e counts."""
    from cevns_jax.stats.forecast import AsimovForecast

    def model_of(theta):
        return NewPhysics(em=em_properties(magnetic_moment_muB=theta["mu"]))

    fc = AsimovForecast([reactor], model_of)
    zero = {k: jnp.zeros(()) for k in fc.priors}

    def physics(mu):  # one program, both moments: the templates, the forward model's counts, the profiled Δχ²
        sigs = fc.signals({"mu": mu})
        full = sum(jnp.ravel(v) for v in rates.expected_counts(reactor, model=model_of({"mu": mu})).values())
        return sigs, full, fc.profiled(sigs)

    sigs, full, dchi2 = jax.jit(jax.vmap(physics))(jnp.array([0.0, 3e-10]))
    combine = jax.jit(fc.combine)  # fc.expected(θ, ν) is combine(signals(θ), ν): no physics
    at = [jax.tree.map(lambda x, i=i: x[i], sigs) for i in range(2)]
    for i in range(2):
        np.testing.assert_allclose(np.asarray(combine(at[i], zero)), np.asarray(full[i]), rtol=1e-12)
    assert float(jnp.sum(at[1][0].electron)) > 1.01 * float(jnp.sum(at[0][0].electron))  # the model moves the ν–e counts
    assert float(dchi2[0]) == pytest.approx(0.0, abs=1e-9)
    flux = {**zero, "flux": jnp.asarray(0.1)}
    sm = at[0]
    moved = combine(sm, flux) - combine(sm, zero)
    steady = float(jnp.sum(jax.jit(rates.background_counts)(reactor)["flat_roi"]))  # the preset's background: no flux
    assert float(jnp.sum(moved)) == pytest.approx((math.exp(0.1) - 1) * (float(jnp.sum(fc.data)) - steady), rel=1e-12)
