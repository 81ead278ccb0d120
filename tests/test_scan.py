"""Scan engine: pointwise equality, interruption and resume, sharding, bad grids, contours."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax.errors import CevnsInputError
from cevns_jax.scan import Axis, assemble, grid_points, raster_crossings, run_scan, validate_axes


def toy(p):
    return {"f": jnp.sin(p["x"]) * jnp.log(p["y"]), "g": jnp.stack([p["x"], p["y"] ** 2])}


AXES = [Axis("x", 0.0, 3.0, 7), Axis("y", 1.0, 100.0, 5, "log")]


def test_small_physics_scan_equals_pointwise(tmp_path, presets):
    from cevns_jax import rates
    from cevns_jax.models import NewPhysics, lmu_minus_ltau

    exp = presets["COH-Ge-mini"]
    fn = lambda p: rates.total_cevns(exp, model=NewPhysics(zprime=lmu_minus_ltau(p["M"], p["g"])))  # noqa: E731
    axes = [Axis("M", 5.0, 50.0, 3, "log"), Axis("g", 1e-4, 1e-3, 2, "log")]
    res = run_scan(fn, axes, tmp_path / "s", chunk_size=4, progress=False)
    pts = grid_points(axes)
    expected = [float(jax.jit(fn)({"M": m, "g": g})) for m, g in zip(pts["M"], pts["g"])]
    np.testing.assert_allclose(res.values["value"].reshape(-1), expected, rtol=1e-12)
    meta = res.meta
    assert meta["x64"] and meta["axes"][0]["name"] == "M" and "jax" in meta and "device_kind" in meta


def test_interrupted_scan_resumes_without_recomputing(tmp_path):
    out = tmp_path / "scan"

    def stop_after_two(c):
        if c == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(toy, AXES, out, chunk_size=6, progress=False, on_chunk=stop_after_two)
    finished = sorted(p.name for p in out.glob("chunk_*.npz"))
    assert finished == ["chunk_000000.npz", "chunk_000001.npz"]
    stamps = {p: os.stat(out / p).st_mtime_ns for p in finished}
    res = run_scan(toy, AXES, out, chunk_size=6, progress=False)
    assert 0 not in res.computed_chunks and 1 not in res.computed_chunks
    assert res.computed_chunks == list(range(2, 6))
    assert all(os.stat(out / p).st_mtime_ns == t for p, t in stamps.items())
    fresh = run_scan(toy, AXES, tmp_path / "fresh", chunk_size=6, progress=False)
    for k in ("f", "g"):
        np.testing.assert_array_equal(res.values[k], fresh.values[k])
    assert res.values["g"].shape == (7, 5, 2)
    with pytest.raises(CevnsInputError, match="other axes"):
        run_scan(toy, [Axis("x", 0.0, 3.0, 8), AXES[1]], out, chunk_size=6, progress=False)
    with pytest.raises(CevnsInputError, match="another description"):
        run_scan(toy, AXES, out, chunk_size=6, progress=False, description={"model": "other"})
    compiled = []
    again = run_scan(lambda p: compiled.append(1) or toy(p), AXES, out, progress=False)  # finished: no trace
    assert again.computed_chunks == [] and not compiled


def test_chunk_size_choice(tmp_path):
    """A chunk size given for one device is kept, also above MAX_CHUNK_POINTS (an accelerator's memory is the
    user's call); without one the first chunk program is capped at MAX_CHUNK_POINTS per device."""
    from cevns_jax.scan import MAX_CHUNK_POINTS

    axes = [Axis("x", 0.0, 3.0, 100), Axis("y", 1.0, 100.0, 50, "log")]  # 5000 points
    given = run_scan(toy, axes, tmp_path / "given", chunk_size=4500, progress=False)
    assert json.loads((tmp_path / "given" / "meta.json").read_text())["chunk_size"] == 4500
    assert given.computed_chunks == [0, 1]
    chosen = run_scan(toy, axes, tmp_path / "chosen", progress=False)
    assert json.loads((tmp_path / "chosen" / "meta.json").read_text())["chunk_size"] == MAX_CHUNK_POINTS
    np.testing.assert_array_equal(given.values["g"], chosen.values["g"])


def test_sharded_over_two_simulated_devices_equals_unsharded(tmp_path):
    single = run_scan(toy, AXES, tmp_path / "one", chunk_size=6, progress=False)
    script = textwrap.dedent(f"""
        import os, json
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax
        jax.config.update("jax_enable_x64", True)
        import numpy as np
        sys_path = {str(os.path.dirname(__file__))!r}
        import sys; sys.path.insert(0, sys_path)
        from test_scan import toy, AXES
        from cevns_jax.scan import run_scan
        assert jax.device_count() == 2
        r = run_scan(toy, AXES, {str(tmp_path / "two")!r}, chunk_size=6, progress=False)
        print(json.dumps({{"n_devices": r.meta["n_devices"]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["n_devices"] == 2
    two = assemble(tmp_path / "two")
    for k in ("f", "g"):
        np.testing.assert_allclose(two[k], single.values[k], rtol=1e-14)


@pytest.mark.parametrize(
    "axes,pattern",
    [
        ([Axis("x", 0.0, 1.0, 0)], "needs at least one point"),
        ([Axis("x", -1.0, 1.0, 5, "log")], "log axis cannot reach zero or negative"),
        ([Axis("x", 0.0, float("nan"), 5)], "must be finite"),
        ([Axis("x", 0.0, 1.0, 5), Axis("x", 0.0, 1.0, 5)], "repeats an axis"),
        ([Axis("x", 0.0, 1.0, 5, "cubic")], "scale must be"),
        ([], "no axes"),
    ],
)
def test_bad_grids_fail_before_compute(tmp_path, axes, pattern):
    calls = []

    def fn(p):
        calls.append(1)
        return p["x"]

    with pytest.raises(CevnsInputError, match=pattern):
        run_scan(fn, axes, tmp_path / "bad", progress=False)
    assert not calls and not (tmp_path / "bad").exists()
    with pytest.raises(CevnsInputError, match="unknown parameter"):
        validate_axes([Axis("z", 0.0, 1.0, 3)], known={"x", "y"})


def test_raster_crossings_report_every_crossing():
    g = np.geomspace(1e-5, 1e-2, 301)
    # a Δχ² with an allowed island: rises, falls back below the level, rises again
    bump = 10 * np.exp(-((np.log10(g) + 4.0) / 0.3) ** 2) + 10 * (g / 1e-3) ** 2
    crossings = raster_crossings(g, np.stack([bump, 3 * (g / 1e-4) ** 2]), level=2.706)
    assert len(crossings[0]) == 3  # up, down, up again
    assert crossings[1][0] == pytest.approx(1e-4 * np.sqrt(2.706 / 3), rel=1e-3)


def coarse_ge():
    """COH-Ge-mini on 3 energy × 2 time bins (a cheap experiment for statements about the statistics)."""
    from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml

    data = read_toml(PRESET_DIR / "COH-Ge-mini.toml", "experiment")
    data["bins"] = {"energy_edges": [1.0, 2.0, 4.0, 15.0], "time_edges_us": [0.0, 1.0, 6.0], "energy_subdivisions": 2}
    return experiment_from_dict(data, label="COH-Ge-mini", base=PRESET_DIR)


def test_asimov_forecast_properties(presets):
    from cevns_jax.models import NewPhysics, lmu_minus_ltau
    from cevns_jax.stats.forecast import AsimovForecast, shared_delta_chi2

    model_of = lambda th: NewPhysics(zprime=lmu_minus_ltau(th["M"], th["g"]))  # noqa: E731
    joint = AsimovForecast([presets["COH-Ge-mini"], presets["COH-Ar-750"]], model_of)
    # one SNS-PPU target station: the flux is shared; every other nuisance is per detector
    assert "flux" in joint.priors and "COH-Ge-mini/background:brn" in joint.priors
    assert "COH-Ar-750/background:brn" in joint.priors and joint.data.size == 90 + 63
    fc = AsimovForecast([presets["COH-Ge-mini"]], model_of)
    # one program: values and gradients at g = 0, 4e-4, 8e-4, 1.6e-3 and 8e-4 ± h (central difference)
    h = 1e-7
    gs = jnp.array([0.0, 4e-4, 8e-4, 1.6e-3, 8e-4 + h, 8e-4 - h])
    # (the unprofiled Δχ² rides along as an auxiliary output: one program, not two)
    both = lambda g: (fc.delta_chi2({"M": 10.0, "g": g}), fc.unprofiled_delta_chi2({"M": 10.0, "g": g}))  # noqa: E731
    (value, unprofiled), grad = jax.jit(jax.vmap(jax.value_and_grad(both, has_aux=True)))(gs)
    value, grad = np.asarray(value), np.asarray(grad)
    assert abs(value[0]) < 1e-8
    assert np.all(np.diff(value[1:4]) > 0)
    th = {"M": 10.0, "g": 8e-4}
    prof, stat = value[2], float(unprofiled[2])
    assert 0 < prof <= stat
    assert grad[2] == pytest.approx((value[4] - value[5]) / (2 * h), rel=1e-4)
    shared = jax.jit(shared_delta_chi2({"ge": fc, "joint": joint}, model_of))(th)  # physics shared by the two
    assert float(shared["ge"]) == pytest.approx(prof, rel=1e-10)  # also: a second program gives the same value
    assert float(shared["joint"]) > prof  # a second detector adds information


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_asimov_profiling_matches_bfgs_on_the_full_model(presets):
    """The cheap profiling (physics once, then 6 scoring steps on arrays) reaches the minimum of the full
    forward model χ²(θ, ν): the same as 30 steps on the full model, and no worse than BFGS (a second,
    independent minimiser, run in prior-scaled coordinates)."""
    from jax.flatten_util import ravel_pytree
    from jax.scipy.optimize import minimize

    from cevns_jax.nuisances import zero_nuisances
    from cevns_jax.stats.forecast import AsimovForecast
    from cevns_jax.stats.likelihood import chi2, profile_nuisances
    from cevns_jax.models import NewPhysics, lmu_minus_ltau

    fc = AsimovForecast([presets["COH-Ar-750"]], lambda th: NewPhysics(zprime=lmu_minus_ltau(th["M"], th["g"])))
    th = {"M": 30.0, "g": 6e-4}
    sigs = jax.jit(fc.signals)(th)  # the physics once; χ²(θ, ν) below is exact in ν given these templates
    fast = float(jax.jit(fc.profiled)(sigs))
    zero = zero_nuisances(fc.priors)
    nu = profile_nuisances(fc.combine, fc.data, sigs, zero, fc.priors, 30)
    assert fast == pytest.approx(float(chi2(fc.combine, fc.data, sigs, nu, fc.priors)), rel=1e-9)
    x0, unravel = ravel_pytree(zero)
    sigma = ravel_pytree({k: jnp.asarray(fc.priors[k]) for k in zero})[0]
    res = jax.jit(lambda s: minimize(lambda z: chi2(fc.combine, fc.data, s, unravel(z * sigma), fc.priors), x0,
                                     method="BFGS", options={"gtol": 1e-9, "maxiter": 500}))(sigs)
    unprofiled = float(chi2(fc.combine, fc.data, sigs, zero, fc.priors))
    assert fast < 0.5 * unprofiled  # a point where profiling matters
    assert fast <= float(res.fun) + 1e-9 and fast == pytest.approx(float(res.fun), rel=1e-3)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_dark_matter_coupling_scan_equals_direct_evaluation(presets):
    """Counts ∝ Y² at fixed masses (and so are their derivatives in the detector nuisances): the rescaled
    raster equals evaluating every (m_χ, Y) point directly; Δχ² keeps rising with Y (log-normal π⁰)."""
    from cevns_jax.stats.forecast import AsimovForecast, dark_matter_coupling_scan
    from cevns_jax.stats.teststats import asimov_band_levels
    from cevns_jax.models import NewPhysics, dark_matter, epsilon_from_Y

    def model_of(th):
        eps = epsilon_from_Y(th["Y"], th["m_chi"])
        return NewPhysics(dark_matter=dark_matter(th["m_chi"], 3.0 * th["m_chi"], eps, 0.5))

    fc = AsimovForecast([coarse_ge()], model_of, dark_matter=True)
    Ys = jnp.array([3e-12, 3e-11, 3e-10, 1e-8])
    # the raster given as ratios to an input coupling (how scans with scaled rasters share one program)
    bands = asimov_band_levels(0.1, (-1.0, 2.0))  # expected-limit band levels (1.32, 10.85), same loop
    scan = dark_matter_coupling_scan({"ge": fc}, model_of, "Y", Ys / Ys[0], power=2.0, level=2.706, scale="Y0",
                                     band_levels=tuple(bands))
    fast_all = jax.jit(scan)({"m_chi": 8.0, "Y0": Ys[0]})
    fast = fast_all["ge"]
    one = jax.jit(lambda y: fc.delta_chi2({"m_chi": 8.0, "Y": y}))
    direct = jnp.array([one(y) for y in Ys])  # the program that Brent's method below calls, compiled once
    np.testing.assert_allclose(np.asarray(fast), np.asarray(direct), rtol=1e-8, atol=1e-10)
    assert float(direct[-2]) > 2.71 > float(direct[0]) >= 0.0
    # a linear π⁰ factor 1 + ν would let the profile remove the signal for (1/0.15)² = 44.4
    assert np.all(np.diff(np.asarray(direct)) > 0) and float(direct[-1]) > 2 * (1 / 0.15) ** 2
    # the crossing solved inside the program (Illinois from the raster's bracket) equals a second root
    # finder (scipy's Brent method) on the direct Δχ²
    from scipy.optimize import brentq

    k = int(np.argmax(np.asarray(direct) > 2.706))  # the raster's bracket [Ys[k − 1], Ys[k]]
    root = np.exp(brentq(lambda ly: float(one(np.exp(ly))) - 2.706, np.log(Ys[k - 1]), np.log(Ys[k]), xtol=1e-13))
    crossings = np.asarray(fast_all["ge@crossings"])
    assert int(fast_all["ge@brackets"]) == 1 and np.isfinite(crossings).sum() == 1
    assert crossings[0] == pytest.approx(root, rel=1e-8)
    # the band crossings solved in the same loop (first crossing of each band level), against Brent too
    for level, got in zip(bands, np.asarray(fast_all["ge@bands"])):
        ref = np.exp(brentq(lambda ly: float(one(np.exp(ly))) - level, np.log(Ys[0]), np.log(Ys[-1]), xtol=1e-13))
        assert got == pytest.approx(ref, rel=1e-7)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_affine_coupling_scan_equals_direct_sterile_evaluation():
    """3+1 mixing with one |U_μ4|²: every rate is linear in P_μμ = 1 − 4|U|²(1 − |U|²)⟨sin²Δ⟩, so the templates
    at |U|² = ½ (strength 1) and without mixing give every |U|² exactly (coupling_scan.affine_coupling_scan):
    the combined raster equals the direct Δχ² (second method: the full oscillated fold at each |U|²), and the
    crossing solved inside the program equals scipy's Brent method on the direct Δχ²."""
    from scipy.optimize import brentq

    from cevns_jax import replace
    from cevns_jax.models import NewPhysics, sterile_mixing
    from cevns_jax.stats.forecast import AsimovForecast, affine_coupling_scan

    def model_of(th):
        return NewPhysics(sterile=sterile_mixing(th["dm2"], Umu4_sq=th["U"]))

    fc = AsimovForecast([coarse_ge()], model_of)
    Us = jnp.array([1e-3, 0.02, 0.1, 0.3, 0.5])
    scan = affine_coupling_scan({"ge": fc}, lambda th: model_of({**th, "U": 0.5}), lambda m: replace(m, sterile=None),
                                lambda u: 4.0 * u * (1.0 - u), Us, level=2.706)
    fast_all = jax.jit(scan)({"dm2": 3.0})
    one = jax.jit(lambda u: fc.delta_chi2({"dm2": 3.0, "U": u}))
    direct = np.array([float(one(u)) for u in Us])
    np.testing.assert_allclose(np.asarray(fast_all["ge"]), direct, rtol=1e-9, atol=1e-12)
    assert direct[0] < 2.706 < direct[-1]  # a crossing inside the raster
    root = np.exp(brentq(lambda lu: float(one(np.exp(lu))) - 2.706, np.log(1e-3), np.log(0.5), xtol=1e-13))
    crossings = np.asarray(fast_all["ge@crossings"])
    assert int(fast_all["ge@brackets"]) == 1 and crossings[0] == pytest.approx(root, rel=1e-8)
