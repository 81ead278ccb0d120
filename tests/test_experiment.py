"""Experiment files: loading, validation and clear errors on bad input."""

import json
import tomllib

import numpy as np
import pytest

from cevns_jax import cli
from cevns_jax.errors import CevnsInputError, DataFileError
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, list_presets, load_experiment
from cevns_jax.releases import read_table, template

REQUIRED_PRESETS = {
    "COHERENT-CsI-2017", "COHERENT-CENNS10-2020", "COHERENT-CsI-2021",
    "COH-Ar-750", "COH-CryoCsI-10kg", "COH-CryoCsI-700kg", "COH-Ge-mini", "NaIvETe",
}


def base_spec():
    return tomllib.loads((PRESET_DIR / "COH-Ge-mini.toml").read_text())


def test_all_presets_ship_with_citations():
    assert REQUIRED_PRESETS <= set(list_presets())
    for name in list_presets():
        meta = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())["experiment"]
        assert meta["name"] == name
        assert meta["citation"]
        if meta["status"] == "planned":
            assert meta["assumptions"], f"{name}: planned presets must list their assumptions"


def test_naivete_threshold_is_the_stated_13_keVnr_on_sodium():
    """NaIvETe: the efficiency's 50% point is COHERENT's 13 keVnr Na threshold (arXiv:2204.04575) through the
    preset's own light yield and Na quenching, the description quotes that model, and no analysis bin lies
    below it (nothing enters through the turn-on's lower tail)."""
    exp = load_experiment("NaIvETe")
    det = exp.detector
    ly, q = float(det.smearing.light_yield_PE_per_keV), np.asarray(det.quenching.factor)
    na, iodine = (list(np.asarray(exp.target.Z)).index(z) for z in (11.0, 53.0))
    threshold_PE = float(det.efficiency.threshold)
    assert threshold_PE / (ly * q[na]) == pytest.approx(13.0, abs=0.05)
    assert float(det.binning.energy_edges[0]) >= threshold_PE
    iodine_keVnr = threshold_PE / (ly * q[iodine])
    for text in (f"{threshold_PE / (ly * q[na]):.0f} keVnr", f"{threshold_PE:.1f} PE", f"{threshold_PE / ly:.2f} keVee",
                 f"above {iodine_keVnr:.0f} keVnr"):
        assert text in exp.info.description, text


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(CevnsInputError, match="available presets: .*COHERENT-CsI-2021"):
        load_experiment("COHERENT-CsI-2099")


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda d: d["detector"].pop("mass_kg"), r"detector: missing required field 'mass_kg'"),
        (lambda d: d["detector"].update(mass_kg="ten"), r"detector\.mass_kg: must be a number"),
        (lambda d: d["detector"].update(mass_kg=-3.0), r"detector\.mass_kg: must be > 0, got -3"),
        (lambda d: d["detector"].update(baseline_m=float("nan")), r"detector\.baseline_m: must be finite"),
        (lambda d: d["detector"].update(masss_kg=3.0), r"detector: unknown field\(s\) 'masss_kg'"),
        (lambda d: d["detector"].update(target="Unobtainium"), r"unknown target material 'Unobtainium'"),
        (lambda d: d["detector"]["quenching"].update(model="magic"), r"quenching\.model: unknown value 'magic'"),
        (lambda d: d["source"].update(facility="SNS-3000"), r"unknown facility 'SNS-3000'"),
        (lambda d: d["source"].update(exposure_GWh=3.0), r"give exactly one of protons_on_target, exposure_GWh, years, fluence_per_flavour_cm2"),
        (lambda d: d["bins"].update(energy_edges=[3.0, 2.0, 4.0]), r"bins\.energy_edges: bin edges .* must increase"),
        (lambda d: d["bins"].update(energy_edges=[]), r"bins\.energy_edges: (must be a list|needs at least two)"),
        (lambda d: d["bins"].update(energy_edges=[40.0, 60.0, 80.0]), r"threshold 40 keVee is above the largest CEvNS signal"),
        (lambda d: d["detector"]["efficiency"].update(threshold=50.0), r"efficiency\.threshold: 50 keVee is above the largest"),
        (lambda d: d["backgrounds"][0].pop("rate_per_kg_day"), r"backgrounds\[steady_state\]: missing required field 'counts'"),
        (lambda d: d["systematics"].update(flux=0.0), r"systematics\.flux: must be > 0"),
        (lambda d: d["systematics"].update(quenching_a=0.01), r"systematic 'quenching_a' needs quenching model LinearQuenching"),
        (lambda d: d["systematics"].update(fluxx=0.1), r"unknown systematic 'fluxx'"),
        (lambda d: d["bins"].update(energy_subdivisions=0.5), r"bins\.energy_subdivisions: must be a whole number >= 1"),
        (lambda d: d["experiment"].update(assumptions="none"), r"experiment\.assumptions: must be a list of strings"),
        (lambda d: d.update(backgrounds=5), r"backgrounds: must be an array of tables"),
        (lambda d: d["detector"]["efficiency"].update(model="table", file="x.txt", columns=2, efficiency_column=3,
                                                       maximum=None) or d["detector"]["efficiency"].pop("maximum")
         or d["detector"]["efficiency"].pop("threshold") or d["detector"]["efficiency"].pop("width"),
         r"efficiency\.efficiency_column: column 3 does not exist"),
    ],
)
def test_bad_input_names_the_field(edit, pattern):
    spec = base_spec()
    edit(spec)
    with pytest.raises(CevnsInputError, match=pattern):
        experiment_from_dict(spec, label="test.toml")


def test_malformed_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[experiment\nname = 'x'\n")
    with pytest.raises(CevnsInputError, match="broken.toml: malformed TOML"):
        load_experiment(path)


def test_user_toml_file_round_trip(tmp_path):
    path = tmp_path / "my_detector.toml"
    path.write_text((PRESET_DIR / "COH-Ge-mini.toml").read_text().replace('name = "COH-Ge-mini"', 'name = "my-Ge"'))
    assert load_experiment(path).name == "my-Ge"


def test_data_file_errors_name_file_and_line(tmp_path):
    bad_columns = tmp_path / "cols.txt"
    bad_columns.write_text("1 2\n3 4 5\n")
    with pytest.raises(DataFileError, match=r"cols.txt:2: expected 2 columns, found 3"):
        read_table(bad_columns, 2)
    negative = tmp_path / "neg.txt"
    negative.write_text("# header\n1.0 -4\n")
    with pytest.raises(DataFileError, match=r"neg.txt:2: negative count -4"):
        read_table(negative, 2, nonnegative_columns=(1,))
    text = tmp_path / "text.txt"
    text.write_text("1.0 abc\n")
    with pytest.raises(DataFileError, match=r"text.txt:1: non-numeric"):
        read_table(text, 2)
    with pytest.raises(DataFileError, match="data file not found"):
        read_table(tmp_path / "missing.txt", 2)
    with pytest.raises(DataFileError, match="negative count"):
        template({"kind": "grid", "file": str(negative)}, np.array([0.0, 1.0]), np.array([0.0, 1.0]), tmp_path)


def test_cli_predict_json(capsys):
    assert cli.main(["predict", "COHERENT-CENNS10-2020", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["experiment"] == "COHERENT-CENNS10-2020"
    assert set(out["cevns"]) == {"total", "prompt_numu", "delayed_nue", "delayed_numubar"}
    assert out["cevns"]["total"] == pytest.approx(sum(out["cevns"][k] for k in ("prompt_numu", "delayed_nue", "delayed_numubar")))
    assert set(out["backgrounds"]) == {"steady_state", "brn_prompt", "brn_delayed"}


def test_cli_list_and_errors(capsys):
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == len(list_presets())
    assert any("COH-Ar-750" in line and "arXiv" in line for line in listing)
    assert cli.main(["predict", "NoSuchDetector"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cevns: error: unknown experiment 'NoSuchDetector'") and "Traceback" not in err
