"""Statistics on top of the forward model: likelihood, template morphing, Fisher matrices, Asimov
forecasts, fits to the COHERENT releases and data limits (docs/architecture.md).

Layers inside (imports flow downward): ``likelihood`` (Poisson χ², profiling), ``intervals`` (interval
ends), ``crossings`` (solved limits along a mass axis) and ``morphing`` (templates) → ``fisher`` and ``forecast`` (experiments) → ``analyses`` (release
data) → ``fits`` → ``limits``. Nuisances are declared once in :mod:`cevns_jax.nuisances`.
"""

from __future__ import annotations

from .crossings import LimitCurves, refine_masses, solve_crossings
from .fisher import Fisher, FisherBlocks, fisher_blocks, fisher_matrix
from .forecast import AsimovForecast, ForecastSpec, asimov_delta_chi2, asimov_reference, profiled_delta_chi2
from .limits import DataLimit, data_delta_chi2, data_reference

__all__ = ["Fisher", "FisherBlocks", "fisher_blocks", "fisher_matrix", "AsimovForecast", "ForecastSpec",
           "asimov_delta_chi2", "asimov_reference", "profiled_delta_chi2", "DataLimit", "data_delta_chi2",
           "data_reference", "LimitCurves", "refine_masses", "solve_crossings"]
