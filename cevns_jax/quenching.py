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
  (Poisson electrons) turns it into the observed S2 in electrons. Fitted at 1–300 keVnr: below 1 keVnr an
  extrapolation;
* :class:`NestChargeYield` — liquid xenon: the NEST v2 nuclear-recoil charge yield Q_y(T, F) [electrons/keVnr]
  (Szydagis et al., arXiv:2211.10726), whose low-energy roll-off is fitted to the sub-keV calibrations
  (Lenardo et al. 2019, arXiv:1908.00518, down to 0.3 keVnr; LUX D-D, arXiv:2210.05859): returns N_e = Q_y·T.

Every parameter is an array leaf (differentiable, vmappable). The clipping of Q at 0 in
:class:`SorensenQuenching` is a kink of E_ee(T) at E_ee = 0, where the response of any positive threshold
is already negligible; no hard ``where`` sits at a moving analysis threshold.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._pytree import pytree_dataclass

__all__ = ["lindhard_epsilon", "lindhard_fraction", "SorensenQuenching", "AdiabaticQuenching", "ChavarriaQuenching",
           "TabulatedQuenching", "ChargeYieldQuenching", "NestChargeYield", "CHARGE_YIELD_MODELS", "XENON_W_KEV",
           "LENARDO_2015", "NEST_V2_NR_QY", "NEST_V2_NR_QY_SIGMA"]


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


NEST_V2_NR_QY = {"gamma": 0.0480, "delta": -0.0533, "epsilon_keV": 12.6, "zeta_keV": 0.3, "eta": 2.0}
"""Central values of the NEST v2 nuclear-recoil charge-yield parameters (γ, δ, ε, ζ, η of
Q_y = [γ F^δ √(T + ε)]⁻¹ · (1 − 1/(1 + (T/ζ)^η)); M. Szydagis et al., "A review of NEST models for liquid
xenon", arXiv:2211.10726, §NR yields; the NEST v2 default ``NRYieldsParam`` 0.0480, −0.0533, 12.6, 0.3, 2
read from the NEST source, github.com/NESTCollaboration/nest, include/NEST/NEST.hh). The square root
(exponent 0.5) and the symmetric roll-off (asymmetry exponent 1) are NEST's defaults too."""

NEST_V2_NR_QY_SIGMA = {"gamma": 0.0021, "delta": 0.0068, "epsilon_keV": 3.4, "zeta_keV": 0.1, "eta": 1.0}
"""1σ widths of :data:`NEST_V2_NR_QY` as the XENONnT fitting framework appletree quotes them for its NEST v2
literature priors (github.com/XENONnT/appletree, appletree/parameters/nestv2.json): γ ± 0.0021, δ ± 0.0068,
ε +3.4 −2.9 keV (the larger side here), ζ ± 0.1 keV, η ± 1. ζ, the energy of the sub-keV roll-off, is the one
that moves a sub-keV S2-only rate: a nuisance on it is a shift of the ``zeta_keV`` leaf with prior 0.1 keV."""


@pytree_dataclass
class NestChargeYield:
    """NEST v2 mean ionisation electrons of a xenon nuclear recoil (docs/physics.md §3.8.3).

    Q_y(T, F) = 1/(γ F^δ √(T/keV + ε/keV)) · x/(1 + x), x = (T/ζ)^η   [electrons per keVnr],
    N_e = Q_y·T [electrons], returned in place of an electron-equivalent energy (like
    :class:`ChargeYieldQuenching`). Above a few keVnr Q_y ∝ (T + ε)^{−1/2} (the Thomas–Imel-like fall with
    energy); below ζ ≈ 0.3 keVnr the roll-off x/(1 + x) ≈ (T/ζ)^η takes the yield to zero, where the
    Lindhard + Thomas–Imel extrapolation of :class:`ChargeYieldQuenching` keeps rising. N_e(T) increases
    with T for η > 0 (needed for the bisection of bin-edge recoil images). ``field_V_per_cm`` is the drift
    field F; NEST's density factor (ρ/2.9 g cm⁻³)^0.3 and per-isotope factor √(131.293/A) (0.985–1.013) are
    set to 1 (ASSUMPTION: nominal liquid density and the isotope-averaged yield)."""

    gamma: jnp.ndarray
    delta: jnp.ndarray
    epsilon_keV: jnp.ndarray
    zeta_keV: jnp.ndarray
    eta: jnp.ndarray
    field_V_per_cm: jnp.ndarray

    def electrons_per_keV(self, T_keVnr):
        """Q_y(T) [electrons/keVnr]."""
        T = jnp.maximum(T_keVnr, 1e-300)
        x = jnp.exp(self.eta * jnp.log(T / self.zeta_keV))
        rolloff = x / (1.0 + x)
        return rolloff / (self.gamma * self.field_V_per_cm ** self.delta * jnp.sqrt(T + self.epsilon_keV))

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        """Mean electrons N_e = Q_y(T)·T (units: electrons)."""
        return self.electrons_per_keV(T_keVnr) * jnp.maximum(T_keVnr, 0.0) * jnp.ones_like(Z, dtype=jnp.float64)

    def isotope_independent(self, isotopes) -> bool:
        return True


CHARGE_YIELD_MODELS = (ChargeYieldQuenching, NestChargeYield)
"""The quenching models whose output is a mean number of electrons (not keVee)."""
