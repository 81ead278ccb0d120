"""Electromagnetic neutrino properties: magnetic moments and charge radii (docs/physics.md §4.4).

* Magnetic moment μ_νℓ (in Bohr magnetons), incoherent with the weak amplitude:
  dσ/dT = (πα²/m_e²) (μ_ν/μ_B)² Z² F_p² [1/T − 1/E + T/(4E²)] (Vogel & Engel 1989; bradkav/CEvNS
  ``xsec_magneticNS``). Its flux folding is J₀/T − J₁ + (T/4)J₂ with the moments of docs/physics.md §2.6.
* Charge radius ⟨r²_νℓ⟩ beyond the SM value: shifts g_V^p by −(√2πα/3G_F)⟨r²⟩ (same for ν̄).
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import constants as C
from .._pytree import pytree_dataclass


@pytree_dataclass
class Electromagnetic:
    """Neutrino magnetic moments [μ_B] and extra charge radii [cm²] per flavour (e, μ, τ), shape (3,)."""

    magnetic_moment_muB: jnp.ndarray
    charge_radius_cm2: jnp.ndarray


def properties(magnetic_moment_muB=0.0, charge_radius_cm2=0.0) -> Electromagnetic:
    """Magnetic moments [μ_B] and extra charge radii [cm²], scalars or per flavour (e, μ, τ)."""
    f = lambda x: jnp.broadcast_to(jnp.asarray(x, dtype=jnp.float64), (3,))  # noqa: E731
    return Electromagnetic(f(magnetic_moment_muB), f(charge_radius_cm2))


def charge_radius_coupling_shift(radius_cm2):
    """Δg_V^p = −(√2 π α / 3 G_F) ⟨r²⟩ (⟨r²⟩ in cm², converted to MeV⁻²)."""
    r2 = radius_cm2 / C.MEV2_TO_CM2
    return -jnp.sqrt(2.0) * jnp.pi * C.ALPHA_EM / (3.0 * C.G_FERMI) * r2


def magnetic_prefactor(mu_muB, Z, Fp):
    """(πα²/m_e²)(μ/μ_B)² Z² F_p² in cm² (multiplies the kinematic bracket in MeV⁻¹)."""
    return jnp.pi * C.ALPHA_EM**2 / C.M_ELECTRON**2 * mu_muB**2 * Z**2 * Fp**2 * C.MEV2_TO_CM2


def magnetic_kinematics(E_MeV, T_MeV):
    """1/T − 1/E + T/(4E²) [1/MeV], zero above T_max is applied by the caller."""
    return 1.0 / T_MeV - 1.0 / E_MeV + T_MeV / (4.0 * E_MeV**2)
