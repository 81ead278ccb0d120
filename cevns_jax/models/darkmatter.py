"""Accelerator-produced light dark matter through a vector portal (docs/physics.md §4.3).

Production, three channels, each a component with its own spectrum:

* ``pi0``: π⁰ → γχχ̄ through an on- or off-shell V (:mod:`.dm_production`): dBR/ds =
  2κ(1 − s/M²)³ BR(π⁰→γγ) √sΓ(V*→χχ̄)/(π|s − m_V² + i m_VΓ_V|²), κ = ε² (dark photon) or α_B/α
  (leptophobic); in the narrow-width limit (2m_χ < m_V < M) BR(π⁰→γV) = 2κ(1 − m_V²/M²)³ BR(π⁰→γγ)
  (:func:`branching_ratio`), for m_V ≫ M a contact rate ∝ m_V⁻⁴;
* ``eta``: η → γχχ̄ likewise (dark photon; not modelled for the leptophobic mediator);
* ``piminus``: π⁻ captured at rest, π⁻p → nV on shell (a monochromatic V), V per stopped π⁻ =
  ε² R_γ p_V/p_γ with R_γ the radiative-capture fraction (``constants.PIMINUS_RADIATIVE_CAPTURE``)
  and p_V/p_γ the two-body phase-space ratio (dark photon only), BR(V → χχ̄) = 1.

Fluence Φ_χ = 2 f_meson BR N_POT/(4πL²) per channel, BR the χχ̄ pairs per meson (:func:`pair_branching_ratio`;
the flux averaged over directions). The π⁰ decay in flight with the speeds of their facility's GEANT4 sample
(:mod:`.dm_flight`: the rest-frame boxes below boosted and averaged over directions, as flat lab boxes); η and
stopped π⁻ at rest. χ is taken isotropic in the χχ̄ (V) rest frame, so each χχ̄ mass gives a
flat χ energy box in the lab; the meson channels sum the boxes of the s-quadrature nodes, π⁻ capture has one,
E_± = E_V/2 ± (p_V/m_V) p* (:func:`on_shell_energy_box`). Every kinematic end is smooth in the masses
((1 − s/M²)³, β³ and p_V vanish there), so gradients exist in the whole domain; a channel above its own end
(2m_χ ≥ M, or m_V above the π⁻ capture end) contributes exactly 0.

Scattering (coherent, couples to charge ⇒ Z and F_p for the dark photon; to baryon number ⇒ A for
the leptophobic mediator), E the total χ energy, following deNiverville, Pospelov & Ritz,
arXiv:1505.07805 (scalar) and pyCEvNS ``DMNucleusElasticVector`` (Dirac):

    scalar: dσ/dT = 4π ε² α α_D Z²F_p² [2ME² − (2ME + m_χ²)T] / [(E² − m_χ²)(2MT + m_V²)²]
    Dirac:  dσ/dT = 4π ε² α α_D Z²F_p² [2ME² − (2ME + M² + m_χ²)T + MT²] / [(E² − m_χ²)(2MT + m_V²)²]

The signal is prompt: the proton pulse delayed by the χ time of flight L(1/β − 1)/c per energy.
At fixed α_D and m_V/m_χ, N ∝ ε⁴ ∝ Y² with Y = ε² α_D (m_χ/m_V)⁴.

Domain: m_χ > 0, m_V > 0, 2m_χ < m_η (the η decay is the last channel open; masses enter squared, so a
negative mass would silently act as |m|), α_D > 0, α_B ≥ 0, meson yields ≥ 0 (0 switches a channel off), Y ≥ 0 in :func:`epsilon_from_Y`; ε takes
either sign (only ε² enters). Concrete values outside the domain raise
:class:`~cevns_jax.errors.CevnsInputError`; traced ones become NaN (policy in :mod:`cevns_jax.errors`).
Not modelled: η decaying in flight (the detector's angle to the beam acts on the π⁰ in flight), proton bremsstrahlung, the sin²θ* χ distribution of a transverse V,
off-shell V in π⁻ capture.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import constants as C
from .._pytree import pytree_dataclass, replace, static_field
from ..errors import CevnsInputError, domain_checked
from ..facilities import (ETA_TO_PI0_SNS, FACILITIES, PI0_SNS_1GEV, PIMINUS_TO_PI0_SNS, pi0_direction_moments,
                          pi0_rapidity_nodes)
from . import dm_flight as _F
from . import dm_production as _P

__all__ = [
    "PI0_PER_PROTON", "CHANNELS", "CHANNEL_NUISANCES", "E_GAMMA_PIMINUS_CAPTURE", "ENERGY_NODES", "DarkMatter",
    "dark_matter", "at_source", "channels", "scale_channels", "benchmark_Y", "epsilon_from_Y",
    "mediator_kinematics", "branching_ratio", "pair_branching_ratio", "on_shell_energy_box",
    "LAB_BOXES", "ChiBoxes", "chi_boxes", "channel_boxes", "box_range", "energy_box", "max_recoil", "min_energy", "dsigma_dT",
    "yield_per_proton", "fluence", "energy_nodes", "time_of_flight_delay_ns",
]

PI0_PER_PROTON = PI0_SNS_1GEV
"""π⁰ per proton of a model not yet tied to a source (the SNS near 1 GeV, ``facilities.PI0_SNS_1GEV``);
:func:`at_source` replaces it with the yield of the experiment's facility."""
CHANNELS = ("pi0", "eta", "piminus")
"""Production channels summed into the dark-matter signal (a tabulated spectrum is the one channel ``table``)."""
CHANNEL_NUISANCES = {"eta": "eta", "piminus": "piminus"}
"""Channel → the nuisance that scales its yield alone (log-normal, :mod:`cevns_jax.nuisances`); ``pi0`` scales all."""
E_GAMMA_PIMINUS_CAPTURE = ((C.M_PION_CHARGED + C.M_PROTON) ** 2 - C.M_NEUTRON**2) / (2 * (C.M_PION_CHARGED + C.M_PROTON))
"""Photon energy of π⁻p → nγ at rest [MeV] (129.4): the reference momentum p_γ of the π⁻-capture phase space."""
LAB_BOXES = _P.S_NODES + 1
"""Flat lab boxes of the in-flight π⁰ spectrum (:mod:`.dm_flight`): as many as the rest-frame boxes, so the three
channels keep one shape (× ``Binning.refine`` in the convergence tests, the other channels padded)."""
ENERGY_NODES = 32
"""Nodes of the χ-energy integral at each recoil (× ``Binning.refine`` in the convergence tests): product-integration
nodes on a channel's box mixture (:func:`energy_nodes`), Gauss–Legendre on a tabulated spectrum."""


@pytree_dataclass
class DarkMatter:
    """χ of mass ``m_chi_MeV`` through a mediator of mass ``m_V_MeV``.

    ``coupling`` is the kinetic mixing ε (``mediator="dark_photon"``) or α_B (``"leptophobic"``);
    ``alpha_D`` the dark coupling; ``pi0_per_proton`` the π⁰ yield. ``dirac`` is 1 for a Dirac fermion χ and
    0 for a complex scalar, ``leptophobic`` 1 for a baryonic mediator (coupling α_B) and 0 for a dark
    photon (coupling ε): leaves, not static switches, so dark-matter models of every kind share one
    compiled program (values other than 0 and 1 are not physical; the constructor gives only those).
    ``pi0_from_facility`` (static): the yields of every channel follow the facility of the experiment
    (:func:`at_source`) instead of being the user's own numbers.
    ``pi0_rapidity``, ``pi0_rapidity_weight``: the π⁰ rapidities and their weights (Σ = 1) when π⁰ decay in flight
    (:mod:`.dm_flight`; set by :func:`at_source` from the facility's GEANT4 histogram); None: at rest.
    ``pi0_legendre``: the Legendre moments ⟨P_l(cos θ)⟩ (l = 1 … 8) of those π⁰'s directions to the beam at each
    rapidity node (set with the rapidities); ``pi0_beam_cos``: cos of the angle between the proton beam and the
    direction to the detector (set by :func:`cevns_jax.rates.dark_matter_channel_counts` from the detector's
    ``beam_angle_deg``); either None: the flux averaged over directions (:mod:`.dm_flight`).
    ``pi0_at_rest`` (static): keep the π⁰ at rest at every facility (the model of earlier releases).
    Optionally a tabulated χ spectrum replaces the at-rest π⁰ model: energies ``spectrum_E_MeV``, a
    density ``spectrum_pdf`` (any normalisation; linearly interpolated) and ``spectrum_yield`` χ per
    proton per unit coupling² (ε², or α_B) — e.g. from a Monte Carlo with π⁰ decays in flight.
    """

    m_chi_MeV: jnp.ndarray
    m_V_MeV: jnp.ndarray
    coupling: jnp.ndarray
    alpha_D: jnp.ndarray
    pi0_per_proton: jnp.ndarray
    spectrum_E_MeV: jnp.ndarray | None = None
    spectrum_pdf: jnp.ndarray | None = None
    spectrum_yield: jnp.ndarray | None = None
    eta_per_proton: jnp.ndarray = ETA_TO_PI0_SNS * PI0_SNS_1GEV
    piminus_per_proton: jnp.ndarray = PIMINUS_TO_PI0_SNS * PI0_SNS_1GEV
    dirac: jnp.ndarray = 0.0
    leptophobic: jnp.ndarray = 0.0
    pi0_rapidity: jnp.ndarray | None = None
    pi0_rapidity_weight: jnp.ndarray | None = None
    pi0_legendre: jnp.ndarray | None = None
    pi0_beam_cos: jnp.ndarray | None = None
    pi0_from_facility: bool = static_field(default=False)
    pi0_at_rest: bool = static_field(default=False)
    pi0_lab_boxes: int = static_field(default=0)
    """Flat lab boxes of the in-flight π⁰ spectrum: at least :data:`LAB_BOXES` (as many as the rest-frame boxes);
    more in the convergence tests, the other channels padded with empty boxes."""


def dark_matter(m_chi_MeV, m_V_MeV=None, epsilon=None, alpha_D=0.5, *, alpha_B=None, particle="scalar",
                pi0_per_proton=None, spectrum=None, eta_per_proton=None, piminus_per_proton=None,
                pi0_at_rest=False) -> DarkMatter:
    """Dark photon (``epsilon``) or leptophobic (``alpha_B``) dark matter; m_V defaults to 3 m_χ.

    Yields: all three None (default) take those of each experiment's facility (``facilities.FACILITIES[…]``,
    through :func:`at_source`); otherwise they are fixed, ``eta_per_proton`` and ``piminus_per_proton``
    defaulting to the SNS ratios to π⁰ (``facilities.ETA_TO_PI0_SNS``, ``PIMINUS_TO_PI0_SNS``) times the π⁰
    yield (itself defaulting to the SNS value); 0 switches a channel off.
    ``spectrum = (E_MeV, pdf, yield_per_proton_per_coupling2)`` replaces the at-rest π⁰ production.
    π⁰ decay in flight with the speeds of each experiment's facility (:func:`at_source`,
    ``facilities.pi0_rapidity_nodes``) unless ``pi0_at_rest`` (or the facility has no π⁰ momentum table).
    """
    if particle not in ("scalar", "dirac"):
        raise CevnsInputError(f"dark-matter particle must be 'scalar' or 'dirac', got {particle!r}")
    if (epsilon is None) == (alpha_B is None):
        raise CevnsInputError("give exactly one of epsilon (dark photon) or alpha_B (leptophobic mediator)")
    m_V = 3.0 * m_chi_MeV if m_V_MeV is None else m_V_MeV
    masses = jnp.stack([jnp.asarray(m_chi_MeV, dtype=jnp.float64), jnp.asarray(m_V, dtype=jnp.float64)])
    masses = domain_checked(
        masses, lambda m: jnp.broadcast_to((0 < m[0]) & (0 < m[1]) & (2 * m[0] < C.M_ETA), m.shape),
        f"meson → γχχ̄ needs m_χ > 0, m_V > 0 and 2 m_χ < m_η = {C.M_ETA} MeV; (m_χ, m_V)",
    )
    m_chi_MeV, m_V = masses[0], masses[1]
    alpha_D = domain_checked(alpha_D, lambda a: (a > 0) & jnp.isfinite(a), "dark-matter alpha_D must be > 0 and finite")
    if pi0_per_proton is not None:
        pi0_per_proton = domain_checked(pi0_per_proton, lambda p: (p >= 0) & jnp.isfinite(p),
                                        "dark-matter pi0_per_proton must be >= 0 and finite")
    for name, value in (("eta_per_proton", eta_per_proton), ("piminus_per_proton", piminus_per_proton)):
        if value is not None:
            domain_checked(value, lambda p: (p >= 0) & jnp.isfinite(p), f"dark-matter {name} must be >= 0 and finite")
    if alpha_B is not None:
        alpha_B = domain_checked(alpha_B, lambda a: (a >= 0) & jnp.isfinite(a),
                                 "leptophobic alpha_B must be >= 0 and finite (the branching ratio is linear in it)")
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    table = (None, None, None)
    if spectrum is not None:
        E, pdf, yield_ = (np.asarray(x, dtype=np.float64) for x in spectrum)
        if E.ndim != 1 or E.shape != pdf.shape or E.size < 2 or np.any(np.diff(E) <= 0) or np.any(pdf < 0):
            raise CevnsInputError("tabulated χ spectrum needs increasing energies and a non-negative density of the same length")
        if np.any(E <= float(m_chi_MeV)):
            raise CevnsInputError("tabulated χ spectrum: every total energy must exceed m_χ")
        table = (f(E), f(pdf / np.trapezoid(pdf, E)), f(yield_))
    follow = pi0_per_proton is None and eta_per_proton is None and piminus_per_proton is None and spectrum is None
    pi0 = PI0_PER_PROTON if pi0_per_proton is None else pi0_per_proton
    eta = ETA_TO_PI0_SNS * pi0 if eta_per_proton is None else eta_per_proton
    piminus = PIMINUS_TO_PI0_SNS * pi0 if piminus_per_proton is None else piminus_per_proton
    return DarkMatter(f(m_chi_MeV), f(m_V), f(epsilon if alpha_B is None else alpha_B), f(alpha_D), f(pi0),
                      *table, f(eta), f(piminus), f(float(particle == "dirac")), f(float(alpha_B is not None)),
                      pi0_from_facility=follow, pi0_at_rest=bool(pi0_at_rest))


def at_source(dm: DarkMatter, source) -> DarkMatter:
    """``dm`` with the π⁰, η and π⁻ yields of the facility that ``source`` comes from (its ``name``), and the
    speeds of its π⁰ (``pi0_rapidity``: π⁰ decay in flight, ``facilities.pi0_rapidity_nodes``).

    Yields only for a model built without its own ``pi0_per_proton`` (``dm.pi0_from_facility``); speeds for
    every model without its own and not ``pi0_at_rest`` (none for a tabulated spectrum, which replaces the π⁰
    model). A source that is no facility preset (``name`` not in ``FACILITIES``) keeps the model's. The result
    holds the facility's values as its own (``pi0_from_facility`` False), so a later call, or
    :func:`scale_channels` before :func:`cevns_jax.rates.dark_matter_channel_counts`, keeps them. Idempotent.
    """
    facility = FACILITIES.get(source.name)
    if facility is None:
        return dm
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    if dm.pi0_rapidity is None and not dm.pi0_at_rest and dm.spectrum_E_MeV is None:
        nodes = pi0_rapidity_nodes(source.name)
        if nodes is not None:
            dm = replace(dm, pi0_rapidity=f(nodes[0]), pi0_rapidity_weight=f(nodes[1]),
                         pi0_legendre=f(pi0_direction_moments(source.name)))
    if not dm.pi0_from_facility:
        return dm
    return replace(dm, pi0_per_proton=f(facility.pi0_per_proton), eta_per_proton=f(facility.eta_per_proton),
                   piminus_per_proton=f(facility.piminus_per_proton), pi0_from_facility=False)


def channels(dm: DarkMatter) -> tuple:
    """The production channels of ``dm`` (static): :data:`CHANNELS`, or ``("table",)`` for a tabulated spectrum."""
    return ("table",) if dm.spectrum_E_MeV is not None else CHANNELS


def scale_channels(dm: DarkMatter, values: dict) -> DarkMatter:
    """``dm`` with each channel's yield × e^ν of its nuisance in ``values`` (:data:`CHANNEL_NUISANCES`; absent: 1).
    Apply it after :func:`at_source` (which would otherwise replace the scaled yields by the facility's)."""
    eta, pim = CHANNEL_NUISANCES["eta"], CHANNEL_NUISANCES["piminus"]
    if eta not in values and pim not in values:
        return dm
    return replace(dm, eta_per_proton=dm.eta_per_proton * jnp.exp(values.get(eta, 0.0)),
                   piminus_per_proton=dm.piminus_per_proton * jnp.exp(values.get(pim, 0.0)))


def benchmark_Y(epsilon, m_chi_MeV, m_V_MeV, alpha_D=0.5):
    """Y = ε² α_D (m_χ/m_V)⁴."""
    return epsilon**2 * alpha_D * (m_chi_MeV / m_V_MeV) ** 4


def epsilon_from_Y(Y, m_chi_MeV, m_V_MeV=None, alpha_D=0.5):
    """ε giving Y at the benchmark (α_D = 0.5, m_V = 3 m_χ by default)."""
    m_V = 3.0 * m_chi_MeV if m_V_MeV is None else m_V_MeV
    Y = domain_checked(Y, lambda y: (y >= 0) & jnp.isfinite(y), "dark-matter Y must be >= 0 and finite")
    # floor inside the root: ε(0) ≈ 1e-150 (zero counts) with a finite gradient at Y = 0
    return jnp.sqrt(jnp.maximum(Y, 1e-300) / (alpha_D * (m_chi_MeV / m_V) ** 4))


_MESON_MASS = {"pi0": C.M_PION_NEUTRAL, "eta": C.M_ETA}
_SQRT_S_CAPTURE = C.M_PION_CHARGED + C.M_PROTON  # π⁻p at rest (atomic and nuclear binding neglected)


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS + ("table",):
        raise CevnsInputError(f"unknown dark-matter production channel {channel!r}; known: {', '.join(CHANNELS)}")


def mediator_kinematics(dm: DarkMatter, channel: str = "pi0"):
    """(E_V, p_V) [MeV] of the mediator of ``channel`` at rest: meson → γV (p_V = (M² − m_V²)/2M, 0 above M)
    or π⁻p → nV (p_V = λ^½(s, m_V², m_n²)/2√s, 0 above √s − m_n)."""
    _check_channel(channel)
    mV = dm.m_V_MeV
    if channel == "piminus":
        s = _SQRT_S_CAPTURE**2
        lam = (s - (mV + C.M_NEUTRON) ** 2) * (s - (mV - C.M_NEUTRON) ** 2)
        pV = jnp.sqrt(jnp.maximum(lam, 1e-300)) / (2 * _SQRT_S_CAPTURE)
        return jnp.sqrt(mV**2 + pV**2), pV  # = (s + m_V² − m_n²)/2√s below the end, m_V (at rest) above it
    M = _MESON_MASS[channel]
    return (M**2 + mV**2) / (2 * M), jnp.maximum(M**2 - mV**2, 0.0) / (2 * M)


def branching_ratio(dm: DarkMatter, channel: str = "pi0"):
    """On-shell V per decaying meson (π⁰ → γV, η → γV; 0 for m_V above the meson) or per stopped π⁻ (π⁻p → nV)
    of ``channel``. The signal uses :func:`pair_branching_ratio` (the meson channels through an off-shell V too)."""
    _check_channel(channel)
    lepto = dm.leptophobic
    if channel == "pi0":
        phase = jnp.clip(1.0 - dm.m_V_MeV**2 / C.M_PION_NEUTRAL**2, 0.0, 1.0) ** 3
        strength = (1.0 - lepto) * dm.coupling**2 + lepto * dm.coupling / C.ALPHA_EM
        return 2.0 * strength * phase * C.BR_PI0_GAMMA_GAMMA
    dark_photon = (1.0 - lepto) * dm.coupling**2  # η and π⁻ channels: dark photon only (docs/physics.md §4.3)
    if channel == "eta":
        return 2.0 * dark_photon * jnp.clip(1.0 - dm.m_V_MeV**2 / C.M_ETA**2, 0.0, 1.0) ** 3 * C.BR_ETA_GAMMA_GAMMA
    if channel == "piminus":
        return dark_photon * C.PIMINUS_RADIATIVE_CAPTURE * mediator_kinematics(dm, "piminus")[1] / E_GAMMA_PIMINUS_CAPTURE
    return jnp.zeros(())


def _meson_strength(dm: DarkMatter, channel: str):
    """2κ BR(P → γγ) of meson ``channel``: BR(P → γV) = that × (1 − m_V²/M²)³ (κ = ε², or α_B/α for π⁰)."""
    lepto = dm.leptophobic
    if channel == "pi0":
        return 2.0 * ((1.0 - lepto) * dm.coupling**2 + lepto * dm.coupling / C.ALPHA_EM) * C.BR_PI0_GAMMA_GAMMA
    return 2.0 * (1.0 - lepto) * dm.coupling**2 * C.BR_ETA_GAMMA_GAMMA


def pair_branching_ratio(dm: DarkMatter, channel: str = "pi0"):
    """χχ̄ pairs per decaying meson (P → γχχ̄ through an on- or off-shell V, the s-integral of
    :func:`cevns_jax.models.dm_production.pair_mass_nodes`) or per stopped π⁻ (π⁻p → nV on shell, V → χχ̄) of
    ``channel``: the ``pairs_per_decay`` of :func:`chi_boxes`; the narrow-width limit of the meson ones is
    :func:`branching_ratio`; 0 for ``table`` (its yield is per unit coupling², :func:`fluence`)."""
    _check_channel(channel)
    return branching_ratio(dm, channel) if channel == "table" else chi_boxes(dm, channel).pairs_per_decay


def on_shell_energy_box(dm: DarkMatter, channel: str = "pi0"):
    """(E₋, E₊) [MeV] of χ from an on-shell V of ``channel`` produced at rest, decaying isotropically in flight."""
    mV, m = dm.m_V_MeV, dm.m_chi_MeV
    EV, pV = mediator_kinematics(dm, channel)
    p_star = jnp.sqrt(jnp.maximum(mV**2 / 4 - m**2, 0.0))
    return EV / 2 - pV / mV * p_star, EV / 2 + pV / mV * p_star


@pytree_dataclass
class ChiBoxes:
    """A production channel's χ energy spectrum in the lab as a mixture of flat boxes (at rest; π⁰ in flight: the lab boxes
    of :mod:`.dm_flight`): edges ``lower_MeV``,
    ``upper_MeV`` and ``weight`` of shape (…, K) (Σ weight = 1 for an open channel; the s-quadrature's remainder
    weights may be negative; padding boxes have weight 0), ``pairs_per_decay`` the χχ̄ pairs per meson (per
    stopped π⁻) and ``chi_per_proton`` = 2 × that × the channel's yield per proton."""

    lower_MeV: jnp.ndarray
    upper_MeV: jnp.ndarray
    weight: jnp.ndarray
    pairs_per_decay: jnp.ndarray
    chi_per_proton: jnp.ndarray


def _meson_boxes(dm: DarkMatter, channels: tuple) -> ChiBoxes:
    """The χ boxes of the meson ``channels`` (``pi0``, ``eta``; vectorised over them: shapes (n, K)), the π⁰ row
    as lab boxes when its π⁰ decay in flight (:mod:`.dm_flight`; the other rows padded to the same count). The
    weights are normalised with the coupling-free s-weights (never ∝ ε², which may be ~1e-300 at Y = 0: their
    square would underflow in the derivative of the ratio)."""
    def one(M):
        s, b = _P.pair_mass_nodes(M, dm.m_chi_MeV, dm.m_V_MeV, dm.alpha_D, dm.dirac, _P.S_NODES)
        return (*_P.pair_energy_boxes(M, s, dm.m_chi_MeV), b)

    lo, hi, b = jax.vmap(one)(jnp.asarray([_MESON_MASS[c] for c in channels]))
    total = jnp.sum(b, axis=-1)  # exactly 0 for a closed channel
    pairs = jnp.stack([_meson_strength(dm, c) for c in channels]) * total
    w = b / jnp.where(total != 0, total, 1.0)[:, None]
    if dm.pi0_rapidity is not None and "pi0" in channels:  # π⁰ in flight: lab boxes
        row, k = channels.index("pi0"), max(dm.pi0_lab_boxes, LAB_BOXES)
        refine = k // LAB_BOXES
        lab = _F.in_flight_boxes(lo[row], hi[row], w[row], dm.m_chi_MeV, dm.pi0_rapidity, dm.pi0_rapidity_weight, k)
        if dm.pi0_legendre is not None and dm.pi0_beam_cos is not None:  # the detector's direction
            if dm.pi0_legendre.shape[0] != dm.pi0_rapidity.shape[0]:
                raise CevnsInputError(f"dark matter: pi0_legendre has {dm.pi0_legendre.shape[0]} rows but pi0_rapidity "
                                      f"{dm.pi0_rapidity.shape[0]} nodes (replace both, e.g. with "
                                      "facilities.pi0_rapidity_nodes and pi0_direction_moments of one nodes_per_bin)")
            coef = _F.legendre_coefficients(dm.pi0_legendre, dm.pi0_beam_cos)
            extra = _F.directional_correction(lab[0], lab[1], dm.m_chi_MeV, lo[row], hi[row], w[row], dm.pi0_rapidity,
                                              dm.pi0_rapidity_weight, coef, rest_nodes=_F.DIRECTION_REST_NODES * refine)
            lab = (lab[0], lab[1], lab[2] + extra)
        lo, hi, w = _pad_boxes(lo, hi, w, k)
        is_open = total[row] != 0  # a closed π⁰ channel keeps its (empty) rest boxes: their edges stay above m_χ
        lo, hi, w = (x.at[row].set(jnp.where(is_open, y, x[row])) for x, y in zip((lo, hi, w), lab))
    yields = jnp.stack([yield_per_proton(dm, c) for c in channels])
    return ChiBoxes(lo, hi, w, pairs, 2.0 * yields * pairs)


def _pad_boxes(lower, upper, weight, k: int):
    """Boxes (…, K) padded to (…, k): copies of the last box's edges with weight 0."""
    extra = k - weight.shape[-1]
    if extra == 0:
        return lower, upper, weight
    edge = lambda x: jnp.concatenate([x, jnp.repeat(x[..., -1:], extra, axis=-1)], axis=-1)  # noqa: E731
    return edge(lower), edge(upper), jnp.concatenate([weight, jnp.zeros(weight.shape[:-1] + (extra,))], axis=-1)


def chi_boxes(dm: DarkMatter, channel: str = "pi0") -> ChiBoxes:
    """The χ boxes of ``channel`` (not for a tabulated spectrum): one per χχ̄ mass node for π⁰ and η
    (:func:`cevns_jax.models.dm_production.pair_mass_nodes`, :func:`~cevns_jax.models.dm_production.pair_energy_boxes`),
    the one on-shell box for π⁻ capture (shape (1,)). Pass it to :func:`energy_box`, :func:`energy_nodes` and :func:`fluence` when
    computed already (each would otherwise rebuild it); :func:`channel_boxes` gives all channels at once."""
    _check_channel(channel)
    if channel in _MESON_MASS:
        both = _meson_boxes(dm, (channel,))
        return jax.tree.map(lambda x: x[0], both)
    lo, hi = on_shell_energy_box(dm, channel)
    pairs = branching_ratio(dm, channel)
    return ChiBoxes(lo[None], hi[None], jnp.ones((1,)), pairs, 2.0 * yield_per_proton(dm, channel) * pairs)


def channel_boxes(dm: DarkMatter) -> ChiBoxes:
    """The χ boxes of every channel of :data:`CHANNELS`, stacked: shapes (3, K) (π⁻ capture's one box padded with
    copies of weight 0), so the channels can be computed in one vectorised program."""
    mesons = _meson_boxes(dm, ("pi0", "eta"))
    capture = chi_boxes(dm, "piminus")
    k = mesons.lower_MeV.shape[-1]
    padded = ChiBoxes(jnp.broadcast_to(capture.lower_MeV, (k,)), jnp.broadcast_to(capture.upper_MeV, (k,)),
                      jnp.zeros(k).at[0].set(1.0), capture.pairs_per_decay, capture.chi_per_proton)
    return jax.tree.map(lambda m, c: jnp.concatenate([m, c[None]]), mesons, padded)


def box_range(boxes: ChiBoxes):
    """(E_break, E₊) [MeV] of a box mixture: E₊ the highest χ energy, E_break the |weight|-weighted mean lower edge
    (the on-shell box's E₋ for a narrow V), where the recoil spectrum has its kink."""
    a = jnp.abs(boxes.weight)  # remainder weights can be negative: a convex mean stays within [min E₋, max E₋]
    total = jnp.sum(a, axis=-1)
    safe = jnp.where(total > 0, total, 1.0)
    return (jnp.where(total > 0, jnp.sum(a * boxes.lower_MeV, axis=-1) / safe, boxes.lower_MeV[..., 0]),
            jnp.max(boxes.upper_MeV, axis=-1))


def energy_box(dm: DarkMatter, channel: str = "pi0", boxes: ChiBoxes | None = None):
    """(E_break, E₊) [MeV] of ``channel``'s χ spectrum (:func:`box_range`; the table's range if tabulated).
    ``boxes``: :func:`chi_boxes` of ``channel`` if already computed."""
    if dm.spectrum_E_MeV is not None:
        return dm.spectrum_E_MeV[0], dm.spectrum_E_MeV[-1]
    return box_range(chi_boxes(dm, channel) if boxes is None else boxes)


def max_recoil(E_MeV, m_MeV, M_MeV):
    """T_max = 2M(E² − m²)/(M² + m² + 2ME) for a massive projectile of total energy E."""
    return 2 * M_MeV * (E_MeV**2 - m_MeV**2) / (M_MeV**2 + m_MeV**2 + 2 * M_MeV * E_MeV)


def min_energy(T_MeV, m_MeV, M_MeV):
    """Smallest total χ energy giving recoil T: [T + √(T² + 2MT + 4m² + 2Tm²/M)]/2."""
    return 0.5 * (T_MeV + jnp.sqrt(T_MeV**2 + 2 * M_MeV * T_MeV + 4 * m_MeV**2 + 2 * T_MeV * m_MeV**2 / M_MeV))


def dsigma_dT(dm: DarkMatter, E_MeV, T_MeV, M_MeV, Z, N, Fp, Fn):
    """χ-nucleus dσ/dT [cm²/MeV] (zero above T_max)."""
    m, mV = dm.m_chi_MeV, dm.m_V_MeV
    lepto = dm.leptophobic
    strength = 4 * jnp.pi * dm.alpha_D * ((1.0 - lepto) * dm.coupling**2 * C.ALPHA_EM * (Z * Fp) ** 2
                                          + lepto * dm.coupling * (Z * Fp + N * Fn) ** 2)
    scalar = 2 * M_MeV * E_MeV**2 - (2 * M_MeV * E_MeV + m**2) * T_MeV
    numerator = scalar + dm.dirac * (M_MeV * T_MeV**2 - M_MeV**2 * T_MeV)  # Dirac: − M²T + MT² more
    p2 = jnp.maximum(E_MeV**2 - m**2, 1e-30)
    value = strength * numerator / (p2 * (2 * M_MeV * T_MeV + mV**2) ** 2) * C.MEV2_TO_CM2
    return jnp.where(T_MeV <= max_recoil(E_MeV, m, M_MeV), jnp.maximum(value, 0.0), 0.0)


def yield_per_proton(dm: DarkMatter, channel: str = "pi0"):
    """Mesons (π⁰, η) or stopped π⁻ per proton of ``channel``."""
    _check_channel(channel)
    return {"pi0": dm.pi0_per_proton, "eta": dm.eta_per_proton, "piminus": dm.piminus_per_proton}.get(channel, 0.0)


def fluence(dm: DarkMatter, protons_on_target, baseline_m, channel: str = "pi0", boxes: ChiBoxes | None = None):
    """χ fluence [cm⁻²] of ``channel``: 2 f_meson BR N_POT/(4πL²) (the table's yield for a tabulated spectrum);
    ``boxes``: the channel's :func:`chi_boxes` (its ``chi_per_proton``) if already computed."""
    L_cm = baseline_m * C.M_TO_CM
    if dm.spectrum_E_MeV is not None:
        per_proton = dm.spectrum_yield * ((1.0 - dm.leptophobic) * dm.coupling**2 + dm.leptophobic * dm.coupling)
    else:
        per_proton = (chi_boxes(dm, channel) if boxes is None else boxes).chi_per_proton
    return per_proton * protons_on_target / (4 * jnp.pi * L_cm**2)


def energy_nodes(dm: DarkMatter, T_MeV, M_MeV, nodes: int = ENERGY_NODES, channel: str = "pi0",
                 boxes: ChiBoxes | None = None):
    """χ energies and weights (the channel's normalised χ spectrum × quadrature) above E_min(T): shapes (…, nodes).

    The mixture of χ boxes (:func:`chi_boxes`: one per χχ̄ mass node of π⁰, η; π⁻ capture's one) is integrated
    exactly against an interpolant of the rest of the integrand at ``nodes`` points on
    [max(E_min(T), min E₋), max E₊] (:func:`cevns_jax.models.dm_production.box_mixture_nodes`); a table:
    ``nodes``-point Gauss–Legendre in the χ's log-momentum on [max(E_min(T), E₀), E_last] times its interpolated
    density (the variable of the box mixture, for the same reason: a slow χ's time of flight). A box of zero
    width, a channel above its kinematic end, has zero weights. ``boxes``: the channel's :func:`chi_boxes`
    if already computed."""
    E_min = min_energy(T_MeV, dm.m_chi_MeV, M_MeV)
    if dm.spectrum_E_MeV is None:
        boxes = chi_boxes(dm, channel) if boxes is None else boxes
        return _P.box_mixture_nodes(boxes.lower_MeV, boxes.upper_MeV, boxes.weight, E_min, nodes, m_MeV=dm.m_chi_MeV)
    gl_x, gl_w = np.polynomial.legendre.leggauss(nodes)
    m, Em, Ep = dm.m_chi_MeV, dm.spectrum_E_MeV[0], dm.spectrum_E_MeV[-1]
    lo = jnp.minimum(jnp.maximum(Em, E_min), Ep)[..., None]
    p2_lo, p2_hi = _P.momentum_range(lo, Ep, m)  # [MeV²]; in ln p, as the box mixture (its docstring)
    half = 0.25 * (jnp.log(p2_hi) - jnp.log(p2_lo))  # half the range of ln p
    p2 = p2_lo * jnp.exp(2 * half * (gl_x + 1.0))
    E = jnp.sqrt(m**2 + p2)
    return E, half * gl_w * p2 / E * jnp.interp(E, dm.spectrum_E_MeV, dm.spectrum_pdf)  # dE = (p²/E) d ln p


def time_of_flight_delay_ns(dm: DarkMatter, E_MeV, baseline_m):
    """L(1/β − 1)/c [ns] of a χ of total energy E relative to light."""
    beta = jnp.sqrt(jnp.maximum(1.0 - dm.m_chi_MeV**2 / E_MeV**2, 1e-12))
    return baseline_m / C.SPEED_OF_LIGHT_M_PER_NS * (1.0 / beta - 1.0)
