"""Expected neutrino–electron scattering counts per (energy × time) bin (docs/physics.md §10.5).

    μ_{i,j} = N_units Σ_c Φ_c Σ_k w_k n_e(T_k) dR_c/dT(T_k) R_i(T_k) τ_{c,j}

with electron recoils T [MeV] seen directly in keVee (no quenching), n_e(T) the electrons per formula unit
of the stepping approximation (:func:`cevns_jax.electron.electrons_per_unit`), dR_c/dT the per-electron rate
per unit fluence (:func:`cevns_jax.electron.electron_source_rates`), R_i the detector response of
:func:`cevns_jax.response.energy_response` (resolution and efficiency in the observed variable) and τ the
components' time-bin fractions (:func:`cevns_jax.rates.neutrino_time_fractions`).

Recoil grid (:func:`electron_recoil_grid`): :data:`LOG_PANELS` log-spaced Gauss–Legendre panels (8 nodes) on
[T_floor, T_top], split at every binding energy of the target (the steps of n_e(T)), at the recoil end points
T_max(E) of the source's break energies and, for a sharp resolution, at the bin edges and their satellites.
T_floor is :func:`cevns_jax.quadrature.response_floor` with no quenching; T_top is where the chance to be
seen below the top bin edge falls under 1e-12 (:func:`cevns_jax.quadrature.response_ceiling`), at most T_max of the endpoint.
Error target 1e-4 per bin; ``refine = 2`` doubles the panels (``tests/test_electron.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import replace, require_x64
from .electron import binding_edges_MeV, electron_source_rates, electrons_per_unit
from .errors import CevnsInputError
from .kinematics import max_recoil_energy
from .nuclei import units_per_kg
from .quadrature import gauss_legendre_panels, response_breakpoints, response_ceiling, response_floor
from .response import NoQuenching, energy_response
from .xsec import resolve_standard_model

__all__ = ["COMPONENT", "LOG_PANELS", "ELECTRON_OBSERVABLES", "electron_recoil_grid", "check_electron_scattering",
           "electron_events_per_node", "electron_counts"]

COMPONENT = "nu_e_scattering"
"""Key of the neutrino–electron counts in :func:`cevns_jax.rates.expected_counts`."""
LOG_PANELS = 48
"""Log-spaced recoil panels on [T_floor, T_top] (× ``refine``): a ratio ≤ 1.34 per panel over six decades."""
ELECTRON_OBSERVABLES = ("keVee", "PE")
"""Observables in which an electron recoil's energy is seen directly (keVee, or photoelectrons from keVee)."""
_LOWEST = 1e-6
"""T_floor ≥ 10⁻⁶ T_top (a zero threshold: the slice below holds < 1e-5 of any 1/T² rate's bins)."""


def electron_recoil_grid(experiment):
    """Electron-recoil nodes and weights [MeV], each of shape (n_T,) (docstring of this module)."""
    det, src, target = experiment.detector, experiment.source, experiment.target
    edges_x = det.binning.energy_edges
    E_end = src.recoil_energies_MeV[-1]
    T_end = max_recoil_energy(E_end, C.M_ELECTRON)
    T_top = jnp.minimum(response_ceiling(det.smearing, edges_x[-1]) * C.KEV, T_end)
    one = jnp.ones((1, 1))
    T_floor = response_floor(NoQuenching(), det.smearing, edges_x[0], one, one, _LOWEST * T_top, T_top)[0, 0]
    n = LOG_PANELS * det.binning.refine
    base = T_floor * jnp.exp(jnp.log(T_top / T_floor) * np.linspace(0.0, 1.0, n + 1))
    kinks = [binding_edges_MeV(target), max_recoil_energy(np.asarray(src.recoil_energies_MeV), C.M_ELECTRON)]
    extra = jnp.concatenate([jnp.asarray(np.concatenate(kinks))])
    sharp = response_breakpoints(replace(det, quenching=NoQuenching()), one, one, T_floor, T_top)
    if sharp is not None:
        extra = jnp.concatenate([extra, sharp[0]])
    edges = jnp.sort(jnp.concatenate([base, jnp.clip(extra, T_floor, T_top)]))
    T, w = gauss_legendre_panels(edges[None, :])
    return T[0], w[0]


def check_electron_scattering(experiment, where: str) -> None:
    """Raise :class:`CevnsInputError` unless ``experiment`` can predict neutrino–electron counts."""
    from .electron import check_target_elements

    if experiment.detector.observable not in ELECTRON_OBSERVABLES:
        raise CevnsInputError(f"{where}: electron_scattering needs a detector that sees electron recoils in keVee "
                              f"or photoelectrons, not {experiment.detector.observable!r} (a heat channel, an ideal "
                              "keVnr response or a charge yield has no electron-recoil response here)")
    check_target_elements(experiment.target, where)


def electron_events_per_node(experiment, sm=None, model=None):
    """(T [MeV] (n_T,), expected events (n_c, n_T)) of neutrino–electron scattering per recoil node, before the
    detector response. Sterile oscillations are not applied to this channel: a model with them is refused."""
    require_x64()
    if model is not None and model.sterile is not None:
        raise CevnsInputError(f"{experiment.name}: neutrino–electron scattering does not take sterile oscillations "
                              "(docs/physics.md §10.5)")
    det, src, target = experiment.detector, experiment.source, experiment.target
    sm = resolve_standard_model(experiment, sm)
    T, w = electron_recoil_grid(experiment)
    dRdT = electron_source_rates(sm, model, T, src, refine=det.binning.refine)  # (n_c, n_T)
    scale = src.fluence_cm2(det.baseline_m)[:, None] * units_per_kg(target) * det.mass_kg
    return T, scale * electrons_per_unit(target, T) * w * dRdT


def electron_counts(experiment, sm=None, model=None):
    """Expected neutrino–electron counts per component and bin, shape (n_c, n_E, n_t) (the source's components)."""
    from .rates import neutrino_time_fractions

    T, events = electron_events_per_node(experiment, sm, model)
    det = experiment.detector
    R = energy_response(det.smearing, det.efficiency, det.binning, T * 1e3)  # (n_E, n_T): keVee = keV of recoil
    spectrum = jnp.einsum("ck,ek->ce", events, R)
    return spectrum[:, :, None] * neutrino_time_fractions(experiment)[:, None, :]
