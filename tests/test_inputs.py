"""The validated input domain: every input outside physics is refused, naming file, table and field.

One probe per problem found on main (each used to be accepted or to give NaN): TOML experiment
fields, model files, Python model constructors (concrete → error; traced → NaN), non-UTF-8 files,
modified shipped data (SHA-256 manifest), and the CLI (one line, exit 2/3, JSON always valid).
"""

import copy
import json
import shutil
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import cli, releases
from cevns_jax.errors import CevnsInputError, DataFileError
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, load_experiment, read_toml
from cevns_jax.models import dark_matter, epsilon_from_Y, lmu_minus_ltau, scalar_mediator, sterile_mixing, universal
from cevns_jax.models import zprime
from cevns_jax.models.config import load_model, model_from_dict
from cevns_jax.xsec import standard_model

LABEL = "probe.toml"


@pytest.fixture(scope="module")
def base():
    """COH-Ge-mini as parsed TOML (lindhard quenching, logistic efficiency, flat and beam backgrounds)."""
    return tomllib.loads((PRESET_DIR / "COH-Ge-mini.toml").read_text())


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """User data files (not shipped, so not checksummed): a release-style efficiency with a = 5, a latin-1 table."""
    d = tmp_path_factory.mktemp("user")
    (d / "eff5.txt").write_text("# a b c d\n5.0 0.3 10.0 0.0\n5.1 0.3 10.0 0.0\n4.9 0.3 10.0 0.0\n")
    (d / "latin1.txt").write_bytes("# efficiency measured at 77 K \u00b1 1 K\n0 0.5\n20 0.9\n".encode("latin-1"))
    (d / "columns.txt").write_text("0 0.5\n10 0.7 0.1\n")
    (d / "nan.txt").write_text("0 0.5\n10 nan\n")
    return d


def _set(spec, dotted, value):
    *path, last = dotted.split(".")
    for key in path:
        spec = spec[key]
    spec[last] = value


def _load(base, edits, user_files=None):
    spec = copy.deepcopy(base)
    for dotted, value in edits.items():
        _set(spec, dotted, value)
    return experiment_from_dict(spec, label=LABEL, base=user_files)


# (edits to COH-Ge-mini, substrings the error must contain: file, table, field)
EXPERIMENT_PROBES = {
    # a time window without beam: the beam background's window sum was 0 → "brn nan", exit 0, invalid JSON
    "window without beam": ({"bins.time_edges_us": [20.0, 25.0, 30.0]},
                            ["probe.toml.backgrounds[brn].time_profile", "20–30 μs", "no support"]),
    "window without neutrinos": ({"bins.time_edges_us": [200.0, 300.0], "backgrounds": []},
                                 ["probe.toml.bins", "no neutrino signal"]),
    "logistic efficiency maximum 5": ({"detector.efficiency.maximum": 5.0},
                                      ["probe.toml.detector.efficiency.maximum", "<= 1"]),
    "flat efficiency 1.5": ({"detector.efficiency": {"model": "flat", "value": 1.5}},
                            ["probe.toml.detector.efficiency.value", "<= 1"]),
    "table efficiency 1.2": ({"detector.efficiency": {"model": "table", "x": [0.0, 20.0], "values": [0.5, 1.2]}},
                             ["probe.toml.detector.efficiency.values", "[0, 1]"]),
    "coherent2017 a = 2": ({"detector.efficiency": {"model": "coherent2017", "a": 2.0, "k": 1.0, "x0": 2.0}},
                           ["probe.toml.detector.efficiency.a", "<= 1"]),
    "release coefficients a = 5": ({"detector.efficiency": {"model": "coherent2021", "file": "eff5.txt"}},
                                   ["probe.toml.detector.efficiency", "reaches", "[0, 1]"]),
    "negative energy edge": ({"bins.energy_edges": [-1.0, 1.5, 3.0, 15.0]},
                             ["probe.toml.bins.energy_edges", ">= 0"]),
    "negative energy range": ({"bins.energy_edges": None, "bins.energy_range": [-2.0, 10.0], "bins.energy_bins": 4},
                              ["probe.toml.bins.energy_range", ">= 0"]),
    "decreasing energy edges": ({"bins.energy_edges": [1.5, 3.0, 2.0, 15.0]},
                                ["probe.toml.bins.energy_edges", "increase strictly"]),
    "decreasing time edges": ({"bins.time_edges_us": [0.0, 2.0, 1.0, 6.0]},
                              ["probe.toml.bins.time_edges_us", "increase strictly"]),
    "baseline 1e-9 m": ({"detector.baseline_m": 1e-9}, ["probe.toml.detector.baseline_m", ">= 1"]),
    "Lindhard k = 1e6": ({"detector.quenching.k": 1e6}, ["probe.toml.detector.quenching.k", "<= 1"]),
    "constant quenching 1.5": ({"detector.quenching": {"model": "constant", "factor": 1.5}},
                               ["probe.toml.detector.quenching.factor", "<= 1"]),
    "constant quenching per element": ({"detector.quenching": {"model": "constant", "factor": {"Ge": 2.0}}},
                                       ["probe.toml.detector.quenching.factor.Ge", "<= 1"]),
    "linear quenching a = 1.5": ({"detector.quenching": {"model": "linear", "a": 1.5, "b_per_keVnr": 0.0}},
                                 ["probe.toml.detector.quenching.a", "<= 1"]),
    "linear quenching Q(T_max) > 1": ({"detector.quenching": {"model": "linear", "a": 0.2, "b_per_keVnr": 0.05}},
                                      ["probe.toml.detector.quenching.b_per_keVnr", "(0, 1]"]),
    "linear quenching Q(T_max) < 0": ({"detector.quenching": {"model": "linear", "a": 0.2, "b_per_keVnr": -0.05}},
                                      ["probe.toml.detector.quenching.b_per_keVnr", "(0, 1]"]),
    "polynomial E_ee > T": ({"detector.quenching": {"model": "polynomial", "coefficients_MeV": [1.5]}},
                            ["probe.toml.detector.quenching", "exceeds the recoil energy"]),
    "polynomial negative": ({"detector.quenching": {"model": "polynomial", "coefficients_MeV": [0.2, -10.0]}},
                            ["probe.toml.detector.quenching", "is negative"]),
    "polynomial decreasing": ({"detector.quenching": {"model": "polynomial", "coefficients_MeV": [0.2, -2.0]}},
                              ["probe.toml.detector.quenching", "decreases"]),
    "polynomial ±1σ model": ({"detector.quenching": {"model": "polynomial", "coefficients_MeV": [0.2],
                                                     "shifts_MeV": [[0.9]]}},
                             ["probe.toml.detector.quenching", "model 0 at +1σ"]),
    "exposure overflow": ({"source.years": 1e307}, ["probe.toml.source.years", "overflow"]),
    "pulse sigma beyond the period": ({"source.pulse_sigma_us": 1e5}, ["probe.toml.source.pulse_sigma_us", "period"]),
    "pulse mean beyond the period": ({"source.pulse_mean_us": -1e6}, ["probe.toml.source.pulse_mean_us", "period"]),
    "non-UTF-8 data file": ({"detector.efficiency": {"model": "table", "file": "latin1.txt"}},
                            ["latin1.txt:1", "UTF-8"]),
    "user file column count": ({"detector.efficiency": {"model": "table", "file": "columns.txt"}},
                               ["columns.txt:2", "expected 2 columns"]),
    "user file non-finite": ({"detector.efficiency": {"model": "table", "file": "nan.txt"}},
                             ["nan.txt:2", "non-finite"]),
}


@pytest.mark.parametrize("probe", list(EXPERIMENT_PROBES))
def test_experiment_input_outside_the_domain_is_refused(probe, base, user_files):
    edits, names = EXPERIMENT_PROBES[probe]
    edits = dict(edits)
    if edits.get("bins.energy_edges", 0) is None:  # replace the edges by a range
        del edits["bins.energy_edges"]
        spec = copy.deepcopy(base)
        del spec["bins"]["energy_edges"]
        base = spec
    with pytest.raises(CevnsInputError) as err:
        _load(base, edits, user_files)
    for name in names:
        assert name in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_presets_are_inside_the_domain(presets):
    """Every shipped preset passes every check (the session fixture loads them all through the checks)."""
    assert {"COHERENT-CsI-2021", "COHERENT-CENNS10-2020", "COH-Ge-mini"} <= set(presets)


# --- model files ------------------------------------------------------------------------------------
MODEL_PROBES = {
    "sin²θ_W = 2": ({"standard_model": {"sin2_theta_w": 2.0}}, "m.toml.standard_model.sin2_theta_w"),
    "sin²θ_W = 1": ({"standard_model": {"sin2_theta_w": 1.0}}, "m.toml.standard_model.sin2_theta_w"),
    "negative Z′ mass": ({"zprime": {"kind": "universal", "mass_MeV": -10.0, "g": 1e-4}}, "m.toml.zprime.mass_MeV"),
    "|U_e4|² > 1": ({"sterile": {"dm2_eV2": 1.0, "Ue4_sq": 1.5}}, "m.toml.sterile.Ue4_sq"),
    "2 m_χ > m_η, light V": ({"dark_matter": {"m_chi_MeV": 280.0, "m_V_MeV": 30.0, "epsilon": 1e-4}},
                             "m.toml.dark_matter: meson"),
    "2 m_χ > m_η": ({"dark_matter": {"m_chi_MeV": 300.0, "epsilon": 1e-4}}, "m.toml.dark_matter: meson"),
}


@pytest.mark.parametrize("probe", list(MODEL_PROBES))
def test_model_file_outside_the_domain_is_refused(probe):
    data, where = MODEL_PROBES[probe]
    with pytest.raises(CevnsInputError) as err:
        model_from_dict(data, label="m.toml")
    assert where in str(err.value), str(err.value)


@pytest.mark.parametrize("what", ["experiment", "model"])
def test_non_utf8_toml_is_refused_naming_the_file(what, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[experiment]\nname = "Ge \u00b1"\n'.encode("latin-1"))
    loader = load_experiment if what == "experiment" else load_model
    with pytest.raises(CevnsInputError, match=r"latin1\.toml: not a UTF-8 text file"):
        loader(path)
    with pytest.raises(CevnsInputError, match=r"latin1\.toml: not a UTF-8"):
        read_toml(path, what)


# --- Python constructors: concrete → error, traced → NaN ---------------------------------------------
CONSTRUCTORS = {
    "Z′ mass": (lambda x: universal(x, 1e-4).mass_MeV, 10.0, -10.0, "Z′ mass must be a positive"),
    "L_μ−L_τ mass": (lambda x: lmu_minus_ltau(x, 1e-4).mass_MeV, 10.0, -10.0, "Z′ mass must be a positive"),
    "scalar mass": (lambda x: scalar_mediator(x, 1e-4).mass_MeV, 10.0, -10.0, "scalar mass_MeV"),
    "m_χ": (lambda x: dark_matter(x, 30.0, 1e-4).m_chi_MeV, 10.0, -10.0, "m_χ > 0, m_V > 0 and 2 m_χ < m_η"),
    "m_V": (lambda x: dark_matter(10.0, x, 1e-4).m_V_MeV, 30.0, -30.0, "m_χ > 0, m_V > 0 and 2 m_χ < m_η"),
    "α_B": (lambda x: dark_matter(10.0, 30.0, alpha_B=x).coupling, 1e-6, -1e-6, "alpha_B"),
    "α_D": (lambda x: dark_matter(10.0, 30.0, 1e-4, x).alpha_D, 0.5, -0.5, "alpha_D"),
    "Y": (lambda x: epsilon_from_Y(x, 10.0), 1e-10, -1e-10, "dark-matter Y"),
    "sterile Δm²": (lambda x: sterile_mixing(x, 0.1).dm2_eV2, 1.0, -1.0, "dm2_eV2"),
    "|U_μ4|²": (lambda x: sterile_mixing(1.0, Umu4_sq=x).U4_sq, 0.1, 1.1, "[0, 1]"),
    "Σ|U_α4|²": (lambda x: sterile_mixing(1.0, x, x).U4_sq, 0.3, 0.6, "unitarity"),
    "sin²θ_W": (lambda x: standard_model("rc", x).sin2_theta_w, 0.238, 2.0, "sin2_theta_w"),
}


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_constructor_concrete_value_outside_the_domain_raises(name):
    build, good, bad, message = CONSTRUCTORS[name]
    assert np.all(np.isfinite(np.asarray(build(good))))
    with pytest.raises(CevnsInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build(bad)


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_constructor_traced_value_outside_the_domain_is_nan(name):
    build, good, bad, _ = CONSTRUCTORS[name]
    both = np.asarray(jax.vmap(build)(jnp.array([good, bad])))
    assert np.all(np.isfinite(both[0])) and np.all(np.isnan(both[1]))
    assert np.all(np.isnan(np.asarray(jax.jit(build)(bad))))
    np.testing.assert_allclose(np.asarray(jax.jit(build)(good)), np.asarray(build(good)), rtol=1e-15)


def test_negative_zprime_mass_in_a_scan_is_nan_not_its_absolute_value():
    """Under jit/vmap/grad the Z′ charge at M < 0 is NaN (it used to equal the charge at |M|)."""
    Z, N, F, q2 = 18.0, 22.0, 1.0, 400.0

    def charge(M):
        return jnp.sum(zprime.charge_shift(universal(M, 1e-4), Z, N, F, F, q2))

    values = np.asarray(jax.jit(jax.vmap(charge))(jnp.array([10.0, -10.0])))
    assert np.isfinite(values[0]) and values[0] != 0 and np.isnan(values[1])
    slope = float(jax.grad(charge)(10.0))
    fd = (float(charge(10.0 + 1e-4)) - float(charge(10.0 - 1e-4))) / 2e-4  # central difference
    assert slope == pytest.approx(fd, rel=1e-6)
    assert np.isnan(float(jax.grad(charge)(-10.0)))


# --- shipped data checksums -------------------------------------------------------------------------
def test_manifest_lists_every_shipped_file_with_its_checksum():
    listed = releases.shipped_checksums()
    present = {p.relative_to(releases.DATA_DIR).as_posix() for p in releases.DATA_DIR.rglob("*")
               if p.is_file() and p.name != releases.MANIFEST}
    assert set(listed) == present
    for rel in listed:
        releases.verify_shipped(releases.DATA_DIR / rel)


@pytest.fixture()
def data_copy(tmp_path, monkeypatch):
    """A copy of the shipped data directory, made the package's DATA_DIR."""
    copy_dir = tmp_path / "data"
    shutil.copytree(releases.DATA_DIR, copy_dir)
    monkeypatch.setattr(releases, "DATA_DIR", copy_dir)
    return copy_dir


def test_release_truncated_at_a_row_boundary_is_refused(data_copy):
    """The CsI-2021 BRN time projection cut after a whole row still parses (BRN 18.45 → 27.63 on main)."""
    path = data_copy / "csi2021" / "brnTrec.txt"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))
    with pytest.raises(DataFileError, match=r"brnTrec\.txt: shipped data file modified or truncated"):
        load_experiment("COHERENT-CsI-2021")


def test_unlisted_file_in_the_data_directory_is_refused(data_copy):
    (data_copy / "csi2021" / "extra.txt").write_text("1 2\n")
    with pytest.raises(DataFileError, match=r"extra\.txt: not a shipped data file"):
        releases.read_table(releases.data_path("csi2021/extra.txt"), 2)


# --- CLI ---------------------------------------------------------------------------------------------
def test_cli_bad_experiment_is_one_line_exit_2(base, tmp_path, capsys):
    text = (PRESET_DIR / "COH-Ge-mini.toml").read_text()
    path = tmp_path / "nobeam.toml"
    path.write_text(text.replace("time_edges_us = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]",
                                 "time_edges_us = [20.0, 25.0, 30.0]"))
    assert cli.main(["predict", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("cevns: error: nobeam.toml.backgrounds[brn].time_profile") and err.count("\n") == 1


def test_cli_bad_model_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text("[standard_model]\nsin2_theta_w = 2.0\n")
    assert cli.main(["predict", "COH-Ge-mini", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cevns: error: m.toml.standard_model.sin2_theta_w") and err.count("\n") == 1


def _fake_counts(value):
    def expected_counts(exp, sm=None, model=None):
        n_E, n_t = exp.detector.binning.energy_edges.size - 1, exp.detector.binning.time_edges_ns.size - 1
        names = ("prompt_numu", "delayed_nue", "delayed_numubar", *exp.backgrounds)
        return {k: jnp.full((n_E, n_t), value) for k in names}

    return expected_counts


@pytest.mark.parametrize("as_json", [True, False])
def test_cli_never_prints_a_non_finite_result(as_json, monkeypatch, capsys):
    """A NaN anywhere in the result (here injected into the counts) is a one-line error, exit 3."""
    from cevns_jax import rates

    monkeypatch.setattr(rates, "expected_counts", _fake_counts(jnp.nan))
    assert cli.main(["predict", "COH-Ge-mini"] + (["--json"] if as_json else [])) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("cevns: error: result.cevns.total is nan") and err.count("\n") == 1


def test_cli_json_is_valid_json(monkeypatch, capsys):
    from cevns_jax import rates

    monkeypatch.setattr(rates, "expected_counts", _fake_counts(0.5))
    assert cli.main(["predict", "COH-Ge-mini", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["cevns"]["prompt_numu"] == pytest.approx(0.5 * 10 * 9)


def test_require_finite_names_the_field():
    cli.require_finite({"a": [1.0, {"b": 2.0}]})
    with pytest.raises(CevnsInputError, match=r"result\.a\[1\]\.b is inf"):
        cli.require_finite({"a": [1.0, {"b": float("inf")}]})
