"""Reactor presets (docs/physics.md §1.6, §3.8): every one loads and predicts finite positive counts, and the
predictions are compared with the published numbers that exist.

Independent references: the published numbers quoted in each test (CONUS final limit and its stated distance
from the SM rate, arXiv:2401.07684; RELICS design expectation, arXiv:2405.05554), and, for the two-core Chooz
site of NUCLEUS, the sum of two single-core predictions made by the package itself at the two real baselines.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import replace
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml

REACTOR_PRESETS = ("CONUS-Brokdorf-final", "Dresden-II-2022", "TEXONO", "nuGEN", "RECODE", "CONNIE", "NUCLEUS",
                   "Ricochet", "RED-100", "RELICS", "NEON")


def _total(counts) -> float:
    return float(counts["reactor_nuebar"].sum())


def _f64(value):
    return jnp.asarray(np.float64(value))  # a strongly typed float64 leaf, as the loader makes: no new compile


@pytest.mark.parametrize("name", REACTOR_PRESETS)
def test_reactor_preset_is_cited_and_a_reactor(name, presets):
    # (finite, positive float64 counts for every preset: tests/test_rates.py)
    exp = presets[name]
    assert exp.info.citation and exp.info.assumptions and exp.info.status in ("validation", "planned")
    assert exp.source.components == ("reactor_nuebar",)


@pytest.mark.xfail(strict=True, reason="known discrepancy: the preset predicts 0.59 /(kg·d), 1.7× the published 90% CL "
                   "limit; the measured efficiency near the 210 eVee threshold is not encoded (see the preset)")
def test_conus_final_rate_is_below_the_published_limit(presets, jit_counts):
    """CONUS final (arXiv:2401.07684, abstract): '< 0.34 signal events kg⁻¹ d⁻¹ (90% CL) ... within a factor 2 of
    the rate predicted by the standard model': the SM rate lies below the limit. The preset (flat efficiency,
    every detector at 210 eVee) gives 0.59, above it: this test records the discrepancy until the efficiency is
    encoded (it then passes and the xfail must go)."""
    exp = presets["CONUS-Brokdorf-final"]
    limit = 0.34
    assert dict(exp.info.reference)["cevns_limit_per_kg_day"] == limit
    rate = _total(jit_counts(exp)) / (float(exp.detector.mass_kg) * float(exp.source.live_days))
    assert rate < limit


def test_relics_recoil_window_matches_the_published_expectation(jit_counts):
    """RELICS (arXiv:2405.05554 v3, abstract): 4639.7 CEvNS events in 120–300 PE for 32 kg·yr at 25 m from a
    3 GW_th core, a window whose mean nuclear recoil runs from 0.63 to 1.36 keV. The preset's source and
    exposure with an ideal detector (no response) in that recoil window agree within 15% (flux model, fission
    fractions and the study's own selection differ at the 10% level). The preset's full S2 response is not
    compared: its sub-keV charge yield differs from the study's (see the preset's assumptions)."""
    spec = read_toml(PRESET_DIR / "RELICS.toml", "experiment")
    ref = dict(spec["experiment"]["reference"])
    assert ref["published_cevns_120_300PE"] == 4639.7
    detector = {k: spec["detector"][k] for k in ("target", "mass_kg", "baseline_m")}
    ideal = {"experiment": {"name": "RELICS-recoil-window"}, "source": spec["source"],
             "detector": {**detector, "response": "none"},
             "bins": {"energy_edges": [ref["recoil_window_low_keVnr"], ref["recoil_window_high_keVnr"]]}}
    counts = _total(jit_counts(experiment_from_dict(ideal, label="RELICS-recoil-window")))
    assert counts == pytest.approx(ref["published_cevns_120_300PE"], rel=0.15)


def test_nucleus_effective_baseline_equals_the_two_cores(presets, jit_counts):
    """NUCLEUS sits 72 m and 102 m from two 4.25 GW_th Chooz cores (arXiv:1905.10258); the preset's single
    8.5 GW_th source at L_eff = 83.2 m must give the sum of the two cores (to the 3-digit rounding of L_eff)."""
    exp = presets["NUCLEUS"]
    assert float(exp.source.thermal_power_MW) == pytest.approx(8500.0)

    def one_core(baseline_m):
        source = replace(exp.source, thermal_power_MW=_f64(4250.0))
        return _total(jit_counts(replace(exp, source=source, detector=replace(exp.detector, baseline_m=_f64(baseline_m)))))

    assert _total(jit_counts(exp)) == pytest.approx(one_core(72.0) + one_core(102.0), rel=2e-3)
