"""Detector response as differentiable, fixed-grid linear algebra (docs/physics.md §3).

Chain: nuclear recoil T [keVnr] → quenching → E_ee [keVee] → smearing into the observed variable
x (keVee or photoelectrons, PE) → efficiency ε(x) applied in the observed variable → analysis bins.

Each stage is a small immutable pytree with array leaves (so quenching, resolution, efficiency and
bin-edge parameters are all differentiable) and one job:

* quenching models expose ``electron_equivalent_keV(T_keVnr, Z, A)`` and ``isotope_independent(isotopes)``
  (static: whether every isotope of the target quenches alike, so that one response serves them all);
* smearing models expose ``cdf(x, E_ee_keV)`` = P(observed < x | E_ee) and ``antiderivatives(x, E_ee_keV)``
  (the CDF and its first two antiderivatives in x);
* efficiency models expose ``__call__(x)`` and ``points(step)``, their feature points (a fine grid across
  every turn-on, the nodes of a table, kinks), which become sub-bin edges.

:func:`energy_response` computes the response matrix R[i, …] = ∫_{bin i} dx p(x | E_ee(T)) ε(x) with the
sub-bin rule of :mod:`cevns_jax.binning`, exact for an efficiency quadratic on each sub-bin whatever the
resolution (docs/physics.md §3.4.1). Timing efficiencies ε_T(t) live here too; the arrival-time profiles they
multiply are in :mod:`cevns_jax.source`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammainc, gammaln

from ._pytree import pytree_dataclass, static_field
from .binning import Binning, binned_with_efficiency, gaussian_antiderivatives, normal_cdf

# ----------------------------------------------------------------------------------------------
# Quenching: T [keVnr] → E_ee [keVee]
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class ConstantQuenching:
    """E_ee = Q·T with a constant quenching factor Q (e.g. CsI[Na] 2017: 0.0878 ± 0.0166).

    ``factor`` is a scalar or one value per isotope (e.g. Na and I recoils in NaI[Tl]).
    """

    factor: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        factor = self.factor if jnp.ndim(self.factor) == 0 else jnp.reshape(self.factor, jnp.shape(Z))
        return factor * T_keVnr

    def isotope_independent(self, isotopes) -> bool:
        """Whether every isotope quenches alike (static: one factor for all)."""
        return jnp.ndim(self.factor) == 0


@pytree_dataclass
class LinearQuenching:
    """Q(T) = a + b·T[keVnr] (CENNS-10: a = 0.246 ± 0.006, b = 0.00078 ± 0.00009 /keVnr, arXiv:2003.10630)."""

    a: jnp.ndarray
    b_per_keVnr: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        return (self.a + self.b_per_keVnr * T_keVnr) * T_keVnr

    def isotope_independent(self, isotopes) -> bool:
        return True


@pytree_dataclass
class PolynomialQuenching:
    """E_ee[MeVee] = Σ_n c_n T[MeVnr]^n, n = 1…len(c), clipped at 0 (COHERENT CsI[Na] 2021 release).

    The coefficients move with Gaussian pulls z_k along systematic directions Δ_k:
    c = c_nominal + Σ_k z_k Δ_k (the release's two ±1σ models, docs/physics.md §3.1).
    """

    coefficients: jnp.ndarray
    shifts: jnp.ndarray
    pulls: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        c = self.coefficients + self.pulls @ self.shifts
        T = T_keVnr * 1e-3
        powers = jnp.stack([T ** (n + 1) for n in range(c.shape[0])], axis=-1)
        return jnp.maximum(powers @ c, 0.0) * 1e3

    def isotope_independent(self, isotopes) -> bool:
        return True


@pytree_dataclass
class LindhardQuenching:
    """Lindhard model Q = k g(ε)/(1 + k g(ε)), g = 3ε^0.15 + 0.7ε^0.6 + ε, ε = 11.5 Z^{−7/3} T[keV].

    ``k`` is one value for every isotope (a given k) or one entry per isotope (Lindhard et al. 1963:
    k = 0.133 Z^{2/3} A^{−1/2}, which depends on A).
    """

    k: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        k = self.k if jnp.ndim(self.k) == 0 else jnp.reshape(self.k, jnp.shape(Z))
        eps = 11.5 * Z ** (-7.0 / 3.0) * T_keVnr
        g = 3.0 * eps**0.15 + 0.7 * eps**0.6 + eps
        return k * g / (1.0 + k * g) * T_keVnr

    def isotope_independent(self, isotopes) -> bool:
        """One k and one element (ε depends on Z): static, from k's shape and the isotope symbols."""
        return jnp.ndim(self.k) == 0 and len({sym.lstrip("0123456789") for sym in isotopes}) <= 1


@pytree_dataclass
class NoQuenching:
    """No quenching: the detector sees the true recoil energy (E = T, in keVnr; ideal detector)."""

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        return T_keVnr * jnp.ones_like(Z, dtype=jnp.float64)

    def isotope_independent(self, isotopes) -> bool:
        return True


def lindhard_k(Z, A):
    """Lindhard's k = 0.133 Z^{2/3} A^{−1/2}."""
    return 0.133 * Z ** (2.0 / 3.0) / jnp.sqrt(A)


# ----------------------------------------------------------------------------------------------
# Smearing: P(observed < x | E_ee)
# ----------------------------------------------------------------------------------------------
_E_FLOOR_KEV = 1e-6


TURN_ON_HALF_WIDTH = 10.0
"""Efficiency turn-ons are refined over ±10 scale lengths (a logistic is within e^{−10} ≈ 5e-5 of 0 or 1).
(±8 is as accurate in value but lets the threshold-width gradient kink at the 2e-4 level where the outer
points cross a bin edge: measured in tests/test_design.py.)"""
TURN_ON_STEP = 0.25
"""Sub-bin edge spacing across a turn-on, in scale lengths. The sub-bin rule is exact for a quadratic
efficiency, so its error is O(h⁴ ε⁽⁴⁾) (≈ h⁴/1920 relative in a logistic's exponential tail, 2e-6 here);
measured on the presets: doubling the point density changes no bin by more than 1e-5 (tests/test_accuracy.py)."""


def turn_on_grid(step: float = TURN_ON_STEP) -> np.ndarray:
    """Offsets across a turn-on in scale lengths: −10 … 10 in steps of ``step``."""
    return np.linspace(-TURN_ON_HALF_WIDTH, TURN_ON_HALF_WIDTH, int(round(2 * TURN_ON_HALF_WIDTH / step)) + 1)


class CentredGaussian:
    """Mixin of the Gaussian resolutions centred on the (quenched) energy: a subclass gives
    ``sigma_keV(E)`` [same unit as E] and gets the smearing interface (mean, width, CDF and its two
    antiderivatives in the observable x)."""

    def mean_observed(self, E_keV):
        return E_keV

    def width_observed(self, E_keV):
        return self.sigma_keV(E_keV)

    def cdf(self, x, E_keV):
        return normal_cdf((x - E_keV) / self.sigma_keV(E_keV))

    def antiderivatives(self, x, E_keV):
        """(F, G, H): the CDF and its first two antiderivatives in x (G' = F, H' = G), with d = x − E:
        G = dΦ(z) + σφ(z), H = ½[(d² + σ²)Φ(z) + dσφ(z)], z = d/σ."""
        return gaussian_antiderivatives(x - E_keV, self.sigma_keV(E_keV))


@pytree_dataclass
class GaussianSmearing(CentredGaussian):
    """Gaussian in keVee with σ² = σ₀² + a²E + b²E² (CENNS-10: a = 0.58 keV^½, σ₀ = b = 0).

    σ is floored at 1e-9 keVee (a numerical guard only; recoils on the grid have E > 0, so σ > 0 for any
    a > 0). For an ideal resolution use :class:`NoSmearing`.
    """

    sigma0_keV: jnp.ndarray
    stochastic_sqrt_keV: jnp.ndarray
    linear: jnp.ndarray

    def sigma_keV(self, E_keV):
        """Resolution σ(E) [keVee]."""
        var = self.sigma0_keV**2 + self.stochastic_sqrt_keV**2 * E_keV + (self.linear * E_keV) ** 2
        return jnp.sqrt(var + 1e-18)


@pytree_dataclass
class NoSmearing:
    """Ideal resolution: the observed value is the (quenched) energy itself, p(x | E) = δ(x − E).

    With :class:`NoQuenching` the observed variable is the true recoil energy in keVnr (the ideal
    detector, ``[detector] response = "none"``). Recoil-panel edges sit on the images of the bin edges
    (``rates``), so the step of the CDF is an integration limit, not a sampled discontinuity.
    """

    def mean_observed(self, E_keV):
        return E_keV

    def width_observed(self, E_keV):
        return jnp.zeros_like(E_keV)

    def cdf(self, x, E_keV):
        return jnp.where(x >= E_keV, 1.0, 0.0)

    def antiderivatives(self, x, E_keV):
        d = jnp.maximum(x - E_keV, 0.0)
        return jnp.where(x >= E_keV, 1.0, 0.0), d, 0.5 * d**2


@pytree_dataclass
class GammaPESmearing:
    """Gamma-distributed photoelectrons (COHERENT CsI[Na] 2021; docs/physics.md §3.2).

    With E in keVee: mean = LY·E, shape k = 1 + b·E, scale θ = LY·E/(1 + b·E); relative width
    1/√(1 + bE). Release values LY = 13.35 PE/keVee, b = 9.56 /keVee.
    """

    light_yield_PE_per_keV: jnp.ndarray
    width_per_keV: jnp.ndarray

    def _shape_scale(self, E_keV):
        E = jnp.maximum(E_keV, _E_FLOOR_KEV)
        shape = 1.0 + self.width_per_keV * E
        return shape, self.light_yield_PE_per_keV * E / shape

    def mean_observed(self, E_keV):
        return self.light_yield_PE_per_keV * E_keV

    def width_observed(self, E_keV):
        shape, scale = self._shape_scale(E_keV)
        return jnp.sqrt(shape) * scale

    def cdf(self, x, E_keV):
        shape, scale = self._shape_scale(E_keV)
        return gammainc(shape, jnp.maximum(x, 0.0) / scale)

    def antiderivatives(self, x, E_keV):
        """(F, G, H) with P_j = P(j, x/θ) (regularised lower incomplete gamma): F = P_k,
        G = x P_k − kθ P_{k+1}, H = ½x² P_k − kθ x P_{k+1} + ½k(k+1)θ² P_{k+2} [PE, PE²]."""
        k, theta = self._shape_scale(E_keV)
        xp = jnp.maximum(x, 0.0)
        u = xp / theta
        # P(a + 1, u) = P(a, u) − u^a e^{−u}/Γ(a + 1): one incomplete gamma function instead of three
        P0 = gammainc(k, u)
        log_u = jnp.log(jnp.where(u > 0, u, 1.0))
        term0 = jnp.where(u > 0, jnp.exp(k * log_u - u - gammaln(k + 1.0)), 0.0)
        P1 = P0 - term0
        P2 = P1 - term0 * u / (k + 1.0)
        G = xp * P0 - k * theta * P1
        H = 0.5 * xp**2 * P0 - k * theta * xp * P1 + 0.5 * k * (k + 1.0) * theta**2 * P2
        return P0, G, H


@pytree_dataclass
class PoissonPESmearing:
    """Poisson photoelectron statistics, λ = LY·E_ee, each n-PE signal read out with a Gaussian
    single-photoelectron width σ_spe·√max(n, 1) (docs/physics.md §3.2). ``n_max`` terms are summed.

    CDF(x | E) = Σ_n P(n; λ(E)) · Φ((x − n)/(σ_spe √max(n, 1))), n = 0 … n_max. The first factor depends
    only on E and the second only on x, so the sum is a contraction over n (``einsum`` → one matrix
    product when x and E sit on different broadcast axes, as in :func:`energy_response`): the
    transcendental functions are evaluated on (n_x + n_E)·n_max points instead of n_x·n_E·n_max, and the
    backward pass stores no (x × E × n) array. Same terms as the direct sum, only summed in another order.
    """

    light_yield_PE_per_keV: jnp.ndarray
    spe_width: jnp.ndarray
    n_max: int = static_field(default=150)

    def _terms(self, E_keV):
        lam = jnp.maximum(self.light_yield_PE_per_keV * E_keV, _E_FLOOR_KEV)
        n = jnp.arange(self.n_max + 1, dtype=jnp.float64)
        poisson = jnp.exp(n * jnp.log(lam)[..., None] - lam[..., None] - gammaln(n + 1.0))  # E.shape + (n,)
        return n, self.spe_width * jnp.sqrt(jnp.maximum(n, 1.0)), poisson

    def mean_observed(self, E_keV):
        return self.light_yield_PE_per_keV * E_keV

    def width_observed(self, E_keV):
        lam = self.light_yield_PE_per_keV * E_keV
        return jnp.sqrt(lam + self.spe_width**2 * jnp.maximum(lam, 1.0))

    def cdf(self, x, E_keV):
        n, width, poisson = self._terms(E_keV)
        readout = normal_cdf((jnp.asarray(x)[..., None] - n) / width)  # x.shape + (n,)
        return jnp.einsum("...n,...n->...", readout, poisson, precision=jax.lax.Precision.HIGHEST)

    def antiderivatives(self, x, E_keV):
        """(F, G, H): the Gaussian forms of each n-PE term, contracted with the Poisson weights."""
        n, width, poisson = self._terms(E_keV)
        parts = gaussian_antiderivatives(jnp.asarray(x)[..., None] - n, width)  # x.shape + (n,) each
        return tuple(jnp.einsum("...n,...n->...", f, poisson, precision=jax.lax.Precision.HIGHEST) for f in parts)

    def mixture(self, E_keV):
        """p(x | E) = Σ_n w_n(E) N(x; n, σ_n²): component means [PE] (n,), widths [PE] (n,) and weights
        E.shape + (n,). The components do not depend on E, so a binned response is the product of a
        (bins × n) matrix of per-component integrals and the weights (:func:`energy_response`)."""
        return self._terms(E_keV)


def poisson_pe_terms(top_PE: float, spe_width: float) -> int:
    """``n_max`` for :class:`PoissonPESmearing` when the CDF is needed up to ``top_PE`` (top bin edge).

    Dropping the terms n > n_max changes CDF(x ≤ top) by at most Φ(−(n_max − top)/(σ_spe √n_max)) for any
    λ, since (n − top)/√n grows with n. The margin max(8√top + 10, 10 σ_spe √top + 100 σ_spe²) PE keeps
    that ratio ≥ 10 (bound Φ(−10) ≈ 8e-24); with σ_spe = 0.4 (every preset) the first term sets it.
    """
    margin = max(8.0 * math.sqrt(top_PE) + 10.0, 10.0 * spe_width * math.sqrt(top_PE) + 100.0 * spe_width**2)
    return int(math.ceil(top_PE + margin))


# ----------------------------------------------------------------------------------------------
# Efficiency ε(x) in the observed variable
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class FlatEfficiency:
    """ε(x) = constant."""

    value: jnp.ndarray
    piecewise_linear = True  # linear between its feature points (binning.linear_rule)

    def __call__(self, x):
        return jnp.full_like(x, self.value)

    def points(self, step: float = TURN_ON_STEP):
        """Feature points: none (see :func:`subdivide`)."""
        return jnp.zeros((0,))


@pytree_dataclass
class LogisticEfficiency:
    """Smooth threshold ε(x) = ε_max / (1 + exp(−(x − x₅₀)/w)); x₅₀ is the threshold (50% point)."""

    maximum: jnp.ndarray
    threshold: jnp.ndarray
    width: jnp.ndarray

    def __call__(self, x):
        return self.maximum * jax.nn.sigmoid((x - self.threshold) / self.width)

    def points(self, step: float = TURN_ON_STEP):
        return self.threshold + self.width * turn_on_grid(step)


@pytree_dataclass
class Coherent2021Efficiency:
    """COHERENT CsI[Na] 2021: ε(x) = a/(1 + exp(−b(x − c))) + d, clipped at 0, x in PE.

    Coefficients move as nominal + z·Δ (release ±1σ model, docs/physics.md §3.3).
    """

    coefficients: jnp.ndarray
    shift: jnp.ndarray
    pull: jnp.ndarray

    def __call__(self, x):
        a, b, c, d = self.coefficients + self.pull * self.shift
        return jnp.maximum(a * jax.nn.sigmoid(b * (x - c)) + d, 0.0)

    def points(self, step: float = TURN_ON_STEP):
        """The turn-on grid, and the kink where a·σ + d crosses 0 (when d < 0 < a + d)."""
        a, b, c, d = self.coefficients + self.pull * self.shift
        ratio = jnp.where((d < 0) & (a + d > 0), a / jnp.where(d < 0, -d, 1.0) - 1.0, 1.0)
        kink = c - jnp.log(jnp.maximum(ratio, 1e-300)) / b
        return jnp.concatenate([c + turn_on_grid(step) / b, kink[None]])


@pytree_dataclass
class Coherent2017Efficiency:
    """COHERENT CsI[Na] 2017: ε(x) = a/(1 + exp(−k(x − x₀))) · H(x), x in PE.

    The release's step H (0 below 5 PE, ½ on [5, 6), 1 above 6 PE) is replaced by two logistic ramps
    of width ``step_width`` PE so that it can be differentiated.
    """

    a: jnp.ndarray
    k: jnp.ndarray
    x0: jnp.ndarray
    step_width: jnp.ndarray

    def __call__(self, x):
        step = 0.5 * jax.nn.sigmoid((x - 5.0) / self.step_width) + 0.5 * jax.nn.sigmoid((x - 6.0) / self.step_width)
        return self.a * jax.nn.sigmoid(self.k * (x - self.x0)) * step

    def points(self, step: float = TURN_ON_STEP):
        u = turn_on_grid(step)
        return jnp.concatenate([self.x0 + u / self.k, 5.0 + self.step_width * u, 6.0 + self.step_width * u])


@pytree_dataclass
class TabulatedEfficiency:
    """Efficiency table linearly interpolated, held flat beyond the first and last points."""

    x: jnp.ndarray
    values: jnp.ndarray
    piecewise_linear = True  # linear between its feature points (binning.linear_rule)

    def __call__(self, x):
        return jnp.interp(x, self.x, self.values)

    def points(self, step: float = TURN_ON_STEP):
        """The table's nodes: the efficiency is linear between them (kinks at the nodes)."""
        return self.x


@pytree_dataclass
class NoTimingEfficiency:
    """Timing efficiency of 1 at all times."""

    def __call__(self, t_ns):
        return jnp.ones_like(t_ns)

    def points(self, step: float = TURN_ON_STEP):
        """Feature points [ns]: none."""
        return jnp.zeros((0,))


@pytree_dataclass
class ExponentialTimingEfficiency:
    """ε_T(t) = 1 for t < t₀, exp(−λ(t − t₀)) after (COHERENT CsI 2021: t₀ = 520 ns, λ = 0.0494 /μs)."""

    start_ns: jnp.ndarray
    decay_per_ns: jnp.ndarray

    def __call__(self, t_ns):
        return jnp.exp(-self.decay_per_ns * jnp.maximum(t_ns - self.start_ns, 0.0))

    def points(self, step: float = TURN_ON_STEP):
        """Feature points [ns]: the kink at t₀, a sub-bin edge so that ε_T is smooth on every sub-bin."""
        return jnp.reshape(self.start_ns, (1,))


def energy_response(smearing, efficiency, binning: Binning, E_ee_keV):
    """Response R[i, ...] = ∫_{bin i} p(x | E_ee) ε(x) dx; E_ee of any shape.

    A smearing that is a mixture of E-independent Gaussians (``smearing.mixture``: Poisson photoelectrons)
    is integrated per component, R[i, …] = Σ_n r[i, n] w_n(E), with r[i, n] the sub-bin rule applied to
    component n alone: the rule's work no longer grows with the number of recoil nodes, and the rule
    (exact for a quadratic efficiency) applies to each narrow component instead of to their sum
    (docs/physics.md §3.4.1).
    """
    if hasattr(smearing, "mixture"):
        means, widths, weights = smearing.mixture(E_ee_keV)
        per_component = binned_with_efficiency(
            lambda x: gaussian_antiderivatives(x[:, None] - means, widths), efficiency, binning.energy_edges,
            binning.n_sub_energy, points=efficiency.points(), point_bins=binning.point_bins, refine=binning.refine)
        return jnp.einsum("in,...n->i...", per_component, weights, precision=jax.lax.Precision.HIGHEST)
    shape = (-1,) + (1,) * E_ee_keV.ndim

    def antiderivatives_at(x):
        return smearing.antiderivatives(x.reshape(shape), E_ee_keV[None])

    return binned_with_efficiency(antiderivatives_at, efficiency, binning.energy_edges, binning.n_sub_energy,
                                  points=efficiency.points(), point_bins=binning.point_bins, refine=binning.refine)
