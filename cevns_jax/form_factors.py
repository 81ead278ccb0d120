"""Nuclear form factors (docs/physics.md §2.4), differentiable in the momentum transfer and radii.

* Helm: F(q) = 3 j₁(qR₀)/(qR₀) · exp(−q²s²/2), spherical Bessel j₁, skin thickness s (the target's
  ``skin_fm`` leaf, 0.9 fm by default: Lewin & Smith's value).
  - ``"helm"`` (default): Lewin–Smith radius R₀² = c² + (7/3)π²a² − 5s², c = 1.23A^{1/3} − 0.60 fm,
    a = 0.52 fm (Lewin & Smith, Astropart. Phys. 6, 87 (1996)); one shape for protons and neutrons.
  - ``"helm_r0"``: a given box radius R₀ per isotope (the target's ``helm_radius_fm``; one value for
    every isotope is the common convention of peer codes); one shape for protons and neutrons.
  - ``"helm_rms"``: R₀ from an rms radius, R_rms² = (3/5)R₀² + 3s², with separate point-proton and
    point-neutron radii (so the neutron radius is a free, differentiable parameter).
* ``"klein_nystrand"``: hard sphere R_A = 1.2A^{1/3} fm folded with a Yukawa of range a_k = 0.7 fm
  (Klein & Nystrand, PRC 60, 014903 (1999)): F = 3 j₁(qR_A)/(qR_A) / (1 + q²a_k²).
"""

from __future__ import annotations

import jax.numpy as jnp

from . import constants as C

HELM_SKIN_FM = 0.9
LEWIN_SMITH_A_FM = 0.52
KN_RANGE_FM = 0.7


def spherical_bessel_ratio(x):
    """3 j₁(x)/x, with the series 1 − x²/10 + x⁴/280 for x < 1e-2 (double-where guarded)."""
    small = x < 1e-2
    xs = jnp.where(small, 1.0, x)
    exact = 3.0 * (jnp.sin(xs) / xs**2 - jnp.cos(xs) / xs) / xs
    series = 1.0 - x**2 / 10.0 + x**4 / 280.0
    return jnp.where(small, series, exact)


def helm(q_MeV, R0_fm, s_fm=HELM_SKIN_FM):
    """Helm form factor at momentum transfer q [MeV] for box radius R₀ and skin s [fm]."""
    q = q_MeV / C.HBARC_MEV_FM
    return spherical_bessel_ratio(q * R0_fm) * jnp.exp(-0.5 * (q * s_fm) ** 2)


def lewin_smith_radius_fm(A, s_fm=HELM_SKIN_FM):
    """Helm box radius R₀ [fm] of Lewin & Smith (1996) for skin thickness s [fm]."""
    c = 1.23 * A ** (1.0 / 3.0) - 0.60
    return jnp.sqrt(c**2 + (7.0 / 3.0) * jnp.pi**2 * LEWIN_SMITH_A_FM**2 - 5.0 * s_fm**2)


def helm_radius_from_rms_fm(r_rms_fm, s_fm=HELM_SKIN_FM):
    """Helm box radius R₀ [fm] with rms radius r_rms: R₀ = √(5/3 (r_rms² − 3s²))."""
    return jnp.sqrt(5.0 / 3.0 * (r_rms_fm**2 - 3.0 * s_fm**2))


def klein_nystrand(q_MeV, A):
    """Klein–Nystrand form factor at q [MeV] for mass number A."""
    q = q_MeV / C.HBARC_MEV_FM
    RA = 1.2 * A ** (1.0 / 3.0)
    return spherical_bessel_ratio(q * RA) / (1.0 + (q * KN_RANGE_FM) ** 2)


def nucleon_form_factors(target, q_MeV):
    """Proton and neutron form factors (F_p, F_n) of every isotope of ``target`` at q [MeV].

    ``q_MeV`` broadcasts against the isotope axis (last axis, length n_iso).
    """
    A = target.Z + target.N
    scale, s = target.radius_scale, target.skin_fm
    if target.form_factor == "helm":
        F = helm(q_MeV, scale * lewin_smith_radius_fm(A, s), s)
        return F, F
    if target.form_factor == "helm_r0":
        F = helm(q_MeV, scale * target.helm_radius_fm, s)
        return F, F
    if target.form_factor == "helm_rms":
        Fp = helm(q_MeV, helm_radius_from_rms_fm(scale * target.proton_radius_fm, s), s)
        Fn = helm(q_MeV, helm_radius_from_rms_fm(scale * target.neutron_radius_fm, s), s)
        return Fp, Fn
    if target.form_factor == "klein_nystrand":
        F = klein_nystrand(q_MeV * scale, A)  # F depends on q·R only
        return F, F
    raise ValueError(f"unknown form factor {target.form_factor!r}")
