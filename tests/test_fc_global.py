"""Feldman–Cousins' global best fit over a multi-modal parameter (``ToyModel.best_fit_grid``, docs/physics.md
§5.11): the unconditional χ² is the minimum over a listed grid of one POI (an oscillation's Δm² rows) of fits
with the other POIs and the nuisances free. Checked against an independent minimiser (SciPy's L-BFGS-B on the
same χ², row by row) on a model built so that the best row is neither the tested nor the first one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from cevns_jax.errors import CevnsInputError
from cevns_jax.scan import Axis
from cevns_jax.stats.toys import ToyModel, check_toy_model, fit_counts
from cevns_jax.toyscan import run_toys

ROWS = 5
SHAPES = np.array([[np.cos(0.9 * r * k) for k in range(6)] for r in range(ROWS)])  # one oscillation pattern per row
NULL = np.array([40.0, 35.0, 30.0, 26.0, 22.0, 18.0])
BKG = np.array([10.0, 10.0, 9.0, 8.0, 8.0, 7.0])
SIGMA_FLUX = 0.1


def rows_model(args, theta, nu):
    """Counts of an oscillation-like model: null template minus a row's pattern of amplitude s ∈ [0, 1]
    (the row index is discrete: rounded), a flux normalisation nuisance and a fixed background."""
    shape = jnp.take(args["shapes"], jnp.round(theta["row"]).astype(jnp.int32), axis=0)
    return (1.0 + nu["flux"]) * args["null"] * (1.0 - 0.3 * theta["s"] * (1.0 + shape) / 2.0) + args["bkg"]


def _model(data, steps=12):
    return ToyModel({"shapes": jnp.asarray(SHAPES), "null": jnp.asarray(NULL), "bkg": jnp.asarray(BKG)},
                    jnp.asarray(data, dtype=jnp.float64), {"flux": jnp.zeros(())}, rows_model,
                    (("flux", SIGMA_FLUX),), (("row", None, None), ("s", 0.0, 1.0)), steps,
                    best_fit_grid=(("row", tuple(float(r) for r in range(ROWS))),))


def _chi2(row, s, flux, n, centre):
    mu = np.asarray(rows_model({"shapes": SHAPES, "null": NULL, "bkg": BKG}, {"row": row, "s": s}, {"flux": flux}))
    dev = 2.0 * np.sum(mu - n + np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0) / mu), 0.0))
    return dev + ((flux - centre) / SIGMA_FLUX) ** 2


def _scipy_best(n, centre):
    """min over rows of min over (s ∈ [0, 1], flux) by L-BFGS-B from three starts per row."""
    best = np.inf
    for row in range(ROWS):
        for s0 in (0.05, 0.5, 0.95):
            r = minimize(lambda x: _chi2(row, x[0], x[1], n, centre), [s0, 0.0], method="L-BFGS-B",
                         bounds=[(0.0, 1.0), (-0.5, 0.5)], options={"ftol": 1e-14, "gtol": 1e-10})
            best = min(best, r.fun)
    return best


def test_global_best_fit_matches_an_independent_minimiser():
    # data: row 3 at s = 0.7 with a 4% flux excess (not a grid hypothesis tested below), rounded to counts
    truth = np.asarray(rows_model({"shapes": SHAPES, "null": NULL, "bkg": BKG}, {"row": 3, "s": 0.7}, {"flux": 0.04}))
    n = np.round(truth)
    model = _model(n)
    fit = jax.jit(lambda th: fit_counts(model, model.data, jnp.zeros(1), th, jnp.zeros(1)))
    reference = _scipy_best(n, 0.0)
    for theta in ([0.0, 0.2], [1.0, 0.9], [3.0, 0.7], [4.0, 0.0]):
        out = fit(jnp.asarray(theta))
        assert bool(out["converged"])
        assert abs(float(out["chi2_free"]) - reference) < 1e-6
        assert abs(float(out["chi2_cond"]) - _chi2(theta[0], theta[1], float(_flux_hat(theta, n)), n, 0.0)) < 1e-6
        assert float(out["t"]) >= -1e-9
        assert int(round(float(out["hat:row"]))) == 3 and abs(float(out["hat:s"]) - 0.7) < 0.2


def _flux_hat(theta, n):
    r = minimize(lambda x: _chi2(theta[0], theta[1], x[0], n, 0.0), [0.0], method="L-BFGS-B", bounds=[(-0.5, 0.5)],
                 options={"ftol": 1e-14, "gtol": 1e-10})
    return r.x[0]


def test_global_best_fit_is_below_every_local_fit():
    """The minimum over the rows is at most the plain unconditional fit started at any grid hypothesis (which
    can stay in a local minimum of its own row), and equal to the smallest of those over all rows."""
    n = np.round(np.asarray(rows_model({"shapes": SHAPES, "null": NULL, "bkg": BKG}, {"row": 1, "s": 0.5},
                                       {"flux": -0.05})))
    glob, local = _model(n), _model(n)
    local = ToyModel(local.args, local.data, local.nuisances, local.mu_fn, local.priors, local.poi, local.n_steps)
    f_glob = jax.jit(jax.vmap(lambda th: fit_counts(glob, glob.data, jnp.zeros(1), th, jnp.zeros(1))))
    f_local = jax.jit(jax.vmap(lambda th: fit_counts(local, local.data, jnp.zeros(1), th, jnp.zeros(1))))
    thetas = jnp.asarray([[r, s] for r in range(ROWS) for s in (0.1, 0.5, 0.9)], dtype=jnp.float64)
    g, loc = f_glob(thetas), f_local(thetas)
    assert np.all(np.asarray(g["chi2_free"]) <= np.asarray(loc["chi2_free"]) + 1e-9)
    assert np.ptp(np.asarray(g["chi2_free"])) < 1e-8  # the same global minimum from every start
    assert abs(float(g["chi2_free"][0]) - float(np.min(loc["chi2_free"]))) < 1e-6


def test_best_fit_grid_runs_under_the_toy_scan(tmp_path):
    """Toys of the global-fit model through run_toys: every t ≥ 0 (the tested row is in the grid), fits converge."""
    n = np.round(np.asarray(rows_model({"shapes": SHAPES, "null": NULL, "bkg": BKG}, {"row": 0, "s": 0.0},
                                       {"flux": 0.0})))
    model = _model(n, steps=8)
    run = run_toys(model, [Axis("row", 0.0, 2.0, 3), Axis("s", 0.2, 0.8, 2)], 16, tmp_path / "toys", seed=3,
                   progress=False)
    assert run.values["t"].shape == (3, 2, 16)
    assert np.all(run.values["t"] >= -1e-9) and float(np.max(run.failure_fraction)) == 0.0


@pytest.mark.parametrize("grid, match", [
    ((("row", (0.0, 1.0)), ("s", (0.5,))), "one parameter"),
    ((("mass", (0.0, 1.0)),), "name among"),
    ((("row", ()),), "non-empty"),
    ((("row", (0.0, float("nan"))),), "finite"),
    ((("s", (0.5, 1.5)),), "within its bounds"),
])
def test_best_fit_grid_is_checked(grid, match):
    model = _model(NULL)
    bad = ToyModel(model.args, model.data, model.nuisances, model.mu_fn, model.priors, model.poi, model.n_steps,
                   best_fit_grid=grid)
    with pytest.raises(CevnsInputError, match=match):
        check_toy_model(bad)
