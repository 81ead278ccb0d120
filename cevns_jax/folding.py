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

from .kinematics import min_neutrino_energy
from .spectra import energy_moments
from .xsec import component_rates, flavour_prefactors

__all__ = ["source_rates", "spectral_moments", "steady_source_rates"]


def source_rates(sm, model, target, T_MeV, baseline_m, source, refine: int = 1):
    """dR_c/dT per nucleus per unit fluence [cm²/MeV] of every component of ``source``; shape
    (n_c, n_iso, n_T) for recoils T [MeV] of shape (n_iso, n_T)."""
    if not source.steady:
        return component_rates(sm, model, target, T_MeV, baseline_m)
    return steady_source_rates(sm, model, target, T_MeV, baseline_m, source, refine)


def spectral_moments(target, T_MeV, source, refine: int = 1):
    """J_n(T) = Σ_k f_c(E_k) E_k^{−n} ΔE_k, n = 0, 1, 2, over E ≥ E_min(T) [MeV^{−n}] of a steady source; shape
    (3, n_c, n_iso, n_T) (docs/physics.md §1.5).

    Independent of the model: every term of dσ/dT without oscillations is a prefactor in T times a polynomial
    in 1/E (K = 1 − T/E − MT/2E² [+ T²/2E²], the magnetic bracket 1/T − 1/E + T/4E², the scalar 1/E²), so a
    scan computes these once per experiment and each model point only its prefactors. The panels above the
    one holding E_min(T) are shared by every recoil (:func:`cevns_jax.spectra.energy_moments`)."""
    return energy_moments(source, min_neutrino_energy(T_MeV, target.mass_MeV[:, None]), (0, 1, 2), refine)


def steady_source_rates(sm, model, target, T_MeV, baseline_m, source, refine: int = 1):
    """Numerical fold of a steady source (:func:`source_rates`); error of the energy quadrature < 1e-7 for
    smooth spectra (``refine = 2`` halves the step; tested in ``tests/test_sources.py``).

    Without sterile oscillations the fold is the model-independent :func:`spectral_moments` times the
    per-flavour prefactors (the same sum over the same nodes, regrouped); with them, the moments carry
    P(ν_α → ν_β; E) of each component and flavour, model-dependent but with the same shared panels
    (:func:`cevns_jax.spectra.energy_moments` with a weight)."""
    M = target.mass_MeV[:, None]
    weak, magnetic, scalar = flavour_prefactors(sm, model, target, T_MeV)
    flav = np.asarray(source.flavours)
    if model is None or model.sterile is None:  # moments per component; each component's own flavour
        J0, J1, J2 = spectral_moments(target, T_MeV, source, refine)[:, :, None]  # (n_c, 1, n_iso, n_T)
        pick = lambda prefactor: prefactor[flav][:, None]  # noqa: E731
    else:  # moments per component and flavour β, weighted by P(ν_αc → ν_β), each node averaged over its cell
        from .models.sterile import transition_probabilities

        def oscillated(E, dE):  # (n_c, 3, *E.shape)
            return transition_probabilities(model.sterile, E, baseline_m, dE)[flav]

        J0, J1, J2 = energy_moments(source, min_neutrino_energy(T_MeV, M), (0, 1, 2), refine, oscillated)
        pick = lambda prefactor: prefactor  # noqa: E731
    K = J0 - T_MeV * J1 - 0.5 * M * T_MeV * J2
    if sm.t2_term:
        K = K + 0.5 * T_MeV**2 * J2
    rate = pick(weak) * K
    if magnetic is not None:
        rate = rate + pick(magnetic) * (J0 / T_MeV - J1 + 0.25 * T_MeV * J2)
    if scalar is not None:
        rate = rate + pick(scalar) * J2
    return jnp.sum(rate, axis=1)  # over the flavours β each component scatters as
