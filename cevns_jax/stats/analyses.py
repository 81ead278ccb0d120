"""The COHERENT release analyses: observed counts, templates and the model in data space.

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

Beyond the COHERENT releases, one-bin counting analyses built from published summary numbers
(:data:`PUBLISHED`; docs/physics.md §5.10):

* CONUS+ 2025: reactor-on counts in the region of interest and a reactor-off exposure (60 of 327 kg·d)
  as a second Poisson term sharing the background normalisation; the background is the one implied by
  the published fit (395 ± 106 events), the published 3.7σ is left as the independent check.
* COHERENT Ge-Mini 2025: the on-beam excess 20.6 over a known background fixed by the published 3.9σ.
* XENONnT ⁸B 2024: 37 events observed over 26.4 ± 1.4 expected background (Gaussian prior);
  PandaX-4T ⁸B 2024, US2 data: 332 events over 251 ± 32.

The model in data space (:func:`model_counts`): the CEvNS signal (and a model's dark matter) follow
the shape nuisances by linear template morphing (:mod:`cevns_jax.stats.morphing`, default) or the
exact forward model (``morphing="exact"``), and every normalisation nuisance multiplies exactly
(:func:`cevns_jax.nuisances.normalisation`: flux and π⁰ log-normal, the rest 1 + ν).
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from .. import releases
from .._pytree import pytree_dataclass, replace, run_once, static_field
from ..errors import CevnsInputError
from ..experiment import load_experiment
from ..models.darkmatter import CHANNEL_NUISANCES
from ..nuisances import apply_nuisances, neutrino_induced, normalisation, nuisance_priors, predicted_counts, shape_names
from ..rates import background_counts, dark_matter_channel_counts
from ..xsec import StandardModel, resolve_standard_model
from .forecast import changes_neutrino_rates, dark_matter_template
from .morphing import Morph, channel_log_derivatives, log_derivatives, morph, pulls

__all__ = ["RELEASES", "PUBLISHED", "BinnedAnalysis", "SIGNAL_TEMPLATES", "with_linear_morphing",
           "morphing_templates", "morphed_counts", "model_counts", "poisson_terms", "flat_means", "observed_vector",
           "analysis_priors", "has_dark_matter", "cenns10_analysis", "csi2017_analysis", "csi2021_analysis",
           "csi2017_prompt_neutrons", "ANALYSES", "load_analysis", "CSI2017_EXPOSURE_GWH", "COUNTING",
           "onoff_background", "conusplus_analysis", "counting_analysis", "xenonnt_8b_analysis",
           "pandax_8b_analysis", "significance_background", "ge_mini_analysis", "with_nuisances"]

RELEASES = ("COHERENT-CsI-2017", "COHERENT-CENNS10-2020", "COHERENT-CsI-2021")
COUNTING = ("CONUS+-2025", "XENONnT-8B-2024", "PandaX-4T-8B-2024", "COHERENT-Ge-Mini-2025")
"""One-bin analyses built from published summary numbers (not data releases; see :data:`PUBLISHED`)."""
PUBLISHED = {
    # fitted CEvNS events (± 1σ), significance; flux-averaged σ [cm²] where published
    "COHERENT-CsI-2017": dict(cevns=134.0, error=22.0, significance=6.7, source="Science 357, 1123 (2017)"),
    "COHERENT-CENNS10-2020": dict(cevns=159.0, error=43.0, significance=3.5, xs=2.2e-39, xs_error=0.7e-39,
                                  source="PRL 126, 012002 (2021); LArParametersAnlA.yaml"),
    "COHERENT-CsI-2021": dict(cevns=306.0, error=20.0, significance=11.6, source="PRL 129, 081801 (2022)"),
    # exposures [kg·d] of the reactor-on and reactor-off data in the 3 detectors C2, C3, C5 (2.83 kg active)
    "CONUS+-2025": dict(cevns=395.0, error=106.0, significance=3.7, exposure_on_kg_d=327.0, exposure_off_kg_d=60.0,
                        source="arXiv:2501.05206 (Nature 2025, doi:10.1038/s41586-025-09322-2)"),
    # Ge-Mini: on-beam excess +7.1 −6.3 over 10.22 GWh·kg, 3.9σ against no CEvNS (abstract)
    "COHERENT-Ge-Mini-2025": dict(cevns=20.6, error=6.3, error_up=7.1, significance=3.9, exposure_GWh_kg=10.22,
                                  source="PRL 134, 231801 (2025), arXiv:2406.13806"),
    # SR0 + SR1, 3.51 t·yr; best-fit ⁸B events +3.7 −4.2 (observed and background: the preset's reference)
    "XENONnT-8B-2024": dict(cevns=10.7, error=4.2, error_up=3.7, significance=2.73,
                            source="PRL 133, 191002 (2024), arXiv:2408.02877"),
    # US2 (S2-only) data set, 1.04 t·yr; best-fit ⁸B events with ≈ 37% uncertainty (paired + US2 fit: 2.64σ)
    "PandaX-4T-8B-2024": dict(cevns=75.0, error=0.37 * 75.0, significance=2.64,
                              source="PRL 133, 191001 (2024), arXiv:2407.10892"),
}


@pytree_dataclass
class BinnedAnalysis:
    """Observed counts and the model pieces of one release fit (array leaves; data space is flat).

    ``signal_shape``: the SM CEvNS template in data space and its log-derivatives in the shape
    nuisances (linear morphing; ``None``: the exact model at every step).

    ``ac_observed``: control counts of the steady-state background alone (COHERENT's anti-coincidence
    window, a reactor-off period), whose mean is the steady-state template times ``ac_scale`` (the ratio
    of the control exposure to the signal exposure; ``None``: 1, the same window length).
    ``collapse``: the model is summed into one bin (a counting analysis)."""

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
    signal_shape: Morph | None = None
    ac_scale: jnp.ndarray | None = None
    collapse: bool = static_field(default=False)


SIGNAL_TEMPLATES = ("model", "factorised")


def _signal_in_data_space(analysis: BinnedAnalysis, counts: dict):
    """CEvNS (energy × time) → data space (with the F90 axis for CENNS-10).

    ``signal_template = "model"`` keeps the energy–time correlation of the model (prompt ν_μ give
    softer recoils than the delayed flavours); ``"factorised"`` replaces it by the product of its
    energy and time projections, the construction of the CENNS-10 release's CEvNS PDF (every
    energy bin there has the same time profile), for like-for-like comparisons with COHERENT.
    """
    sig = sum(counts[c] for c in analysis.experiment.source.components)
    if analysis.signal_template == "factorised":
        sig = jnp.outer(sig.sum(axis=1), sig.sum(axis=0)) / jnp.sum(sig)
    return _with_f90(analysis, sig)


def _with_f90(analysis: BinnedAnalysis, counts):
    """(energy × time) → data space for a nuclear-recoil component without its own F90 shape."""
    if analysis.collapse:
        return jnp.reshape(jnp.sum(counts), (1,))
    if analysis.f90_fractions is not None:
        return counts[:, None, :] * analysis.f90_fractions[:, :, None]
    return counts


def has_dark_matter(model) -> bool:
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


def _shape_names(analysis: BinnedAnalysis) -> tuple:
    return shape_names(analysis.nuisances)


@run_once
def _signal_shape(analysis: BinnedAnalysis) -> Morph:
    """The SM CEvNS template in data space and its log-derivatives, compiled once per release (op by
    op the derivatives of a release's model take tens of seconds) and evaluated once (``run_once``)."""
    return log_derivatives(lambda nu: _exact_parts(analysis, {}, nu, None)[0], _shape_names(analysis))


def with_linear_morphing(analysis: BinnedAnalysis) -> BinnedAnalysis:
    """The analysis with its SM CEvNS template and log-derivatives stored (linear template morphing):
    fits then run the forward model once per θ instead of once per profiling step."""
    return replace(analysis, signal_shape=_signal_shape(analysis))


def _dark_matter_template(analysis: BinnedAnalysis, dm, cache: dict | None = None) -> Morph:
    """Dark-matter counts in data space at ν = 0 and their log-derivatives in the shape nuisances,
    recomputed for every dark-matter point (its recoil spectrum responds differently from CEvNS;
    agrees with the exact model to 0.1% in total counts at 0.5σ pulls, ``tests/test_fits.py``). Where the data
    space is the (energy × time) plane it is the forecasts' template
    (:func:`cevns_jax.stats.forecast.dark_matter_template`), shared through ``cache`` with a forecast of the
    same detector at the same model point."""
    if not analysis.collapse and analysis.f90_fractions is None:
        return dark_matter_template(analysis.experiment, dm, _shape_names(analysis), cache)

    def channels(nu):
        counts = dark_matter_channel_counts(apply_nuisances(analysis.experiment, nu), dm)
        return {k: _with_f90(analysis, v) for k, v in counts.items()}

    return channel_log_derivatives(channels, _shape_names(analysis), CHANNEL_NUISANCES)


def morphing_templates(analysis: BinnedAnalysis, theta: dict, sm: StandardModel | None = None, model=None,
                       cache: dict | None = None) -> dict:
    """The per-θ pieces of the linear-morphing prediction: ``{"signal": CEvNS at ν = 0,
    "dark_matter": Morph or None}`` (the SM signal — no ``sin2_theta_w`` in θ, no model — is the stored one;
    ``cache``: shared with forecasts of the same model point, :func:`_dark_matter_template`).

    Approximation: a model's CEvNS signal is recomputed, but it follows the shape nuisances through
    the SM log-derivatives (measured on CsI 2021 at the L_μ−L_τ 90% CL point: Δχ² = 2.42 linear vs
    2.69 exact, ≈2% on the limit). Dark matter gets its own log-derivatives.
    """
    base = analysis.signal_shape.nominal  # the SM's (a dark-matter model leaves it unchanged)
    if "sin2_theta_w" in theta or sm is not None or changes_neutrino_rates(model):
        cevns_model = None if model is None else replace(model, dark_matter=None)
        base = _exact_parts(analysis, theta, {}, sm, cevns_model)[0]
    dm = _dark_matter_template(analysis, model.dark_matter, cache) if has_dark_matter(model) else None
    return {"signal": base, "dark_matter": dm}


def morphed_counts(analysis: BinnedAnalysis, theta: dict, templates: dict, nuisances: dict) -> dict:
    """Expected counts from precomputed :func:`morphing_templates` (cheap in ν; see :func:`model_counts`)."""
    shape = analysis.signal_shape
    signal = morph(templates["signal"], shape.logd, pulls(nuisances, shape.names)) * normalisation(nuisances, "cevns")
    dm = templates.get("dark_matter")
    dm = None if dm is None else dm.at(nuisances) * normalisation(nuisances, "dark_matter")
    return _assemble(analysis, theta, signal, dm, nuisances)


def model_counts(analysis: BinnedAnalysis, theta: dict, nuisances: dict, sm: StandardModel | None = None, model=None):
    """Expected counts {component: data-space array}: ``cevns``, each background template and, for a
    model with dark matter, ``dark_matter``.

    θ holds ``cevns_count`` (signal normalised to that many events) or ``sin2_theta_w``; ``model`` is an
    optional :class:`cevns_jax.models.NewPhysics` point whose CEvNS replaces the SM signal (``None``:
    the SM). Dark matter follows the detector nuisances and the ``pi0`` nuisance (production).
    """
    if analysis.signal_shape is not None:
        return morphed_counts(analysis, theta, morphing_templates(analysis, theta, sm, model), nuisances)
    signal, dm = _exact_parts(analysis, theta, nuisances, sm, model)
    return _assemble(analysis, theta, signal, dm, nuisances)


def _assemble(analysis: BinnedAnalysis, theta: dict, signal, dm, nuisances: dict) -> dict:
    if "cevns_count" in theta:
        signal = theta["cevns_count"] * signal / jnp.sum(signal)
    out = {"cevns": signal}
    if dm is not None:
        out["dark_matter"] = dm
    for name, tmpl in analysis.templates.items():
        out[name] = tmpl * normalisation(nuisances, name, neutrino_induced(analysis.experiment, name))
    return out


def poisson_terms(analysis: BinnedAnalysis, theta: dict, nuisances: dict, sm=None, model=None):
    """All Poisson means as one flat vector: signal-window bins, then the control bins (steady state) if any."""
    return flat_means(analysis, model_counts(analysis, theta, nuisances, sm, model))


def flat_means(analysis: BinnedAnalysis, parts: dict):
    mu = sum(parts.values()).ravel()
    if analysis.ac_observed is not None:
        control = parts["steady_state"].ravel()
        mu = jnp.concatenate([mu, control if analysis.ac_scale is None else control * analysis.ac_scale])
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
    templates = {"steady_state": background_counts(exp)["steady_state"], "brn": _f(csi2017_prompt_neutrons(exp))}
    nuisances = ("background:brn", "quenching_factor", "pulse_mean_us")
    return BinnedAnalysis(exp, _f(observed), templates, None, _f(ac), observed.shape, nuisances, "COHERENT-CsI-2017",
                          extra_priors=(("background:brn", 0.25),))


CSI2017_PROMPT_NEUTRONS_PER_GWH = 1.0
"""Release normalisation of the CsI 2017 prompt-neutron arrival-time PDF: counts per GWh (± 25%)."""
CSI2017_EXPOSURE_GWH = 7.47594
"""Beam energy of the CsI 2017 data set [GWh] (COHERENT CsI 2017 release, coherent_parameters.yaml; the
SNS-2017 facility and the COHERENT-CsI-2017 preset state the same)."""


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
    return CSI2017_PROMPT_NEUTRONS_PER_GWH * CSI2017_EXPOSURE_GWH * np.outer(per_bin, time)


def csi2021_analysis() -> BinnedAnalysis:
    exp = load_experiment("COHERENT-CsI-2021")
    e_edges, t_edges = _edges_us(exp)
    observed = releases.event_histogram(releases.data_path("csi2021/dataBeamOnC.txt"), e_edges, t_edges)
    ac = releases.event_histogram(releases.data_path("csi2021/dataBeamOnAC.txt"), e_edges, t_edges)
    bkg = background_counts(exp)
    templates = {"steady_state": bkg["steady_state"], "brn": bkg["brn"], "nin": bkg["nin"]}
    nuisances = ("background:brn", "background:nin", "quenching_pca_0", "quenching_pca_1", "efficiency_pca",
                 "pulse_mean_us")
    return BinnedAnalysis(exp, _f(observed), templates, None, _f(ac), observed.shape, nuisances, "COHERENT-CsI-2021")


def onoff_background(fitted: float, error: float, off_ratio: float) -> float:
    """Mean background b [events] in the signal window of a one-bin on/off measurement whose fit gave
    ``fitted`` ± ``error`` signal events with a control exposure ``off_ratio`` times the signal exposure.

    With N_on ~ Poisson(s + b) and N_off ~ Poisson(r·b), the profile-likelihood variance of ŝ is
    N_on + N_off/r² = ŝ + b(1 + 1/r), so b = (σ² − ŝ)/(1 + 1/r) (docs/physics.md §5.10). Systematic
    uncertainties inside the published error are thereby counted as background: b is an upper bound.
    """
    if not (0 < off_ratio and error**2 > fitted):
        raise CevnsInputError(f"on/off background: need error² > fitted and off_ratio > 0, got {fitted}, {error}, {off_ratio}")
    return (error**2 - fitted) / (1.0 + 1.0 / off_ratio)


def conusplus_analysis() -> BinnedAnalysis:
    """CONUS+ 2025 as a one-bin on/off counting analysis (module docstring; docs/physics.md §5.10).

    Reactor on: N_on = ŝ + b events in the preset's region of interest; reactor off: N_off = r·b with
    r = 60/327 the exposure ratio, a Poisson term that fixes the background normalisation (no prior).
    """
    exp = load_experiment("CONUS+-2025")
    pub = PUBLISHED["CONUS+-2025"]
    ratio = pub["exposure_off_kg_d"] / pub["exposure_on_kg_d"]
    b = onoff_background(pub["cevns"], pub["error"], ratio)
    return BinnedAnalysis(exp, _f([pub["cevns"] + b]), {"steady_state": _f([b])}, None, _f([ratio * b]), (1,),
                          ("background:steady_state",), "CONUS+-2025", ac_scale=_f(ratio), collapse=True)


def counting_analysis(name: str) -> BinnedAnalysis:
    """A one-bin counting analysis of preset ``name``: the published observed count over the published
    expected background, whose normalisation has a Gaussian prior of the published relative error (the
    preset's ``[experiment.reference]`` fields ``observed``, ``background_expected``, ``background_expected_error``).

    XENONnT ⁸B 2024: 37 over 26.4 ± 1.4; its published 2.73σ comes from a four-dimensional likelihood that
    separates the accidental coincidences, which one bin cannot, so the significance here is lower. PandaX-4T
    ⁸B 2024 (US2): 332 over 251 ± 32 (docs/physics.md §5.10)."""
    exp = load_experiment(name)
    ref = dict(exp.info.reference)
    missing = [k for k in ("observed", "background_expected", "background_expected_error") if k not in ref]
    if missing:
        raise CevnsInputError(f"{name}: [experiment.reference] lacks {', '.join(missing)} (needed by a counting analysis)")
    b, sigma_b = ref["background_expected"], ref["background_expected_error"]
    return BinnedAnalysis(exp, _f([ref["observed"]]), {"background": _f([b])}, None, None, (1,),
                          ("background:background",), name, extra_priors=(("background:background", sigma_b / b),),
                          collapse=True)


def xenonnt_8b_analysis() -> BinnedAnalysis:
    return counting_analysis("XENONnT-8B-2024")


def pandax_8b_analysis() -> BinnedAnalysis:
    return counting_analysis("PandaX-4T-8B-2024")


def significance_background(fitted: float, significance: float) -> float:
    """Known mean background b [events] of a one-bin count whose excess ``fitted`` rejects no-signal at
    ``significance`` σ: the root of 2[(s + b) ln(1 + s/b) − s] = Z² (the Poisson likelihood ratio of N = s + b
    under b alone; docs/physics.md §5.10). Z² falls from ∞ to 0 as b grows, so the root is unique."""
    from scipy.optimize import brentq

    if not (fitted > 0 and significance > 0):
        raise CevnsInputError(f"significance background: need fitted > 0 and significance > 0, got {fitted}, {significance}")
    s, z2 = float(fitted), float(significance) ** 2
    excess = lambda b: 2.0 * ((s + b) * np.log1p(s / b) - s) - z2  # noqa: E731
    hi = s
    while excess(hi) > 0:
        hi *= 2.0
    return float(brentq(excess, 1e-9 * s, hi, xtol=1e-12 * s))


def ge_mini_analysis() -> BinnedAnalysis:
    """COHERENT Ge-Mini (PRL 134, 231801) as a one-bin count with a known background (docs/physics.md §5.10).

    The abstract gives the on-beam excess ŝ = 20.6 (+7.1 −6.3), the exposure (10.22 GWh·kg, the preset's) and the
    significance (3.9σ) but, in the sources read, not the background in the region of interest. A known
    background b with N_on = ŝ + b reproduces the significance for b = :func:`significance_background` = 21.8
    events; the interval of the fit (−6.2 +6.8) is then the independent check of the published −6.3 +7.1 (its
    systematic part is not modelled). The signal is the preset's CEvNS summed over its bins (1–15 keVee with
    the logistic efficiency at 1.5 keVee, 0–20 μs), which also carries the preset's nuisances when added
    (:func:`with_nuisances`)."""
    name = "COHERENT-Ge-Mini-2025"
    exp = load_experiment(name)
    pub = PUBLISHED[name]
    b = significance_background(pub["cevns"], pub["significance"])
    return BinnedAnalysis(exp, _f([pub["cevns"] + b]), {"background": _f([b])}, None, None, (1,), (), name,
                          collapse=True)


def with_nuisances(analysis: BinnedAnalysis, *names: str, priors: dict | None = None) -> BinnedAnalysis:
    """The analysis with nuisances ``names`` added (e.g. ``"quenching_k"``, ``"flux"``; each must act on the
    experiment, :func:`cevns_jax.nuisances.check_nuisances`); ``priors`` {name: σ} set or override their
    widths (default: the preset's ``[systematics]``). Fits with an added shape nuisance far from its nominal
    value should use ``morphing="exact"``."""
    for n in names:
        if n not in nuisance_priors(analysis.experiment) and n not in (priors or {}):
            raise CevnsInputError(f"{analysis.name}: no prior for nuisance {n!r} (declare it in the preset's "
                                  "[systematics] or pass priors)")
    extra = tuple((k, v) for k, v in analysis.extra_priors if k not in (priors or {})) + tuple((priors or {}).items())
    added = tuple(n for n in names if n not in analysis.nuisances)
    return replace(analysis, nuisances=analysis.nuisances + added, extra_priors=extra)


ANALYSES: dict[str, Callable[[], BinnedAnalysis]] = {
    "COHERENT-CsI-2017": csi2017_analysis,
    "COHERENT-CENNS10-2020": cenns10_analysis,
    "COHERENT-CsI-2021": csi2021_analysis,
    "CONUS+-2025": conusplus_analysis,
    "XENONnT-8B-2024": xenonnt_8b_analysis,
    "PandaX-4T-8B-2024": pandax_8b_analysis,
    "COHERENT-Ge-Mini-2025": ge_mini_analysis,
}


def load_analysis(name: str, signal_template: str = "model", morphing: str = "linear") -> BinnedAnalysis:
    """The :class:`BinnedAnalysis` of a release (see :data:`RELEASES`) or counting analysis (:data:`COUNTING`).

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
