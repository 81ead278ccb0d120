"""The ν–d breakup channel and the COH-D2O flux monitor (docs/physics.md §11).

Independent references: COHERENT's flux-averaged ν–d cross sections (arXiv:2104.09605, quoting Nakamura et
al.), the thresholds from particle masses, deuterons per kg from the molar mass of D₂O, the analytic limits
N ∝ mass/L² and σ(flux) → 1/√N of a background-free counting experiment, and a refined quadrature.
"""

import copy
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import constants as C
from cevns_jax.deuteron import cross_sections_cm2, deuteron_counts, deuterons_per_kg, flux_averaged_cm2
from cevns_jax.errors import CevnsInputError
from cevns_jax.experiment import experiment_from_dict
from cevns_jax.experiment.load import PRESET_DIR
from cevns_jax.nuisances import predicted_counts
from cevns_jax.rates import expected_counts
from cevns_jax.stats.fisher import fisher_blocks


_counts = jax.jit(deuteron_counts)  # one compiled program per experiment structure


def _preset(name):
    return tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())


def _small_d2o(**changes):
    """COH-D2O with few bins (fast), optionally changed: {table path: value or None to delete}."""
    d = copy.deepcopy(_preset("COH-D2O"))
    d["bins"] = {"energy_edges": [10000.0, 25000.0, 40000.0, 55000.0], "time_edges_us": [0.0, 2.0, 8.0]}
    for path, value in changes.items():
        *head, key = path.split(".")
        t = d
        for h in head:
            t = t.setdefault(h, {})
        if value is None:
            t.pop(key, None)
        else:
            t[key] = value
    return d


@pytest.fixture(scope="module")
def d2o():
    return experiment_from_dict(_small_d2o(), label="d2o.toml")


@pytest.fixture(scope="module")
def ideal():
    """Background-free D₂O seeing every CC electron: flat efficiency 1, 0–60 MeV, 0–40 μs (τ_μ = 2.2 μs)."""
    return experiment_from_dict(_small_d2o(**{
        "backgrounds": None, "bins.energy_edges": [0.0, 60000.0], "bins.time_edges_us": [0.0, 40.0],
        "detector.efficiency": {"model": "flat", "value": 1.0}, "detector.deuteron.nc_efficiency": 0.0,
        "systematics": {"flux": 1e3}}), label="ideal.toml")


def test_flux_averaged_cross_sections_match_coherent():
    """COHERENT (arXiv:2104.09605) quotes ⟨σ⟩ = 5.5e-41 cm² (delayed ν_e CC) and 1.8e-41 cm² (prompt ν_μ NC);
    the table folded with the Michel spectrum and taken at 29.79 MeV must agree within their rounding."""
    avg = flux_averaged_cm2()
    assert abs(float(avg["delayed_nue_cc"]) / 5.5e-41 - 1) < 0.01
    assert abs(float(avg["prompt_numu_nc"]) / 1.8e-41 - 1) < 0.03
    # ν̄ NC below ν NC at every energy (V−A interference), both below CC
    nc, nc_bar, cc = (np.asarray(s) for s in cross_sections_cm2(np.array([10.0, 30.0, 50.0])))
    assert np.all(nc_bar < nc) and np.all(nc < cc)


def test_thresholds_from_masses():
    """σ_CC vanishes below Q = 2m_p + m_e − m_d = 1.442 MeV, σ_NC below B_d = 2.2246 MeV (CODATA masses)."""
    assert abs(C.Q_NUE_D_CC - 1.4422) < 1e-3 and abs(C.B_DEUTERON - 2.2246) < 1e-3
    nc, nc_bar, cc = (np.asarray(s) for s in cross_sections_cm2(np.array([1.40, 2.0, 2.20, 2.6])))
    assert cc[0] == 0.0 and cc[1] > 0.0
    assert nc[2] == 0.0 and nc_bar[2] == 0.0 and nc[3] > 0.0


def test_quadrature_converged(d2o):
    """Halving every energy panel changes the flux averages and the counts by < 1e-6 (error target)."""
    a, b = flux_averaged_cm2(1), flux_averaged_cm2(2)
    for k in a:
        assert abs(float(a[k]) / float(b[k]) - 1) < 1e-6
    from cevns_jax import replace

    fine = replace(d2o, detector=replace(d2o.detector, binning=replace(d2o.detector.binning, refine=2)))
    c1, c2 = _counts(d2o)["nu_d_cc"], _counts(fine)["nu_d_cc"]
    assert float(jnp.max(jnp.abs(c1 - c2) / c2)) < 1e-6


def test_counts_of_an_ideal_detector(ideal):
    """All CC electrons seen: N = N_d Φ_νe ⟨σ_CC⟩, N_d = 2 N_A m / M(D₂O), M = 20.0276 g/mol."""
    n_d = 2 * C.AVOGADRO * 592e3 / 20.0276
    assert abs(float(deuterons_per_kg(ideal.target)) * 592.0 / n_d - 1) < 1e-4
    phi = float(ideal.source.fluence_cm2(20.0)[1])
    N = float(jnp.sum(_counts(ideal)["nu_d_cc"]))
    assert abs(N / (n_d * phi * float(flux_averaged_cm2()["delayed_nue_cc"])) - 1) < 1e-4


def test_no_cevns_and_finite_counts(d2o):
    c = jax.jit(expected_counts)(d2o)
    for name in d2o.source.components:
        assert float(jnp.max(jnp.abs(c[name]))) == 0.0  # nuclear recoils are invisible to a Cherenkov detector
    for name in ("nu_d_cc", "nu_d_nc"):
        assert bool(jnp.all(jnp.isfinite(c[name]))) and float(jnp.min(c[name])) >= 0.0
    assert float(jnp.sum(c["nu_d_cc"])) > 100.0 and float(jnp.sum(c["nu_d_nc"])) < 1e-3 * float(jnp.sum(c["nu_d_cc"]))


def test_counts_follow_the_flux_nuisance(d2o):
    """ν–d counts scale as e^ν_flux (log-normal), (1 + ν) in mass, efficiency and the ν–d cross section."""
    names = ("flux", "mass", "efficiency", "deuteron_cross_section")
    at = jax.jit(lambda nu: predicted_counts(d2o, nu))
    zero = {n: jnp.asarray(0.0) for n in names}
    base = at(zero)
    for name, factor in zip(names, (np.exp(0.1), 1.1, 1.1, 1.1)):
        moved = at({**zero, name: jnp.asarray(0.1)})
        for ch in ("nu_d_cc", "nu_d_nc"):
            np.testing.assert_allclose(np.asarray(moved[ch]), factor * np.asarray(base[ch]), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(moved["steady_state"]), np.asarray(base["steady_state"]), rtol=1e-12)
    # the ¹⁶O CC background is neutrino-induced: it follows the flux, not the ν–d cross section
    moved = at({**zero, "flux": jnp.asarray(0.1), "deuteron_cross_section": jnp.asarray(0.1)})
    np.testing.assert_allclose(np.asarray(moved["o16_cc"]), np.exp(0.1) * np.asarray(base["o16_cc"]), rtol=1e-12)


def test_gradients_mass_baseline(ideal):
    """∂N/∂m = N/m and ∂N/∂L = −2N/L (N ∝ m/L²), by reverse mode through the channel."""
    from cevns_jax import replace

    def total(m, L):
        det = replace(ideal.detector, mass_kg=m, baseline_m=L)
        return jnp.sum(deuteron_counts(replace(ideal, detector=det))["nu_d_cc"])

    m, L = jnp.asarray(592.0), jnp.asarray(20.0)
    N, (gm, gL) = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))(m, L)
    N = float(N)
    assert abs(float(gm) / (N / 592.0) - 1) < 1e-10 and abs(float(gL) / (-2 * N / 20.0) - 1) < 1e-10


def test_flux_error_of_a_counting_experiment(ideal):
    """Background-free D₂O, flux prior wide, every other nuisance off: σ(flux) → 1/√N (N: the counts)."""
    blocks = fisher_blocks((ideal,), ("sin2_theta_w",), include=("flux",))
    assert blocks.labels == ("flux",)  # a detector without CEvNS carries no CEvNS parameter
    N = sum(float(jnp.sum(v)) for v in _counts(ideal).values())
    sigma = blocks.fisher().marginalised_errors()["flux"]
    assert abs(sigma * np.sqrt(N) - 1) < 1e-5


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_joint_fisher_d2o_shrinks_flux(d2o):
    """With a CEvNS detector at the same target station, adding D₂O shrinks σ(flux) and σ(ŝ²): the flux
    nuisance is shared (one label) and the D₂O block adds to it."""
    ar = copy.deepcopy(_preset("COH-Ar-750"))
    ar["detector"]["response"] = "none"  # ideal keVnr response: a cheap CEvNS detector for this check
    for k in ("quenching", "smearing", "efficiency"):
        ar["detector"].pop(k)
    ar["bins"] = {"energy_range": [20.0, 120.0], "energy_bins": 4, "time_edges_us": [0.0, 1.0, 8.0]}
    ar["backgrounds"] = [b for b in ar["backgrounds"] if b["name"] == "steady_state"]
    for b in ar["backgrounds"]:
        b.pop("energy_shape", None), b.pop("energy_slope", None)
    ar["systematics"] = {"flux": 0.10}
    ar = experiment_from_dict(ar, label="ar.toml")
    alone = fisher_blocks((ar,), ("sin2_theta_w",), include=("flux",)).fisher()
    joint = fisher_blocks((ar, d2o), ("sin2_theta_w",), include=("flux",)).fisher()
    assert joint.labels == ("sin2_theta_w", "flux")
    s0, s1 = alone.marginalised_errors(), joint.marginalised_errors()
    assert s1["flux"] < 0.5 * s0["flux"] and s1["sin2_theta_w"] < s0["sin2_theta_w"]


@pytest.mark.parametrize("change, field", [
    ({"detector.channel": "deuteron"}, "detector.channel"),
    ({"detector.quenching": {"model": "constant", "factor": 0.1}}, "detector.quenching"),
    ({"detector.target": "Ar"}, "detector.channel"),
    ({"detector.channel": None}, "detector.deuteron"),
    ({"systematics.quenching_factor": 0.1}, "quenching_factor"),
    ({"systematics.form_factor_radius": 0.05}, "form_factor_radius"),
    ({"detector.deuteron.nc_efficiency": 1.5}, "nc_efficiency"),
])
def test_input_errors_name_the_field(change, field):
    with pytest.raises(CevnsInputError, match=field):
        experiment_from_dict(_small_d2o(**change), label="bad.toml")


def test_cross_section_prior_needs_deuteron():
    ge = copy.deepcopy(_preset("COH-Ge-mini"))
    ge["systematics"]["deuteron_cross_section"] = 0.02
    with pytest.raises(CevnsInputError, match="deuteron_breakup"):
        experiment_from_dict(ge, label="ge.toml")
