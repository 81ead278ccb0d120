"""Fits to COHERENT's released data: CEvNS counts, significance, cross section and sin²θ_W.

Each release becomes a :class:`BinnedAnalysis`: the validation preset (our CEvNS model with its
nuisances), the observed counts in the analysis bins, background templates from the release, and —
for the CsI releases — the anti-coincidence (AC) counts as an exact Poisson constraint on the
steady-state background (same window length, so μ_SS,C = μ_SS,AC bin by bin).

* CENNS-10 Analysis A: the 3-D (energy, F90, time) release data; our CEvNS (energy × time) template
  is spread in F90 with the release's CEvNS F90 shape per energy bin; steady-state, prompt and delayed
  beam-related-neutron templates and priors from the release.
* CsI 2017: beam-on coincidence histogram in 6–30 PE, 0–12 μs; beam-on AC histogram as steady state.
* CsI 2021: the released events binned in (PE, time), AC events as steady state, BRN and NIN
  templates, the release's quenching and efficiency with their pulls.

Parameters of interest: ``cevns_count`` (CEvNS events in the analysis region; nuisances move only the
shape) or ``sin2_theta_w`` (the SM prediction at ŝ², flux prior 10%). Intervals are the crossings
Δχ² = level of the profile likelihood, found by bracketing and root finding
(:func:`profile_interval`, :mod:`cevns_jax.intervals`); the Δχ² curve on a grid is only for plots.

New physics: :func:`model_counts` takes a :class:`cevns_jax.models.NewPhysics` point (its CEvNS
replaces the SM signal; dark matter is added with a ``pi0`` nuisance), and :class:`DataLimit` gives
the profiled Δχ²(θ) of a model family against the SM fitted to the data (limits, scans).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import releases
from ._pytree import pytree_dataclass, replace, static_field
from .errors import CevnsInputError
from .experiment import load_experiment
from .intervals import find_crossing
from .likelihood import chi2, profile_nuisances, profiled_chi2
from .nuisances import nuisance_priors, predicted_counts
from .source import COMPONENTS
from .xsec import StandardModel, resolve_standard_model

RELEASES = ("COHERENT-CsI-2017", "COHERENT-CENNS10-2020", "COHERENT-CsI-2021")
PUBLISHED = {
    # fitted CEvNS events (± 1σ), significance; flux-averaged σ [cm²] where published
    "COHERENT-CsI-2017": dict(cevns=134.0, error=22.0, significance=6.7, source="Science 357, 1123 (2017)"),
    "COHERENT-CENNS10-2020": dict(cevns=159.0, error=43.0, significance=3.5, xs=2.2e-39, xs_error=0.7e-39,
                                  source="PRL 126, 012002 (2021); LArParametersAnlA.yaml"),
    "COHERENT-CsI-2021": dict(cevns=306.0, error=20.0, significance=11.6, source="PRL 129, 081801 (2022)"),
}


@pytree_dataclass
class BinnedAnalysis:
    """Observed counts and the model pieces of one release fit (array leaves; data space is flat)."""

    experiment: object
    observed: jnp.ndarray
    templates: dict
    f90_fractions: jnp.ndarray | None
    ac_observed: jnp.ndarray | None
    shape: tuple = static_field(default=())
    nuisances: tuple = static_field(default=())
    name: str = static_field(default="")
    signal_template: str = static_field(default="model")
    extra_priors: tuple = static_field(default=())
    signal_nominal: jnp.ndarray | None = None
    signal_log_derivatives: jnp.ndarray | None = None
    morphed: tuple = static_field(default=())


SIGNAL_TEMPLATES = ("model", "factorised")


def _signal_in_data_space(analysis: BinnedAnalysis, counts: dict):
    """CEvNS (energy × time) → data space (with the F90 axis for CENNS-10).

    ``signal_template = "model"`` keeps the energy–time correlation of the model (prompt ν_μ give
    softer recoils than the delayed flavours); ``"factorised"`` replaces it by the product of its
    energy and time projections, the construction of the CENNS-10 release's CEvNS PDF (every
    energy bin there has the same time profile), for like-for-like comparisons with COHERENT.
    """
    sig = sum(counts[c] for c in COMPONENTS)
    if analysis.signal_template == "factorised":
        sig = jnp.outer(sig.sum(axis=1), sig.sum(axis=0)) / jnp.sum(sig)
    if analysis.f90_fractions is not None:
        sig = sig[:, None, :] * analysis.f90_fractions[:, :, None]
    return sig


def _with_f90(analysis: BinnedAnalysis, counts):
    """(energy × time) → data space for a nuclear-recoil component without its own F90 shape."""
    if analysis.f90_fractions is not None:
        return counts[:, None, :] * analysis.f90_fractions[:, :, None]
    return counts


def _has_dark_matter(model) -> bool:
    return model is not None and model.dark_matter is not None


def _exact_parts(analysis: BinnedAnalysis, theta: dict, nuisances: dict, sm: StandardModel | None, model=None):
    """(CEvNS, dark matter or ``None``) in data space from the full forward model at (θ, ν).

    Dark matter (nuclear recoils) takes the CEvNS F90 shape of each energy bin on CENNS-10.
    """
    if "sin2_theta_w" in theta:
        sm = replace(resolve_standard_model(analysis.experiment, sm), sin2_theta_w=theta["sin2_theta_w"])
    exp_values = {k: v for k, v in nuisances.items() if not k.startswith("background:")}
    counts = predicted_counts(analysis.experiment, exp_values, sm=sm, model=model)
    dm = _with_f90(analysis, counts["dark_matter"]) if "dark_matter" in counts else None
    return _signal_in_data_space(analysis, counts), dm


def _exact_signal(analysis: BinnedAnalysis, theta: dict, nuisances: dict, sm: StandardModel | None, model=None):
    """CEvNS in data space from the full forward model at (θ, ν) (``model``: new physics or ``None``)."""
    return _exact_parts(analysis, theta, nuisances, sm, model)[0]


def _dark_matter_template(analysis: BinnedAnalysis, dm):
    """Dark-matter counts in data space at ν = 0 and their log-derivatives in the morphed detector nuisances.

    Unlike the CEvNS signal, whose log-derivatives are stored once at the SM, these are recomputed
    for every dark-matter point (forward mode, one pass): a prompt signal with its own recoil
    spectrum responds differently to the quenching, efficiency and timing nuisances (agrees with the
    exact model to 0.1% in total counts at 0.5σ pulls, ``tests/test_fits.py``).
    """
    from .nuisances import apply_nuisances
    from .rates import dark_matter_counts

    names = tuple(k for k in analysis.morphed if k != "flux")  # χ production does not scale with the ν flux

    def counts_of(nu):
        exp, signal_factor, _ = apply_nuisances(analysis.experiment, nu)
        return _with_f90(analysis, dark_matter_counts(exp, dm) * signal_factor)

    zero = {k: jnp.zeros((), dtype=jnp.float64) for k in names}
    D0 = counts_of(zero)
    J = jax.jacfwd(counts_of)(zero)
    safe = jnp.where(D0 > 0, D0, 1.0)
    logd = jnp.stack([jnp.where(D0 > 0, J[k] / safe, 0.0) if k in J else jnp.zeros_like(D0) for k in analysis.morphed])
    return D0, logd


@jax.jit
def _signal_and_jacobian(analysis: BinnedAnalysis, zero: dict):
    """CEvNS signal at ν and its forward-mode Jacobian in ν, compiled once per release (op by op the
    derivatives of a release's model take tens of seconds)."""
    return _exact_signal(analysis, {}, zero, None), jax.jacfwd(lambda v: _exact_signal(analysis, {}, v, None))(zero)


def with_linear_morphing(analysis: BinnedAnalysis) -> BinnedAnalysis:
    """Precompute the CEvNS template and its logarithmic derivatives in the detector nuisances.

    Fits then use S(θ, ν) = S(θ, 0) · (1 + Σ_k ν_k ∂ln S/∂ν_k|₀) (linear template morphing, as with the
    ±1σ templates of the releases): the forward model runs once per θ instead of once per profiling
    step. Pulls in the release fits are ≲ 0.4σ; ``tests/test_fits.py`` compares with the exact model.
    """
    names = tuple(k for k in analysis.nuisances if not k.startswith("background:")) + ("flux",)
    zero = {k: jnp.zeros((), dtype=jnp.float64) for k in names}
    S0, J = _signal_and_jacobian(analysis, zero)
    safe = jnp.where(S0 > 0, S0, 1.0)
    logd = jnp.stack([jnp.where(S0 > 0, J[k] / safe, 0.0) for k in names])
    return replace(analysis, signal_nominal=S0, signal_log_derivatives=logd, morphed=names)


def morphing_templates(analysis: BinnedAnalysis, theta: dict, sm: StandardModel | None = None, model=None) -> dict:
    """The per-θ pieces of the linear-morphing prediction (``analysis`` built with linear morphing).

    ``{"signal": CEvNS at ν = 0, "dark_matter": (counts at ν = 0, log-derivatives) or None}``. The SM
    signal (no ``sin2_theta_w`` in θ, no model) is the stored nominal. Computing these once per θ and
    then :func:`morphed_counts` at each profiling step keeps profiling cheap.
    """
    base = analysis.signal_nominal
    if "sin2_theta_w" in theta or model is not None:
        cevns_model = None if model is None else replace(model, dark_matter=None)
        base = _exact_signal(analysis, theta, {}, sm, cevns_model)
    dm = _dark_matter_template(analysis, model.dark_matter) if _has_dark_matter(model) else None
    return {"signal": base, "dark_matter": dm}


def _pulls(analysis: BinnedAnalysis, nuisances: dict):
    return jnp.stack([jnp.asarray(nuisances.get(k, 0.0), dtype=jnp.float64) for k in analysis.morphed])


def morphed_counts(analysis: BinnedAnalysis, theta: dict, templates: dict, nuisances: dict) -> dict:
    """Expected counts from precomputed :func:`morphing_templates` (cheap in ν; see :func:`model_counts`)."""
    pulls = _pulls(analysis, nuisances)
    signal = templates["signal"] * (1.0 + jnp.tensordot(pulls, analysis.signal_log_derivatives, axes=1))
    dm = None
    if templates.get("dark_matter") is not None:
        D0, logd = templates["dark_matter"]
        dm = D0 * (1.0 + jnp.tensordot(pulls, logd, axes=1)) * (1.0 + nuisances.get("pi0", 0.0))
    return _assemble(analysis, theta, signal, dm, nuisances)


def model_counts(analysis: BinnedAnalysis, theta: dict, nuisances: dict, sm: StandardModel | None = None, model=None):
    """Expected counts {component: data-space array}: ``cevns``, each background template and, for a
    model with dark matter, ``dark_matter``.

    θ holds ``cevns_count`` (signal normalised to that many events) or ``sin2_theta_w``; ``model`` is an
    optional :class:`cevns_jax.models.NewPhysics` point whose CEvNS replaces the SM signal (``None``:
    the SM, computed exactly as before models existed). Dark matter (``rates.dark_matter_counts``)
    scales with the ``pi0`` nuisance (production normalisation) and with the detector nuisances.

    With linear morphing the model's CEvNS signal at ν = 0 is recomputed, but the detector nuisances
    act on it through the log-derivatives stored for the SM signal. Approximation: the model changes
    how many events each bin gets, not how each bin responds (relatively) to the quenching,
    efficiency and timing nuisances. Measured on CsI 2021 at the L_μ−L_τ 90% CL point (M = 10 MeV,
    g′ = 1.3e-3): Δχ² = 2.42 linear vs 2.69 with ``morphing="exact"`` (which has no such
    approximation), i.e. ≈2% on the limit. Dark matter gets its own log-derivatives
    (:func:`_dark_matter_template`).
    """
    if analysis.morphed:
        return morphed_counts(analysis, theta, morphing_templates(analysis, theta, sm, model), nuisances)
    signal, dm = _exact_parts(analysis, theta, nuisances, sm, model)
    return _assemble(analysis, theta, signal, dm, nuisances)


def _assemble(analysis: BinnedAnalysis, theta: dict, signal, dm, nuisances: dict) -> dict:
    if "cevns_count" in theta:
        signal = theta["cevns_count"] * signal / jnp.sum(signal)
    out = {"cevns": signal}
    if dm is not None:
        out["dark_matter"] = dm
    flux = 1.0 + nuisances.get("flux", 0.0)
    for name, tmpl in analysis.templates.items():
        scale = 1.0 + nuisances.get(f"background:{name}", 0.0)
        out[name] = tmpl * scale * (flux if name == "nin" else 1.0)
    return out


def poisson_terms(analysis: BinnedAnalysis, theta: dict, nuisances: dict, sm=None, model=None):
    """All Poisson means as one flat vector: coincidence bins, then AC bins (steady state) if any."""
    return _flat_means(analysis, model_counts(analysis, theta, nuisances, sm, model))


def _flat_means(analysis: BinnedAnalysis, parts: dict):
    mu = sum(parts.values()).ravel()
    if analysis.ac_observed is not None:
        mu = jnp.concatenate([mu, parts["steady_state"].ravel()])
    return mu


def observed_vector(analysis: BinnedAnalysis):
    n = analysis.observed.ravel()
    return n if analysis.ac_observed is None else jnp.concatenate([n, analysis.ac_observed.ravel()])


def analysis_priors(analysis: BinnedAnalysis) -> dict:
    """Gaussian prior widths of the analysis nuisances (``None``: constrained by AC data instead)."""
    priors = {**nuisance_priors(analysis.experiment), **dict(analysis.extra_priors)}
    out = {k: priors.get(k) for k in analysis.nuisances}
    if analysis.ac_observed is not None:
        out["background:steady_state"] = None
    return out


# ----------------------------------------------------------------------------------------------
# Building the analyses from the shipped releases
# ----------------------------------------------------------------------------------------------
def _f(x):
    return jnp.asarray(np.asarray(x, dtype=np.float64))


def cenns10_analysis() -> BinnedAnalysis:
    exp = load_experiment("COHERENT-CENNS10-2020")
    path = lambda f: releases.data_path(f"cenns10_analysisA/{f}")  # noqa: E731
    _, observed = releases.grid_histogram(path("datanobkgsub.txt"))
    _, cevns = releases.grid_histogram(path("cevnspdf.txt"))
    per_energy = cevns.sum(axis=2)
    norm = per_energy.sum(axis=1, keepdims=True)
    frac = np.where(norm > 0, per_energy / np.where(norm > 0, norm, 1.0), 1.0 / per_energy.shape[1])
    templates = {name: _f(releases.grid_histogram(path(f))[1])
                 for name, f in (("steady_state", "bkgpdf.txt"), ("brn_prompt", "brnpdf.txt"), ("brn_delayed", "delbrnpdf.txt"))}
    nuisances = ("background:steady_state", "background:brn_prompt", "background:brn_delayed",
                 "quenching_a", "quenching_b_per_keVnr", "pulse_mean_us")
    return BinnedAnalysis(exp, _f(observed), templates, _f(frac), None, observed.shape, nuisances, "COHERENT-CENNS10-2020")


def _edges_us(exp):
    return np.asarray(exp.detector.binning.energy_edges), np.asarray(exp.detector.binning.time_edges_ns) / 1e3


def csi2017_analysis() -> BinnedAnalysis:
    exp = load_experiment("COHERENT-CsI-2017")
    e_edges, t_edges = _edges_us(exp)
    hist = lambda f: releases.template({"kind": "grid", "file": f"package:csi2017/{f}"}, e_edges, t_edges, releases.DATA_DIR)  # noqa: E731
    observed = hist("data_coincidence_beamOn.txt")
    ac = hist("data_anticoincidence_beamOn.txt")
    from .rates import background_counts

    templates = {"steady_state": background_counts(exp)["steady_state"], "brn": _f(csi2017_prompt_neutrons(exp))}
    nuisances = ("background:brn", "quenching_factor", "pulse_mean_us")
    return BinnedAnalysis(exp, _f(observed), templates, None, _f(ac), observed.shape, nuisances, "COHERENT-CsI-2017",
                          extra_priors=(("background:brn", 0.25),))


CSI2017_PROMPT_NEUTRONS_PER_GWH = 1.0
"""Release normalisation of the CsI 2017 prompt-neutron arrival-time PDF: counts per GWh (± 25%)."""


def csi2017_prompt_neutrons(exp) -> np.ndarray:
    """Prompt beam-related neutrons of the CsI 2017 release on the analysis bins.

    The release gives the arrival-time PDF (0.5 μs bins) and its normalisation (1 count per GWh,
    ± 25%), to be multiplied by the PE efficiency; no energy shape is released, so the neutrons are
    spread flat over the release's 0–50 PE before the efficiency (an assumption).
    """
    e_edges, t_edges = _edges_us(exp)
    table = releases.read_table(releases.data_path("csi2017/arrivalTimePDF_promptNeutrons.txt"), 2, nonnegative_columns=(1,))
    time = releases.rebin(releases.edges_from_centres(table[:, 0]), table[:, 1], t_edges)
    x = np.linspace(e_edges[0], e_edges[-1], 64 * (e_edges.size - 1) + 1)
    eff = np.asarray(exp.detector.efficiency(jnp.asarray(0.5 * (x[1:] + x[:-1]))))
    per_bin = (eff * np.diff(x)).reshape(e_edges.size - 1, -1).sum(axis=1) / 50.0
    gwh = 7.47594
    return CSI2017_PROMPT_NEUTRONS_PER_GWH * gwh * np.outer(per_bin, time)


def csi2021_analysis() -> BinnedAnalysis:
    exp = load_experiment("COHERENT-CsI-2021")
    e_edges, t_edges = _edges_us(exp)
    observed = releases.event_histogram(releases.data_path("csi2021/dataBeamOnC.txt"), e_edges, t_edges)
    ac = releases.event_histogram(releases.data_path("csi2021/dataBeamOnAC.txt"), e_edges, t_edges)
    from .rates import background_counts

    bkg = background_counts(exp)
    templates = {"steady_state": bkg["steady_state"], "brn": bkg["brn"], "nin": bkg["nin"]}
    nuisances = ("background:brn", "background:nin", "quenching_pca_0", "quenching_pca_1", "efficiency_pca",
                 "pulse_mean_us")
    return BinnedAnalysis(exp, _f(observed), templates, None, _f(ac), observed.shape, nuisances, "COHERENT-CsI-2021")


ANALYSES: dict[str, Callable[[], BinnedAnalysis]] = {
    "COHERENT-CsI-2017": csi2017_analysis,
    "COHERENT-CENNS10-2020": cenns10_analysis,
    "COHERENT-CsI-2021": csi2021_analysis,
}


def load_analysis(name: str, signal_template: str = "model", morphing: str = "linear") -> BinnedAnalysis:
    """The :class:`BinnedAnalysis` of a release (see :data:`RELEASES`).

    ``morphing``: ``"linear"`` (default; precomputed template derivatives, fast) or ``"exact"``
    (the full forward model at every profiling step).
    """
    if name not in ANALYSES:
        raise CevnsInputError(f"unknown release {name!r}; available: {', '.join(ANALYSES)}")
    if signal_template not in SIGNAL_TEMPLATES:
        raise CevnsInputError(f"unknown signal template {signal_template!r}; choose one of {', '.join(SIGNAL_TEMPLATES)}")
    if morphing not in ("linear", "exact"):
        raise CevnsInputError(f"unknown morphing {morphing!r}; choose 'linear' or 'exact'")
    analysis = replace(ANALYSES[name](), signal_template=signal_template)
    return with_linear_morphing(analysis) if morphing == "linear" else analysis


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------
SOURCE_NUISANCES = ("flux", "pi0")
"""Nuisances shared by every analysis at the source in joint fits (ν yield, π⁰ yield)."""
PI0_PRIOR = 0.15
"""Prior on the π⁰ (dark-matter production) normalisation when the experiment declares none."""


def pi0_prior(analyses) -> float:
    """Prior width of the ``pi0`` nuisance: the first one an experiment declares, else :data:`PI0_PRIOR`."""
    for a in analyses:
        declared = nuisance_priors(a.experiment).get("pi0")
        if declared is not None:
            return float(declared)
    return PI0_PRIOR


@dataclass
class Objective:
    """χ²(θ, ν) of one or several analyses; nuisance names shared across analyses are shared (e.g. flux).

    ``model`` (optional :class:`cevns_jax.models.NewPhysics`) replaces the SM signal in every analysis
    (see :func:`model_counts`); with dark matter a shared ``pi0`` nuisance is added (prior:
    :func:`pi0_prior`).
    """

    analyses: list
    poi: str
    model: object = None
    priors: dict = field(init=False)

    def __post_init__(self):
        self.priors = {}
        for a in self.analyses:
            for k, s in analysis_priors(a).items():
                if self.poi == "sin2_theta_w" and k == "flux":
                    continue
                self.priors[self._key(a, k)] = s
        if self.poi == "sin2_theta_w":
            self.priors["flux"] = 0.10
        if _has_dark_matter(self.model):
            self.priors["pi0"] = pi0_prior(self.analyses)

    def _key(self, analysis, name: str) -> str:
        return name if (name in SOURCE_NUISANCES or len(self.analyses) == 1) else f"{analysis.name}/{name}"

    def _local(self, analysis, nuisances: dict) -> dict:
        out = {}
        for k in list(analysis_priors(analysis)) + [n for n in SOURCE_NUISANCES if n in self.priors]:
            key = self._key(analysis, k)
            if key in nuisances:
                out[k] = nuisances[key]
        return out

    def mu(self, theta: dict, nuisances: dict):
        return jnp.concatenate([poisson_terms(a, self._theta(a, theta), self._local(a, nuisances), None, self.model)
                                for a in self.analyses])

    def _theta(self, analysis, theta: dict) -> dict:
        if self.poi == "cevns_count":
            return {"cevns_count": theta["cevns_count"]}
        return {"sin2_theta_w": theta["sin2_theta_w"]}

    def observed(self):
        return jnp.concatenate([observed_vector(a) for a in self.analyses])

    def zero(self) -> dict:
        return {k: jnp.zeros((), dtype=jnp.float64) for k in self.priors}


def _objective_flatten(obj: Objective):
    return (obj.analyses, obj.model), (obj.poi, tuple(obj.priors.items()))


def _objective_unflatten(aux, children) -> Objective:
    obj = object.__new__(Objective)
    obj.analyses, obj.model = list(children[0]), children[1]
    obj.poi, obj.priors = aux[0], dict(aux[1])
    return obj


# An Objective is a pytree (analyses and model: leaves; POI name and prior widths: static), so the
# module-level jitted functions below take it as an argument and compile once per release and POI.
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
    """Marginalised Fisher errors √(F⁻¹)_ii at ``p_hat`` (as :func:`cevns_jax.fisher.fisher_matrix`)."""
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
    """The ends (lower, upper) :class:`cevns_jax.intervals.IntervalEnd` of {POI : Δχ² ≤ level}.

    Δχ²(x) = min_ν χ²(x, ν) − ``chi2_min``, each a profiled fit of ``n_steps`` steps warm-started at
    the best-fit ``nuisances``; bracketing from ``best`` in steps of ``step`` (≈ 1σ) doubling, then
    Brent to ``xtol`` (default :data:`cevns_jax.intervals.XTOL_FRACTION` × step). An end at the
    POI's physical bound (:data:`POI_BOUNDS`) is reported with ``kind="boundary"``.
    """
    lower, upper = POI_BOUNDS.get(objective.poi, (None, None))

    def delta(x):
        return profiled_chi2_at(objective, x, nuisances, n_steps) - chi2_min

    ends = [find_crossing(delta, best, step, d, level=level, bound=b, xtol=xtol, what=objective.poi)
            for d, b in ((-1, lower), (1, upper))]
    return ends[0], ends[1]


def fit_release(name, *, poi: str = "cevns_count", n_scan: int = 41, signal_template: str = "model",
                morphing: str = "linear", level: float = 1.0, n_steps: int = INTERVAL_STEPS,
                best_fit_steps: int = BEST_FIT_STEPS, xtol: float | None = None) -> dict:
    """Fit one release (or a list of releases jointly): best POI, profile-likelihood interval at
    Δχ² = ``level`` (root finding, :func:`profile_interval`), significance against no CEvNS.

    ``n_scan`` (whole number, 3–1001) only sets the points of the Δχ² curve returned under ``scan``
    (best − 3(best − lo) … best + 3(hi − best), clipped at the POI's bound), for plots; no quoted
    number depends on it. ``lo_kind``/``hi_kind``: ``"crossing"`` or ``"boundary"`` (one-sided).
    """
    n_scan = check_scan_points(n_scan)
    names = [name] if isinstance(name, str) else list(name)
    if poi == "cevns_count" and len(names) > 1:
        raise CevnsInputError("a joint fit of several releases takes poi='sin2_theta_w' (CEvNS counts differ per detector)")
    if poi not in POI_BOUNDS:
        raise CevnsInputError(f"unknown parameter of interest {poi!r}; choose one of {', '.join(POI_BOUNDS)}")
    analyses = [load_analysis(n, signal_template, morphing) for n in names]
    objective = Objective(analyses, poi)
    p_hat, chi2_min = best_fit(objective, best_fit_steps)
    best = float(p_hat[poi])
    nuis_hat = {k: v for k, v in p_hat.items() if k != poi}
    sigma = float(_fisher_errors(objective, p_hat)[poi])
    lo_end, hi_end = profile_interval(objective, best, chi2_min, nuis_hat, sigma, level=level, n_steps=n_steps, xtol=xtol)
    lo, hi = lo_end.value, hi_end.value
    lower = POI_BOUNDS[poi][0]
    first = max(best - 3 * (best - lo), -np.inf if lower is None else lower)
    left = n_scan // 2  # points below the best fit; the grid contains the best fit itself
    grid = np.concatenate([np.linspace(first, best, left + 1), np.linspace(best, best + 3 * (hi - best), n_scan - left)[1:]])
    delta = np.array([profiled_chi2_at(objective, v, nuis_hat, n_steps) for v in grid]) - chi2_min
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
        null = profiled_chi2_at(objective, 0.0, nuis_hat, n_steps) - chi2_min
        out["significance_sigma"] = float(np.sqrt(max(null, 0.0)))
        a = analyses[0]
        predicted = float(jnp.sum(model_counts(a, {}, {})["cevns"]))
        out["predicted"] = predicted
        xs = flux_averaged_cross_section(a.experiment)
        out["cross_section_cm2"] = {"sm": xs, "best": xs * best / predicted, "lo": xs * lo / predicted, "hi": xs * hi / predicted}
    return out


def flux_averaged_cross_section(experiment, sm=None) -> float:
    """SM flux-averaged cross section per nucleus [cm²], averaged over the three flavours and the target's atoms."""
    from .nuclei import units_per_kg
    from .rates import events_per_recoil_node
    from .source import fluence_per_flavour

    _, events = events_per_recoil_node(experiment, sm=sm)
    det = experiment.detector
    nuclei = units_per_kg(experiment.target) * det.mass_kg * jnp.sum(experiment.target.atoms_per_unit)
    return float(jnp.sum(events) / (3 * fluence_per_flavour(experiment.source, det.baseline_m) * nuclei))


def fit(name: str, signal_template: str = "model", n_scan: int = 41, morphing: str = "linear") -> dict:
    """The command-line fit: CEvNS count (interval, significance, cross section) and sin²θ_W.

    Intervals are Δχ² = 1 crossings found by root finding; ``n_scan`` sets only the points of the
    profile curves under ``profile`` (see :func:`fit_release`).
    """
    n_scan = check_scan_points(n_scan)
    count = fit_release(name, poi="cevns_count", signal_template=signal_template, n_scan=n_scan, morphing=morphing)
    weak = fit_release(name, poi="sin2_theta_w", signal_template=signal_template, n_scan=n_scan, morphing=morphing)
    return {
        "release": name,
        "signal_template": signal_template,
        "cevns": {k: count[k] for k in ("best", "lo", "hi")},
        "cevns_predicted": count["predicted"],
        "significance_sigma": count["significance_sigma"],
        "cross_section_cm2": count["cross_section_cm2"],
        "sin2_theta_w": {k: weak[k] for k in ("best", "lo", "hi")},
        "interval_ends": {"cevns": [count["lo_kind"], count["hi_kind"]], "sin2_theta_w": [weak["lo_kind"], weak["hi_kind"]]},
        "profile": {"cevns": count["scan"], "sin2_theta_w": weak["scan"]},
        "published": PUBLISHED.get(name, {}),
        "nuisances": count["nuisances"],
    }


# ----------------------------------------------------------------------------------------------
# New-physics limits from the data
# ----------------------------------------------------------------------------------------------
class DataLimit:
    """Profiled Δχ²(θ) of ``model_of(θ)`` against the SM, fitted to a release's *data*:

        Δχ²(θ) = min_ν χ²(θ, ν; n_obs) − χ²_min,   χ²_min = min_ν χ²(SM, ν; n_obs).

    The reference is the SM best fit with every nuisance profiled (ŝ² fixed at the SM value, flux
    prior 10% as in the ``sin2_theta_w`` fit; no free CEvNS normalisation): the null hypothesis of a
    limit. Where the model fits the data better than the SM, Δχ² < 0 (the CsI-2021 data sit ≈1σ
    below the SM prediction, so a small destructive Z′ does); it is *not* clipped here — clip at 0
    only when plotting. A 90% CL raster limit is the crossing of Δχ² = 2.71 at each mass
    (:func:`cevns_jax.scan.raster_crossings`). Mirrors :class:`cevns_jax.forecast.AsimovForecast`.

    ``model_of`` maps θ (a dict of scalars, e.g. {"mass_MeV": …, "g": …}) to a
    :class:`cevns_jax.models.NewPhysics`. With dark matter the ``pi0`` nuisance (prior ``pi0``,
    default: the experiment's, else :data:`PI0_PRIOR`) is added to the profiled ones. ``sm`` sets the
    SM inputs under the hypothesis; the reference uses ``reference_sm`` (default: :func:`standard_model`).
    ``analysis`` (a prebuilt :class:`BinnedAnalysis`) overrides ``release`` and ``morphing``.

    :meth:`delta_chi2` is a pure function of θ (``jit``/``vmap``/``grad``; usable as
    ``scan.run_scan(limit.delta_chi2, axes, out)``). With linear morphing (default) the model's
    signal is computed once per θ and the ``n_steps`` profiling steps (warm-started at the SM best-fit
    nuisances) act on cheap linear templates; see :func:`model_counts` for that approximation.
    """

    def __init__(self, model_of: Callable, release: str = "COHERENT-CsI-2021", *, analysis: BinnedAnalysis | None = None,
                 morphing: str = "linear", n_steps: int = 6, reference_steps: int = 40, pi0: float | None = None,
                 sm: StandardModel | None = None, reference_sm: StandardModel | None = None):
        self.analysis = analysis if analysis is not None else load_analysis(release, morphing=morphing)
        self.model_of = model_of
        self.n_steps = n_steps
        self.sm = sm
        self.reference_sm = reference_sm
        self.priors = dict(Objective([self.analysis], "sin2_theta_w").priors)
        self.pi0_prior = float(pi0 if pi0 is not None else pi0_prior([self.analysis]))
        self.observed = observed_vector(self.analysis)
        zero = {k: jnp.zeros((), dtype=jnp.float64) for k in self.priors}
        reference = jax.jit(lambda nu0: self._profile(self.reference_sm, None, nu0, reference_steps))
        self.reference_nuisances, value = reference(zero)
        self.chi2_min = float(value)

    def priors_for(self, model) -> dict:
        """Prior widths of the profiled nuisances under ``model`` (adds ``pi0`` with dark matter)."""
        return {**self.priors, "pi0": self.pi0_prior} if _has_dark_matter(model) else self.priors

    def _mu(self, sm):
        """μ(args, ν): from linear-morphing templates, or the exact model (``args`` = the model)."""
        a = self.analysis
        if a.morphed:
            return lambda templates, nu: _flat_means(a, morphed_counts(a, {}, templates, nu))
        return lambda m, nu: poisson_terms(a, {}, nu, sm, m)

    def _args(self, sm, model):
        """The per-model pieces computed once, outside the profiling steps."""
        if sm is not None and model is None:  # non-default SM inputs: recompute the signal
            from .models import NewPhysics

            model = NewPhysics()
        return morphing_templates(self.analysis, {}, sm, model) if self.analysis.morphed else model

    def _profile(self, sm, model, nu0: dict, n_steps: int, args=None):
        """(ν̂, min_ν χ²) at one model point (``args``: precomputed templates, see :meth:`templates`)."""
        mu, args = self._mu(sm), self._args(sm, model) if args is None else args
        priors = self.priors_for(model)
        nu_hat = jax.lax.stop_gradient(profile_nuisances(mu, self.observed, args, nu0, priors, n_steps))
        return nu_hat, chi2(mu, self.observed, args, nu_hat, priors)

    def _start(self, model) -> dict:
        return {k: self.reference_nuisances.get(k, jnp.zeros((), dtype=jnp.float64)) for k in self.priors_for(model)}

    def delta_chi2(self, theta: dict):
        """Δχ²(θ) = min_ν χ²(model_of(θ), ν) − χ²_min (may be < 0; differentiable in θ via the envelope theorem)."""
        model = self._model(theta)
        return self._profile(self.sm, model, self._start(model), self.n_steps)[1] - self.chi2_min

    # -- the interface of cevns_jax.forecast.dark_matter_coupling_scan (linear morphing only) ----------
    def templates(self, model, cache: dict | None = None):
        """The model's linear-morphing templates (CEvNS signal; dark matter and its log-derivatives)."""
        if not self.analysis.morphed:
            raise CevnsInputError("DataLimit.templates needs an analysis with linear morphing")
        return morphing_templates(self.analysis, {}, self.sm, model)

    def scale_dark_matter(self, templates: dict, factor):
        """Templates with the dark-matter counts × ``factor`` (their log-derivatives are unchanged)."""
        D0, logd = templates["dark_matter"]
        return {**templates, "dark_matter": (D0 * factor, logd)}

    def profiled_from_templates(self, templates: dict, model):
        """Δχ² from precomputed :meth:`templates` (``model`` sets which nuisances are profiled)."""
        return self._profile(self.sm, model, self._start(model), self.n_steps, args=templates)[1] - self.chi2_min

    def _model(self, theta: dict):
        from .models import NewPhysics

        model = self.model_of(theta)
        if not isinstance(model, NewPhysics):
            raise CevnsInputError(f"model_of must return a cevns_jax.models.NewPhysics, got {type(model).__name__}")
        return model

    def unprofiled_delta_chi2(self, theta: dict):
        """Δχ² with the nuisances held at the SM best fit (no re-profiling)."""
        model = self._model(theta)
        nu = {k: self.reference_nuisances.get(k, jnp.zeros((), dtype=jnp.float64)) for k in self.priors_for(model)}
        return self._profile(self.sm, model, nu, 0)[1] - self.chi2_min


def model_test(release: str, model, sm: StandardModel | None = None, morphing: str = "linear") -> dict:
    """Δχ² of one new-physics point against the SM on a release's data (``cevns fit RELEASE --model FILE``)."""
    limit = DataLimit(lambda _: model, release, morphing=morphing, sm=sm)
    value = float(jax.jit(limit.delta_chi2)({}))
    return {"release": release, "chi2_sm": limit.chi2_min, "chi2_model": limit.chi2_min + value, "delta_chi2": value,
            "n_bins": int(limit.observed.size), "nuisances_sm": {k: float(v) for k, v in limit.reference_nuisances.items()}}
