"""Scan results load in one call as a labelled dataset: axes, units, outputs, provenance (cevns_jax.scan.load)."""

import json
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import __version__
from cevns_jax.errors import CevnsInputError
from cevns_jax.scan import Axis, LabelledScan, assemble, load, run_scan, scan_identity

AXES = [Axis("x", 0.0, 3.0, 7), Axis("y", 1.0, 100.0, 5, "log")]  # 35 points: 6 chunks of 6
RASTER = Axis("k", 1e-3, 1e-1, 3, "log")  # the outputs' own trailing axis (a per-point raster)
UNITS = {"x": "MeV", "y": "eV²", "k": "1", "f": "Δχ²"}
DESCRIPTION = {"model": "toy"}


def toy(p):
    return {"f": jnp.sin(p["x"]) * jnp.log(p["y"]), "h": p["x"] * RASTER.values() ** 2}


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("labelled") / "scan"
    run_scan(toy, AXES, out, chunk_size=6, progress=False, description=DESCRIPTION, units=UNITS,
             output_axes=[RASTER])
    return out


def test_load_round_trip_names_dims_units_values_provenance(scan_dir):
    res = load(scan_dir)
    assert isinstance(res, LabelledScan) and res.grid == ("x", "y") and set(res) == {"f", "h"}
    assert res.dims == {"f": ("x", "y"), "h": ("x", "y", "k")}
    assert res.sizes == {"x": 7, "y": 5, "k": 3}
    np.testing.assert_array_equal(res.coords["y"], AXES[1].values())
    np.testing.assert_array_equal(res["k"], RASTER.values())
    assert res.units == UNITS  # "h" was given no unit: none is invented
    raw = assemble(scan_dir)
    for k in raw:
        np.testing.assert_array_equal(res[k], raw[k])
    with pytest.raises(ValueError):
        res["f"][0, 0] = 1.0  # read-only
    meta = json.loads((scan_dir / "meta.json").read_text())
    assert res.attrs["identity"] == meta["identity"] == scan_identity(AXES, DESCRIPTION)
    assert res.attrs["description"] == DESCRIPTION and res.attrs["cevns_jax"] == __version__
    assert res.attrs["created"] and res.attrs["path"] == str(scan_dir) and "source" in res.attrs["identity"]["parts"]
    as_dict = json.loads(json.dumps(res.to_dict()))  # JSON-ready, xarray's to_dict layout
    assert as_dict["data_vars"]["f"]["dims"] == ["x", "y"] and as_dict["coords"]["x"]["attrs"] == {"units": "MeV"}
    np.testing.assert_array_equal(as_dict["data_vars"]["h"]["data"], raw["h"])


def test_sel_by_exact_coordinate(scan_dir):
    res = load(scan_dir)
    row = res.sel(y=10.0)  # geomspace(1, 100, 5)[2] is 10 up to rounding
    assert row.dims == {"f": ("x",), "h": ("x", "k")} and row.grid == ("x",) and float(row["y"]) == pytest.approx(10.0)
    np.testing.assert_array_equal(row["f"], res["f"][:, 2])
    two = res.sel(x=[0.5, 2.0], k=RASTER.values()[-1])
    assert two.dims["h"] == ("x", "y") and two.sizes == {"x": 2, "y": 5}
    np.testing.assert_array_equal(two["h"], res["h"][[1, 4], :, 2])
    with pytest.raises(CevnsInputError, match=r"sel: y = 3.0 is not on the grid; nearest values: 1.0, 3.16"):
        res.sel(y=3.0)
    with pytest.raises(CevnsInputError, match="'z' is not a dimension"):
        res.sel(z=1.0)


def test_units_label_results_without_changing_their_identity(tmp_path, scan_dir):
    again = run_scan(toy, AXES, scan_dir, progress=False, description=DESCRIPTION, units={**UNITS, "x": "keV"})
    assert again.computed_chunks == []  # same identity: nothing recomputed
    assert load(scan_dir).units["x"] == "keV" and again.labelled().units["x"] == "keV"
    run_scan(toy, AXES, scan_dir, progress=False, description=DESCRIPTION, units=UNITS)  # restore for other tests
    bare = run_scan(toy, AXES, tmp_path / "bare", chunk_size=6, progress=False, description=DESCRIPTION)
    assert bare.meta["identity"] == load(scan_dir).attrs["identity"]
    plain = load(tmp_path / "bare")
    assert plain.units == {} and plain.dims["h"] == ("x", "y", "h_dim0")  # undeclared trailing axis: indexed
    np.testing.assert_array_equal(plain["h_dim0"], np.arange(3))
    with pytest.raises(CevnsInputError, match="scan units"):
        run_scan(toy, AXES, tmp_path / "bad", progress=False, units={"x": 1.0})


def test_missing_or_damaged_results_are_named(tmp_path, scan_dir):
    import shutil

    with pytest.raises(CevnsInputError, match=r"nowhere[/\\]meta.json: no scan here \(no such folder\)"):
        load(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    shutil.copytree(scan_dir, copy)
    victim = copy / "chunk_000003.npz"
    victim.write_bytes(victim.read_bytes()[:-40])
    with pytest.raises(CevnsInputError, match=r"chunk_000003\.npz: unreadable chunk"):
        load(copy)
    victim.unlink()
    with pytest.raises(CevnsInputError, match=r"chunk_000003\.npz: missing; scan incomplete, 1 of 6"):
        load(copy)


def test_to_xarray_without_xarray_says_how(scan_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray raises ImportError
    with pytest.raises(ImportError, match="needs xarray, which cevns_jax does not install"):
        load(scan_dir).to_xarray()


def test_to_xarray(scan_dir):
    xr = pytest.importorskip("xarray")
    res = load(scan_dir)
    ds = res.to_xarray()
    assert isinstance(ds, xr.Dataset) and ds["h"].dims == ("x", "y", "k") and ds["x"].attrs["units"] == "MeV"
    np.testing.assert_array_equal(ds["f"].values, res["f"])
    assert json.loads(ds.attrs["identity"]) == res.attrs["identity"]
    assert float(ds.sel(y=res["y"][2])["f"][3]) == float(res.sel(y=10.0)["f"][3])
