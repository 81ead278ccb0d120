"""Converged limits: crossings solved by root finding (every one kept), curves refined along the mass axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from cevns_jax.errors import CevnsInputError
from cevns_jax.stats.crossings import LimitCurves, brackets_from_raster, evaluate, refine_masses, solve_crossings

LEVEL = 2.706


def roots_ln(m):
    """Three crossings in ln g that move with the mass (an exclusion limit, then an allowed island)."""
    base = jnp.array([np.log(1e-4), np.log(4e-4), np.log(2e-3)])
    return base + 0.3 * jnp.sin(2.0 * m)


def toy(m, g):
    """Δχ² = level·exp(k·Π(u − u_i)): crosses the level exactly at the three roots."""
    u = jnp.log(g)
    r = roots_ln(m)
    return {"toy": LEVEL * jnp.exp(0.8 * (u - r[0]) * (u - r[1]) * (u - r[2])),
            "steep": LEVEL * (g / jnp.exp(r[0])) ** 4}


COUPLINGS = np.geomspace(1e-6, 1e-1, 14)  # coarse: ~2.4 raster steps per decade


def test_every_crossing_is_solved_to_the_stated_tolerance():
    masses = np.array([0.1, 0.7, 1.3, 2.9])
    curves = solve_crossings(toy, masses, COUPLINGS, LEVEL)
    for m, cross in zip(masses, curves.crossings["toy"]):
        np.testing.assert_allclose(cross, np.exp(np.asarray(roots_ln(m))), rtol=1e-6)
    np.testing.assert_allclose(curves.limit("steep"), [float(np.exp(roots_ln(m)[0])) for m in masses], rtol=1e-6)
    # a linear interpolation on this raster would be off by tens of percent for the g⁴ curve:
    d = LEVEL * (COUPLINGS / np.exp(float(roots_ln(0.1)[0]))) ** 4 - LEVEL
    i = np.nonzero(np.diff(np.sign(d)))[0][0]
    linear = np.exp(np.log(COUPLINGS[i]) + np.log(COUPLINGS[i + 1] / COUPLINGS[i]) * (-d[i]) / (d[i + 1] - d[i]))
    assert abs(linear / curves.limit("steep")[0] - 1) > 0.1


def test_mass_refinement_converges_the_curve_between_its_points():
    coarse = solve_crossings(toy, np.geomspace(0.1, 10.0, 5), COUPLINGS, LEVEL)
    fine = refine_masses(toy, coarse, COUPLINGS, LEVEL, rtol=2e-3, max_rounds=10)
    assert np.all(np.diff(fine.masses) > 0) and fine.masses.size > 20 and fine.converged
    assert not refine_masses(toy, coarse, COUPLINGS, LEVEL, rtol=2e-3, max_rounds=1).converged
    test_m = np.geomspace(0.11, 9.0, 57)
    lim = np.interp(np.log(test_m), np.log(fine.masses), np.log(fine.limit("steep")))
    exact = np.array([float(roots_ln(m)[0]) for m in test_m])
    assert np.max(np.abs(lim - exact)) < 2 * np.log1p(2e-3)  # interpolation between converged points


def test_limit_of_a_physics_forecast_equals_a_second_root_finder(presets):
    from cevns_jax.stats import AsimovForecast
    from cevns_jax.models import NewPhysics, lmu_minus_ltau

    fc = AsimovForecast([presets["COH-Ar-750"]], lambda th: NewPhysics(zprime=lmu_minus_ltau(th["M"], th["g"])))
    fn = lambda m, g: fc.unprofiled_delta_chi2({"M": m, "g": g})  # noqa: E731
    curves = solve_crossings(fn, np.array([10.0]), np.geomspace(1e-5, 1e-2, 5), LEVEL)
    # second root finder (scipy's Brent method, point by point) on the same compiled Δχ² program
    second = brentq(lambda lg: evaluate(fn, 10.0, np.exp(lg))["value"][0] - LEVEL, np.log(1e-4), np.log(1e-2),
                    xtol=1e-10)
    assert curves.limit("value")[0] == pytest.approx(np.exp(second), rel=1e-6)


def test_bad_rasters_are_refused():
    with pytest.raises(CevnsInputError, match="positive and increasing"):
        brackets_from_raster([1.0, 0.5], np.zeros((1, 2)), LEVEL)
    with pytest.raises(CevnsInputError, match="NaN"):
        brackets_from_raster([1.0, 2.0], np.array([[0.0, np.nan]]), LEVEL)
    assert LimitCurves(np.array([1.0]), {"x": [[]]}).limit("x")[0] != 0  # NaN where nothing is excluded


def test_labels_solved_together_equal_each_label_alone():
    masses = np.array([0.4, 2.2])
    both = solve_crossings(toy, masses, COUPLINGS, LEVEL)
    alone = solve_crossings(lambda m, g: {"steep": toy(m, g)["steep"]}, masses, COUPLINGS, LEVEL)
    for a, b in zip(both.crossings["steep"], alone.crossings["steep"]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert [len(c) for c in both.crossings["toy"]] == [3, 3]


def test_a_scan_program_solves_the_limits_without_compiling_again(tmp_path):
    """The roots found with the scan's own compiled chunk program (``ScanResult.evaluate``) equal those of
    the point function, and solving with it compiles nothing."""
    from cevns_jax.scan import Axis, run_scan
    from test_compile_once import compilations

    masses = np.array([0.4, 1.3, 2.2])
    axes = [Axis("m", 0.4, 2.2, 3), Axis("g", 1e-6, 1e-1, COUPLINGS.size, "log")]
    result = run_scan(lambda p: toy(p["m"], p["g"]), axes, tmp_path / "toy", progress=False)

    class Pairs:
        def evaluate(self, m, g):
            return result.evaluate({"m": m, "g": g})

    assert result.meta["chunk_size"] == masses.size * COUPLINGS.size  # the whole small grid in one chunk
    with compilations() as seen:
        curves = solve_crossings(Pairs(), masses, axes[1].values(), LEVEL, raster=result.values)
    assert not seen
    direct = solve_crossings(toy, masses, axes[1].values(), LEVEL)
    for label in ("toy", "steep"):
        for a, b in zip(curves.crossings[label], direct.crossings[label]):
            np.testing.assert_allclose(a, b, rtol=1e-9)


def test_fixed_shape_batches_compile_once_and_return_only_the_real_points():
    """``in_batches`` pads to one shape: any number of points, one trace; padded rows never returned."""
    from cevns_jax.batches import in_batches, pad_points, padded_size

    traces = []

    @jax.jit
    def fn(b):
        traces.append(1)
        return {"sq": b["x"] ** 2, "sum": b["x"] + b["y"]}

    for n in (1, 5, 8, 13):
        x, y = np.arange(n, dtype=float), np.linspace(0.0, 1.0, n)
        out = in_batches(fn, {"x": x, "y": y}, 4)
        np.testing.assert_array_equal(out["sq"], x**2)
        np.testing.assert_array_equal(out["sum"], x + y)
    assert len(traces) == 1
    assert padded_size(0, 4) == 4 and padded_size(4, 4) == 4 and padded_size(5, 4) == 8
    np.testing.assert_array_equal(pad_points({"a": np.array([1.0, 2.0])}, 4)["a"], [1.0, 2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="'a' has 0 points"):
        pad_points({"a": np.array([])}, 4)


def test_in_program_solver_keeps_every_crossing():
    """affine_coupling_scan (templates affine in a strength; here strength = g and Δχ² the toy's, so the
    program's Δχ²(g) has an exclusion limit and an allowed island): all three crossings solved inside the
    program equal the exact roots, and the sign changes are counted."""
    from cevns_jax.stats.coupling_scan import affine_coupling_scan

    class Toy:  # an evaluator: templates of a "model" (a number) and a Δχ² of the combined template
        def __init__(self, m):
            self.r = roots_ln(m)

        def templates(self, model, cache):
            return jnp.asarray(model, dtype=jnp.float64)

        def profiled_from_templates(self, t, model):
            u = jnp.log(t)
            return LEVEL * jnp.exp(0.8 * (u - self.r[0]) * (u - self.r[1]) * (u - self.r[2]))

    for m in (0.1, 1.3):
        scan = affine_coupling_scan({"toy": Toy(m)}, lambda th: 1.0, lambda model: 0.0, lambda g: g, COUPLINGS, level=LEVEL)
        out = jax.jit(scan)({})
        assert int(out["toy@brackets"]) == 3
        np.testing.assert_allclose(np.asarray(out["toy@crossings"])[:3], np.exp(np.asarray(roots_ln(m))), rtol=1e-9)
        assert np.isnan(np.asarray(out["toy@crossings"])[3])  # a fourth slot, no crossing


def test_refinement_resolves_where_a_limit_ends_to_a_stated_width():
    """Where a limit leaves the scanned range (the number of crossings changes inside an interval) bisection
    alone never converges; with ``resolve_width`` the place is resolved to that width in ln(mass)."""
    def ending(m, g):  # a limit g = 1.07e-3·m that leaves the raster's top (0.1) at m = 93.46
        return {"end": LEVEL * (g / (1.07e-3 * m)) ** 2}

    raster = np.geomspace(1e-4, 0.1, 12)
    coarse = solve_crossings(ending, np.geomspace(10.0, 1000.0, 5), raster, LEVEL)
    assert not refine_masses(ending, coarse, raster, LEVEL, rtol=1e-3, max_rounds=8).converged
    fine = refine_masses(ending, coarse, raster, LEVEL, rtol=1e-3, max_rounds=30, resolve_width=np.log1p(1e-3))
    assert fine.converged
    has = np.array([len(c) > 0 for c in fine.crossings["end"]])
    last, first_without = fine.masses[has].max(), fine.masses[~has].min()
    assert last < 0.1 / 1.07e-3 < first_without and np.log(first_without / last) <= np.log1p(1e-3)
