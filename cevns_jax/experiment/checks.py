"""Checks of a compiled experiment that need its physics: every analysis threshold must be reachable by
a CEvNS recoil (the field checks of each table are in :mod:`cevns_jax.experiment.sections`, the input
domain in :mod:`cevns_jax.domain`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import response as resp
from .._pytree import run_once
from ..errors import CevnsInputError
from ..kinematics import max_recoil_energy
from ..rates import isotope_electron_equivalent_keV
from ..tomltable import Table
from .pytrees import Experiment

__all__ = ["largest_signal", "check_reachable"]


def largest_signal(exp: Experiment, thresholds):
    """Largest mean CEvNS signal [keVee] (quenched T_max at the source's highest energy, E_ν = m_μ/2 for
    π-DAR, lightest isotope), that T_max [MeV] and the probability that the smearing puts the signal above each
    of ``thresholds``."""
    det = exp.detector
    return _largest_signal(exp.target, det.quenching, det.smearing,
                           jnp.asarray(exp.source.recoil_energies_MeV[1], dtype=jnp.float64), thresholds)


@run_once
def _largest_signal(target, quenching, smearing, E_end_MeV, thresholds):
    """:func:`largest_signal` from the parts it needs: one compiled program per (target, quenching, smearing)
    structure, shared by every preset with those parts (the whole experiment was one program per preset)."""
    T_end = max_recoil_energy(E_end_MeV, target.mass_MeV)
    E_max = jnp.max(isotope_electron_equivalent_keV(target, quenching, T_end[:, None]))
    return E_max, jnp.max(T_end), 1.0 - jax.vmap(lambda x: smearing.cdf(x, E_max))(thresholds)


def check_reachable(exp: Experiment, tab: Table, edges: np.ndarray) -> None:
    """Reject thresholds that no CEvNS recoil can reach.

    The largest signal is the quenched T_max(E_end) of the lightest isotope (E_end: the source's endpoint,
    m_μ/2 for π-DAR); a threshold (the lowest
    bin edge, or a logistic efficiency's 50% point) is unreachable when the detector's smearing puts
    less than 1e-9 of that largest signal above it.
    """
    eff = exp.detector.efficiency
    thresholds = [float(edges[0])] + ([float(eff.threshold)] if isinstance(eff, resp.LogisticEfficiency) else [])
    padded = thresholds + thresholds[-1:] * (2 - len(thresholds))  # always two: one program for both cases
    E_max, T_end_MeV, above = largest_signal(exp, jnp.asarray(padded))
    above = np.asarray(above)[:len(thresholds)]
    smear = exp.detector.smearing
    unit = exp.detector.observable
    x_mean = float(smear.mean_observed(E_max))
    E_end = exp.source.recoil_energies_MeV[1]
    at = "E_ν = m_μ/2" if not exp.source.steady else f"the source's endpoint E_ν = {E_end:g} MeV"
    detail = f"≈{x_mean:.3g} {unit} on average, from T_max = {1e3 * float(T_end_MeV):.3g} keVnr at {at}"
    unreachable = [float(p) < 1e-9 for p in above]
    if unreachable[0]:
        raise CevnsInputError(
            f"{tab.where}: the analysis threshold {edges[0]:g} {unit} is above the largest CEvNS signal ({detail})"
        )
    if len(unreachable) > 1 and unreachable[1]:
        raise CevnsInputError(
            f"{tab.where.rsplit('.', 1)[0]}.detector.efficiency.threshold: {float(eff.threshold):g} {unit} is above "
            f"the largest CEvNS signal ({detail})"
        )

