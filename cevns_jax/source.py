"""Pion decay-at-rest (π-DAR) neutrino source: energy spectra, timing PDFs/CDFs and fluence.

Each stopped π⁺ gives one prompt ν_μ (π⁺ → μ⁺ν_μ, a line at 29.79 MeV) and, after the muon decays,
one ν_e and one ν̄_μ with Michel spectra (docs/physics.md §1). Flux components are indexed by
:data:`COMPONENTS` throughout the package.

Timing (docs/physics.md §1.3): the proton pulse is a Gaussian N(μ_p, σ_p) (a sum of Gaussian bunches for
multi-bunch sources); the prompt PDF is the pulse convolved with the pion lifetime, the delayed PDF
additionally with the muon lifetime. Closed forms are exponentially modified Gaussians, evaluated
through ``log_ndtr`` so that they stay finite (with finite gradients) microseconds before the pulse.
Every time profile also gives its CDF's first two antiderivatives (``*_antiderivatives``: F, G = ∫F dt,
H = ∫G dt, in 1, ns, ns²), from which the time folding takes each sub-bin's exact mean arrival time and
variance (:func:`cevns_jax.binning.binned_with_efficiency`, docs/physics.md §3.4.1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from . import constants as C
from ._pytree import pytree_dataclass, static_field
from .binning import gaussian_antiderivatives, normal_cdf

COMPONENTS = ("prompt_numu", "delayed_nue", "delayed_numubar")
"""Neutrino flux components of a π-DAR source, in the order used by every array axis ``c``."""
COMPONENT_FLAVOUR = (1, 0, 1)
"""Flavour index (0 = e, 1 = μ, 2 = τ) of each component: ν̄_μ scatters with the ν_μ couplings."""

# Michel spectra as f(E) = a E² + b E³ on [0, m_μ/2] (docs/physics.md §1.2), per MeV, unit normalised.
MICHEL_NUE = (96.0 / C.M_MUON**3, -192.0 / C.M_MUON**4)
MICHEL_NUMUBAR = (48.0 / C.M_MUON**3, -64.0 / C.M_MUON**4)


def michel_spectrum_nue(E_MeV):
    """Unit-normalised ν_e spectrum from μ⁺ decay at rest, 192/m_μ · x²(1/2 − x), x = E/m_μ [1/MeV]."""
    x = E_MeV / C.M_MUON
    inside = (E_MeV >= 0.0) & (E_MeV <= C.E_NU_MAX_MICHEL)
    return jnp.where(inside, 192.0 / C.M_MUON * x**2 * (0.5 - x), 0.0)


def michel_spectrum_numubar(E_MeV):
    """Unit-normalised ν̄_μ spectrum from μ⁺ decay at rest, 64/m_μ · x²(3/4 − x), x = E/m_μ [1/MeV]."""
    x = E_MeV / C.M_MUON
    inside = (E_MeV >= 0.0) & (E_MeV <= C.E_NU_MAX_MICHEL)
    return jnp.where(inside, 64.0 / C.M_MUON * x**2 * (0.75 - x), 0.0)


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
def _exgauss_log_tail(t, mu, sigma, tau):
    """log of exp(σ²/2τ² − (t−μ)/τ) Φ((t−μ)/σ − σ/τ), the exponential tail of an exGaussian."""
    z = (t - mu) / sigma
    return sigma**2 / (2.0 * tau**2) - (t - mu) / tau + log_ndtr(z - sigma / tau)


def exgauss_pdf(t, mu, sigma, tau):
    """PDF of N(μ, σ) ⊗ exponential(τ) [1/ns]; numerically stable form (docs/physics.md §1.3)."""
    return jnp.exp(_exgauss_log_tail(t, mu, sigma, tau)) / tau


def gaussian_third_antiderivative(d, sigma):
    """K = E[(x − X)₊³]/6 for X ~ N(mean, σ²), d = x − mean [ns³]: the antiderivative of the third member
    of :func:`cevns_jax.binning.gaussian_antiderivatives`, [(d³ + 3dσ²)Φ(z) + σ(d² + 2σ²)φ(z)]/6, z = d/σ."""
    z = d / sigma
    return ((d**3 + 3.0 * d * sigma**2) * normal_cdf(z) + sigma * (d**2 + 2.0 * sigma**2) * jnp.exp(-0.5 * z**2) / jnp.sqrt(2.0 * jnp.pi)) / 6.0


def _gauss_levels(t, mu, sigma):
    """(F, G, H, K): the CDF of N(μ, σ) and its first three antiderivatives [1, ns, ns², ns³]."""
    F, G, H = gaussian_antiderivatives(t - mu, sigma)
    return F, G, H, gaussian_third_antiderivative(t - mu, sigma)


def _exgauss_levels(t, mu, sigma, tau):
    """(F, G, H, K) of N(μ, σ) ⊗ exponential(τ): the CDF and its antiderivatives G' = F, H' = G, K' = H
    [1, ns, ns², ns³].

    The density p = g ⊗ e_τ obeys τp' + p = g (g the Gaussian density), so integrating from −∞ once, twice,
    three and four times: F = F_g − τp, G = G_g − τF, H = H_g − τG, K = K_g − τH, with the Gaussian's levels
    (:func:`cevns_jax.binning.gaussian_antiderivatives`, :func:`gaussian_third_antiderivative`). For t → ∞:
    G → t − (μ + τ), H → ½[(t − μ − τ)² + σ² + τ²], the mean and variance of the exGaussian.
    """
    Fg, Gg, Hg, Kg = _gauss_levels(t, mu, sigma)
    F = Fg - jnp.exp(_exgauss_log_tail(t, mu, sigma, tau))
    G = Gg - tau * F
    H = Hg - tau * G
    return F, G, H, Kg - tau * H


def _two_stage(fn, t, mu, sigma):
    """Pulse ⊗ e_{τπ} ⊗ e_{τμ} as the partial-fraction combination of two exGaussians (any of PDF, CDF or
    antiderivatives: the combination is linear)."""
    tp, tm = C.TAU_PION_NS, C.TAU_MUON_NS
    return jax.tree.map(lambda a, b: (tm * a - tp * b) / (tm - tp), fn(t, mu, sigma, tm), fn(t, mu, sigma, tp))


def _bunched(fn, t, pulse):
    """Sum over the bunches of a pulse (weights normalised to 1), of one array or a tuple of them."""
    t = jnp.asarray(t)[..., None]
    w = pulse.bunch_weights / jnp.sum(pulse.bunch_weights)
    mu = pulse.mean_ns + pulse.bunch_offsets_ns
    return jax.tree.map(lambda v: jnp.sum(w * v, axis=-1), fn(t, mu, pulse.sigma_ns))


def _profile(t_ns, pulse, levels, what: str, density=None):
    """A time profile of the pulse ⊗ (decays) from ``levels(t, μ, σ) -> (F, G, H, K)`` of one Gaussian bunch
    (``density(t, μ, σ)``: its PDF): ``what`` = "pdf" → p, "cdf" → F, "anti" → (F, G, H).

    Flat-top bunches of width W (``pulse.flat_top_ns`` > 0; each a uniform [μ − W/2, μ + W/2] ⊗ N(0, σ)
    edges): the uniform average of a shifted profile is a difference of its next antiderivative,
    p_W(t) = [F(t − a) − F(t − b)]/W with a, b = μ ∓ W/2, and likewise one level up for F_W, G_W and H_W
    (docs/physics.md §1.3)."""
    W = pulse.flat_top_ns
    if W > 0.0:
        def flat(t, mu, sigma):  # (p, F, G, H) of the flat top
            lo, hi = levels(t, mu - 0.5 * W, sigma), levels(t, mu + 0.5 * W, sigma)
            return tuple((a - b) / W for a, b in zip(lo, hi))
        p, F, G, H = _bunched(flat, t_ns, pulse)
    elif what == "pdf":
        return _bunched(density, t_ns, pulse)
    else:
        F, G, H = _bunched(lambda t, mu, sigma: levels(t, mu, sigma)[:3], t_ns, pulse)
        p = None
    return {"pdf": p, "cdf": F, "anti": (F, G, H)}[what]


def _prompt_levels(t, mu, sigma):
    return _exgauss_levels(t, mu, sigma, C.TAU_PION_NS)


def _delayed_levels(t, mu, sigma):
    return _two_stage(_exgauss_levels, t, mu, sigma)


def prompt_time_pdf(t_ns, pulse):
    """Arrival-time PDF of prompt ν_μ [1/ns]: pulse ⊗ pion lifetime."""
    return _profile(t_ns, pulse, _prompt_levels, "pdf", lambda t, m, s: exgauss_pdf(t, m, s, C.TAU_PION_NS))


def prompt_time_cdf(t_ns, pulse):
    """Arrival-time CDF of prompt ν_μ."""
    return _profile(t_ns, pulse, _prompt_levels, "cdf")


def prompt_time_antiderivatives(t_ns, pulse):
    """(F, G, H) of the prompt arrival time [1, ns, ns²]."""
    return _profile(t_ns, pulse, _prompt_levels, "anti")


def delayed_time_pdf(t_ns, pulse):
    """Arrival-time PDF of delayed ν_e and ν̄_μ [1/ns]: pulse ⊗ pion ⊗ muon lifetimes."""
    return _profile(t_ns, pulse, _delayed_levels, "pdf", lambda t, m, s: _two_stage(exgauss_pdf, t, m, s))


def delayed_time_cdf(t_ns, pulse):
    """Arrival-time CDF of delayed ν_e and ν̄_μ."""
    return _profile(t_ns, pulse, _delayed_levels, "cdf")


def delayed_time_antiderivatives(t_ns, pulse):
    """(F, G, H) of the delayed arrival time [1, ns, ns²]."""
    return _profile(t_ns, pulse, _delayed_levels, "anti")


def pulse_cdf(t_ns, pulse):
    """CDF of the proton pulse itself (time profile of prompt-like beam-related backgrounds)."""
    return _profile(t_ns, pulse, _gauss_levels, "cdf")


def pulse_antiderivatives(t_ns, pulse):
    """(F, G, H) of the proton pulse's time profile [1, ns, ns²]."""
    return _profile(t_ns, pulse, _gauss_levels, "anti")


def component_time_cdfs(t_ns, pulse):
    """CDFs of the three neutrino components at times ``t_ns``; shape (3, *t.shape)."""
    prompt = prompt_time_cdf(t_ns, pulse)
    delayed = delayed_time_cdf(t_ns, pulse)
    return jnp.stack([prompt, delayed, delayed])


def component_time_antiderivatives(t_ns, pulse):
    """(F, G, H) of the three neutrino components at times ``t_ns``, each of shape (3, *t.shape)."""
    prompt, delayed = prompt_time_antiderivatives(t_ns, pulse), delayed_time_antiderivatives(t_ns, pulse)
    return tuple(jnp.stack([p, d, d]) for p, d in zip(prompt, delayed))


@pytree_dataclass
class ProtonPulse:
    """Proton-on-target time profile: Gaussian bunches in the detector's time coordinate.

    ``mean_ns`` is the mean of the first bunch in the time coordinate of the analysis (the light
    travel time L/c is absorbed into it); ``bunch_offsets_ns`` and ``bunch_weights`` describe
    multi-bunch sources (J-PARC, CSNS); the SNS has a single bunch. A bunch is a Gaussian of width
    ``sigma_ns``, or with ``flat_top_ns`` = W > 0 a flat top of width W with Gaussian edges.
    """

    mean_ns: jnp.ndarray
    sigma_ns: jnp.ndarray
    bunch_offsets_ns: jnp.ndarray
    bunch_weights: jnp.ndarray
    flat_top_ns: float = static_field(default=0.0)
    """Width W [ns] of a flat-top bunch (uniform over W around its mean, edges Gaussian with ``sigma_ns``;
    the ESS's 2.86 ms pulse); 0: Gaussian bunches (static: it selects the closed forms)."""


@pytree_dataclass
class Source:
    """A π-DAR neutrino source as used by one experiment.

    Attributes:
        protons_on_target: integrated protons on target over the exposure.
        nu_per_proton: neutrinos per flavour per proton (the era-specific yield, e.g. 0.08 for the
            2017 SNS, 0.09 for the CENNS-10 era).
        pulse: proton pulse timing (:class:`ProtonPulse`).
        name: facility preset name (static).
    """

    protons_on_target: jnp.ndarray
    nu_per_proton: jnp.ndarray
    pulse: ProtonPulse
    name: str = static_field(default="custom")

    # the source interface (cevns_jax.spectra): a beam source, folded in closed form by cevns_jax.xsec
    components = COMPONENTS
    flavours = COMPONENT_FLAVOUR
    antineutrino = (False, False, True)
    steady = False
    energy_breaks_MeV = (0.0, C.E_NU_MAX_MICHEL)
    recoil_energies_MeV = (C.E_NU_MU_PROMPT, C.E_NU_MAX_MICHEL)
    """(E_break, E_end): the prompt line (a kink of the folded rate) and the Michel endpoint [MeV]."""

    def fluence_cm2(self, baseline_m):
        """Fluence of each component [cm⁻²] (equal: one of each flavour per stopped π⁺); shape (3,)."""
        return jnp.broadcast_to(fluence_per_flavour(self, baseline_m), (len(COMPONENTS),))

    def time_antiderivatives(self, t_ns):
        """(F, G, H) of each component's arrival time, each (3, *t.shape) (:func:`component_time_antiderivatives`)."""
        return component_time_antiderivatives(t_ns, self.pulse)


def fluence_per_flavour(source: Source, baseline_m):
    """Time-integrated fluence per flavour [cm⁻²] at ``baseline_m``: r·N_POT/(4πL²)."""
    L_cm = baseline_m * C.M_TO_CM
    return source.nu_per_proton * source.protons_on_target / (4.0 * jnp.pi * L_cm**2)


def protons_for_fluence(fluence_cm2, nu_per_proton, baseline_m):
    """Protons on target that give a fluence per flavour Φ [cm⁻²] at ``baseline_m``: 4πL²Φ/r
    (the inverse of :func:`fluence_per_flavour`)."""
    L_cm = baseline_m * C.M_TO_CM
    return fluence_cm2 * 4.0 * jnp.pi * L_cm**2 / nu_per_proton
