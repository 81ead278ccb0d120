"""Resolutions of sub-keV ionisation and heat detectors (docs/physics.md §3.8.2).

* :class:`FanoNoiseSmearing` — an ionisation detector (Ge PPC, Si CCD): the charge of E_ee is N = E_ee/ε
  pairs with variance F·N (Fano), read with a Gaussian electronic noise σ_noise, so in keVee
  σ²(E_ee) = σ_noise² + F ε E_ee. Germanium: ε = 2.96 eV, F = 0.11 (assumed); silicon: ε = 3.749 eV,
  F = 0.119 (sources in docs/physics.md §3.8.2).
* :class:`BaselineSmearing` — a cryogenic heat (phonon) channel: a Gaussian of constant width, the baseline
  resolution σ₀ [keV], with no quenching before it (the phonon energy is the recoil energy).

Both are Gaussians in the observed energy with the interface of :mod:`cevns_jax.response`
(``mean_observed``, ``width_observed``, ``cdf``, ``antiderivatives``), so the sub-bin rule, the sharp-response
breakpoints and the response floor of :mod:`cevns_jax.quadrature` resolve them like any other smearing.
* :class:`S2Smearing` — a liquid-xenon S2 read in photoelectrons: n ~ Poisson(η N_e) extracted electrons, each
  giving g PE with a relative single-electron width, S2 ~ N(g n, (g σ_SE)² max(n, 1)) (docs/physics.md §3.8.3).

Every parameter is an array leaf (differentiable: ∂/∂σ_noise, ∂/∂F, ∂/∂ε). Electron-counting readouts in
electrons (liquid-xenon S2 without a gain, CCD electrons) use the Poisson-count smearing of
:mod:`cevns_jax.response`; :class:`S2Smearing` with g = 1 is that smearing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from ._pytree import pytree_dataclass, static_field
from .binning import gaussian_antiderivatives, normal_cdf
from .response import CentredGaussian

__all__ = ["FanoNoiseSmearing", "BaselineSmearing", "S2Smearing", "GE_PAIR_ENERGY_EV", "GE_FANO", "SI_PAIR_ENERGY_EV", "SI_FANO"]

GE_PAIR_ENERGY_EV = 2.96
"""Mean energy per electron–hole pair in Ge at 77 K [eV]: the standard reference value (Knoll, Radiation
Detection and Measurement, 4th ed., Table 11.1; used as the reference ε by Papp et al., X-Ray Spectrom. 34,
106 (2005)). docs/physics.md §3.8.2."""
GE_FANO = 0.11
"""Fano factor of Ge: an assumption (the value of the COH-Ge-mini preset) inside the published spread, from
0.059–0.083 (upper limits at X-ray energies, Papp et al. 2005) to 0.123 ± 0.003 (Samat & Priharti, Sains
Malaysiana 44, 761 (2015), who quote 0.13 as the usual value, from Alig, Bloom & Struck, PRB 22, 5565 (1980))."""
SI_PAIR_ENERGY_EV = 3.749
"""Mean energy per electron–hole pair in Si [eV]: 3.749 ± 0.001 eV measured with a skipper CCD at 123 K and
5.9 keV (Rodrigues et al., NIM A 1010, 165511 (2021), arXiv:2004.11499, abstract)."""
SI_FANO = 0.119
"""Fano factor of Si: 0.119 ± 0.002 at 123 K and 5.9 keV (Rodrigues et al. 2021, abstract)."""

_VAR_FLOOR_KEV2 = 1e-18
"""Added to σ² [keV²]: a numerical guard only (σ ≥ 1e-9 keV)."""


@pytree_dataclass
class FanoNoiseSmearing(CentredGaussian):
    """Gaussian in keVee with σ² = σ_noise² + F·ε·E_ee (E_ee floored at 0): electronic noise ``noise_keV``,
    Fano factor ``fano`` and pair energy ``pair_energy_keV`` [keV per pair]."""

    noise_keV: jnp.ndarray
    fano: jnp.ndarray
    pair_energy_keV: jnp.ndarray

    def sigma_keV(self, E_keV):
        """Resolution σ(E_ee) [keVee]."""
        var = self.noise_keV**2 + self.fano * self.pair_energy_keV * jnp.maximum(E_keV, 0.0)
        return jnp.sqrt(var + _VAR_FLOOR_KEV2)


@pytree_dataclass
class BaselineSmearing:
    """Gaussian of constant width σ₀ = ``sigma_keV`` [keV]: the baseline resolution of a heat channel."""

    sigma_keV: jnp.ndarray

    def mean_observed(self, E_keV):
        return E_keV

    def width_observed(self, E_keV):
        return jnp.broadcast_to(jnp.abs(self.sigma_keV), jnp.shape(E_keV))

    def cdf(self, x, E_keV):
        return normal_cdf((x - E_keV) / self.sigma_keV)

    def antiderivatives(self, x, E_keV):
        d = x - E_keV
        return gaussian_antiderivatives(d, jnp.broadcast_to(self.sigma_keV, jnp.shape(d)))


@pytree_dataclass
class S2Smearing:
    """S2 in photoelectrons [PE] of a charge signal of mean N_e electrons (the quenched variable, from
    :class:`cevns_jax.quenching.ChargeYieldQuenching`): n ~ Poisson(η N_e) extracted electrons, read as
    N(g n, (g σ_SE)² max(n, 1)) with ``gain_PE`` g PE per electron and ``electron_width`` σ_SE the relative
    single-electron width. A mixture of E-independent Gaussians (``mixture``), summed over n = 0 … ``n_max``
    (set from the top bin edge when the experiment is built, :func:`cevns_jax.response.poisson_pe_terms`)."""

    extraction_efficiency: jnp.ndarray
    electron_width: jnp.ndarray
    gain_PE: jnp.ndarray
    n_max: int = static_field(default=150)

    def _terms(self, E):
        lam = jnp.maximum(self.extraction_efficiency * E, 1e-6)
        n = jnp.arange(self.n_max + 1, dtype=jnp.float64)
        poisson = jnp.exp(n * jnp.log(lam)[..., None] - lam[..., None] - gammaln(n + 1.0))
        return self.gain_PE * n, self.gain_PE * self.electron_width * jnp.sqrt(jnp.maximum(n, 1.0)), poisson

    def mixture(self, E):
        """Component means [PE] (n,), widths [PE] (n,) and Poisson weights E.shape + (n,)."""
        return self._terms(E)

    def mean_observed(self, E):
        return self.gain_PE * self.extraction_efficiency * E

    def width_observed(self, E):
        lam = self.extraction_efficiency * E
        return self.gain_PE * jnp.sqrt(lam + self.electron_width**2 * jnp.maximum(lam, 1.0))

    def cdf(self, x, E):
        means, widths, poisson = self._terms(E)
        readout = normal_cdf((jnp.asarray(x)[..., None] - means) / widths)
        return jnp.einsum("...n,...n->...", readout, poisson, precision=jax.lax.Precision.HIGHEST)

    def antiderivatives(self, x, E):
        means, widths, poisson = self._terms(E)
        parts = gaussian_antiderivatives(jnp.asarray(x)[..., None] - means, widths)
        return tuple(jnp.einsum("...n,...n->...", f, poisson, precision=jax.lax.Precision.HIGHEST) for f in parts)
