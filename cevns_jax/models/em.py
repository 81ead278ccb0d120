"""Electromagnetic neutrino properties: magnetic moments, charge radii and millicharges (docs/physics.md §4.4).

* Magnetic moment μ_νℓ (in Bohr magnetons), incoherent with the weak amplitude:
  dσ/dT = (πα²/m_e²) (μ_ν/μ_B)² Z² F_p² [1/T − 1/E + T/(4E²)] (Vogel & Engel 1989; bradkav/CEvNS
  ``xsec_magneticNS``). Its flux folding is J₀/T − J₁ + (T/4)J₂ with the moments of docs/physics.md §2.6.
* Charge radius ⟨r²_νℓ⟩ beyond the SM value: shifts g_V^p by −(√2πα/3G_F)⟨r²⟩ (same for ν̄).
* Millicharge q_νℓ (in units of the elementary charge e): the charge form factor F(q²) = q_ν + q²⟨r²⟩/6
  (Giunti & Studenikin, Rev. Mod. Phys. 87, 531 (2015), §3) makes the millicharge a charge radius
  ⟨r²⟩ → 6q_ν/q², with q² = −2MT the (spacelike) four-momentum transfer squared on a target of mass M:
  Δg_V^p = +√2πα q_ν/(G_F M T) (same for ν̄; the form of Cadeddu et al., PRD 102, 015030 (2020)).
  On electrons (:mod:`cevns_jax.electron`) the same photon exchange with charge −1 gives
  Δg_V = −√2πα q_ν/(G_F m_e T) (Giunti & Studenikin 2015).

Parameter domains (:func:`properties`): μ_ν ≥ 0 and finite, ⟨r²⟩ and q_ν finite (either sign); a concrete
value outside raises :class:`~cevns_jax.errors.CevnsInputError` naming the field, a traced one becomes NaN.
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import constants as C
from .._pytree import pytree_dataclass
from ..errors import domain_checked


@pytree_dataclass
class Electromagnetic:
    """Neutrino magnetic moments [μ_B], extra charge radii [cm²] and millicharges [e] per flavour (e, μ, τ),
    shape (3,) each."""

    magnetic_moment_muB: jnp.ndarray
    charge_radius_cm2: jnp.ndarray
    millicharge_e: jnp.ndarray


def _per_flavour(name: str, value, valid, what: str) -> jnp.ndarray:
    x = domain_checked(value, valid, f"em.{name} must be {what} (a number or one per flavour e, μ, τ)")
    if jnp.ndim(x) not in (0, 1) or jnp.size(x) not in (1, 3):
        from ..errors import CevnsInputError

        raise CevnsInputError(f"em.{name}: must be a number or a list of 3 numbers (e, μ, τ), got shape {jnp.shape(x)}")
    return jnp.broadcast_to(x, (3,))


def properties(magnetic_moment_muB=0.0, charge_radius_cm2=0.0, millicharge_e=0.0) -> Electromagnetic:
    """Magnetic moments [μ_B] (≥ 0), extra charge radii [cm²] and millicharges [e], scalars or per flavour
    (e, μ, τ). Raises :class:`~cevns_jax.errors.CevnsInputError` naming the field for a negative magnetic
    moment or a non-finite value (NaN under a trace, docs/physics.md §4.4)."""
    return Electromagnetic(
        _per_flavour("magnetic_moment_muB", magnetic_moment_muB, lambda x: jnp.isfinite(x) & (x >= 0), "finite and ≥ 0"),
        _per_flavour("charge_radius_cm2", charge_radius_cm2, jnp.isfinite, "finite"),
        _per_flavour("millicharge_e", millicharge_e, jnp.isfinite, "finite"),
    )


def charge_radius_coupling_shift(radius_cm2):
    """Δg_V^p = −(√2 π α / 3 G_F) ⟨r²⟩ (⟨r²⟩ in cm², converted to MeV⁻²)."""
    r2 = radius_cm2 / C.MEV2_TO_CM2
    return -jnp.sqrt(2.0) * jnp.pi * C.ALPHA_EM / (3.0 * C.G_FERMI) * r2


def millicharge_coupling_shift(millicharge_e, M_MeV, T_MeV):
    """Δg_V^p = +√2πα q_ν/(G_F M T) of a millicharge q_ν [e] on a target of mass M [MeV] at recoil T [MeV]
    (the charge-radius shift with ⟨r²⟩ → 6q_ν/q², q² = −2MT). Exactly 0 at q_ν = 0."""
    return jnp.sqrt(2.0) * jnp.pi * C.ALPHA_EM / C.G_FERMI * millicharge_e / (M_MeV * T_MeV)


def magnetic_prefactor(mu_muB, Z, Fp):
    """(πα²/m_e²)(μ/μ_B)² Z² F_p² in cm² (multiplies the kinematic bracket in MeV⁻¹)."""
    return jnp.pi * C.ALPHA_EM**2 / C.M_ELECTRON**2 * mu_muB**2 * Z**2 * Fp**2 * C.MEV2_TO_CM2


def magnetic_kinematics(E_MeV, T_MeV):
    """1/T − 1/E + T/(4E²) [1/MeV], zero above T_max is applied by the caller."""
    return 1.0 / T_MeV - 1.0 / E_MeV + T_MeV / (4.0 * E_MeV**2)
