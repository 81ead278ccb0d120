"""Sub-keV quenching models and ionisation (charge) yields (docs/physics.md §3.8).

Each model maps a nuclear recoil T [keVnr] to the detector's linear energy variable with the interface of
:mod:`cevns_jax.response` (``electron_equivalent_keV(T_keVnr, Z, A)``, ``isotope_independent(isotopes)``):

* :class:`SorensenQuenching` — Lindhard minus a constant: Q = Q_L − q/ε (Sorensen, PRD 91, 083509 (2015));
  the form fitted to the Dresden-II data as the "modified Lindhard" model (Liao, Liu, Marfatia, PRD 106,
  L031702 (2022), arXiv:2202.10622);
* :class:`AdiabaticQuenching` — Lindhard × (1 − e^{−T/ξ}) (the adiabatic correction of Scholz et al.,
  PRD 94, 122003 (2016), ⁸⁸Y/Be photoneutrons on Ge);
* :class:`ChavarriaQuenching` — 1/Q = 1/Q_L + 1/(aT) (Chavarria et al., PRD 94, 082007 (2016), Si);
* :class:`TabulatedQuenching` — a measured Q(T) table, linear in ln T (e.g. a published curve with its file
  and provenance);
* :class:`ChargeYieldQuenching` — liquid xenon: the mean number of ionisation electrons that escape
  recombination, N_e(T), from Lindhard partition + exciton ratio + Thomas–Imel recombination (Lenardo et
  al., IEEE TNS 62, 3387 (2015)). Its output is a number of electrons, not keVee; the smearing that follows
  (Poisson electrons) turns it into the observed S2 in electrons.

Every parameter is an array leaf (differentiable, vmappable). The clipping of Q at 0 in
:class:`SorensenQuenching` is a kink of E_ee(T) at E_ee = 0, where the response of any positive threshold
is already negligible; no hard ``where`` sits at a moving analysis threshold.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._pytree import pytree_dataclass

__all__ = ["lindhard_epsilon", "lindhard_fraction", "SorensenQuenching", "AdiabaticQuenching", "ChavarriaQuenching",
           "TabulatedQuenching", "ChargeYieldQuenching", "XENON_W_KEV", "LENARDO_2015"]


def lindhard_epsilon(T_keVnr, Z):
    """Lindhard's reduced energy ε = 11.5 Z^{−7/3} T[keV] (docs/physics.md §3.1)."""
    return 11.5 * Z ** (-7.0 / 3.0) * T_keVnr


def lindhard_fraction(T_keVnr, Z, k):
    """Lindhard's fraction of the recoil energy given to electrons, k g/(1 + k g), g = 3ε^0.15 + 0.7ε^0.6 + ε."""
    eps = lindhard_epsilon(jnp.maximum(T_keVnr, 1e-300), Z)
    g = 3.0 * eps**0.15 + 0.7 * eps**0.6 + eps
    return k * g / (1.0 + k * g)


def _single_element(isotopes) -> bool:
    return len({sym.lstrip("0123456789") for sym in isotopes}) <= 1


@pytree_dataclass
class SorensenQuenching:
    """Q(T) = max(Q_L(T; k) − q/ε(T), 0): E_ee = T·Q_L − q Z^{7/3}/11.5 keV, Lindhard shifted down by a
    constant energy (docs/physics.md §3.8.1). q = 0 is Lindhard. The energy below which no ionisation is
    produced is where T·Q_L(T) = q Z^{7/3}/11.5 keV."""

    k: jnp.ndarray
    q: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        shift = self.q * Z ** (7.0 / 3.0) / 11.5
        return jnp.maximum(T_keVnr * lindhard_fraction(T_keVnr, Z, self.k) - shift, 0.0)

    def isotope_independent(self, isotopes) -> bool:
        return _single_element(isotopes)


@pytree_dataclass
class AdiabaticQuenching:
    """Q(T) = Q_L(T; k)·(1 − exp(−T/ξ)), ξ [keVnr] the adiabatic energy scale (docs/physics.md §3.8.1)."""

    k: jnp.ndarray
    xi_keV: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        return T_keVnr * lindhard_fraction(T_keVnr, Z, self.k) * -jnp.expm1(-T_keVnr / self.xi_keV)

    def isotope_independent(self, isotopes) -> bool:
        return _single_element(isotopes)


@pytree_dataclass
class ChavarriaQuenching:
    """1/Q = 1/Q_L(T; k) + 1/(a T): Q = Q_L·T/(T + Q_L/a); ``a_inverse_keV`` = 1/a [keVnr]
    (docs/physics.md §3.8.1)."""

    k: jnp.ndarray
    a_inverse_keV: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        QL = lindhard_fraction(T_keVnr, Z, self.k)
        return T_keVnr * QL * T_keVnr / (T_keVnr + QL * self.a_inverse_keV)

    def isotope_independent(self, isotopes) -> bool:
        return _single_element(isotopes)


@pytree_dataclass
class TabulatedQuenching:
    """Q(T) from a table, linear in ln T between the nodes, held at the end values beyond them.

    ``log_T`` holds ln(T_i/keVnr) (increasing), ``values`` Q_i; both are leaves (a fit may move the table).
    E_ee = Q(T)·T must not decrease (checked where the table is read)."""

    log_T: jnp.ndarray
    values: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        T = jnp.maximum(T_keVnr, 1e-300)
        return jnp.interp(jnp.log(T), self.log_T, self.values) * T * jnp.ones_like(Z, dtype=jnp.float64)

    def isotope_independent(self, isotopes) -> bool:
        return True


XENON_W_KEV = 13.7e-3
"""Mean energy per quantum (exciton or ion) in liquid xenon [keV]: 13.7 ± 0.2 eV (Dahl, PhD thesis, Princeton
2009, as quoted by Sorensen & Dahl, PRD 83, 063501 (2011), arXiv:1101.6080, §I)."""

LENARDO_2015 = {"k": 0.1735, "alpha": 1.240, "zeta": 0.0472, "beta": 239.0, "gamma": 0.01385, "delta": 0.0620}
"""Global-fit parameters of the Lindhard + Thomas–Imel model (Lenardo et al., IEEE TNS 62, 3387 (2015),
arXiv:1412.4417): N_ex/N_i = α F^{−ζ}(1 − e^{−βε}), ς = γ F^{−δ} with F in V/cm. α, ζ, β, γ, δ agree digit for
digit with an independent public implementation of that global fit (a XENON1T analysis configuration); the
paper's table itself was not re-read. k = 0.1735 is NOT confirmed: public codes use 0.1735 (citing the LUX
D-D calibration, arXiv:1608.05381) and 0.1394 (next to the Lenardo parameters) — docs/physics.md §3.8.3, §8."""


@pytree_dataclass
class ChargeYieldQuenching:
    """Mean ionisation electrons N_e(T) in liquid xenon (docs/physics.md §3.8.3).

    N_q = Q_L(T; k)·T/W quanta; N_i = N_q/(1 + N_ex/N_i) ions with N_ex/N_i = α F^{−ζ}(1 − e^{−βε});
    a fraction r = 1 − ln(1 + N_i ς)/(N_i ς) recombines (Thomas–Imel box, ς = γ F^{−δ}), so
    N_e = N_i (1 − r) = ln(1 + N_i ς)/ς. Returned in place of an electron-equivalent energy: the unit is
    electrons, and the following smearing (``poisson_electrons``) reads it as the mean electron count.
    """

    k: jnp.ndarray
    alpha: jnp.ndarray
    zeta: jnp.ndarray
    beta: jnp.ndarray
    gamma: jnp.ndarray
    delta: jnp.ndarray
    field_V_per_cm: jnp.ndarray
    W_keV: jnp.ndarray

    def ions(self, T_keVnr, Z):
        """Mean number of ions N_i before recombination."""
        quanta = T_keVnr * lindhard_fraction(T_keVnr, Z, self.k) / self.W_keV
        eps = lindhard_epsilon(jnp.maximum(T_keVnr, 1e-300), Z)
        ratio = self.alpha * self.field_V_per_cm ** (-self.zeta) * -jnp.expm1(-self.beta * eps)
        return quanta / (1.0 + ratio)

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        """Mean electrons escaping recombination, N_e = ln(1 + N_i ς)/ς (units: electrons)."""
        varsigma = self.gamma * self.field_V_per_cm ** (-self.delta)
        return jnp.log1p(self.ions(T_keVnr, Z) * varsigma) / varsigma

    def isotope_independent(self, isotopes) -> bool:
        return _single_element(isotopes)
