"""Backgrounds of a designed experiment (the assumptions are listed in :func:`designed_backgrounds`)."""

from __future__ import annotations

import jax.numpy as jnp

from .._pytree import replace
from ..binning import subdivide, sum_sub_bins
from ..source import component_time_cdfs, pulse_cdf

__all__ = ["designed_backgrounds"]

_EFFICIENCY_FLOOR = 1e-3


def _piecewise_cdf(edges, counts):
    """Cumulative counts of a histogram with flat density inside each bin, as a function of x."""
    cum = jnp.concatenate([jnp.zeros((1,)), jnp.cumsum(counts)])
    return lambda x: jnp.interp(x, edges, cum)


def _window_probability(exp, profile, edges_ns):
    """Share of a background's time profile inside [first, last] time edge (flat: the window length)."""
    t = jnp.stack([edges_ns[0], edges_ns[-1]])
    pulse = exp.source.pulse
    if profile == "flat":
        p = t
    elif profile == "beam":
        p = pulse_cdf(t, pulse)
    else:
        p = component_time_cdfs(t, pulse)[0 if profile == "prompt" else 1]
    return p[1] - p[0]


_BACKGROUND_SUB_BINS = 32
"""Fixed, equal sub-bins per energy bin on which designed backgrounds are re-weighted by the efficiency
(midpoint rule). Fixed nodes keep the backgrounds smooth in the threshold: nodes that moved with the
turn-on would cross the preset bin edges, where the assumed background density jumps."""


def designed_backgrounds(exp, nominal, policy: str = "efficiency"):
    """``exp`` with its backgrounds moved from ``nominal`` to the design (the module docstring says how).

    Per background with a computed time profile: counts scale with mass × exposure and with the
    timing window's share of the profile; the energy distribution is the preset's, read as a flat
    density inside each preset bin, divided by the preset's mean efficiency in that bin
    (``policy="efficiency"``; floored at 1e-3) and re-integrated over the designed sub-bins times the
    designed efficiency. At the preset design this reproduces the preset's counts exactly. Tabulated
    (energy × time) templates only scale, and are refused when their bin edges are designed.
    """
    if not exp.backgrounds:
        return exp
    det, det0 = exp.detector, nominal.detector
    scale = (det.mass_kg / det0.mass_kg) * (exp.source.protons_on_target / nominal.source.protons_on_target)
    bins, bins0 = det.binning, det0.binning

    def mean_efficiency(efficiency, binning):
        fine, segments = subdivide(binning.energy_edges, _BACKGROUND_SUB_BINS)
        width = fine[1:] - fine[:-1]
        eff = efficiency(0.5 * (fine[1:] + fine[:-1]))
        n = binning.energy_edges.shape[0] - 1
        return sum_sub_bins(eff * width, segments, n) / sum_sub_bins(width, segments, n)

    def rebinned(energy_counts):
        """Counts per designed energy bin of a preset per-bin distribution."""
        if policy == "efficiency":
            raw = energy_counts / jnp.maximum(mean_efficiency(det0.efficiency, bins0), _EFFICIENCY_FLOOR)
        else:
            raw = energy_counts
        fine, segments = subdivide(bins.energy_edges, _BACKGROUND_SUB_BINS)
        cdf = _piecewise_cdf(bins0.energy_edges, raw)
        sub = cdf(fine[1:]) - cdf(fine[:-1])
        if policy == "efficiency":
            sub = sub * det.efficiency(0.5 * (fine[1:] + fine[:-1]))
        return sum_sub_bins(sub, segments, bins.energy_edges.shape[0] - 1)

    out = {}
    for name, bkg in exp.backgrounds.items():
        if bkg.time_profile == "table":
            shape = bkg.shape
            if policy == "efficiency":
                ratio = mean_efficiency(det.efficiency, bins) / jnp.maximum(
                    mean_efficiency(det0.efficiency, bins0), _EFFICIENCY_FLOOR)
                shape = shape * ratio[:, None]
            out[name] = replace(bkg, counts=bkg.counts * scale, shape=shape)
            continue
        energy = rebinned(bkg.counts * bkg.shape)  # the shape is normalised: counts·shape sums to counts
        window = _window_probability(exp, bkg.time_profile, bins.time_edges_ns) / _window_probability(
            nominal, bkg.time_profile, bins0.time_edges_ns)
        total = jnp.sum(energy)
        out[name] = replace(bkg, counts=total * scale * window, shape=energy / jnp.where(total > 0, total, 1.0))
    return replace(exp, backgrounds=out)
