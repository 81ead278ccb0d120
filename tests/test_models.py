"""New physics: docs/physics.md §6 sanity values, null and physical limits, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import roots_legendre
import pytest

from cevns_jax import constants as C
from cevns_jax import rates
from cevns_jax.models import (NewPhysics, b_minus_l, em_properties, lmu_minus_ltau, nsi_couplings, sterile_mixing,
                              universal)
from cevns_jax.models import em, sterile, zprime
from cevns_jax.errors import CevnsInputError


def test_lmu_ltau_loop_values():
    assert float(zprime.kinetic_mixing_lmu_ltau(1.0)) == pytest.approx(0.0144329, rel=1e-4)
    assert float(zprime.lmu_ltau_loop(0.0)) == pytest.approx(5.64478, rel=1e-4)
    L0 = float(zprime.lmu_ltau_loop(0.0))
    for q, ratio in ((10.0, 0.99968), (50.0, 0.99228), (100.0, 0.97107), (200.0, 0.90596)):
        assert float(zprime.lmu_ltau_loop(q**2)) / L0 == pytest.approx(ratio, rel=1e-4)


def test_lmu_ltau_loop_matches_closed_form_away_from_cancellation():
    """Second method: the closed form I = −5/18 + (2/3)r + (1/6)(1−2r)β ln((β+1)/(β−1)), r = m²/q²."""
    for m, q in ((C.M_MUON, 200.0), (C.M_MUON, 500.0), (C.M_TAU, 3000.0)):
        r = m**2 / q**2
        beta = math.sqrt(1 + 4 * r)
        closed = -5 / 18 + 2 / 3 * r + (1 - 2 * r) / 6 * beta * math.log((beta + 1) / (beta - 1))
        assert float(zprime.vacuum_polarisation_integral(m, q**2)) == pytest.approx(closed, rel=1e-6)


def test_zprime_charges_on_cesium():
    Z, N, q2 = 55.0, 78.0, 50.0**2
    for F, (lmt, uni) in ((1.0, (5.5617, 93.035)), (0.77532, (4.3121, 72.131))):
        Q = zprime.charge_shift(lmu_minus_ltau(10.0, 1e-3), Z, N, F, F, q2)
        assert float(Q[1]) == pytest.approx(lmt, rel=1e-3)
        assert float(Q[2]) == pytest.approx(-lmt, rel=1e-3) and float(Q[0]) == 0.0
        Qu = zprime.charge_shift(universal(10.0, 1e-4), Z, N, F, F, q2)
        np.testing.assert_allclose(Qu, uni, rtol=1e-3)
    # B−L: −g²(ZF_p + NF_n)/(√2 G_F(q²+M²)), constructive
    Qb = zprime.charge_shift(b_minus_l(10.0, 1e-4), Z, N, 1.0, 1.0, q2)
    assert float(Qb[0]) == pytest.approx(-93.035 / 3, rel=1e-3)


def test_sterile_appearance_probability():
    U = (1 - math.sqrt(1 - 0.04)) / 2  # 4|U_μ4|²(1 − |U_μ4|²) = 0.04
    s = sterile_mixing(1.0, Umu4_sq=U, baseline_spread_m=0.0)
    assert float(sterile.sterile_appearance(s, 1, C.E_NU_MU_PROMPT, 19.3)) == pytest.approx(0.0214128, abs=1e-5)
    P = sterile.transition_probabilities(sterile_mixing(3.0, 0.02, 0.03, 0.01), jnp.array([20.0, 40.0]), 20.0)
    sterile_part = jnp.stack([sterile.sterile_appearance(sterile_mixing(3.0, 0.02, 0.03, 0.01), a, jnp.array([20.0, 40.0]), 20.0)
                              for a in range(3)])
    np.testing.assert_allclose(jnp.sum(P, axis=1) + sterile_part, 1.0, rtol=1e-12)  # unitarity


def test_magnetic_moment_cross_section():
    value = em.magnetic_prefactor(1e-10, 55.0, 1.0) * em.magnetic_kinematics(30.0, 0.005)
    assert float(value) == pytest.approx(1.5090e-39, rel=1e-3)


@pytest.fixture(scope="module")
def ar(presets):
    return presets["COHERENT-CENNS10-2020"]


@pytest.fixture(scope="module")
def counts():
    return jax.jit(lambda exp, model: rates.cevns_counts(exp, model=model))


NULL_MODELS = {
    "universal": NewPhysics(zprime=universal(10.0, 0.0)),
    "lmu_ltau": NewPhysics(zprime=lmu_minus_ltau(10.0, 0.0)),
    "b_minus_l": NewPhysics(zprime=b_minus_l(10.0, 0.0)),
    "nsi": NewPhysics(nsi=nsi_couplings()),
    "em": NewPhysics(em=em_properties()),
    "sterile_no_mixing": NewPhysics(sterile=sterile_mixing(1.0)),
    "sterile_zero_dm2": NewPhysics(sterile=sterile_mixing(0.0, 0.1, 0.1)),
}


@pytest.mark.parametrize("name", list(NULL_MODELS))
def test_null_point_is_the_standard_model(ar, counts, name):
    sm = np.asarray(counts(ar, None))
    np.testing.assert_allclose(np.asarray(counts(ar, NULL_MODELS[name])), sm, rtol=1e-12, atol=1e-12 * sm.max())


def test_sterile_large_dm2_reduces_each_component_by_the_averaged_probability(presets, counts):
    exp = presets["COHERENT-CsI-2021"]
    Ue, Umu = 0.02, 0.03
    model = NewPhysics(sterile=sterile_mixing(5000.0, Ue, Umu))
    sm = np.asarray(counts(exp, None).sum(axis=(1, 2)))
    bsm = np.asarray(counts(exp, model).sum(axis=(1, 2)))
    # averaged: P_αα = 1 − 2|U_α4|²(1 − |U_α4|²); P_αβ = 2|U_α4|²|U_β4|² feeds the other active flavour
    P_mumu, P_mue = 1 - 2 * Umu * (1 - Umu), 2 * Umu * Ue
    P_ee, P_emu = 1 - 2 * Ue * (1 - Ue), 2 * Ue * Umu
    # Q²(ν_e) and Q²(ν_μ) differ by ≈2.8% through the charge radius: tolerance covers the cross terms
    np.testing.assert_allclose(bsm[0] / sm[0], P_mumu + P_mue, rtol=2e-3)
    np.testing.assert_allclose(bsm[2] / sm[2], P_mumu + P_mue, rtol=2e-3)
    np.testing.assert_allclose(bsm[1] / sm[1], P_ee + P_emu, rtol=2e-3)


def test_lmu_ltau_leaves_nue_untouched_and_zprime_signs(ar, counts):
    sm = np.asarray(counts(ar, None).sum(axis=(1, 2)))
    lmt = np.asarray(counts(ar, NewPhysics(zprime=lmu_minus_ltau(10.0, 5e-4))).sum(axis=(1, 2)))
    assert lmt[1] == pytest.approx(sm[1], rel=1e-14)
    assert lmt[0] < sm[0] and lmt[2] < sm[2]
    uni = np.asarray(counts(ar, NewPhysics(zprime=universal(10.0, 2e-5))).sum(axis=(1, 2)))
    bml = np.asarray(counts(ar, NewPhysics(zprime=b_minus_l(10.0, 2e-5))).sum(axis=(1, 2)))
    assert np.all(uni < sm) and np.all(bml > sm)


def test_universal_zprime_second_solution_reproduces_the_sm(ar, counts):
    """Q′ = −2Q_V(ν_μ) gives Q_V → −Q_V: the same ν_μ rate (heavy mediator, q² ≪ M²)."""
    from cevns_jax.xsec import nucleon_couplings, standard_model

    gvp, gvn = nucleon_couplings(standard_model())
    Z, N, M = 18.0, 22.0, 1.0e4
    Q_numu = Z * gvp[1] + N * gvn
    g = math.sqrt(-2 * float(Q_numu) * math.sqrt(2) * C.G_FERMI * M**2 / (3 * (Z + N)))
    from cevns_jax import replace
    from cevns_jax.nuclei import make_target

    ar40 = replace(ar, target=make_target({"40Ar": 1}))
    sm = np.asarray(counts(ar40, None).sum(axis=(1, 2)))
    island = np.asarray(counts(ar40, NewPhysics(zprime=universal(M, g))).sum(axis=(1, 2)))
    assert island[0] == pytest.approx(sm[0], rel=2e-3)
    halfway = np.asarray(counts(ar40, NewPhysics(zprime=universal(M, g / math.sqrt(2)))).sum(axis=(1, 2)))
    assert halfway[0] < 0.05 * sm[0]  # Q_V + Q′ ≈ 0 in between


GRAD_CASES = {
    "universal g": (lambda x: NewPhysics(zprime=universal(10.0, x)), 0.0, 3e-5),
    "lmu_ltau g": (lambda x: NewPhysics(zprime=lmu_minus_ltau(10.0, x)), 0.0, 5e-4),
    "zprime mass": (lambda x: NewPhysics(zprime=universal(x, 3e-5)), 10.0, 10.0),
    "nsi ee_u": (lambda x: NewPhysics(nsi=nsi_couplings(ee_u=x)), 0.0, 0.1),
    "nsi emu_d": (lambda x: NewPhysics(nsi=nsi_couplings(emu_d=x)), 0.0, 0.1),
    "magnetic moment": (lambda x: NewPhysics(em=em_properties(magnetic_moment_muB=x)), 0.0, 1e-9),
    "sterile Umu4": (lambda x: NewPhysics(sterile=sterile_mixing(2.0, Umu4_sq=x)), 0.0, 0.05),
    "sterile dm2": (lambda x: NewPhysics(sterile=sterile_mixing(x, Umu4_sq=0.05)), 2.0, 2.0),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradients_finite_at_null_and_match_finite_differences(ar, name):
    build, null, away = GRAD_CASES[name]
    h = 1e-4 * abs(away)
    # one compiled program per case: value and gradient at the null point, at x0 and at x0 ± h
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(lambda x: rates.total_cevns(ar, model=build(x)))))(
        jnp.asarray([null, away, away + h, away - h], dtype=jnp.float64))
    assert np.isfinite(float(grads[0]))
    fd = (float(values[2]) - float(values[3])) / (2 * h)
    assert float(grads[1]) == pytest.approx(fd, rel=1e-5, abs=1e-9 * float(values[1]) / abs(away))


def test_vmap_over_model_points_equals_loop(ar):
    g = jnp.array([1e-4, 3e-4, 6e-4])
    M = jnp.array([5.0, 20.0, 100.0])
    f = lambda gi, Mi: rates.total_cevns(ar, model=NewPhysics(zprime=lmu_minus_ltau(Mi, gi)))  # noqa: E731
    batched = jax.jit(jax.vmap(f))(g, M)
    np.testing.assert_allclose(batched, [float(jax.jit(f)(g[i], M[i])) for i in range(3)], rtol=1e-12)


def test_bad_model_parameters():
    with pytest.raises(CevnsInputError, match="Z′ mass must be a positive"):
        universal(-1.0, 1e-4)


# ---------------------------------------------------------------------------------------------
# Accelerator-produced dark matter
# ---------------------------------------------------------------------------------------------
from cevns_jax.models import darkmatter as dmod  # noqa: E402
from cevns_jax.models import dark_matter, epsilon_from_Y  # noqa: E402


def test_dark_matter_sanity_values():
    from cevns_jax import form_factors as ff
    from cevns_jax.nuclei import ISOTOPES

    dm = dark_matter(10.0, 30.0, epsilon=1e-4)
    assert float(dmod.branching_ratio(dm)) == pytest.approx(1.6978e-8, rel=1e-4)
    lo, hi = dmod.on_shell_energy_box(dm)
    assert (float(lo), float(hi)) == pytest.approx((11.502, 59.320), abs=1e-3)
    M = ISOTOPES["133Cs"].nuclear_mass_MeV
    assert 1e3 * float(dmod.max_recoil(59.33, 10.0, M)) == pytest.approx(55.211, abs=1e-3)
    # E_min inverts T_max
    assert float(dmod.min_energy(dmod.max_recoil(40.0, 10.0, M), 10.0, M)) == pytest.approx(40.0, rel=1e-12)
    x, w = roots_legendre(2000)  # scipy: O(n²); numpy's leggauss is O(n³), 6–36 s at n = 2000
    Tm = float(dmod.max_recoil(40.0, 10.0, M))
    T = 0.5 * Tm * (x + 1)
    F = ff.helm(jnp.sqrt(2 * M * T), ff.lewin_smith_radius_fm(133.0))
    for particle, value in (("scalar", 4.495e-31), ("dirac", 3.855e-31)):
        d = dark_matter(10.0, 30.0, epsilon=1e-4, particle=particle)
        assert float(jnp.sum(0.5 * Tm * w * dmod.dsigma_dT(d, 40.0, T, M, 55.0, 78.0, F, F))) == pytest.approx(value, rel=3e-3)


@pytest.mark.slow  # a heavy cross-check (tens of seconds of compilation); a lighter one stays in the default tier
def test_dark_matter_counts_scale_as_Y_squared_and_are_prompt(presets):
    exp = presets["COH-Ar-750"]
    f = jax.jit(lambda e, m: rates.expected_counts(e, model=m)["dark_matter"])
    m_chi = 10.0
    n1 = np.asarray(f(exp, NewPhysics(dark_matter=dark_matter(m_chi, epsilon=epsilon_from_Y(1e-10, m_chi)))))
    n2 = np.asarray(f(exp, NewPhysics(dark_matter=dark_matter(m_chi, epsilon=epsilon_from_Y(3e-10, m_chi)))))
    assert n2.sum() == pytest.approx(9.0 * n1.sum(), rel=1e-10)
    t_edges = np.asarray(exp.detector.binning.time_edges_ns)
    prompt = n1.sum(axis=0)[t_edges[1:] <= 1500.0].sum()
    assert prompt > 0.95 * n1.sum()
    # the CEvNS components are untouched by the dark-matter model
    sm = rates.expected_counts(exp)
    with_dm = rates.expected_counts(exp, model=NewPhysics(dark_matter=dark_matter(m_chi, epsilon=1e-4)))
    np.testing.assert_allclose(with_dm["prompt_numu"], sm["prompt_numu"], rtol=1e-14)


def test_dark_matter_zero_coupling_and_gradient(presets):
    exp = presets["COH-Ar-750"]
    counts = lambda eps: jnp.sum(rates.dark_matter_counts(exp, dark_matter(10.0, 30.0, epsilon=eps)))  # noqa: E731
    both = jax.jit(jax.vmap(jax.value_and_grad(counts)))  # one program (eager would compile every op)
    eps, h = 1e-4, 1e-8
    (zero, total, up, down), (grad0, grad, _, _) = np.asarray(both(jnp.array([0.0, eps, eps + h, eps - h])))
    assert zero == 0.0 and np.isfinite(grad0)
    assert grad == pytest.approx((up - down) / (2 * h), rel=1e-5)
    assert grad == pytest.approx(4 * total / eps, rel=1e-8)  # N ∝ ε⁴


def test_dark_matter_bad_input():
    with pytest.raises(CevnsInputError, match="2 m_χ < m_η"):
        dark_matter(280.0, epsilon=1e-4)  # 2m_χ > m_η: no meson channel open
    with pytest.raises(CevnsInputError, match="exactly one of epsilon"):
        dark_matter(10.0)


# ---------------------------------------------------------------------------------------------
# Model files and the command line
# ---------------------------------------------------------------------------------------------
def test_model_files_and_cli(capsys, tmp_path):
    import json

    from cevns_jax import cli
    from cevns_jax.models.config import model_from_dict

    sm, model = model_from_dict({"zprime": {"kind": "lmu_ltau", "mass_MeV": 10.0, "g": 5e-4},
                                 "sterile": {"dm2_eV2": 2.0, "Umu4_sq": 0.05},
                                 "nsi": {"ee_u": 0.1, "emu_d": 0.02},
                                 "dark_matter": {"m_chi_MeV": 10.0, "Y": 1e-11}})
    assert float(model.zprime.g_nu[1]) == 5e-4 and float(model.nsi.eps_d[1, 0]) == 0.02
    assert float(dmod.benchmark_Y(model.dark_matter.coupling, 10.0, 30.0)) == pytest.approx(1e-11, rel=1e-12)
    for bad, pattern in (({"zprime": {"kind": "universal", "mass_MeV": -3.0, "g": 1e-4}}, r"zprime\.mass_MeV: must be > 0"),
                         ({"nsi": {"ex_u": 0.1}}, "unknown NSI entries ex_u"),
                         ({"sterile": {"dm2_eV2": 1.0, "Umu4_sq": 0.7, "Ue4_sq": 0.4}}, "must be < 1"),
                         ({"axion": {}}, r"unknown field\(s\) 'axion'")):
        with pytest.raises(CevnsInputError, match=pattern):
            model_from_dict(bad, "m.toml")
    path = tmp_path / "dm.toml"
    path.write_text('[dark_matter]\nm_chi_MeV = 10.0\nY = 1e-11\n')
    assert cli.main(["predict", "COH-Ar-750", "--model", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dark_matter"] > 0 and out["model"] == str(path)


@pytest.mark.slow  # a heavy cross-check (tens of seconds of compilation); a lighter one stays in the default tier
def test_neutron_radius_is_a_free_differentiable_parameter(presets):
    """With the helm_rms form factor the neutron radius is a leaf: larger R_n lowers the rate."""
    from cevns_jax import replace
    from cevns_jax.nuclei import make_target

    exp = presets["COHERENT-CsI-2021"]
    exp = replace(exp, target=make_target("CsI", form_factor="helm_rms"))

    def total(delta):
        tgt = replace(exp.target, neutron_radius_fm=exp.target.neutron_radius_fm + delta)
        return rates.total_cevns(replace(exp, target=tgt))

    g = float(jax.grad(total)(0.0))
    h = 1e-3
    assert g < 0
    assert g == pytest.approx((float(total(h)) - float(total(-h))) / (2 * h), rel=1e-5)


def test_scalar_mediator_two_routes_and_null(presets):
    """The analytic J₂ folding of the scalar term equals the 64-node E-quadrature route (sterile, Δm² = 0)."""
    from cevns_jax.models import scalar_mediator

    exp = presets["COHERENT-CsI-2021"]
    f = jax.jit(lambda m: rates.cevns_counts(exp, model=m))
    sm = np.asarray(f(None))
    analytic = np.asarray(f(NewPhysics(scalar=scalar_mediator(10.0, 1e-5))))
    quadrature = np.asarray(f(NewPhysics(scalar=scalar_mediator(10.0, 1e-5), sterile=sterile_mixing(0.0))))
    np.testing.assert_allclose(analytic, quadrature, rtol=1e-10)
    assert np.all(analytic.sum(axis=(1, 2)) > sm.sum(axis=(1, 2)))  # incoherent: only adds
    np.testing.assert_allclose(np.asarray(f(NewPhysics(scalar=scalar_mediator(10.0, 0.0)))), sm, rtol=1e-14)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_tabulated_dark_matter_spectrum_reproduces_the_box(presets):
    """A table of the at-rest box spectrum with the at-rest yield gives the same counts (second route)."""
    exp = presets["COH-Ar-750"]
    eps = 1e-4
    # the π⁰ channel alone; α_D = 1e-9: the on-shell box (off-shell parts O(Γ_V/m_V) ~ 1e-11)
    box = dark_matter(10.0, 30.0, eps, 1e-9, eta_per_proton=0.0, piminus_per_proton=0.0, pi0_at_rest=True)
    lo, hi = (float(x) for x in dmod.on_shell_energy_box(box))
    E = np.linspace(lo, hi, 50)
    pi0 = dmod.at_source(box, exp.source).pi0_per_proton  # the facility's yield, as rates.dark_matter_counts takes it
    yield_per_eps2 = float(2 * pi0 * dmod.branching_ratio(box)) / eps**2
    table = dark_matter(10.0, 30.0, eps, 1e-9, spectrum=(E, np.ones_like(E), yield_per_eps2))
    a = float(jnp.sum(rates.dark_matter_counts(exp, box)))
    b = float(jnp.sum(rates.dark_matter_counts(exp, table)))
    assert b == pytest.approx(a, rel=1e-8)


def test_pi0_nuisance_scales_dark_matter(presets):
    from cevns_jax.nuisances import predicted_counts

    exp = presets["COH-Ar-750"]
    model = NewPhysics(dark_matter=dark_matter(10.0, epsilon=1e-4))
    # one compiled program (eagerly, the forward model was ~500 small compilations)
    total = jax.jit(lambda nu: predicted_counts(exp, {"pi0": nu}, model=model)["dark_matter"].sum())
    base, up = float(total(0.0)), float(total(0.15))
    assert base > 0 and up == pytest.approx(np.exp(0.15) * base, rel=1e-12)  # log-normal π⁰ yield (cevns_jax.nuisances)


def test_pi0_yield_follows_the_facility(presets):
    """Every facility carries its own π⁰ yield with a source; dark-matter counts scale with the yield of the
    experiment's facility (fluence ∝ f_π0, docs/physics.md §4.3) on both routes (predicted_counts, forecasts)."""
    from cevns_jax import replace
    from cevns_jax.facilities import FACILITIES
    from cevns_jax.stats.forecast import signals
    from cevns_jax.models import at_source
    from cevns_jax.nuisances import predicted_counts

    for f in FACILITIES.values():
        assert f.pi0_per_proton > 0 and 0 < f.pi0_rel_uncertainty < 1 and len(f.pi0_source) > 40, f.name
    exp = presets["COH-Ar-750"]  # SNS-PPU
    ppu, ess = FACILITIES["SNS-PPU"].pi0_per_proton, FACILITIES["ESS"].pi0_per_proton
    assert ppu != 0.106 and ess != ppu  # otherwise the ratios below could not fail
    follow = NewPhysics(dark_matter=dark_matter(10.0, epsilon=1e-4))
    own = FACILITIES["SNS-PPU"]  # fixed yields in the facility's channel ratios
    fixed = dark_matter(10.0, epsilon=1e-4, pi0_per_proton=0.106, eta_per_proton=own.eta_per_proton * 0.106 / ppu,
                        piminus_per_proton=own.piminus_per_proton * 0.106 / ppu)
    routes = jax.jit(lambda: (predicted_counts(exp, {}, model=follow)["dark_matter"].sum(),  # one program
                              rates.dark_matter_counts(exp, fixed).sum(), signals(exp, follow).dark_matter.nominal.sum()))
    a, at_fixed, forecast = (float(v) for v in routes())
    assert a == pytest.approx(at_fixed * ppu / 0.106, rel=1e-12)
    assert forecast == pytest.approx(a, rel=1e-12)
    # another facility: the fluence (hence every count) scales with its yield; own yields are kept
    at_ess = replace(exp.source, name="ESS")
    ratio = dmod.fluence(at_source(follow.dark_matter, at_ess), 1.0, 20.0) / dmod.fluence(
        at_source(follow.dark_matter, exp.source), 1.0, 20.0)
    assert float(ratio) == pytest.approx(ess / ppu, rel=1e-14)
    kept = at_source(fixed, at_ess)  # own yields kept; the π⁰ speeds are the facility's (π⁰ in flight)
    assert all(getattr(kept, f) is getattr(fixed, f) for f in ("pi0_per_proton", "eta_per_proton", "piminus_per_proton"))
    assert kept.pi0_rapidity is not None and at_source(dark_matter(10.0, epsilon=1e-4, pi0_at_rest=True),
                                                       at_ess).pi0_rapidity is None
    once = at_source(follow.dark_matter, at_ess)
    assert float(at_source(once, at_ess).pi0_per_proton) == ess


def test_pi0_prior_follows_the_facility(presets):
    """The ``pi0`` prior of a forecast is the uncertainty the facility states for its π⁰ yield (15% for the
    GEANT yield of the SNS eras, 25% where it is scaled), unless a width is given; detectors that share a
    target station but state different widths share the widest, in either order (docs/physics.md §5.1)."""
    from cevns_jax.facilities import FACILITIES
    from cevns_jax.stats.forecast import ForecastSpec, program_labels

    ar, csi, sts = presets["COH-Ar-750"], presets["COHERENT-CsI-2021"], presets["COH-CryoCsI-700kg"]
    ppu, era = FACILITIES["SNS-PPU"].pi0_rel_uncertainty, FACILITIES["SNS-2021"].pi0_rel_uncertainty
    assert ppu > era  # otherwise "the widest" could not be told from "the first"
    spec = ForecastSpec(dark_matter=True)
    assert program_labels([ar], spec)[1]["pi0"] == ppu and program_labels([csi], spec)[1]["pi0"] == era
    for pair in ([ar, csi], [csi, ar]):  # one First Target Station: one shared π⁰ nuisance
        local, priors = program_labels(pair, spec)
        assert [m["pi0"] for m in local] == ["pi0", "pi0"] and priors["pi0"] == ppu
    assert program_labels([ar, csi], ForecastSpec(dark_matter=True, pi0_prior=0.1))[1]["pi0"] == 0.1
    priors = program_labels([ar, sts], spec)[1]  # two target stations: two π⁰ nuisances, each its facility's
    assert {k: v for k, v in priors.items() if k.endswith("pi0")} == {
        "SNS-FTS/pi0": ppu, "SNS-STS/pi0": FACILITIES["SNS-STS"].pi0_rel_uncertainty}
    assert "pi0" not in program_labels([ar], ForecastSpec())[1]  # no dark matter, no π⁰ nuisance


def test_lmu_ltau_loop_jitted_on_a_recoil_grid_equals_numpy():
    """ℒ(q²) on a 2-D (isotope × recoil) grid under jit against a NumPy evaluation of the same quadrature
    (XLA once fused log1p with the reduction inaccurately: 3% off under jit only)."""
    from cevns_jax import constants as C
    from cevns_jax.models import zprime as zp

    q2 = np.outer(np.linspace(1.0, 2.0, 5), np.geomspace(1.0, 4e4, 300))
    x, w = np.polynomial.legendre.leggauss(16)
    x, w = 0.5 * (x + 1.0), 0.5 * w
    u = x * (1.0 - x)
    def vp(m):
        return np.sum(w * u * np.log1p(u * q2[..., None] / m**2), axis=-1)
    ref = np.log(C.M_TAU**2 / C.M_MUON**2) + 6.0 * (vp(C.M_TAU) - vp(C.M_MUON))
    np.testing.assert_allclose(np.asarray(jax.jit(zp.lmu_ltau_loop)(jnp.asarray(q2))), ref, rtol=1e-12)
