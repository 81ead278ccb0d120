"""Statistics on top of the forward model: likelihood, template morphing, Fisher matrices, Asimov
forecasts, fits to the COHERENT releases and data limits (docs/architecture.md).

Layers inside (imports flow downward): ``likelihood`` (Poisson χ², profiling), ``intervals`` (interval
ends), ``crossings`` (solved limits along a mass axis), ``morphing`` (templates) and ``coupling_scan`` (coupling rasters with
in-program crossings) → ``fisher`` and ``forecast`` (experiments) → ``analyses`` (release
data) → ``fits`` → ``limits``; ``minimise`` (bounded fits) and ``teststats`` (test statistics, CLs) → ``toys`` (toy
Monte Carlo, over ``forecast``'s μ or any other) → ``neyman`` (Feldman–Cousins constructions); runs of toys on grids
under the scan engine are in :mod:`cevns_jax.toyscan`, above ``scan``. Nuisances are declared once in :mod:`cevns_jax.nuisances`.
"""

from __future__ import annotations

from .crossings import LimitCurves, refine_masses, solve_crossings
from .fisher import Fisher, FisherBlocks, fisher_blocks, fisher_matrix
from .forecast import AsimovForecast, ForecastSpec, asimov_delta_chi2, asimov_reference, profiled_delta_chi2
from .limits import DataLimit, data_delta_chi2, data_reference
from .neyman import confidence_region, critical_values, interval, observed_statistics
from .teststats import (asimov_band_levels, cls_asymptotic, cls_from_toys, expected_cls_from_toys,
                        expected_limit_asymptotic, limit_from_cls, q0, q_mu)
from .toys import ToyModel, fit_counts, forecast_toy_model, toy_key

__all__ = ["Fisher", "FisherBlocks", "fisher_blocks", "fisher_matrix", "AsimovForecast", "ForecastSpec",
           "asimov_delta_chi2", "asimov_reference", "profiled_delta_chi2", "DataLimit", "data_delta_chi2",
           "data_reference", "LimitCurves", "refine_masses", "solve_crossings", "ToyModel", "fit_counts",
           "forecast_toy_model", "toy_key", "q_mu", "q0", "cls_asymptotic", "cls_from_toys",
           "expected_cls_from_toys", "expected_limit_asymptotic", "limit_from_cls", "asimov_band_levels", "confidence_region",
           "critical_values", "interval", "observed_statistics"]
