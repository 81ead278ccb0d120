"""Fits to COHERENT's released data: CEvNS counts, significance, cross section and sin²θ_W.

Parameters of interest: ``cevns_count`` (CEvNS events in the analysis region; nuisances move only the
shape) or ``sin2_theta_w`` (the SM prediction at ŝ², flux prior :data:`FLUX_PRIOR`). The χ² of one or
several release analyses (:mod:`cevns_jax.stats.analyses`) is an :class:`Objective`, a pytree, so
every fit below is a module-level compiled program reused for every release and POI. Intervals are
the crossings Δχ² = level of the profile likelihood, found by bracketing and root finding
(:func:`profile_interval`, :mod:`cevns_jax.stats.intervals`); the Δχ² curve on a grid is only for plots.

Progress (``progress=True``, the command line's default): each phase is announced on stderr, never
stdout — loading the release, compiling the fit programs (ahead of time, so compilation is timed on
its own and the fits after it run compiled code), the best fit, the interval's root finding and the
profile curve (a ``tqdm`` bar over its points).
"""

from __future__ import annotations

import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from .._pytree import run_once
from ..errors import CevnsInputError
from ..nuisances import dark_matter_priors, program_nuisances
from ..xsec import resolve_standard_model
from .analyses import PUBLISHED, analysis_priors, has_dark_matter, load_analysis, model_counts, observed_vector, poisson_terms
from .intervals import find_crossing
from .likelihood import chi2, profile_nuisances, profiled_chi2

__all__ = ["FLUX_PRIOR", "fit_priors", "Objective", "best_fit", "profile_scan", "profiled_chi2_at", "POI_BOUNDS",
           "INTERVAL_STEPS", "BEST_FIT_STEPS", "check_scan_points", "profile_interval", "fit_release",
           "flux_averaged_cross_section", "fit", "free_nuisance_priors", "profiled_chi2_fixed", "fixed_profile",
           "fixed_minimum", "fixed_interval"]

FLUX_PRIOR = 0.10
"""Prior on the ν flux in ``sin2_theta_w`` fits: the 10% of the COHERENT releases (SNS-2017/2020/2021)."""


def fit_priors(analysis, poi: str = "sin2_theta_w", dark_matter: bool = False) -> dict:
    """{nuisance: σ} of one analysis in a fit of ``poi``: the analysis nuisances, the flux
    (:data:`FLUX_PRIOR`, unless the analysis lists ``flux`` among its nuisances with its own prior) for
    ``sin2_theta_w``, and ``pi0``, ``eta``, ``piminus`` with dark matter (declared, else the facility's,
    :func:`cevns_jax.nuisances.dark_matter_priors`: π⁰ 15% for the SNS eras of the releases)."""
    own_flux = "flux" in analysis.nuisances
    out = {k: v for k, v in analysis_priors(analysis).items() if not (poi == "sin2_theta_w" and k == "flux" and not own_flux)}
    if poi == "sin2_theta_w" and not own_flux:
        out["flux"] = FLUX_PRIOR
    if dark_matter:
        out.update(dark_matter_priors(analysis.experiment, declared=out))
    return out


class Objective:
    """χ²(θ, ν) of one or several analyses; nuisances labelled and shared by the registry
    (:func:`cevns_jax.nuisances.program_nuisances`: flux and π⁰ per target station, the rest per detector).

    ``model`` (optional :class:`cevns_jax.models.NewPhysics`) replaces the SM signal in every analysis
    (see :func:`cevns_jax.stats.analyses.model_counts`); with dark matter ``pi0`` is added. ``share``:
    scope overrides of the registry (e.g. one quenching k for every Ge detector, :func:`cevns_jax.nuisances.check_share`).
    A pytree (analyses and model: leaves; POI, labels and prior widths: static).
    """

    def __init__(self, analyses, poi: str, model=None, share: tuple = ()):
        self.analyses, self.poi, self.model = list(analyses), poi, model
        declared = [fit_priors(a, poi, has_dark_matter(model)) for a in self.analyses]
        local, self.priors = program_nuisances([a.experiment for a in self.analyses], declared, share)
        self.local = tuple(tuple(m.items()) for m in local)

    def mu(self, theta: dict, nuisances: dict):
        theta = {self.poi: theta[self.poi]}
        return jnp.concatenate([poisson_terms(a, theta, {name: nuisances[label] for name, label in local}, None, self.model)
                                for a, local in zip(self.analyses, self.local)])

    def observed(self):
        return jnp.concatenate([observed_vector(a) for a in self.analyses])

    def zero(self) -> dict:
        return {k: jnp.zeros((), dtype=jnp.float64) for k in self.priors}


def _objective_flatten(obj: Objective):
    return (obj.analyses, obj.model), (obj.poi, tuple(obj.priors.items()), obj.local)


def _objective_unflatten(aux, children) -> Objective:
    obj = object.__new__(Objective)
    obj.analyses, obj.model = list(children[0]), children[1]
    obj.poi, obj.priors, obj.local = aux[0], dict(aux[1]), aux[2]
    return obj


jax.tree_util.register_pytree_node(Objective, _objective_flatten, _objective_unflatten)



def _initial_poi(objective: Objective) -> float:
    if objective.poi == "sin2_theta_w":
        return float(resolve_standard_model(objective.analyses[0].experiment).sin2_theta_w)
    a = objective.analyses[0]
    return float(jnp.sum(model_counts(a, {}, {})["cevns"]))


def _joint_mu(objective: Objective):
    """μ(_, p) with the POI as one more entry of ``p`` (for the joint fit and its Fisher matrix)."""
    def mu(_, p):
        return objective.mu({objective.poi: p[objective.poi]}, {k: v for k, v in p.items() if k != objective.poi})

    return mu


@partial(jax.jit, static_argnames="n_steps")
def _joint_fit(objective: Objective, start: dict, n_steps: int):
    n = objective.observed()
    priors = {objective.poi: None, **objective.priors}
    p_hat = profile_nuisances(_joint_mu(objective), n, None, start, priors, n_steps)
    return p_hat, chi2(_joint_mu(objective), n, None, p_hat, priors)


@jax.jit
def _fisher_errors(objective: Objective, p_hat: dict) -> dict:
    """Marginalised Fisher errors √(F⁻¹)_ii at ``p_hat`` (as :func:`cevns_jax.stats.fisher.fisher_matrix`)."""
    flat, unravel = ravel_pytree(p_hat)
    mu_flat = lambda x: _joint_mu(objective)(None, unravel(x))  # noqa: E731
    J = jax.jacfwd(mu_flat)(flat)
    inv_var = ravel_pytree({k: jnp.asarray(0.0 if objective.priors.get(k) is None else 1.0 / objective.priors[k] ** 2)
                            for k in p_hat})[0]
    F = (J.T / jnp.maximum(mu_flat(flat), 1e-300)) @ J + jnp.diag(inv_var)
    return unravel(jnp.sqrt(jnp.diag(jnp.linalg.inv(F))))


@partial(jax.jit, static_argnames="n_steps")
def _profiled_chi2_at(objective: Objective, value, nu0: dict, n_steps: int):
    """min_ν χ²(POI = value, ν) from ``nu0`` (one compiled program per objective structure and ``n_steps``)."""
    return profiled_chi2(objective.mu, objective.observed(), {objective.poi: value}, nu0, objective.priors, n_steps)


@partial(jax.jit, static_argnames="n_steps")
def _profiled_chi2_many(objective: Objective, values, nu0: dict, n_steps: int):
    return jax.vmap(lambda v: _profiled_chi2_at(objective, v, nu0, n_steps))(values)


def best_fit(objective: Objective, n_steps: int = 30):
    """Joint minimum over (θ, ν): the POI is profiled like an unconstrained nuisance."""
    start = {objective.poi: jnp.asarray(_initial_poi(objective)), **objective.zero()}
    p_hat, value = _joint_fit(objective, start, n_steps)
    return p_hat, float(value)


def profile_scan(objective: Objective, values, n_steps: int = 12, start: dict | None = None):
    """Profiled χ² at each POI value (vmapped; ``start``: initial nuisances, default 0)."""
    nu0 = start if start is not None else objective.zero()
    return np.asarray(_profiled_chi2_many(objective, jnp.asarray(values, dtype=jnp.float64), nu0, n_steps))


def profiled_chi2_at(objective: Objective, value: float, start: dict | None = None, n_steps: int = 12) -> float:
    """Profiled χ² at one POI value (host float; one compiled program reused for every value)."""
    nu0 = start if start is not None else objective.zero()
    return float(_profiled_chi2_at(objective, jnp.asarray(value, dtype=jnp.float64), nu0, n_steps))


POI_BOUNDS = {"cevns_count": (0.0, None), "sin2_theta_w": (None, None)}
"""Physical (lower, upper) limits of each POI: a CEvNS count is ≥ 0; an interval may end there (one-sided)."""
INTERVAL_STEPS = 20
"""Fisher-scoring steps of each profiled fit at a fixed POI (warm-started at the best-fit nuisances).
Measured on CsI 2021 (both POIs): 10 steps give the same ends, 40 steps with half the root-finder
tolerance move them by ≤ 3e-6 relative (``tests/test_fits.py`` asserts < 1e-3)."""
BEST_FIT_STEPS = 30
"""Fisher-scoring steps of the joint best fit (POI free)."""
MIN_SCAN_POINTS, MAX_SCAN_POINTS = 3, 1001
"""Profile-curve points: at least the best fit and one point on each side; at most 1001 (each is a fit)."""


def free_nuisance_priors(objective: Objective, labels) -> dict:
    """The objective's priors with ``labels`` unconstrained (σ = None): to measure a nuisance from the data
    alone, e.g. one shared Lindhard k (:func:`fixed_profile`)."""
    unknown = [k for k in labels if k not in objective.priors]
    if unknown:
        raise CevnsInputError(f"unknown nuisance label(s) {', '.join(unknown)}; the objective has {', '.join(objective.priors)}")
    return {k: (None if k in labels else v) for k, v in objective.priors.items()}


@partial(jax.jit, static_argnames="n_steps")
def _fixed_chi2(objective: Objective, poi_value, fixed: dict, nu0: dict, n_steps: int):
    """min over the other nuisances of χ²(POI, ν) with the labels of ``fixed`` held at their values (no prior
    term for them)."""
    rest = {k: v for k, v in objective.priors.items() if k not in fixed}

    def mu(theta, nu):
        return objective.mu(theta, {**nu, **fixed})

    return profiled_chi2(mu, objective.observed(), {objective.poi: poi_value}, nu0, rest, n_steps)


@partial(jax.jit, static_argnames="n_steps")
def _fixed_chi2_many(objective: Objective, poi_value, fixed: dict, nu0: dict, n_steps: int):
    return jax.vmap(lambda f: _fixed_chi2(objective, poi_value, f, nu0, n_steps))(fixed)


def _as_fixed(fixed: dict) -> dict:
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in fixed.items()}


def profiled_chi2_fixed(objective: Objective, poi_value: float, fixed: dict, n_steps: int = INTERVAL_STEPS) -> float:
    """χ² at POI = ``poi_value`` and the nuisance labels of ``fixed`` {label: value} held, every other nuisance
    profiled (from 0) with its prior; the held labels carry no prior term (docs/physics.md §5.6)."""
    fixed = _as_fixed(fixed)
    nu0 = {k: jnp.zeros((), jnp.float64) for k in objective.priors if k not in fixed}
    return float(_fixed_chi2(objective, jnp.asarray(poi_value, dtype=jnp.float64), fixed, nu0, n_steps))


def fixed_profile(objective: Objective, poi_value: float, label: str, values, n_steps: int = INTERVAL_STEPS):
    """:func:`profiled_chi2_fixed` along ``values`` of one nuisance label (vmapped, one compiled program)."""
    values = jnp.asarray(values, dtype=jnp.float64)
    nu0 = {k: jnp.zeros((), jnp.float64) for k in objective.priors if k != label}
    return np.asarray(_fixed_chi2_many(objective, jnp.asarray(poi_value, dtype=jnp.float64), {label: values}, nu0, n_steps))


def fixed_minimum(objective: Objective, poi_value: float, label: str, start: float = 0.0,
                  n_steps: int = BEST_FIT_STEPS) -> tuple[float, float]:
    """(ν̂_label, χ²_min) at POI = ``poi_value`` with ``label`` free and unconstrained (no prior) and every other
    nuisance profiled with its prior: the best value of one nuisance measured by the data."""
    priors = free_nuisance_priors(objective, (label,))
    nu0 = {**objective.zero(), label: jnp.asarray(start, dtype=jnp.float64)}
    p_hat, value = _fixed_best(objective, jnp.asarray(poi_value, dtype=jnp.float64), tuple(priors.items()), nu0, n_steps)
    return float(p_hat[label]), float(value)


@partial(jax.jit, static_argnames=("priors", "n_steps"))
def _fixed_best(objective: Objective, poi_value, priors: tuple, nu0: dict, n_steps: int):
    priors = dict(priors)
    theta = {objective.poi: poi_value}
    p_hat = profile_nuisances(objective.mu, objective.observed(), theta, nu0, priors, n_steps)
    return p_hat, chi2(objective.mu, objective.observed(), theta, p_hat, priors)


def fixed_interval(objective: Objective, poi_value: float, label: str, best: float, chi2_min: float, step: float, *,
                   level: float = 1.0, n_steps: int = INTERVAL_STEPS, xtol: float | None = None):
    """Ends (lower, upper) :class:`cevns_jax.stats.intervals.IntervalEnd` of {ν_label : Δχ² ≤ level}, Δχ² the
    :func:`profiled_chi2_fixed` curve minus ``chi2_min`` (from :func:`fixed_minimum`); bracketing from ``best``
    in steps of ``step`` doubling, then Brent (:func:`cevns_jax.stats.intervals.find_crossing`)."""
    def delta(x):
        return profiled_chi2_fixed(objective, poi_value, {label: x}, n_steps) - chi2_min

    return tuple(find_crossing(delta, best, step, d, level=level, xtol=xtol, what=label) for d in (-1, 1))


def check_scan_points(n_scan, what: str = "n_scan") -> int:
    """``n_scan`` as an int if it is a whole number in [3, 1001], else :class:`CevnsInputError` naming ``what``."""
    try:
        ok = not isinstance(n_scan, bool) and float(n_scan).is_integer()
    except (TypeError, ValueError):
        ok = False
    if not ok or not MIN_SCAN_POINTS <= int(float(n_scan)) <= MAX_SCAN_POINTS:
        raise CevnsInputError(f"{what}: expected a whole number of profile-curve points from {MIN_SCAN_POINTS} to "
                              f"{MAX_SCAN_POINTS} (the best fit and both sides of it), got {n_scan!r}")
    return int(float(n_scan))


def profile_interval(objective: Objective, best: float, chi2_min: float, nuisances: dict, step: float, *,
                     level: float = 1.0, n_steps: int = INTERVAL_STEPS, xtol: float | None = None):
    """The ends (lower, upper) :class:`cevns_jax.stats.intervals.IntervalEnd` of {POI : Δχ² ≤ level}.

    Δχ²(x) = min_ν χ²(x, ν) − ``chi2_min``, each a profiled fit of ``n_steps`` steps warm-started at
    the best-fit ``nuisances``; bracketing from ``best`` in steps of ``step`` (≈ 1σ) doubling, then
    Brent to ``xtol`` (default :data:`cevns_jax.stats.intervals.XTOL_FRACTION` × step). An end at the
    POI's physical bound (:data:`POI_BOUNDS`) is reported with ``kind="boundary"``.
    """
    lower, upper = POI_BOUNDS.get(objective.poi, (None, None))

    def delta(x):
        return profiled_chi2_at(objective, x, nuisances, n_steps) - chi2_min

    ends = [find_crossing(delta, best, step, d, level=level, bound=b, xtol=xtol, what=objective.poi)
            for d, b in ((-1, lower), (1, upper))]
    return ends[0], ends[1]


class _Phases:
    """Announces a fit's phases on stderr as ``[fit] LABEL: …`` lines with their times (silent if disabled)."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled, self.start = label, enabled, time.perf_counter()

    def say(self, text: str, timed: bool = False) -> None:
        if self.enabled:
            took = f" ({time.perf_counter() - self.start:.1f} s)" if timed else ""
            print(f"[fit] {self.label}: {text}{took}", file=sys.stderr, flush=True)
        self.start = time.perf_counter()

    def bar(self, items, what: str):
        return tqdm(items, desc=f"[fit] {self.label}: {what}", unit="fit", file=sys.stderr, disable=not self.enabled,
                    leave=True, dynamic_ncols=True, mininterval=0.5)


def _compile_fit_programs(objective: Objective, start: dict, best_fit_steps: int, n_steps: int) -> None:
    """Compile the best fit, the Fisher errors and the fixed-POI profiled fit ahead of time, with the
    argument types of their later calls (JAX's jit reuses these executables: nothing compiles after)."""
    lowered = _joint_fit.lower(objective, start, best_fit_steps)
    lowered.compile()
    p_hat = lowered.out_info[0]
    _fisher_errors.lower(objective, p_hat).compile()
    nu0 = {k: v for k, v in p_hat.items() if k != objective.poi}
    _profiled_chi2_at.lower(objective, jax.ShapeDtypeStruct((), jnp.float64), nu0, n_steps).compile()


def fit_release(name, *, poi: str = "cevns_count", n_scan: int = 41, signal_template: str = "model",
                morphing: str = "linear", level: float = 1.0, n_steps: int = INTERVAL_STEPS,
                best_fit_steps: int = BEST_FIT_STEPS, xtol: float | None = None, progress: bool = False) -> dict:
    """Fit one release (or a list of releases jointly): best POI, profile-likelihood interval at
    Δχ² = ``level`` (root finding, :func:`profile_interval`), significance against no CEvNS.

    ``n_scan`` (whole number, 3–1001) only sets the points of the Δχ² curve returned under ``scan``
    (best − 3(best − lo) … best + 3(hi − best), clipped at the POI's bound), for plots; no quoted
    number depends on it. ``lo_kind``/``hi_kind``: ``"crossing"`` or ``"boundary"`` (one-sided).
    ``progress``: announce each phase on stderr (module docstring).
    """
    n_scan = check_scan_points(n_scan)
    names = [name] if isinstance(name, str) else list(name)
    if poi == "cevns_count" and len(names) > 1:
        raise CevnsInputError("a joint fit of several releases takes poi='sin2_theta_w' (CEvNS counts differ per detector)")
    if poi not in POI_BOUNDS:
        raise CevnsInputError(f"unknown parameter of interest {poi!r}; choose one of {', '.join(POI_BOUNDS)}")
    say = _Phases(f"{'+'.join(names)} ({poi})", progress)
    say.say(f"loading the release{'s' if len(names) > 1 else ''} (data, templates from the forward model) …")
    analyses = [load_analysis(n, signal_template, morphing) for n in names]
    objective = Objective(analyses, poi)
    if progress:
        start = {objective.poi: jnp.asarray(_initial_poi(objective)), **objective.zero()}
        say.say("loaded", timed=True)
        say.say("compiling the fit programs (best fit, Fisher errors, profiled fit at fixed POI) …")
        _compile_fit_programs(objective, start, best_fit_steps, n_steps)
        say.say("compiled", timed=True)
    p_hat, chi2_min = best_fit(objective, best_fit_steps)
    best = float(p_hat[poi])
    nuis_hat = {k: v for k, v in p_hat.items() if k != poi}
    sigma = float(_fisher_errors(objective, p_hat)[poi])
    say.say(f"best fit {poi} = {best:.6g} ± {sigma:.2g} (Fisher), χ²_min = {chi2_min:.3f}", timed=True)
    say.say(f"profile-likelihood interval: root finding for Δχ² = {level:g} on each side …")
    lo_end, hi_end = profile_interval(objective, best, chi2_min, nuis_hat, sigma, level=level, n_steps=n_steps, xtol=xtol)
    lo, hi = lo_end.value, hi_end.value
    say.say(f"interval [{lo:.6g}, {hi:.6g}] ({lo_end.kind}, {hi_end.kind}; "
            f"{lo_end.evaluations + hi_end.evaluations} profiled fits)", timed=True)
    lower = POI_BOUNDS[poi][0]
    first = max(best - 3 * (best - lo), -np.inf if lower is None else lower)
    left = n_scan // 2  # points below the best fit; the grid contains the best fit itself
    grid = np.concatenate([np.linspace(first, best, left + 1), np.linspace(best, best + 3 * (hi - best), n_scan - left)[1:]])
    delta = np.array([profiled_chi2_at(objective, v, nuis_hat, n_steps) for v in say.bar(grid, "profile curve")]) - chi2_min
    out = {
        "release": name if isinstance(name, str) else "+".join(name),
        "poi": poi,
        "best": best,
        "lo": lo,
        "hi": hi,
        "lo_kind": lo_end.kind,
        "hi_kind": hi_end.kind,
        "level": float(level),
        "fisher_sigma": sigma,
        "chi2_min": chi2_min,
        "n_bins": int(objective.observed().size),
        "nuisances": {k: float(v) for k, v in nuis_hat.items()},
        "scan": {"values": grid.tolist(), "delta_chi2": delta.tolist()},
    }
    if poi == "cevns_count":
        say.say("significance against no CEvNS, SM prediction and flux-averaged cross section (forward model) …")
        null = profiled_chi2_at(objective, 0.0, nuis_hat, n_steps) - chi2_min
        out["significance_sigma"] = float(np.sqrt(max(null, 0.0)))
        a = analyses[0]
        predicted = float(jnp.sum(model_counts(a, {}, {})["cevns"]))
        out["predicted"] = predicted
        if hasattr(a.experiment.source, "protons_on_target"):  # π-DAR fluence; steady sources: no cross section here
            xs = flux_averaged_cross_section(a.experiment)
            out["cross_section_cm2"] = {"sm": xs, "best": xs * best / predicted, "lo": xs * lo / predicted,
                                        "hi": xs * hi / predicted}
        say.say(f"significance {out['significance_sigma']:.2f} σ, SM prediction {predicted:.1f} events", timed=True)
    return out


def flux_averaged_cross_section(experiment, sm=None) -> float:
    """SM flux-averaged cross section per nucleus [cm²], averaged over the three flavours and the target's atoms."""
    return float(_flux_averaged_cross_section(experiment, sm))


@run_once
def _flux_averaged_cross_section(experiment, sm):
    """The cross section as one run-once program (evaluated eagerly, the recoil fold was compiled op by op:
    8.5 s for CENNS-10, 1.3 s as one program)."""
    from ..nuclei import units_per_kg
    from ..rates import events_per_recoil_node
    from ..source import fluence_per_flavour

    _, events = events_per_recoil_node(experiment, sm=sm)
    det = experiment.detector
    nuclei = units_per_kg(experiment.target) * det.mass_kg * jnp.sum(experiment.target.atoms_per_unit)
    return jnp.sum(events) / (3 * fluence_per_flavour(experiment.source, det.baseline_m) * nuclei)


def fit(name: str, signal_template: str = "model", n_scan: int = 41, morphing: str = "linear",
        progress: bool = False) -> dict:
    """The command-line fit: CEvNS count (interval, significance, cross section) and sin²θ_W.

    Intervals are Δχ² = 1 crossings found by root finding; ``n_scan`` sets only the points of the
    profile curves under ``profile`` (see :func:`fit_release`). ``progress``: phases on stderr.
    """
    n_scan = check_scan_points(n_scan)
    kw = dict(signal_template=signal_template, n_scan=n_scan, morphing=morphing, progress=progress)
    count = fit_release(name, poi="cevns_count", **kw)
    weak = fit_release(name, poi="sin2_theta_w", **kw)
    return {
        "release": name,
        "signal_template": signal_template,
        "cevns": {k: count[k] for k in ("best", "lo", "hi")},
        "cevns_predicted": count["predicted"],
        "significance_sigma": count["significance_sigma"],
        "cross_section_cm2": count.get("cross_section_cm2"),  # None for steady sources (no π-DAR fluence)
        "sin2_theta_w": {k: weak[k] for k in ("best", "lo", "hi")},
        "interval_ends": {"cevns": [count["lo_kind"], count["hi_kind"]], "sin2_theta_w": [weak["lo_kind"], weak["hi_kind"]]},
        "profile": {"cevns": count["scan"], "sin2_theta_w": weak["scan"]},
        "published": PUBLISHED.get(name, {}),
        "nuisances": count["nuisances"],
    }


# ----------------------------------------------------------------------------------------------
