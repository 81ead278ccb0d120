"""Toy Monte Carlo of any binned Poisson model with Gaussian-constrained nuisances (docs/physics.md §5.11).

A :class:`ToyModel` is the expected counts μ(θ, ν) of an analysis (``mu_fn(args, θ, ν)``, e.g. a forecast's
:func:`cevns_jax.stats.forecast.expected` with a signal strength; see :func:`forecast_toy_model`), its
observed counts, the priors {ν: σ} and the parameters of interest θ with their physical bounds. For a
tested hypothesis θ_h:

1. the generating nuisances ν̂_h are profiled on the observed data (prior centres 0: the auxiliary
   measurements as observed), :func:`generating_nuisances`;
2. toy *i* draws, from ``jax.random.fold_in(fold_in(key(seed), h), i)`` (h: the hypothesis' index on
   its grid; counter-based, so any toy is reproduced from its indices alone, :func:`toy_key`), Poisson
   main counts n ~ Poisson(μ(θ_h, ν̂_h)) and fluctuated auxiliary measurements ν₀ ~ N(ν̂_h, σ) for every
   constrained nuisance (an unconstrained one has no auxiliary measurement), :func:`generate`;
3. two profiled fits of the toy, with the prior terms centred on its ν₀ (((ν − ν₀)/σ)²): conditional (θ = θ_h)
   and unconditional (θ free within its bounds, started from the conditional solution so that
   χ²_free ≤ χ²_cond), by projected Fisher scoring (:mod:`cevns_jax.stats.minimise`); each carries a
   convergence flag; :func:`fit_counts`. The output of a toy is t = χ²_cond − χ²_free, both χ², θ̂ and
   the flags; test statistics (q_μ, q̃_μ, q₀, t_μ) follow from them (:mod:`cevns_jax.stats.teststats`).

:func:`cevns_jax.toyscan.run_toys` runs hypotheses × toys under :func:`cevns_jax.scan.run_scan` (the toy
index is the last grid axis; the scan layer sits above ``stats``, so it lives there): chunked with memory
flat in the number of toys, sharded over devices, resumable and identified by the model's content, the
seed and the settings. Failed fits are kept and counted (:func:`failure_fraction`), never dropped.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._pytree import pytree_dataclass, static_field
from ..errors import CevnsInputError
from .forecast import Signals, expected
from .likelihood import MU_FLOOR, fisher_information
from .minimise import DECREMENT_TOLERANCE, fit_box, spd_solve
from .screen import amplitude_screen, linear_screen

__all__ = ["ToyModel", "TOY_AXIS", "toy_key", "generating_nuisances", "generating_batch", "generate", "fit_counts",
           "toy_outcome", "toy_point_function", "failure_fraction", "check_toy_model", "forecast_toy_model",
           "FIT_STEPS"]

TOY_AXIS = "toy"
"""Name of the toy-index axis of a toy scan (the last axis)."""
FIT_STEPS = 20
"""Default projected Fisher-scoring steps of each toy fit (the convergence flag says whether they sufficed)."""


@pytree_dataclass
class ToyModel:
    """A binned Poisson model for toys.

    ``mu_fn(args, theta, nu)`` → flat expected counts (a module-level function: it is a static field,
    compared by identity, so one compiled program serves every model built on it); ``args``: the arrays
    it needs (a pytree); ``data``: observed counts; ``nuisances``: {name: 0.0} (scalars); ``priors``:
    ((name, σ or None), …) with None for a nuisance without prior; ``poi``: ((name, lower, upper), …) with
    None for no bound; ``n_steps``: fit steps; ``tolerance``: convergence threshold of the fits
    (Newton decrement, χ² units); ``best_fit_grid``: ((poi name, (values, …)),) — the unconditional fit is
    then the minimum over these values of that POI of fits with the other POIs free (FC's global best fit
    where χ² is multi-modal in one parameter, e.g. Δm² of an oscillation; :func:`fit_counts`).
    """

    args: Any
    data: jnp.ndarray
    nuisances: dict
    mu_fn: Callable = static_field()
    priors: tuple = static_field(default=())
    poi: tuple = static_field(default=())
    n_steps: int = static_field(default=FIT_STEPS)
    tolerance: float = static_field(default=DECREMENT_TOLERANCE)
    best_fit_grid: tuple = static_field(default=())
    best_fit_screen: tuple = static_field(default=())

    @property
    def poi_names(self) -> tuple:
        return tuple(p[0] for p in self.poi)

    @property
    def nuisance_names(self) -> tuple:
        return tuple(sorted(self.nuisances))

    def identity(self) -> dict:
        """What the toys depend on, hashable across processes (the function by its qualified name)."""
        fn = f"{getattr(self.mu_fn, '__module__', '?')}.{getattr(self.mu_fn, '__qualname__', repr(self.mu_fn))}"
        return {"args": self.args, "data": self.data, "nuisances": self.nuisances, "mu_fn": fn,
                "priors": [list(p) for p in self.priors], "poi": [list(p) for p in self.poi],
                "n_steps": self.n_steps, "tolerance": self.tolerance,
                **({"best_fit_grid": [[n, [float(x) for x in np.ravel(v)]] for n, v in self.best_fit_grid]}
                   if self.best_fit_grid else {}),
                **({"best_fit_screen": [int(x) for x in self.best_fit_screen]} if self.best_fit_screen else {})}


def check_toy_model(model: ToyModel) -> None:
    names = set(model.nuisances)
    for name, sigma in model.priors:
        if name not in names:
            raise CevnsInputError(f"toy model: prior on {name!r}, which is not a nuisance ({sorted(names)})")
        if sigma is not None and not (float(sigma) > 0 and np.isfinite(float(sigma))):
            raise CevnsInputError(f"toy model: prior width of {name!r} must be finite and > 0 (or None), got {sigma!r}")
    for name, value in model.nuisances.items():
        if np.shape(value) != ():
            raise CevnsInputError(f"toy model: nuisance {name!r} must be a scalar, has shape {np.shape(value)}")
    for entry in model.poi:
        if len(entry) != 3:
            raise CevnsInputError(f"toy model: poi entries are (name, lower, upper), got {entry!r}")
        name, lo, hi = entry
        if lo is not None and hi is not None and not lo < hi:
            raise CevnsInputError(f"toy model: bounds of {name!r} must satisfy lower < upper, got ({lo}, {hi})")
        if name in names:
            raise CevnsInputError(f"toy model: {name!r} is both a parameter of interest and a nuisance")
    if len(model.best_fit_grid) > 1:
        raise CevnsInputError("toy model: best_fit_grid takes one parameter of interest, got "
                              f"{[g[0] for g in model.best_fit_grid]}")
    for entry in model.best_fit_grid:
        if len(entry) != 2 or entry[0] not in model.poi_names:
            raise CevnsInputError(f"toy model: best_fit_grid entries are (poi name, values) with a name among "
                                  f"{list(model.poi_names)}, got {entry!r}")
        values = np.asarray(entry[1], dtype=float)
        if values.ndim != 1 or values.size < 1 or not np.all(np.isfinite(values)):
            raise CevnsInputError(f"toy model: best_fit_grid values of {entry[0]!r} must be a non-empty 1-D "
                                  f"sequence of finite numbers, got {entry[1]!r}")
        _, lower, upper = model.poi[model.poi_names.index(entry[0])]
        if (lower is not None and values.min() < lower) or (upper is not None and values.max() > upper):
            raise CevnsInputError(f"toy model: best_fit_grid values of {entry[0]!r} must lie within its bounds "
                                  f"({lower}, {upper}), got {values.min():g}–{values.max():g}")
    screen = model.best_fit_screen
    if screen != ():
        if (not isinstance(screen, tuple) or len(screen) != 2
                or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in screen)):
            raise CevnsInputError(f"toy model: best_fit_screen is (candidates m, fits k), two whole numbers, got {screen!r}")
        m, k = screen
        if not model.best_fit_grid:
            raise CevnsInputError("toy model: best_fit_screen needs a best_fit_grid to screen")
        size = len(model.best_fit_grid[0][1])
        if not 1 <= k <= m <= size:
            raise CevnsInputError(f"toy model: best_fit_screen (m, k) = {screen!r} must satisfy 1 ≤ k ≤ m ≤ {size} "
                                  "(the values of best_fit_grid)")
        others = [p for p in model.poi if p[0] != model.best_fit_grid[0][0]]
        if len(others) != 1 or others[0][1] is None or others[0][2] is None:
            raise CevnsInputError("toy model: best_fit_screen needs exactly one parameter of interest besides the "
                                  "grid's, with finite lower and upper bounds (an amplitude: the screen "
                                  f"interpolates μ between them), got {[list(p) for p in others]}")


def _sigmas(model: ToyModel) -> jnp.ndarray:
    """σ per nuisance (sorted names), inf where there is no prior."""
    priors = dict(model.priors)
    return jnp.asarray([jnp.inf if priors.get(k) is None else float(priors[k]) for k in model.nuisance_names])


def _inv_var(model: ToyModel) -> jnp.ndarray:
    return 1.0 / _sigmas(model) ** 2  # 0 where σ = inf


def _theta(model: ToyModel, values) -> dict:
    return {name: values[i] for i, name in enumerate(model.poi_names)}


def _nu(model: ToyModel, flat) -> dict:
    return {name: flat[i] for i, name in enumerate(model.nuisance_names)}


def _bounds(model: ToyModel, free_poi: bool):
    """Flat (lower, upper) of the fit vector: [θ (if free), ν]."""
    n_nu = len(model.nuisance_names)
    lo = [-jnp.inf if p[1] is None else float(p[1]) for p in model.poi] if free_poi else []
    hi = [jnp.inf if p[2] is None else float(p[2]) for p in model.poi] if free_poi else []
    as_array = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    return as_array(lo + [-jnp.inf] * n_nu), as_array(hi + [jnp.inf] * n_nu)


def toy_key(seed: int, hypothesis, index):
    """The PRNG key of toy ``index`` of hypothesis ``hypothesis`` (grid index): fold_in(fold_in(key(seed), h), i)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), hypothesis), index)


def _conditional(model: ToyModel, n, centre, theta, nu0):
    """Profiled fit at fixed θ (a vector in POI order): (ν̂, χ², converged, decrement)."""
    lo, hi = _bounds(model, False)
    mu = lambda x: model.mu_fn(model.args, _theta(model, theta), _nu(model, x))  # noqa: E731
    return fit_box(mu, n, nu0, _inv_var(model), centre, lo, hi, model.n_steps, model.tolerance)


def _unconditional(model: ToyModel, n, centre, theta0, nu0, held: int | None = None):
    """Fit with θ free within its bounds, except POI number ``held`` (static), kept at its value in ``theta0``:
    (θ̂, ν̂, χ², converged, decrement)."""
    k = len(model.poi_names)
    free = np.asarray([j for j in range(k) if j != held], dtype=int)
    m = free.size
    lo, hi = _bounds(model, True)
    keep = np.concatenate([free, np.arange(k, lo.size)])
    inv_var = jnp.concatenate([jnp.zeros(m), _inv_var(model)])
    full_centre = jnp.concatenate([jnp.zeros(m), centre])
    theta_of = (lambda x: x[:k]) if held is None else (lambda x: theta0.at[free].set(x[:m]))  # noqa: E731
    mu = lambda x: model.mu_fn(model.args, _theta(model, theta_of(x)), _nu(model, x[m:]))  # noqa: E731
    x, value, ok, dec = fit_box(mu, n, jnp.concatenate([theta0[free], nu0]), inv_var, full_centre, lo[keep], hi[keep],
                                model.n_steps, model.tolerance)
    return theta_of(x), x[m:], value, ok, dec


def _grid_unconditional(model: ToyModel, n, centre, theta0, nu0):
    """The unconditional fit over ``model.best_fit_grid``: at each listed value of its POI a fit of the other
    POIs and the nuisances (started at ``theta0``, ``nu0``), the smallest χ² kept. Converged only when every
    one of these fits converged (a failed one might have been the minimum); the decrement is their largest.
    With ``model.best_fit_screen`` only some values are fitted (:func:`_screened_fits`)."""
    if model.best_fit_screen:
        return _screened_fits(model, n, centre, theta0, nu0)
    name, values = model.best_fit_grid[0]
    i = model.poi_names.index(name)
    starts = jnp.tile(theta0, (len(values), 1)).at[:, i].set(jnp.asarray(values, dtype=jnp.float64))
    thetas, _, chi2, ok, dec = jax.vmap(lambda s: _unconditional(model, n, centre, s, nu0, held=i))(starts)
    best = jnp.argmin(chi2)
    return thetas[best], chi2[best], jnp.all(ok), jnp.max(dec)


FIRST_STAGE_FITS = 1
"""Rows of the screen fitted on stage 1's ranking alone (its best), whatever stage 2 estimates for them: the
two stages fail on different toys (stage 2 around a large-signal fit misjudges distant aliases that stage 1,
around the no-signal fit, ranks first; session 21)."""
NEIGHBOURS = (-2, -1, 1, 2)
"""Grid-index offsets of the rows next to the tested one that the screen's stage 2 always examines (where
toys hold a large signal their best row is often next to the tested one, which stage 1 can rank low)."""


def _nuisance_block(model: ToyModel, theta, nu):
    """∂μ/∂ν (bins × ν), the inverse of the ν–ν Fisher block with priors, and μ, at (θ, ν)."""
    def mu_of_nu(x):
        mu = jnp.maximum(model.mu_fn(model.args, _theta(model, theta), _nu(model, x)), MU_FLOOR)
        return mu, mu

    J, mu = jax.jacfwd(mu_of_nu, has_aux=True)(nu)
    A = 2.0 * fisher_information(J, mu) + 2.0 * jnp.diag(_inv_var(model)) + 1e-12 * jnp.eye(nu.size)
    return J, jax.vmap(lambda e: spd_solve(A, e))(jnp.eye(nu.size)), mu  # unrolled Cholesky: no batched LAPACK


def _screened_fits(model: ToyModel, n, centre, theta0, nu0):
    """The screened global fit (``model.best_fit_screen`` = (m, k); :mod:`cevns_jax.stats.screen`):

    1. two fits that every toy gets: the *base*, the amplitude at its lower bound (no oscillation: a point
       of every row), and the tested row (from ``theta0``, ``nu0``, as without the screen);
    2. stage 1 ranks every grid value around the base; stage 2 re-ranks stage 1's ``m`` best and the tested
       row's :data:`NEIGHBOURS` around whichever of the two fits has the lower χ² (where the data hold a
       large signal the nuisances of the no-signal fit are far from those of the rows that fit it);
    3. full fits of ``k`` rows: stage 1's best (:data:`FIRST_STAGE_FITS`) and stage 2's best of the others,
       each started as without the screen (``theta0``'s amplitude, ``nu0``), so that a row fitted here gets
       the very value that fitting every row would give it.

    The minimum of the k + 2 fits is kept; converged when all of them converged. It equals the minimum over
    every row whenever the best row is among those fitted, and is above it otherwise."""
    m, k = model.best_fit_screen
    name, values = model.best_fit_grid[0]
    i = model.poi_names.index(name)
    j = 1 - i
    a, b = float(model.poi[j][1]), float(model.poi[j][2])
    inv_var = _inv_var(model)
    grid = jnp.asarray(values, dtype=jnp.float64)
    base = theta0.at[j].set(a)
    nu_b, chi_b, ok_b, dec_b = _conditional(model, n, centre, base, nu0)
    theta_t, nu_t, chi_t, ok_t, dec_t = _unconditional(model, n, centre, theta0, nu0, held=i)

    def ends(v, nu):
        """μ of grid value v at both ends of the amplitude (θ built afresh: no toy input unless ``nu`` is one)."""
        at = lambda amp: model.mu_fn(model.args, _theta(model, jnp.zeros(2).at[i].set(v).at[j].set(amp)), _nu(model, nu))  # noqa: E731
        return at(a), at(b)

    J, A_inv, mu_b = _nuisance_block(model, base, nu_b)
    lo_nom, hi_nom = jax.vmap(lambda v: ends(v, jnp.zeros_like(nu_b)))(grid)  # computed once per batch
    g_nu = 2.0 * J.T @ (1.0 - n / mu_b) + 2.0 * inv_var * (nu_b - centre)
    first = jax.lax.top_k(-linear_screen(hi_nom - lo_nom, mu_b, J, n, g_nu, A_inv), m)[1]

    tested = jnp.argmin(jnp.abs(grid - theta0[i]))
    rows = jnp.concatenate([first, jnp.clip(tested + jnp.asarray(NEIGHBOURS), 0, grid.size - 1)])
    earlier = jnp.arange(rows.size)[:, None] > jnp.arange(rows.size)[None, :]
    repeated = jnp.any((rows[:, None] == rows[None, :]) & earlier, axis=1) | (rows == tested)
    tested_better = chi_t < chi_b
    theta_s, nu_s = jnp.where(tested_better, theta_t, base), jnp.where(tested_better, nu_t, nu_b)
    J, A_inv, _ = _nuisance_block(model, theta_s, nu_s)
    lo, hi = jax.vmap(lambda v: ends(v, nu_s))(grid[rows])
    _, second = jax.vmap(lambda x, y: amplitude_screen(x, y, n, J, 2.0 * inv_var * (nu_s - centre), A_inv))(lo, hi)
    second = jnp.where(jnp.arange(rows.size) < FIRST_STAGE_FITS, -jnp.inf, second)
    second = jnp.where(repeated, jnp.inf, second)  # the tested row has its fit; no row is fitted twice
    starts = jnp.tile(theta0, (k, 1)).at[:, i].set(grid[rows[jax.lax.top_k(-second, k)[1]]])
    thetas, _, chi2, ok, dec = jax.vmap(lambda s: _unconditional(model, n, centre, s, nu0, held=i))(starts)
    thetas = jnp.concatenate([thetas, base[None], theta_t[None]])
    chi2 = jnp.concatenate([chi2, chi_b[None], chi_t[None]])
    best = jnp.argmin(chi2)
    return thetas[best], chi2[best], jnp.all(ok) & ok_b & ok_t, jnp.max(jnp.concatenate([dec, dec_b[None], dec_t[None]]))


def generating_nuisances(model: ToyModel, theta) -> jnp.ndarray:
    """ν̂(θ) profiled on the observed data with the prior centres at 0 (flat, sorted nuisance names)."""
    theta = jnp.asarray(theta, dtype=jnp.float64)
    zeros = jnp.zeros(len(model.nuisance_names))
    return _conditional(model, model.data, zeros, theta, zeros)[0]


def generate(model: ToyModel, theta, nu_gen, key):
    """One toy at (θ, ν_gen): (Poisson counts, auxiliary measurements ν₀ ~ N(ν_gen, σ); ν₀ = ν_gen where σ = ∞)."""
    k_main, k_aux = jax.random.split(key)
    mu = model.mu_fn(model.args, _theta(model, jnp.asarray(theta, dtype=jnp.float64)), _nu(model, nu_gen))
    counts = jax.random.poisson(k_main, jnp.maximum(mu, 0.0)).astype(jnp.float64)
    sigma = _sigmas(model)
    noise = jax.random.normal(k_aux, nu_gen.shape, dtype=jnp.float64)
    centre = nu_gen + jnp.where(jnp.isfinite(sigma), sigma, 0.0) * noise
    return counts, centre


def fit_counts(model: ToyModel, counts, centre, theta_test, nu_start) -> dict:
    """Conditional and unconditional fits of one data set (counts, auxiliary measurements ``centre``) for the
    hypothesis ``theta_test`` (POI vector); with ``model.best_fit_grid`` the unconditional χ² is the minimum
    over that grid (:class:`ToyModel`), each fit started at ``theta_test`` and the conditional ν̂ — so the
    grid value of ``theta_test``, if listed, gives χ²_free ≤ χ²_cond; with ``model.best_fit_screen`` over the
    screened grid values only (:func:`_screened_fits`), whose fit of the tested row gives the same bound. Returns {"t": χ²_cond − χ²_free,
    "chi2_cond", "chi2_free", "converged" (1.0 when both fits converged, else 0.0), "decrement_cond", "decrement_free",
    "hat:<poi>" for each POI} — scalars, so it vmaps over toys and hypotheses."""
    theta_test = jnp.asarray(theta_test, dtype=jnp.float64)
    nu_c, chi_c, ok_c, dec_c = _conditional(model, counts, centre, theta_test, nu_start)
    lo, hi = _bounds(model, True)
    k = len(model.poi_names)
    start = jnp.clip(theta_test, lo[:k], hi[:k])
    if model.best_fit_grid:
        theta_hat, chi_f, ok_f, dec_f = _grid_unconditional(model, counts, centre, start, nu_c)
    else:
        theta_hat, _, chi_f, ok_f, dec_f = _unconditional(model, counts, centre, start, nu_c)
    out = {"t": chi_c - chi_f, "chi2_cond": chi_c, "chi2_free": chi_f, "converged": (ok_c & ok_f).astype(jnp.float64),
           "decrement_cond": dec_c, "decrement_free": dec_f}
    out.update({f"hat:{name}": theta_hat[i] for i, name in enumerate(model.poi_names)})
    return out


def toy_outcome(model: ToyModel, theta_test, theta_gen, nu_gen, key) -> dict:
    """Generate one toy at (θ_gen, ν_gen) with ``key`` and fit it for ``theta_test`` (:func:`fit_counts`)."""
    counts, centre = generate(model, theta_gen, nu_gen, key)
    return fit_counts(model, counts, centre, theta_test, nu_gen)


@jax.jit
def generating_batch(model: ToyModel, thetas):
    """:func:`generating_nuisances` at each row of ``thetas`` (n, n_poi): (n, n_nuisances)."""
    return jax.vmap(lambda th: generating_nuisances(model, th))(thetas)


def failure_fraction(values: dict) -> np.ndarray:
    """Share of toys (last axis) whose conditional or unconditional fit did not converge."""
    return 1.0 - np.mean(np.asarray(values["converged"]), axis=-1)


def toy_point_function(model: ToyModel) -> Callable:
    """The point function of a toy scan of ``model``: named scalar inputs (the POIs θ_test, ``gen:<poi>``
    θ_gen, ``nu:<nuisance>`` ν_gen, ``seed``, ``hypothesis``, :data:`TOY_AXIS`) → :func:`toy_outcome`.
    Everything that changes between runs of one model is an input, so one compiled program
    (:func:`cevns_jax.toyscan.toy_program`) serves every grid, seed and generating point."""
    names, nu_names = model.poi_names, model.nuisance_names

    def point(p: dict) -> dict:
        theta_test = jnp.stack([p[k] for k in names])
        theta_gen = jnp.stack([p[f"gen:{k}"] for k in names])
        nu_gen = jnp.stack([p[f"nu:{k}"] for k in nu_names]) if nu_names else jnp.zeros(0)
        u32 = lambda x: jnp.round(x).astype(jnp.uint32)  # noqa: E731  (whole numbers < 2³², checked by run_toys)
        key = toy_key(u32(p["seed"]), u32(p["hypothesis"]), u32(p[TOY_AXIS]))
        return toy_outcome(model, theta_test, theta_gen, nu_gen, key)

    return point


# ---------------------------------------------------------------- a forecast's μ as a toy model

def _forecast_mu(args, theta, nu):
    reference, sigs = args
    scaled = [Signals(s.cevns * theta["mu"], s.dark_matter) for s in sigs]
    return expected(reference, scaled, nu)


def forecast_toy_model(reference, sigs: list, data=None, n_steps: int = FIT_STEPS,
                       lower: float | None = 0.0) -> ToyModel:
    """Toys of an experiment's forecast μ (:func:`cevns_jax.stats.forecast.expected`: every nuisance of the
    reference profiled) with one parameter of interest ``mu``, the strength of the signal templates
    ``sigs`` (CEvNS; 1 = the templates as given, bounded below by ``lower``). ``data``: observed counts
    (default: the reference's Asimov data)."""
    priors = reference.prior_dict()
    nuisances = {k: jnp.zeros((), dtype=jnp.float64) for k in priors}
    return ToyModel((reference, list(sigs)), reference.data if data is None else jnp.asarray(data), nuisances,
                    _forecast_mu, tuple(sorted(priors.items())), (("mu", lower, None),), n_steps)
