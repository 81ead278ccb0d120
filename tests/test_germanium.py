"""One germanium quenching k across reactor (CONUS+ 2025) and SNS (COHERENT Ge-Mini 2025) data
(scans/germanium_quenching.py; docs/physics.md §5.6, §5.10).

Independent references: the additivity of χ² over independent data sets (a joint fit without shared nuisances
is the sum of the single fits at every point; with one shared k held fixed, too), the stationarity of the joint
minimum (the single χ² slopes cancel there), and for the Ge-Mini counting analysis the published interval (20.6 +7.1 −6.3, PRL 134, 231801),
which its construction (the background from the published 3.9σ) does not use.

The χ² programs here use linear template morphing (templates computed once per analysis) to stay fast; the
script uses the exact forward model (k moves far from nominal there).
"""

from __future__ import annotations

import numpy as np
import pytest

from cevns_jax.errors import CevnsInputError
from cevns_jax.stats import analyses, fits
from cevns_jax.xsec import resolve_standard_model

NAMES = ("CONUS+-2025", "COHERENT-Ge-Mini-2025")
SHARE = (("quenching_k", "nucleus"),)


@pytest.fixture(scope="module")
def parts():
    out = {}
    for name in NAMES:
        a = analyses.with_nuisances(analyses.load_analysis(name, morphing="exact"), "quenching_k", "flux")
        out[name] = analyses.with_linear_morphing(a)
    return out


@pytest.fixture(scope="module")
def poi(parts):
    return float(resolve_standard_model(parts["CONUS+-2025"].experiment).sin2_theta_w)


def objective(analysis_list, share=()):
    return fits.Objective(analysis_list, "sin2_theta_w", share=share)


def test_ge_mini_background_and_interval():
    """The known background reproduces the published significance (3.9σ); the fitted count and its Δχ² = 1
    interval match the published 20.6 +7.1 −6.3 within 10% of each error (the systematic part is not modelled)."""
    a = analyses.ge_mini_analysis()
    b = float(a.templates["background"][0])
    s = 20.6
    assert np.sqrt(2.0 * ((s + b) * np.log1p(s / b) - s)) == pytest.approx(3.9, rel=1e-9)
    fit = fits.fit_release("COHERENT-Ge-Mini-2025", poi="cevns_count", n_scan=3)
    assert fit["best"] == pytest.approx(20.6, rel=1e-6)
    assert fit["best"] - fit["lo"] == pytest.approx(6.3, rel=0.10)
    assert fit["hi"] - fit["best"] == pytest.approx(7.1, rel=0.10)
    assert fit["significance_sigma"] == pytest.approx(3.9, rel=1e-3)


def test_significance_background_rejects_bad_input():
    with pytest.raises(CevnsInputError, match="significance background"):
        analyses.significance_background(-1.0, 3.9)


def test_with_nuisances_needs_a_prior(parts):
    with pytest.raises(CevnsInputError, match="no prior for nuisance 'quenching_factor'"):
        analyses.with_nuisances(parts["CONUS+-2025"], "quenching_factor")


def test_own_flux_prior_is_kept(parts):
    """An analysis that lists ``flux`` keeps its preset's prior (reactor ±2.5%) instead of the 10% default."""
    priors = fits.fit_priors(parts["CONUS+-2025"], "sin2_theta_w")
    assert priors["flux"] == pytest.approx(0.025)
    assert fits.fit_priors(parts["COHERENT-Ge-Mini-2025"], "sin2_theta_w")["flux"] == pytest.approx(0.10)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_joint_without_sharing_is_the_sum_of_the_parts(parts, poi):
    single = {n: objective([parts[n]]) for n in NAMES}
    joint = objective([parts[n] for n in NAMES])
    labels = [label for label in joint.priors if label.endswith("quenching_k")]
    assert labels == ["CONUS+-2025/quenching_k", "COHERENT-Ge-Mini-2025/quenching_k"]
    shifts = {"CONUS+-2025": 0.01, "COHERENT-Ge-Mini-2025": -0.02}
    parts_chi2 = sum(fits.profiled_chi2_fixed(single[n], poi, {"quenching_k": shifts[n]}) for n in NAMES)
    joint_chi2 = fits.profiled_chi2_fixed(joint, poi, {f"{n}/quenching_k": shifts[n] for n in NAMES})
    assert joint_chi2 == pytest.approx(parts_chi2, rel=1e-8, abs=1e-8)


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_shared_k_fit(parts, poi):
    """One shared k: the joint χ² at a held k is the sum of the parts at that k; at the joint best k the Δχ² is
    0 and rises on both sides, while the two single χ² pull in opposite directions (their slopes have opposite
    signs: the best k lies between theirs); the interval ends bracket it with Δχ² = level."""
    single = {n: objective([parts[n]]) for n in NAMES}
    joint = objective([parts[n] for n in NAMES], SHARE)
    assert [label for label in joint.priors if label.endswith("quenching_k")] == ["quenching_k"]
    at = {"quenching_k": 0.005}
    assert fits.profiled_chi2_fixed(joint, poi, at) == pytest.approx(
        sum(fits.profiled_chi2_fixed(single[n], poi, at) for n in NAMES), rel=1e-8, abs=1e-8)
    k_joint, chi2_joint = fits.fixed_minimum(joint, poi, "quenching_k")
    step = 0.003
    curve = [fits.profiled_chi2_fixed(joint, poi, {"quenching_k": k}) - chi2_joint for k in (k_joint - step, k_joint, k_joint + step)]
    assert curve[1] == pytest.approx(0.0, abs=1e-6) and curve[0] > 0 and curve[2] > 0
    slopes = [fits.profiled_chi2_fixed(single[n], poi, {"quenching_k": k_joint + step})
              - fits.profiled_chi2_fixed(single[n], poi, {"quenching_k": k_joint - step}) for n in NAMES]
    assert slopes[0] * slopes[1] < 0
    ends = fits.fixed_interval(joint, poi, "quenching_k", k_joint, chi2_joint, 0.01, level=1.0)
    assert ends[0].value < k_joint < ends[1].value
    assert all(e.delta_chi2 == pytest.approx(1.0, abs=1e-3) for e in ends)
