"""Physical domain of a compiled experiment: the checks that need the models evaluated.

:func:`check_experiment` runs after an experiment TOML is compiled (single fields such as
``efficiency.maximum <= 1`` or ``baseline_m >= 1`` are checked where they are read) and rejects,
naming the file, table and field:

* a quenching curve outside physics over the recoils the source can produce, 0 < T ≤ T_max(E_end) of the
  lightest isotope (E_end = m_μ/2 for π-DAR): a linear Q(T) = a + bT leaving (0, 1]; a polynomial E_ee(T) (nominal and
  every ±1σ model) that is negative, exceeds T (Q > 1) or decreases;
* an efficiency model exceeding 1 or going negative anywhere in the analysis range (the COHERENT
  2017/2021 release functions, nominal and at ±1σ pulls, sampled at 2001 points);
* a time window holding none (< 1e-9) of a background's computed time profile (``beam``,
  ``prompt``, ``delayed``): its counts are normalised to the window, so they would be divided by zero;
* a time window holding none (< 1e-9) of the neutrino signal.

Lindhard's k: the model's own estimate is k = 0.133 Z^{2/3} A^{-1/2} (Lindhard et al., Mat. Fys. Medd.
Dan. Vid. Selsk. 33, 10 (1963)), ≈ 0.157 for Ge, 0.144 for Ar, 0.166 for Xe; germanium measurements
give k = 0.162 ± 0.004 (Bonhomme et al., EPJC 82, 815 (2022), the CONUS value) and 0.179 ± 0.001
(Scholz et al., arXiv:1608.03588). The loader accepts 0 < k ≤ 1 (k = 1 is six times the Ge value;
Q → 1 as k → ∞, i.e. no quenching at all).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from . import response as resp
from ._pytree import run_once
from .errors import CevnsInputError
from .kinematics import max_recoil_energy
from .source import component_time_cdfs, pulse_cdf

__all__ = ["check_experiment", "MIN_WINDOW_FRACTION", "LINDHARD_K_MAX", "MIN_BASELINE_M"]

MIN_WINDOW_FRACTION = 1e-9
"""Smallest fraction of a time profile that the analysis window must hold."""
LINDHARD_K_MAX = 1.0
"""Largest accepted Lindhard k (model and measured values 0.14–0.18; see the module docstring)."""
MIN_BASELINE_M = 1.0
"""Shortest accepted baseline [m]: the point-source flux 1/(4πL²) needs L well beyond the ≈0.5 m
extent of a spallation target (the default baseline spread of :mod:`cevns_jax.models.sterile`)."""


def check_experiment(exp, label: str) -> None:
    """Raise :class:`CevnsInputError` naming ``label`` (the TOML file), table and field for any problem above."""
    _check_quenching(exp, f"{label}.detector.quenching")
    _check_efficiency(exp, f"{label}.detector.efficiency")
    _check_time_window(exp, label)


def recoil_grid_keVnr(target, n: int = 2001, E_max_MeV: float = C.E_NU_MAX_MICHEL) -> np.ndarray:
    """Recoils 0 < T ≤ T_max(E_max) of the lightest isotope [keVnr] (E_max: the source's endpoint, m_μ/2 for
    π-DAR), geometric from 1e-4 T_max."""
    T_max = float(np.max(np.asarray(max_recoil_energy(E_max_MeV, target.mass_MeV)))) * 1e3
    return np.geomspace(1e-4 * T_max, T_max, n)


def _check_quenching(exp, where: str) -> None:
    q, target = exp.detector.quenching, exp.target
    T = recoil_grid_keVnr(target, E_max_MeV=exp.source.recoil_energies_MeV[1])
    reach = "a π-DAR source" if not exp.source.steady else "the source"
    if isinstance(q, resp.LinearQuenching):
        Q = float(q.a) + float(q.b_per_keVnr) * T
        bad = (Q <= 0) | (Q > 1)
        if np.any(bad):
            t = T[np.argmax(bad)]
            raise CevnsInputError(
                f"{where}.b_per_keVnr: the quenching factor a + b·T = {Q[np.argmax(bad)]:.4g} at T = {t:.4g} keVnr leaves "
                f"(0, 1] over the recoils of {reach} (up to {T[-1]:.4g} keVnr)"
            )
    elif isinstance(q, resp.PolynomialQuenching):
        c0, shifts = np.asarray(q.coefficients), np.asarray(q.shifts)
        models = [("nominal model", c0)]
        for k in range(shifts.shape[0]):
            models += [(f"model {k} at +1σ", c0 + shifts[k]), (f"model {k} at -1σ", c0 - shifts[k])]
        T_MeV = T * 1e-3
        powers = np.stack([T_MeV ** (n + 1) for n in range(c0.size)], axis=-1)
        for name, c in models:
            E = powers @ c  # MeVee
            problem = None
            if np.any(E < 0):
                problem, at = "is negative", np.argmax(E < 0)
            elif np.any(E > T_MeV):
                problem, at = "exceeds the recoil energy (quenching factor > 1)", np.argmax(E > T_MeV)
            elif np.any(np.diff(E) < 0):
                problem, at = "decreases with recoil energy", np.argmax(np.diff(E) < 0)
            if problem:
                raise CevnsInputError(
                    f"{where}: the polynomial E_ee(T) ({name}) {problem} at T = {T[at]:.4g} keVnr; it must lie in "
                    f"[0, T] and not decrease over the recoils of {reach} (up to {T[-1]:.4g} keVnr)"
                )


def _check_efficiency(exp, where: str) -> None:
    eff, det = exp.detector.efficiency, exp.detector
    edges = np.asarray(det.binning.energy_edges)
    x = jnp.asarray(np.linspace(edges[0], edges[-1], 2001))
    if isinstance(eff, resp.Coherent2021Efficiency):
        variants = [(f"release model at pull {z:+g}", resp.Coherent2021Efficiency(eff.coefficients, eff.shift, jnp.asarray(z)))
                    for z in (0.0, 1.0, -1.0)]
    elif isinstance(eff, resp.Coherent2017Efficiency):
        variants = [("release function", eff)]
    else:
        return  # flat, logistic and tables are checked field by field when read
    for name, model in variants:
        values = np.asarray(model(x))
        bad = (values > 1.0 + 1e-12) | (values < 0)
        if np.any(bad):
            k = int(np.argmax(bad))
            raise CevnsInputError(
                f"{where}: the efficiency ({name}) reaches {values[k]:.4g} at {float(x[k]):.4g} {det.observable}; "
                f"an efficiency must lie in [0, 1] over the analysis range {edges[0]:g}–{edges[-1]:g} {det.observable}"
            )


@run_once
def _window_cdfs(t_ns, pulse):
    """Neutrino-component and proton-pulse CDFs at ``t_ns`` (one compiled program, not eager ops)."""
    return component_time_cdfs(t_ns, pulse), pulse_cdf(t_ns, pulse)


def _check_time_window(exp, label: str) -> None:
    if exp.source.steady:  # uniform in time: every window holds its share (backgrounds: flat or table only)
        return
    edges_ns = np.asarray(exp.detector.binning.time_edges_ns)
    t = jnp.asarray(edges_ns[[0, -1]])
    pulse = exp.source.pulse
    window = f"{edges_ns[0] / 1e3:g}–{edges_ns[-1] / 1e3:g} μs"
    comp, beam = (np.asarray(a) for a in _window_cdfs(t, pulse))
    fractions = {
        "flat": 1.0,
        "beam": float(np.diff(beam)[0]),
        "prompt": float(comp[0, 1] - comp[0, 0]),
        "delayed": float(comp[1, 1] - comp[1, 0]),
    }
    hint = (f"move the time window ({label}.bins) or the pulse ({label}.source.pulse_mean_us = "
            f"{float(pulse.mean_ns) / 1e3:g} μs)")
    if fractions["prompt"] + fractions["delayed"] < MIN_WINDOW_FRACTION:
        raise CevnsInputError(f"{label}.bins: the time window {window} holds no neutrino signal "
                              f"(fraction {fractions['prompt'] + fractions['delayed']:.2g}); {hint}")
    for name, bkg in exp.backgrounds.items():
        if bkg.time_profile == "table":
            continue
        frac = fractions[bkg.time_profile]
        if not frac >= MIN_WINDOW_FRACTION:
            raise CevnsInputError(
                f"{label}.backgrounds[{name}].time_profile: the {bkg.time_profile!r} profile has no support in the time "
                f"window {window} (fraction {frac:.2g} < {MIN_WINDOW_FRACTION:g}), so its counts cannot be spread over "
                f"the window's bins; {hint}"
            )
