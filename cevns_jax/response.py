"""Detector response as differentiable, fixed-grid linear algebra (PHYSICS.md §3).

Chain: nuclear recoil T [keVnr] → quenching → E_ee [keVee] → smearing into the observed variable
x (keVee or photoelectrons, PE) → efficiency ε(x) applied in the observed variable → analysis bins.

Each stage is a small immutable pytree with array leaves (so quenching, resolution, efficiency and
bin-edge parameters are all differentiable) and one job:

* quenching models expose ``electron_equivalent_keV(T_keVnr, Z, A)``;
* smearing models expose ``cdf(x, E_ee_keV)`` = P(observed < x | E_ee);
* efficiency models expose ``__call__(x)``.

The response matrix R[i, …] = ∫_{bin i} dx p(x | E_ee(T)) ε(x) is built by splitting every analysis
bin into ``n_sub`` equal sub-bins: exact CDF differences of the smearing on each sub-bin times ε at
the sub-bin midpoint. The bin edges are leaves, so thresholds and binning are differentiable.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, ndtr

from ._pytree import pytree_dataclass, static_field

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
    c = c_nominal + Σ_k z_k Δ_k (the release's two ±1σ models, PHYSICS.md §3.1).
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


def lindhard_k(Z, A):
    """Lindhard's k = 0.133 Z^{2/3} A^{−1/2}."""
    return 0.133 * Z ** (2.0 / 3.0) / jnp.sqrt(A)


# ----------------------------------------------------------------------------------------------
# Smearing: P(observed < x | E_ee)
# ----------------------------------------------------------------------------------------------
_E_FLOOR_KEV = 1e-6


@pytree_dataclass
class GaussianSmearing:
    """Gaussian in keVee with σ² = σ₀² + a²E + b²E² (CENNS-10: a = 0.58 keV^½, σ₀ = b = 0).

    A floor of 1e-3 keVee keeps σ > 0 at E → 0.
    """

    sigma0_keV: jnp.ndarray
    stochastic_sqrt_keV: jnp.ndarray
    linear: jnp.ndarray

    def cdf(self, x, E_keV):
        var = self.sigma0_keV**2 + self.stochastic_sqrt_keV**2 * E_keV + (self.linear * E_keV) ** 2 + 1e-6
        return ndtr((x - E_keV) / jnp.sqrt(var))


@pytree_dataclass
class GammaPESmearing:
    """Gamma-distributed photoelectrons (COHERENT CsI[Na] 2021; PHYSICS.md §3.2).

    With E in keVee: mean = LY·E, shape k = 1 + b·E, scale θ = LY·E/(1 + b·E); relative width
    1/√(1 + bE). Release values LY = 13.35 PE/keVee, b = 9.56 /keVee.
    """

    light_yield_PE_per_keV: jnp.ndarray
    width_per_keV: jnp.ndarray

    def cdf(self, x, E_keV):
        E = jnp.maximum(E_keV, _E_FLOOR_KEV)
        shape = 1.0 + self.width_per_keV * E
        scale = self.light_yield_PE_per_keV * E / shape
        return gammainc(shape, jnp.maximum(x, 0.0) / scale)


@pytree_dataclass
class PoissonPESmearing:
    """Poisson photoelectron statistics, λ = LY·E_ee, each n-PE signal read out with a Gaussian
    single-photoelectron width σ_spe·√max(n, 1) (PHYSICS.md §3.2). ``n_max`` terms are summed.

    CDF(x | E) = Σ_n P(n; λ(E)) · Φ((x − n)/(σ_spe √max(n, 1))), n = 0 … n_max. The first factor depends
    only on E and the second only on x, so the sum is a contraction over n (``einsum`` → one matrix
    product when x and E sit on different broadcast axes, as in :func:`energy_response`): the
    transcendental functions are evaluated on (n_x + n_E)·n_max points instead of n_x·n_E·n_max, and the
    backward pass stores no (x × E × n) array. Same terms as the direct sum, only summed in another order.
    """

    light_yield_PE_per_keV: jnp.ndarray
    spe_width: jnp.ndarray
    n_max: int = static_field(default=150)

    def cdf(self, x, E_keV):
        lam = jnp.maximum(self.light_yield_PE_per_keV * E_keV, _E_FLOOR_KEV)
        n = jnp.arange(self.n_max + 1, dtype=jnp.float64)
        poisson = jnp.exp(n * jnp.log(lam)[..., None] - lam[..., None] - gammaln(n + 1.0))  # E.shape + (n,)
        width = self.spe_width * jnp.sqrt(jnp.maximum(n, 1.0))
        readout = ndtr((jnp.asarray(x)[..., None] - n) / width)  # x.shape + (n,)
        return jnp.einsum("...n,...n->...", readout, poisson, precision=jax.lax.Precision.HIGHEST)


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

    def __call__(self, x):
        return jnp.full_like(x, self.value)


@pytree_dataclass
class LogisticEfficiency:
    """Smooth threshold ε(x) = ε_max / (1 + exp(−(x − x₅₀)/w)); x₅₀ is the threshold (50% point)."""

    maximum: jnp.ndarray
    threshold: jnp.ndarray
    width: jnp.ndarray

    def __call__(self, x):
        return self.maximum * jax.nn.sigmoid((x - self.threshold) / self.width)


@pytree_dataclass
class Coherent2021Efficiency:
    """COHERENT CsI[Na] 2021: ε(x) = a/(1 + exp(−b(x − c))) + d, clipped at 0, x in PE.

    Coefficients move as nominal + z·Δ (release ±1σ model, PHYSICS.md §3.3).
    """

    coefficients: jnp.ndarray
    shift: jnp.ndarray
    pull: jnp.ndarray

    def __call__(self, x):
        a, b, c, d = self.coefficients + self.pull * self.shift
        return jnp.maximum(a * jax.nn.sigmoid(b * (x - c)) + d, 0.0)


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


@pytree_dataclass
class TabulatedEfficiency:
    """Efficiency table linearly interpolated, held flat beyond the first and last points."""

    x: jnp.ndarray
    values: jnp.ndarray

    def __call__(self, x):
        return jnp.interp(x, self.x, self.values)


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
    """Analysis bins: edges in the observed variable and in time [ns].

    ``n_sub_energy`` / ``n_sub_time``: equal sub-bins per bin on which efficiencies are sampled.
    """

    energy_edges: jnp.ndarray
    time_edges_ns: jnp.ndarray
    n_sub_energy: int = static_field(default=8)
    n_sub_time: int = static_field(default=8)


def subdivide(edges, n_sub: int):
    """Edges of ``n_sub`` equal sub-bins in every bin; shape (n_bins·n_sub + 1,)."""
    lo, hi = edges[:-1], edges[1:]
    frac = jnp.arange(n_sub) / n_sub
    inner = (lo[:, None] + (hi - lo)[:, None] * frac).reshape(-1)
    return jnp.concatenate([inner, edges[-1:]])


def binned_with_efficiency(cdf_at, efficiency, edges, n_sub: int):
    """∫_bin dx p(x) ε(x) for every bin, from CDF differences on sub-bins × ε at their midpoints.

    ``cdf_at(x)`` returns the CDF at points x of shape (n,) with any trailing batch shape
    (n, ...); the result has shape (n_bins, ...).
    """
    fine = subdivide(edges, n_sub)
    cdf = cdf_at(fine)
    prob = cdf[1:] - cdf[:-1]
    eff = efficiency(0.5 * (fine[1:] + fine[:-1]))
    weighted = prob * eff.reshape((-1,) + (1,) * (prob.ndim - 1))
    return weighted.reshape((edges.shape[0] - 1, n_sub) + prob.shape[1:]).sum(axis=1)


def energy_response(smearing, efficiency, binning: Binning, E_ee_keV):
    """Response R[i, ...] = P(x ∈ bin i | E_ee) weighted by ε(x); E_ee of any shape."""

    def cdf_at(x):
        return smearing.cdf(x.reshape((-1,) + (1,) * E_ee_keV.ndim), E_ee_keV[None])

    return binned_with_efficiency(cdf_at, efficiency, binning.energy_edges, binning.n_sub_energy)
