"""Light vector mediators Z′ (docs/physics.md §4.2): general couplings, universal, B−L and gauged L_μ−L_τ.

Convention (library-wide, §0.3): the weak charge is Q_V = Z g_V^p F_p + N g_V^n F_n < 0 in the SM and
the Z′ adds, for ν_ℓ (and ν̄_ℓ alike),

    Q′_ℓ(q) = g_νℓ [Z (2g_u + g_d) F_p + N (g_u + 2g_d) F_n] / (√2 G_F (q² + M²)),    q² = 2MT,

with L ⊃ Z′_μ (Σ_ℓ g_νℓ ν̄_ℓ γ^μ P_L ν_ℓ + Σ_q g_q q̄ γ^μ q). g_ν g_q > 0 interferes destructively.
Papers that write the cross section with Q_W = N − (1 − 4s²)Z = −2Q_V quote Q′_W = −2Q′: multiply
their additive term by −½ to use it here.

Gauged L_μ−L_τ has no tree-level quark couplings; the μ and τ loops induce a kinetic mixing ε(q²)
with the photon, so the Z′ couples to electric charge (protons only, F_p):

    Q′_νμ = −Q′_ντ = α g′² ℒ(q²) Z F_p / (3√2 π G_F (q² + M²)),   Q′_νe = 0,
    ℒ(q²) = 6 ∫₀¹ x(1−x) ln[(m_τ² + x(1−x)q²)/(m_μ² + x(1−x)q²)] dx  → ln(m_τ²/m_μ²) at q → 0,

i.e. ε(0) = e g′ ln(m_τ²/m_μ²)/(12π²) = g′/69.29 (the standard QED β-function coefficient; Amaral et
al., arXiv:2006.11225; Bauer, Foldenauer & Jaeckel, arXiv:1803.05466 normalise the quark couplings
3/2 larger). The sign (same as a universal Z′, destructive for ν_μ) is derived in docs/physics.md §4.2.3.

Domain: the mass M > 0 and finite (it enters only as M², so a negative mass would silently act as |M|);
couplings take either sign. Constructors raise :class:`~cevns_jax.errors.CevnsInputError` for a concrete
mass outside the domain and turn a traced one into NaN (policy in :mod:`cevns_jax.errors`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import constants as C
from .._pytree import pytree_dataclass
from ..errors import domain_checked

_X, _W = np.polynomial.legendre.leggauss(16)
_X = 0.5 * (_X + 1.0)
_W = 0.5 * _W


@pytree_dataclass
class ZPrime:
    """A vector Z′ of mass ``mass_MeV`` with couplings to ν_e, ν_μ, ν_τ (``g_nu``, shape (3,)) and u, d quarks.

    ``kinetic_mixing`` is the Z′–photon mixing ε(0) at zero momentum transfer, running as the μ and τ
    loops of gauged L_μ−L_τ, ε(q²) = ε(0) ℒ(q²)/ℒ(0): the Z′ then also couples to the proton charge,
    e ε(q²) (0 for the tree-level models; e g′/69.29-ish for L_μ−L_τ, whose quark couplings are zero).
    Every family is one structure (all leaves), so one compiled program serves all of them.
    Build it with :func:`universal`, :func:`b_minus_l`, :func:`lmu_minus_ltau` or :func:`general`.
    """

    mass_MeV: jnp.ndarray
    g_nu: jnp.ndarray
    g_u: jnp.ndarray
    g_d: jnp.ndarray
    kinetic_mixing: jnp.ndarray = 0.0


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def _checked_mass(mass_MeV):
    """M [MeV] > 0 and finite: an error if concrete, NaN if traced (never |M|)."""
    return domain_checked(mass_MeV, lambda m: (m > 0) & jnp.isfinite(m), "Z′ mass must be a positive finite number of MeV (mass_MeV)")


def general(mass_MeV, g_nu, g_u, g_d, kinetic_mixing=0.0) -> ZPrime:
    """Z′ with arbitrary couplings g_νℓ (e, μ, τ), g_u, g_d and a kinetic mixing ε(0) running as the
    μ/τ loops of L_μ−L_τ (see :class:`ZPrime`)."""
    return ZPrime(_checked_mass(mass_MeV), jnp.broadcast_to(_f(g_nu), (3,)), _f(g_u), _f(g_d), _f(kinetic_mixing))


def universal(mass_MeV, g) -> ZPrime:
    """Universal Z′: g_ν = g_u = g_d = g (destructive for every flavour)."""
    return general(mass_MeV, jnp.full((3,), _f(g)), g, g)


def b_minus_l(mass_MeV, g) -> ZPrime:
    """Gauged B−L: neutrino charge −1, quark charge +1/3 (constructive)."""
    return general(mass_MeV, jnp.full((3,), -_f(g)), _f(g) / 3.0, _f(g) / 3.0)


def lmu_minus_ltau(mass_MeV, g) -> ZPrime:
    """Gauged L_μ−L_τ with coupling g′ (loop-induced coupling to the proton charge)."""
    return ZPrime(_checked_mass(mass_MeV), jnp.stack([_f(0.0), _f(g), -_f(g)]), _f(0.0), _f(0.0),
                  kinetic_mixing_lmu_ltau(g))


def vacuum_polarisation_integral(m_MeV, q2_MeV2):
    """I(m, q²) = ∫₀¹ x(1−x) log1p(x(1−x) q²/m²) dx (16-point Gauss–Legendre; smooth integrand)."""
    u = _X * (1 - _X)
    # A contraction, not jnp.sum(w·log1p(…), axis=-1): XLA (CPU, JAX 0.10.2) fused log1p with that reduction
    # inaccurately on 2-D recoil grids (3% off numpy under jit, exact eagerly; tests/test_models.py).
    return jnp.einsum("...k,k->...", jnp.log1p(u * jnp.asarray(q2_MeV2)[..., None] / m_MeV**2), _W * u,
                      precision=jax.lax.Precision.HIGHEST)


def lmu_ltau_loop(q2_MeV2):
    """ℒ(q²) = ln(m_τ²/m_μ²) + 6[I(m_τ, q²) − I(m_μ, q²)] (→ 5.64478 at q → 0)."""
    return jnp.log(C.M_TAU**2 / C.M_MUON**2) + 6.0 * (
        vacuum_polarisation_integral(C.M_TAU, q2_MeV2) - vacuum_polarisation_integral(C.M_MUON, q2_MeV2)
    )


def kinetic_mixing_lmu_ltau(g, q2_MeV2=0.0):
    """Loop-induced Z′–photon mixing ε(q²) = e g′ ℒ(q²)/(12π²) of L_μ−L_τ."""
    e = jnp.sqrt(4 * jnp.pi * C.ALPHA_EM)
    return e * g * lmu_ltau_loop(q2_MeV2) / (12 * jnp.pi**2)


def charge_shift(zp: ZPrime, Z, N, Fp, Fn, q2_MeV2):
    """Q′ per flavour (shape (3, *q2.shape)) to add to the SM weak charge."""
    propagator = 1.0 / (jnp.sqrt(2.0) * C.G_FERMI * (q2_MeV2 + zp.mass_MeV**2))
    e = jnp.sqrt(4 * jnp.pi * C.ALPHA_EM)
    mixing = e * zp.kinetic_mixing * lmu_ltau_loop(q2_MeV2) / lmu_ltau_loop(0.0)  # e ε(q²), to the proton charge
    nucleus = Z * (2 * zp.g_u + zp.g_d + mixing) * Fp + N * (zp.g_u + 2 * zp.g_d) * Fn
    return zp.g_nu.reshape((3,) + (1,) * jnp.ndim(nucleus)) * (nucleus * propagator)[None]


def muon_g2_shift(mass_MeV, g):
    """One-loop Δa_μ of a vector coupled to muons with g: (g²/4π²)∫₀¹ m_μ²x²(1−x)/(m_μ²x² + M²(1−x)) dx."""
    x = _X
    mass_MeV = _checked_mass(mass_MeV)
    integrand = C.M_MUON**2 * x**2 * (1 - x) / (C.M_MUON**2 * x**2 + mass_MeV[..., None] ** 2 * (1 - x))
    return jnp.asarray(g) ** 2 / (4 * jnp.pi**2) * jnp.sum(_W * integrand, axis=-1)
