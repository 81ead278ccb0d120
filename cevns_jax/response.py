"""Detector response as differentiable, fixed-grid linear algebra (docs/physics.md §3).

Chain: nuclear recoil T [keVnr] → quenching → E_ee [keVee] → smearing into the observed variable
x (keVee or photoelectrons, PE) → efficiency ε(x) applied in the observed variable → analysis bins.

Each stage is a small immutable pytree with array leaves (so quenching, resolution, efficiency and
bin-edge parameters are all differentiable) and one job:

* quenching models expose ``electron_equivalent_keV(T_keVnr, Z, A)``;
* smearing models expose ``cdf(x, E_ee_keV)`` = P(observed < x | E_ee);
* efficiency models expose ``__call__(x)``.

The response matrix R[i, …] = ∫_{bin i} dx p(x | E_ee(T)) ε(x) is a sum over sub-bins s of the
exact smearing probability ΔF_s times ε at the *conditional mean* x̄_s of the observed variable in
that sub-bin, plus ½ε''(x̄_s) times its conditional variance (both exact, from the smearing's CDF and
its two antiderivatives, :meth:`antiderivatives`). This rule is exact for an efficiency quadratic on
the sub-bin, whatever the resolution: for a sharp resolution x̄_s → E_ee, for a broad one x̄_s → the
sub-bin centre. Sub-bin edges are the bin edges, ``n_sub`` equal divisions of each
bin, and the efficiency's own feature points (:func:`efficiency_points`: a fine grid across every
turn-on, the nodes of a table), so the sub-binning follows the efficiency whatever the bin widths
(docs/physics.md §3.4.1). Every edge and feature point is a traced leaf, so thresholds, turn-ons and
bin edges stay differentiable; only the number of sub-bins is static.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammainc, gammaln

from ._pytree import pytree_dataclass, static_field
from .subbin_rule import conditional_mean_rule, is_piecewise_linear, linear_rule

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


@pytree_dataclass
class LinearQuenching:
    """Q(T) = a + b·T[keVnr] (CENNS-10: a = 0.246 ± 0.006, b = 0.00078 ± 0.00009 /keVnr, arXiv:2003.10630)."""

    a: jnp.ndarray
    b_per_keVnr: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        return (self.a + self.b_per_keVnr * T_keVnr) * T_keVnr


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


@pytree_dataclass
class LindhardQuenching:
    """Lindhard model Q = k g(ε)/(1 + k g(ε)), g = 3ε^0.15 + 0.7ε^0.6 + ε, ε = 11.5 Z^{−7/3} T[keV].

    ``k`` has one entry per isotope (Lindhard et al. 1963: k = 0.133 Z^{2/3} A^{−1/2} unless given).
    """

    k: jnp.ndarray

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        k = jnp.reshape(self.k, jnp.shape(Z))
        eps = 11.5 * Z ** (-7.0 / 3.0) * T_keVnr
        g = 3.0 * eps**0.15 + 0.7 * eps**0.6 + eps
        return k * g / (1.0 + k * g) * T_keVnr


@pytree_dataclass
class NoQuenching:
    """No quenching: the detector sees the true recoil energy (E = T, in keVnr; ideal detector)."""

    def electron_equivalent_keV(self, T_keVnr, Z, A):
        return T_keVnr * jnp.ones_like(Z, dtype=jnp.float64)


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


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi(z):
    """Standard normal density."""
    return jnp.exp(-0.5 * z**2) * _INV_SQRT2PI


def normal_cdf(z):
    """Standard normal CDF Φ(z) = ½ erfc(−z/√2).

    Same values as ``jax.scipy.special.ndtr`` (which evaluates both erf and erfc and selects) to 1 ulp
    absolute, with one erfc: on the CPU backend 5–10 times cheaper. ½ erfc(−z/√2) keeps the relative
    accuracy of the lower tail, and the upper tail 1 − Φ is as accurate in absolute terms as ndtr's.
    """
    return 0.5 * jax.lax.erfc(-_INV_SQRT2 * z)


@jax.custom_jvp
def _gaussian_antiderivatives(d, sigma):
    """(Φ(z), dΦ + σφ, ½[(d² + σ²)Φ + dσφ]) with z = d/σ: a Gaussian CDF and its two antiderivatives.

    These are E[1{X < x}], E[(x − X)₊] and E[½(x − X)₊²] for X ~ N(E, σ²), d = x − E. Their derivatives
    are closed forms of the same values (heat equation ∂/∂σ = σ ∂²/∂d²): ∂_d(F, G, H) = (φ/σ, F, G),
    ∂_σ(F, G, H) = (−zφ/σ, φ, σF); the custom JVP uses them, so the backward pass re-evaluates no
    transcendental function and stores only F, G, φ.
    """
    z = d / sigma
    Phi, phi = normal_cdf(z), _phi(z)
    return Phi, d * Phi + sigma * phi, 0.5 * ((d**2 + sigma**2) * Phi + d * sigma * phi)


@_gaussian_antiderivatives.defjvp
def _gaussian_antiderivatives_jvp(primals, tangents):
    d, sigma = primals
    dd, dsigma = tangents
    z = d / sigma
    Phi, phi = normal_cdf(z), _phi(z)
    G = d * Phi + sigma * phi
    H = 0.5 * ((d**2 + sigma**2) * Phi + d * sigma * phi)
    pdf = phi / sigma
    return (Phi, G, H), (pdf * (dd - z * dsigma), Phi * dd + phi * dsigma, G * dd + sigma * Phi * dsigma)


@pytree_dataclass
class GaussianSmearing:
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

    def mean_observed(self, E_keV):
        return E_keV

    def width_observed(self, E_keV):
        return self.sigma_keV(E_keV)

    def cdf(self, x, E_keV):
        return normal_cdf((x - E_keV) / self.sigma_keV(E_keV))

    def antiderivatives(self, x, E_keV):
        """(F, G, H): the CDF and its first two antiderivatives in x (G' = F, H' = G), with d = x − E:
        G = dΦ(z) + σφ(z), H = ½[(d² + σ²)Φ(z) + dσφ(z)], z = d/σ."""
        return _gaussian_antiderivatives(x - E_keV, self.sigma_keV(E_keV))


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
        parts = _gaussian_antiderivatives(jnp.asarray(x)[..., None] - n, width)  # x.shape + (n,) each
        return tuple(jnp.einsum("...n,...n->...", f, poisson, precision=jax.lax.Precision.HIGHEST) for f in parts)

    def mixture(self, E_keV):
        """p(x | E) = Σ_n w_n(E) N(x; n, σ_n²): component means [PE] (n,), widths [PE] (n,) and weights
        E.shape + (n,). The components do not depend on E, so a binned response is the product of a
        (bins × n) matrix of per-component integrals and the weights (:func:`energy_response`)."""
        n, width, poisson = self._terms(E_keV)
        return n, width, poisson


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
    piecewise_linear = True

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
    piecewise_linear = True

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


@pytree_dataclass
class ExponentialTimingEfficiency:
    """ε_T(t) = 1 for t < t₀, exp(−λ(t − t₀)) after (COHERENT CsI 2021: t₀ = 520 ns, λ = 0.0494 /μs)."""

    start_ns: jnp.ndarray
    decay_per_ns: jnp.ndarray

    def __call__(self, t_ns):
        return jnp.exp(-self.decay_per_ns * jnp.maximum(t_ns - self.start_ns, 0.0))


# ----------------------------------------------------------------------------------------------
# Bins and response matrices
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class Binning:
    """Analysis bins: edges in the observed variable and in time [ns], and their sub-binning.

    * ``n_sub_energy``: equal sub-bins per energy bin (an int, or one int per bin);
    * ``point_bins``: for each of the efficiency's feature points (``efficiency.points()``), the energy bin
      it refines (−1: outside the analysis range), fixed when the experiment is built
      (:func:`assign_points`); the points themselves stay traced, clipped into their bin;
    * ``n_sub_time``: equal sub-bins per time bin (the timing efficiency is sampled at their midpoints);
    * ``recoil_satellites``: offsets (in resolution widths) of the recoil-panel edges placed around the
      true-recoil image of every bin edge; empty when the resolution is broader than a recoil panel
      (``quadrature.response_breakpoints``);
    * ``refine``: a global refinement factor (2 doubles every quadrature of the forward model: sub-bins,
      the turn-on grid density, recoil panels, energy folding), used by the convergence tests.
    """

    energy_edges: jnp.ndarray
    time_edges_ns: jnp.ndarray
    n_sub_energy: int | tuple = static_field(default=1)
    n_sub_time: int = static_field(default=1)
    point_bins: tuple = static_field(default=())
    recoil_satellites: tuple = static_field(default=())
    refine: int = static_field(default=1)


def _sub_counts(n_sub, n_bins: int, refine: int = 1) -> np.ndarray:
    counts = np.broadcast_to(np.asarray(n_sub, dtype=int), (n_bins,)) * refine
    if np.any(counts < 1):
        raise ValueError(f"sub-bins per bin must be >= 1, got {n_sub}")
    return counts


def _refined_points(points, refine: int):
    """Feature points with ``refine − 1`` extra points between consecutive ones (same static layout)."""
    if refine == 1 or points.shape[0] < 2:
        return points
    frac = jnp.arange(refine) / refine
    inner = (points[:-1, None] + (points[1:] - points[:-1])[:, None] * frac).reshape(-1)
    return jnp.concatenate([inner, points[-1:]])


def assign_points(points, edges) -> tuple[int, ...]:
    """Static bin of each feature point: the bin that contains it (concrete values), else −1."""
    p, e = np.asarray(points, dtype=float), np.asarray(edges, dtype=float)
    idx = np.searchsorted(e, p, side="right") - 1
    return tuple(int(i) if 0 <= i < e.size - 1 else -1 for i in idx)


def subdivide(edges, n_sub, points=None, point_bins: tuple = (), refine: int = 1):
    """Sub-bin edges and the static bin index of every sub-bin.

    Each bin [lo, hi] is split into ``n_sub`` equal parts and at every feature point assigned to it
    (clipped into the bin). Returns ``(fine, segments)``: sorted edges of shape (n_fine + 1,) and a
    NumPy array (n_fine,) with the bin of each sub-bin (bins are contiguous in ``fine``).
    """
    n_bins = edges.shape[0] - 1
    counts = _sub_counts(n_sub, n_bins, refine)
    lo, hi = edges[:-1], edges[1:]
    owner = np.repeat(np.arange(n_bins), counts - 1)
    frac = np.concatenate([np.arange(1, c) / c for c in counts]) if owner.size else np.zeros(0)
    parts = [edges, lo[owner] + (hi - lo)[owner] * frac]
    extra = np.zeros(n_bins, dtype=int)
    if points is not None and point_bins:
        pb = np.repeat(np.asarray(point_bins), refine)[: (len(point_bins) - 1) * refine + 1] if refine > 1 else np.asarray(point_bins)
        pts = _refined_points(points, refine)
        keep = np.flatnonzero(pb >= 0)
        if keep.size:
            b = pb[keep]
            parts.append(jnp.clip(pts[keep], lo[b], hi[b]))
            extra = np.bincount(b, minlength=n_bins)
    fine = jnp.sort(jnp.concatenate(parts))
    segments = np.repeat(np.arange(n_bins), counts + extra)
    return fine, segments


def sum_sub_bins(values, segments: np.ndarray, n_bins: int):
    """Sum sub-bin values (leading axis) into their bins."""
    return jax.ops.segment_sum(values, jnp.asarray(segments), num_segments=n_bins, indices_are_sorted=True)


def _second_derivative(f, x):
    """f''(x) of an elementwise function by nested forward-mode differentiation."""
    first = lambda y: jax.jvp(f, (y,), (jnp.ones_like(y),))[1]  # noqa: E731
    return jax.jvp(first, (x,), (jnp.ones_like(x),))[1]


def binned_with_efficiency(cdf_at, efficiency, edges, n_sub, *, antiderivatives_at=None, points=None,
                           point_bins: tuple = (), refine: int = 1):
    """∫_bin dx p(x) ε(x) for every bin, summed over sub-bins; shape (n_bins, ...).

    ``cdf_at(x)`` returns the CDF at points x of shape (n,) with any trailing batch shape (n, ...).
    With ``antiderivatives_at`` (returning F, G, H with G' = F, H' = G) each sub-bin contributes
    ΔF·[ε(x̄) + ½ε''(x̄)·v] with x̄ and v the mean and variance of x within the sub-bin under p
    (exact moments from F, G, H): exact for a quadratic ε whatever p; the error is O(h⁴ ε⁽⁴⁾) for a
    broad p and O(σ⁴ ε⁽⁴⁾) for a sharp one. Without it, ε at the sub-bin midpoint (smooth time profiles).
    """
    fine, segments = subdivide(edges, n_sub, points, point_bins, refine)
    if antiderivatives_at is None:
        cdf = cdf_at(fine)
        prob = cdf[1:] - cdf[:-1]
        mid = 0.5 * (fine[1:] + fine[:-1])
        weighted = prob * efficiency(mid).reshape((-1,) + (1,) * (prob.ndim - 1))
        return sum_sub_bins(weighted, segments, edges.shape[0] - 1)
    F, G, H = antiderivatives_at(fine)
    prob = F[1:] - F[:-1]
    batch = (1,) * (prob.ndim - 1)
    lo = fine[:-1].reshape((-1,) + batch)
    w = (fine[1:] - fine[:-1]).reshape((-1,) + batch)
    m1 = w * F[1:] - (G[1:] - G[:-1])  # ∫ (x − lo) dF over the sub-bin
    if is_piecewise_linear(efficiency):  # linear on every sub-bin: exact with the first moment alone
        return sum_sub_bins(linear_rule(efficiency(fine), prob, m1, w), segments, edges.shape[0] - 1)
    m2 = w**2 * F[1:] - 2.0 * (w * G[1:] - (H[1:] - H[:-1]))  # ∫ (x − lo)² dF
    return sum_sub_bins(conditional_mean_rule(efficiency, prob, m1, m2, lo, w), segments, edges.shape[0] - 1)


def energy_response(smearing, efficiency, binning: Binning, E_ee_keV):
    """Response R[i, ...] = ∫_{bin i} p(x | E_ee) ε(x) dx; E_ee of any shape.

    A smearing that is a mixture of E-independent Gaussians (``smearing.mixture``: Poisson photoelectrons)
    is integrated per component, R[i, …] = Σ_n r[i, n] w_n(E), where r[i, n] is the sub-bin rule applied
    to component n alone: the rule's work no longer scales with the number of E values, and each
    narrow component is integrated at least as accurately as the mixture (same error bound, docs/physics.md §3.4.1).
    """
    if hasattr(smearing, "mixture"):
        means, widths, weights = smearing.mixture(E_ee_keV)
        per_component = binned_with_efficiency(
            None, efficiency, binning.energy_edges, binning.n_sub_energy,
            antiderivatives_at=lambda x: _gaussian_antiderivatives(x[:, None] - means, widths),
            points=efficiency.points(), point_bins=binning.point_bins, refine=binning.refine)
        return jnp.einsum("in,...n->i...", per_component, weights, precision=jax.lax.Precision.HIGHEST)
    shape = (-1,) + (1,) * E_ee_keV.ndim

    def cdf_at(x):
        return smearing.cdf(x.reshape(shape), E_ee_keV[None])

    def antiderivatives_at(x):
        return smearing.antiderivatives(x.reshape(shape), E_ee_keV[None])

    return binned_with_efficiency(cdf_at, efficiency, binning.energy_edges, binning.n_sub_energy,
                                  antiderivatives_at=antiderivatives_at, points=efficiency.points(),
                                  point_bins=binning.point_bins, refine=binning.refine)
