"""Light scalar mediator φ (incoherent with the SM vector amplitude).

    dσ/dT = g_νℓ² Q_φ² F²(q) M² T / (4π E² (2MT + m_φ²)²)

(Cerdeño et al., JHEP 05 (2016) 118, arXiv:1604.01025; Farzan, Lindner, Rodejohann & Xu, JHEP 05
(2018) 066). Q_φ is the scalar charge of the nucleus; for a universal quark coupling g_q the nucleon
scalar form factors give Q_φ ≈ (15.1 Z + 14 N) g_q (Cerdeño et al.; the same 14 A + 1.1 Z in
bradkav/CEvNS). The folding over the π-DAR flux uses the moment J₂ = ∫ f(E)/E² dE.

Domain: m_φ > 0 and finite (it enters as m_φ², so a negative mass would silently act as |m_φ|);
couplings take either sign. :func:`scalar_mediator` raises :class:`~cevns_jax.errors.CevnsInputError`
for a concrete mass outside the domain and turns a traced one into NaN (policy in :mod:`cevns_jax.errors`).
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import constants as C
from .._pytree import pytree_dataclass
from ..errors import domain_checked

SCALAR_CHARGE_PER_PROTON = 15.1
SCALAR_CHARGE_PER_NEUTRON = 14.0


@pytree_dataclass
class Scalar:
    """Scalar φ of mass ``mass_MeV``, neutrino couplings ``g_nu`` (e, μ, τ) and universal quark coupling ``g_q``."""

    mass_MeV: jnp.ndarray
    g_nu: jnp.ndarray
    g_q: jnp.ndarray


def scalar_mediator(mass_MeV, g_nu, g_q=None) -> Scalar:
    """Scalar mediator; ``g_q`` defaults to ``g_nu`` (universal coupling g)."""
    g_nu = jnp.broadcast_to(jnp.asarray(g_nu, dtype=jnp.float64), (3,))
    g_q = g_nu[1] if g_q is None else jnp.asarray(g_q, dtype=jnp.float64)
    mass = domain_checked(mass_MeV, lambda m: (m > 0) & jnp.isfinite(m), "scalar mass_MeV must be a positive finite number of MeV")
    return Scalar(mass, g_nu, g_q)


def prefactor(model: Scalar, Z, N, Fp, T_MeV, M_MeV):
    """g_ν² Q_φ² F² M² T / (4π (2MT + m²)²) [cm² MeV], per flavour (3, …); multiply by 1/E²."""
    Q = model.g_q * (SCALAR_CHARGE_PER_PROTON * Z + SCALAR_CHARGE_PER_NEUTRON * N) * Fp
    core = Q**2 * M_MeV**2 * T_MeV / (4 * jnp.pi * (2 * M_MeV * T_MeV + model.mass_MeV**2) ** 2) * C.MEV2_TO_CM2
    return model.g_nu.reshape((3,) + (1,) * jnp.ndim(core)) ** 2 * core[None]
