"""Cross section folded with any source's flux: dR_c/dT per nucleus per unit fluence (docs/physics.md §2.6).

A π-DAR source (``steady`` False) is folded in closed form (:func:`cevns_jax.xsec.component_rates`: the
prompt line and the Michel moments). A steady source (reactor, Sun, table) is folded numerically: at each
recoil T its spectrum is integrated over E ≥ E_min(T) on the Gauss–Legendre panels of
:func:`cevns_jax.spectra.energy_nodes` (breaks of the spectrum are panel edges and the lowest panel starts
at E_min(T), so the integrand is smooth on every panel), with the same per-flavour couplings and new-physics
terms (NSI, Z′, charge radius, magnetic moment, scalar, sterile oscillation at the detector baseline).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .kinematics import max_recoil_energy, min_neutrino_energy
from .spectra import energy_nodes
from .xsec import component_rates, flavour_prefactors, kinematic_factor

__all__ = ["source_rates", "steady_source_rates"]


def source_rates(sm, model, target, T_MeV, baseline_m, source, refine: int = 1):
    """dR_c/dT per nucleus per unit fluence [cm²/MeV] of every component of ``source``; shape
    (n_c, n_iso, n_T) for recoils T [MeV] of shape (n_iso, n_T)."""
    if not source.steady:
        return component_rates(sm, model, target, T_MeV, baseline_m)
    return steady_source_rates(sm, model, target, T_MeV, baseline_m, source, refine)


def steady_source_rates(sm, model, target, T_MeV, baseline_m, source, refine: int = 1):
    """Numerical fold of a steady source (:func:`source_rates`); error of the energy quadrature < 1e-7 for
    smooth spectra (``refine = 2`` halves the step; tested in ``tests/test_sources.py``)."""
    M = target.mass_MeV[:, None]
    weak, magnetic, scalar = flavour_prefactors(sm, model, target, T_MeV)
    E, dE = energy_nodes(source, min_neutrino_energy(T_MeV, M), refine)  # (n_iso, n_T, n_k)
    T, Mk = T_MeV[..., None], M[..., None]
    per_flavour = weak[..., None] * kinematic_factor(E, T, Mk, sm.t2_term)  # (3, n_iso, n_T, n_k)
    inside = T < max_recoil_energy(E, Mk)
    if magnetic is not None:
        from .models.em import magnetic_kinematics

        bracket = jnp.where(inside, magnetic_kinematics(E, jnp.where(inside, T, 1.0)), 0.0)
        per_flavour = per_flavour + magnetic[..., None] * bracket
    if scalar is not None:
        per_flavour = per_flavour + scalar[..., None] * jnp.where(inside, 1.0 / E**2, 0.0)
    flav = np.asarray(source.flavours)
    if model is not None and model.sterile is not None:
        from .models.sterile import transition_probabilities

        P = transition_probabilities(model.sterile, E, baseline_m, dE)  # (3, 3, n_iso, n_T, n_k)
        per_component = jnp.einsum("ab...,b...->a...", P, per_flavour)[flav]
    else:
        per_component = per_flavour[flav]
    return jnp.sum(source.spectrum_per_MeV(E) * dE * per_component, axis=-1)
