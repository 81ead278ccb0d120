"""User-set physics: nuclear masses and radii, Helm skin, coupling schemes, the T²/(2E²) term and a
fluence exposure, in Python and in TOML ([physics], [detector.nuclear], source.fluence_per_flavour_cm2)."""

import copy
import math
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

from cevns_jax import constants as C
from cevns_jax import CevnsInputError, make_target, replace, standard_model
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict
from cevns_jax.form_factors import nucleon_form_factors
from cevns_jax.kinematics import min_neutrino_energy
from cevns_jax.models.sterile import mixing
from cevns_jax.nuclei import units_per_kg
from cevns_jax.rates import background_counts, events_per_recoil_node
from cevns_jax.source import fluence_per_flavour, michel_spectrum_nue, michel_spectrum_numubar
from cevns_jax.xsec import PDG2004_RADIATIVE, component_rates, folded_kinematic_factors, kinematic_factor
from cevns_jax.xsec import nucleon_couplings

M_E, U = 0.51099895, 931.49410242  # CODATA 2018 m_e and u [MeV], written out for the independent arithmetic


@pytest.fixture(scope="module")
def ge_spec():
    return tomllib.loads((PRESET_DIR / "COH-Ge-mini.toml").read_text())


_node_events = jax.jit(lambda experiment, sm: events_per_recoil_node(experiment, sm=sm)[1])


def node_events(experiment, sm=None):
    """Expected events at each recoil node (3, n_iso, n_T): the counts before the detector response,
    which is the same linear map for every electroweak or exposure setting compared here."""
    return np.asarray(_node_events(experiment, sm))


# ----------------------------------------------------------------------------------------------
# Nuclear inputs
# ----------------------------------------------------------------------------------------------
def test_molar_mass_follows_given_nuclear_masses():
    # pyCEvNS data/det_init.json CsI masses (athompson-tamu/pyCEvNS): 123.8e3 and 118.21e3 MeV
    t = make_target("CsI", mass_MeV={"133Cs": 123800.0, "I": 118210.0})
    molar = (123800.0 + 55 * M_E) / U + (118210.0 + 53 * M_E) / U
    assert float(t.molar_mass_g_per_mol) == pytest.approx(molar, rel=1e-14)
    assert float(units_per_kg(t)) == pytest.approx(6.02214076e26 / molar, rel=1e-14)
    # the default (AME2020) CsI formula unit: 259.81 g/mol (docs/physics.md §2.5, IUPAC atomic weights)
    assert float(make_target("CsI").molar_mass_g_per_mol) == pytest.approx(259.81, abs=0.01)
    # replace() of the masses cannot leave the molar mass stale: it is derived
    moved = replace(t, mass_MeV=t.mass_MeV + 931.49410242)
    assert float(moved.molar_mass_g_per_mol) == pytest.approx(molar + 2.0, rel=1e-14)


def test_common_helm_radius_and_skin_equal_the_helm_formula():
    """One R₀ for every isotope (helm_r0) and a common rms radius (helm_rms) against the Helm formula
    written with scipy's spherical Bessel function."""
    R0, s = 4.9, 1.1
    q = np.array([10.0, 40.0, 90.0])  # MeV
    x = q / C.HBARC_MEV_FM

    def helm(R):
        return 3 * special.spherical_jn(1, x * R) / (x * R) * np.exp(-0.5 * (x * s) ** 2)

    t = make_target("CsI", form_factor="helm_r0", helm_radius_fm=R0, skin_fm=s)
    Fp, Fn = nucleon_form_factors(replace(t, helm_radius_fm=t.helm_radius_fm[:, None]), jnp.asarray(q))
    np.testing.assert_allclose(np.asarray(Fp), np.stack([helm(R0)] * 2), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(Fp), np.asarray(Fn))
    # pyCEvNS HelmFormFactor: rms radius r = 4.7 fm, R₀ = √(5/3 r² − 5 s²)
    r = 4.7
    t = make_target("CsI", form_factor="helm_rms", proton_radius_fm=r, neutron_radius_fm=r, skin_fm=s)
    col = replace(t, proton_radius_fm=t.proton_radius_fm[:, None], neutron_radius_fm=t.neutron_radius_fm[:, None])
    Fp, Fn = nucleon_form_factors(col, jnp.asarray(q))
    np.testing.assert_allclose(np.asarray(Fn), np.stack([helm(math.sqrt(5 / 3 * r**2 - 5 * s**2))] * 2), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Kinematic T²/(2E²) term
# ----------------------------------------------------------------------------------------------
def test_t2_term_flux_folding_against_quad():
    """Analytic folding with the T² term vs scipy quad of the Michel spectra × the library's
    kinematic factor (with the term)."""
    M = float(make_target({"23Na": 1}).mass_MeV[0])  # light nucleus: the term is largest
    T = np.array([0.005, 0.05, 0.15, 0.22])
    K = np.asarray(folded_kinematic_factors(jnp.asarray(T), M, True))
    K0 = np.asarray(folded_kinematic_factors(jnp.asarray(T), M, False))
    for c, spectrum in ((1, michel_spectrum_nue), (2, michel_spectrum_numubar)):
        for k, Tk in enumerate(T):
            E1 = float(min_neutrino_energy(Tk, M))
            f = lambda E: float(spectrum(E) * kinematic_factor(E, Tk, M, True))  # noqa: E731
            ref = integrate.quad(f, E1, C.E_NU_MAX_MICHEL, epsabs=0, epsrel=1e-12)[0]
            assert K[c, k] == pytest.approx(ref, rel=1e-9, abs=1e-15)
    # the term is what it claims to be: T²/2 ⟨E⁻²⟩ (and not zero)
    extra = K[1] - K0[1]
    ref = [integrate.quad(lambda E: michel_spectrum_nue(E) / E**2, float(min_neutrino_energy(t, M)),
                          C.E_NU_MAX_MICHEL, epsrel=1e-12)[0] * t**2 / 2 for t in T]
    np.testing.assert_allclose(extra, ref, rtol=1e-9)
    assert np.all(extra > 0)
    E = C.E_NU_MU_PROMPT
    np.testing.assert_allclose(K[0] - K0[0], np.where(K0[0] > 0, T**2 / (2 * E**2), K[0]), rtol=1e-6, atol=1e-15)


def test_t2_term_honoured_by_the_oscillation_path():
    """The sterile path (64-node quadrature, here with zero mixing) adds the same T² contribution as
    the analytic folding."""
    t = make_target({"40Ar": 1})
    T = jnp.asarray(np.geomspace(1e-3, 0.1, 7))[None, :]
    from cevns_jax.models import NewPhysics

    model = NewPhysics(sterile=mixing(1.0))  # all |U|² = 0: no oscillation
    rates_of = jax.jit(component_rates)
    diffs, rates = [], []
    for m in (None, model):
        on = rates_of(standard_model(t2_term=True), m, t, T, 20.0)
        off = rates_of(standard_model(), m, t, T, 20.0)
        diffs.append(np.asarray(on - off))
        rates.append(np.asarray(off))
    # the term is 1e-9 to 1e-6 of the rate here; the two paths agree to 1e-12 of the rate (64-node quadrature)
    assert np.all(diffs[0][1:] > 1e-10 * rates[0][1:])
    assert np.all(np.abs(diffs[1] - diffs[0]) <= 1e-12 * np.abs(rates[0]))


# ----------------------------------------------------------------------------------------------
# Coupling schemes
# ----------------------------------------------------------------------------------------------
def test_radiative_pdg_parameters_reproduce_published_couplings():
    """PDG-2004 ρ, κ̂, λ with ŝ²(M_Z) = 0.2312 give g_V^p = 0.0304, g_V^n = −0.5122 (Barranco, Miranda &
    Rashba, JHEP 0512, 021 (2005); docs/physics.md §2.3). They agree with the default "rc" ν_μ couplings
    (Erler & Su, arXiv:1303.5522: 0.0298 with the ν_μ charge radius, −0.5117) to the rounding of the
    older parameters; "rc" differs between flavours by the charge-radius term δ_ℓ − δ_μ only."""
    sm = standard_model("radiative", **PDG2004_RADIATIVE)
    gvp, gvn = nucleon_couplings(sm)
    np.testing.assert_allclose(np.asarray(gvp), [0.0304] * 3, atol=5e-5)
    assert float(gvn) == pytest.approx(-0.5122, abs=5e-5)
    rc_p, rc_n = nucleon_couplings(standard_model("rc"))
    assert abs(float(gvp[1] - rc_p[1])) < 1e-3 and abs(float(gvn - rc_n)) < 1e-3
    # the charge-radius shifts, SM values δ_e, δ_μ, δ_τ = 0.019691, 0.011435, 0.007064 (docs/physics.md §2.3)
    np.testing.assert_allclose(np.asarray(rc_p - rc_p[1]), np.array([0.019691, 0.011435, 0.007064]) - 0.011435, atol=2e-6)
    # a per-flavour κ̂ carrying those shifts reproduces the rc flavour structure
    kappa = 0.9978 - (np.array([0.019691, 0.011435, 0.007064]) - 0.011435) / (2 * 1.0086 * 0.2312)
    gvp_k, _ = nucleon_couplings(standard_model("radiative", **{**PDG2004_RADIATIVE, "kappa": kappa}))
    np.testing.assert_allclose(np.asarray(gvp_k - gvp_k[1]), np.asarray(rc_p - rc_p[1]), atol=2e-6)


def test_explicit_tree_couplings_reproduce_tree_counts(ge_spec):
    s2 = C.SIN2_THETA_W_LOW_ENERGY
    spec = copy.deepcopy(ge_spec)
    spec["physics"] = {"couplings": "explicit", "gvp": [0.5 - 2 * s2] * 3, "gvn": -0.5}
    exp = experiment_from_dict(spec, label="explicit.toml")
    plain = experiment_from_dict(ge_spec, label="plain.toml")
    tree = node_events(plain, standard_model("tree"))
    np.testing.assert_allclose(node_events(exp), tree, rtol=1e-14)  # the experiment's own [physics] is used
    assert np.sum(node_events(plain)) != pytest.approx(np.sum(tree), rel=1e-3)  # (rc differs: the check can fail)
    # an explicit sm argument still wins over the experiment's own configuration
    np.testing.assert_allclose(node_events(exp, standard_model()), node_events(plain), rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# Fluence exposure
# ----------------------------------------------------------------------------------------------
def test_fluence_exposure_reproduces_the_preset(ge_spec):
    preset = experiment_from_dict(ge_spec, label="COH-Ge-mini.toml")
    phi = float(fluence_per_flavour(preset.source, preset.detector.baseline_m))
    spec = copy.deepcopy(ge_spec)
    del spec["source"]["years"]
    spec["source"]["fluence_per_flavour_cm2"] = phi
    exp = experiment_from_dict(spec, label="fluence.toml")
    assert float(exp.source.protons_on_target) == pytest.approx(float(preset.source.protons_on_target), rel=1e-13)
    np.testing.assert_allclose(node_events(exp), node_events(preset), rtol=1e-12)
    a, b = background_counts(preset), background_counts(exp)  # per kg·day and per kg·GWh follow the derived POT
    assert set(a) == set(b) == {"steady_state", "brn"}
    for k in a:
        np.testing.assert_allclose(np.asarray(b[k]), np.asarray(a[k]), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Validation: every new field's bad value names file, table and field
# ----------------------------------------------------------------------------------------------
def _set(path, value, form_factor=None):
    def edit(spec):
        node = spec
        *head, last = path.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
        if form_factor:
            spec["detector"]["form_factor"] = form_factor
    return edit


def _drop_years_add(value):
    def edit(spec):
        del spec["source"]["years"]
        spec["source"]["fluence_per_flavour_cm2"] = value
    return edit


BAD = [
    (_set("detector.nuclear.mass_MeV", {"70Ge": -1.0}), r"t\.toml\.detector\.nuclear\.mass_MeV\['70Ge'\]: -1.0 MeV is not"),
    (_set("detector.nuclear.mass_MeV", {"70Ge": 65.13}), r"detector\.nuclear\.mass_MeV\['70Ge'\].*A·u"),
    (_set("detector.nuclear.mass_MeV", {"Ge": 65130.0}), r"detector\.nuclear\.mass_MeV\['Ge'\]: the element has 5 isotopes"),
    (_set("detector.nuclear.mass_MeV", {"133Cs": 123800.0}), r"mass_MeV\['133Cs'\]: not an isotope or element"),
    (_set("detector.nuclear.mass_MeV", 65130.0), r"detector\.nuclear\.mass_MeV: must be a table"),
    (_set("detector.nuclear.mass_MeV", {"70Ge": "heavy"}), r"detector\.nuclear\.mass_MeV\.70Ge: must be a number"),
    (_set("detector.nuclear.helm_radius_fm", 4.0), r"detector\.nuclear\.helm_radius_fm: required by, and used only by"),
    (_set("detector.form_factor", "helm_r0"), r"detector\.nuclear\.helm_radius_fm: required by"),
    (_set("detector.nuclear.helm_radius_fm", -4.0, "helm_r0"), r"helm_radius_fm\['70Ge'\]: must be > 0"),
    (_set("detector.nuclear.helm_radius_fm", {"Ge": 4.0, "70Ge": 4.1}, "helm_r0"), r"helm_radius_fm\['70Ge'\]: 70Ge is given twice"),
    (_set("detector.nuclear.proton_radius_fm", 1.2, "helm_rms"), r"detector\.nuclear\.proton_radius_fm\['70Ge'\]: 1\.2 fm must exceed"),
    (_set("detector.nuclear.neutron_radius_fm", {"Ge": 0.0}, "helm_rms"), r"detector\.nuclear\.neutron_radius_fm\['70Ge'\]"),
    (_set("detector.nuclear.neutron_radius_fm", 4.1), r"neutron_radius_fm: used only by form_factor = 'helm_rms'"),
    (_set("detector.nuclear.skin_fm", -0.1), r"detector\.nuclear\.skin_fm: must be >= 0"),
    (_set("detector.nuclear.skin_fm", 3.0), r"detector\.nuclear\.skin_fm: 3\.0 fm is too large"),
    (_set("detector.nuclear.skin_fm", "thin"), r"detector\.nuclear\.skin_fm: must be a number"),
    (_set("detector.nuclear.skin_fm", 0.9, "klein_nystrand"), r"detector\.nuclear\.skin_fm: used only by the Helm"),
    (_set("detector.nuclear.radius", 4.0), r"detector\.nuclear: unknown field\(s\) 'radius'"),
    (_set("physics.couplings", "loop"), r"t\.toml\.physics\.couplings: unknown value 'loop'"),
    (_set("physics.rho", 1.01), r"physics\.rho: not a parameter of the 'rc' coupling scheme"),
    (_set("physics", {"couplings": "radiative", "rho": 1.0, "kappa": 1.0}), r"physics\.lambda_uL: required by"),
    (_set("physics", {"couplings": "radiative", **{**PDG2004_RADIATIVE, "kappa": [1.0, 1.0]}}), r"physics\.kappa: must have 3 entries"),
    (_set("physics", {"couplings": "explicit", "gvp": 0.03, "gvn": float("nan")}), r"physics\.gvn: must be finite"),
    (_set("physics", {"couplings": "explicit", "gvp": 0.03, "gvn": -0.5, "sin2_theta_w": 0.23}), r"physics\.sin2_theta_w: not used"),
    (_set("physics", {"couplings": "explicit", "gvn": -0.5}), r"physics\.gvp: required by the 'explicit'"),
    (_set("physics.t2_term", 1), r"physics\.t2_term: must be true or false"),
    (_set("physics.sin2_theta_w", 1.5), r"physics\.sin2_theta_w: must lie in \(0, 1\)"),
    (_set("physics.alpha", 0.007), r"physics: unknown field\(s\) 'alpha'"),
    (_drop_years_add(-1e14), r"source\.fluence_per_flavour_cm2: must be > 0"),
    (_set("source.fluence_per_flavour_cm2", 1e14), r"source: give exactly one of .*found \['years', 'fluence_per_flavour_cm2'\]"),
]


@pytest.mark.parametrize("edit,pattern", BAD)
def test_bad_physics_input_names_the_field(ge_spec, edit, pattern):
    spec = copy.deepcopy(ge_spec)
    edit(spec)
    with pytest.raises(CevnsInputError, match=pattern):
        experiment_from_dict(spec, label="t.toml")


def test_python_constructors_validate():
    with pytest.raises(CevnsInputError, match=r"mass_MeV\['127I'\]"):
        make_target("CsI", mass_MeV={"127I": 0.0})
    with pytest.raises(CevnsInputError, match="gvp: must be a finite number or a list of 3"):
        standard_model("explicit", gvp=[0.03, 0.03], gvn=-0.5)
    with pytest.raises(CevnsInputError, match="couplings: unknown coupling scheme"):
        standard_model("loop")


# ----------------------------------------------------------------------------------------------
# Differentiability of the new leaves
# ----------------------------------------------------------------------------------------------
def test_gradients_through_new_leaves(ge_spec):
    spec = copy.deepcopy(ge_spec)
    spec["detector"]["form_factor"] = "helm_r0"
    spec["detector"]["nuclear"] = {"helm_radius_fm": 4.3, "skin_fm": 0.95}
    spec["physics"] = {"couplings": "radiative", **PDG2004_RADIATIVE, "t2_term": True}
    exp = experiment_from_dict(spec, label="grad.toml")
    x0 = {"R0": exp.target.helm_radius_fm, "s": exp.target.skin_fm, "M": exp.target.mass_MeV,
          "rho": exp.electroweak.rho, "kappa": exp.electroweak.kappa}

    @jax.jit
    def f(x):
        target = replace(exp.target, helm_radius_fm=x["R0"], skin_fm=x["s"], mass_MeV=x["M"])
        ew = replace(exp.electroweak, rho=x["rho"], kappa=x["kappa"])
        return jnp.sum(events_per_recoil_node(replace(exp, target=target, electroweak=ew))[1])

    g = jax.grad(f)(x0)
    for key, idx in (("R0", (0,)), ("s", ()), ("M", (3,)), ("rho", ()), ("kappa", (1,))):
        base = np.asarray(x0[key], dtype=np.float64)
        h = 1e-5 * max(abs(float(base[idx])), 1.0)
        up, dn = base.copy(), base.copy()
        up[idx] += h
        dn[idx] -= h
        fd = (float(f({**x0, key: jnp.asarray(up)})) - float(f({**x0, key: jnp.asarray(dn)}))) / (2 * h)
        got = float(np.asarray(g[key])[idx])
        assert got == pytest.approx(fd, rel=1e-5, abs=1e-9 * float(f(x0))), key
        assert got != 0.0, key
