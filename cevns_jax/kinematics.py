"""Elastic neutrino-nucleus kinematics (nucleus at rest; docs/physics.md §2.1).

All energies in MeV: E the neutrino energy, T the nuclear recoil kinetic energy, M the nuclear mass.
"""

from __future__ import annotations

import jax.numpy as jnp


def max_recoil_energy(E_MeV, M_MeV):
    """Largest recoil kinetic energy T_max = 2E²/(M + 2E) [MeV]."""
    return 2.0 * E_MeV**2 / (M_MeV + 2.0 * E_MeV)


def min_neutrino_energy(T_MeV, M_MeV):
    """Smallest neutrino energy that can give recoil T: E_min = [T + √(T² + 2MT)]/2 [MeV]."""
    return 0.5 * (T_MeV + jnp.sqrt(T_MeV**2 + 2.0 * M_MeV * T_MeV))


def momentum_transfer(T_MeV, M_MeV):
    """Momentum transfer q = √(2MT) [MeV] (|q|² = 2MT + T² differs by T/2M ≈ 1e-7)."""
    return jnp.sqrt(2.0 * M_MeV * T_MeV)
