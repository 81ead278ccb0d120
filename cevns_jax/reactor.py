"""Reactor ν̄_e source: fission spectra, fission rate, core geometry (docs/physics.md §1.6).

The emitted spectrum per second is (fissions per second) × Σ_i f_i S_i(E) with the fission fractions f_i of
²³⁵U, ²³⁸U, ²³⁹Pu, ²⁴¹Pu (Σ f_i = 1) and S_i the ν̄ per fission per MeV of isotope i:

* above 2 MeV, the Huber–Mueller model: exp(Σ_{k=0}^{5} a_k E^k) with Huber's coefficients for ²³⁵U, ²³⁹Pu,
  ²⁴¹Pu (P. Huber, PRC 84, 024617 (2011), conversion of the ILL β spectra) and Mueller's for ²³⁸U
  (Th. A. Mueller et al., PRC 83, 054615 (2011), summation); fitted on 2–8 MeV, extrapolated to 10 MeV
  (the content above 8 MeV is < 2e-3 of the ν̄ above 2 MeV);
* below 2 MeV, the Vogel–Engel parametrisation exp(b₀ + b₁E + b₂E²) (P. Vogel and J. Engel, PRD 39, 3378
  (1989)). At 2 MeV it is 0–9% off Huber–Mueller (the spectrum jumps there: a break of the energy quadrature) and
  gives 3.5–4.1 ν̄/fission below 2 MeV, ≈ 20% less than summation calculations that include all
  low-energy β branches (total ν̄/fission ≈ 5.4 vs 6.1 for ²³⁵U, Kopeikin, Phys. At. Nucl. 75, 143 (2012)).
  Only recoils below T_max(2 MeV) (0.12 keVnr on Ge, 0.5 keVnr on O) see it.

The fission rate is P_th × load factor / Σ f_i E_i with the energy released per fission E_i
(X. B. Ma et al., PRC 88, 014605 (2013)); the fluence at the detector is that rate × live time × Σ f_i N_i
(N_i = ∫ S_i dE) × ⟨1/(4πr²)⟩ over the core: 1/(4πL²) for a point core, or the average over a uniform
cylinder (radius R, height H) seen from distance L > R in its mid-plane (:func:`mean_inverse_square_m2`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, static_field
from .spectra import gauss_legendre, integrate_spectra

__all__ = ["ISOTOPES", "HUBER_MUELLER", "VOGEL_ENGEL", "ENERGY_PER_FISSION_MEV", "ENERGY_PER_FISSION_ERROR_MEV",
           "REACTOR_BREAKS_MEV", "HUBER_MUELLER_MIN_MEV", "REACTOR_FLUX_PRIOR", "CORE_GEOMETRIES", "CORE_NODES",
           "isotope_spectra_per_fission", "antineutrinos_per_fission", "ReactorSource", "make_reactor",
           "fission_rate_per_s", "antineutrinos_per_second", "mean_inverse_square_m2"]

ISOTOPES = ("U235", "U238", "Pu239", "Pu241")
"""Fissioning isotopes, in the order of every fission-fraction axis."""

HUBER_MUELLER = np.array([
    (4.367, -4.577, 2.100, -0.5294, 0.06186, -0.002777),    # ²³⁵U, Huber 2011
    (0.4833, 0.1927, -0.1283, -0.006762, 0.002233, -0.0001536),  # ²³⁸U, Mueller 2011
    (4.757, -5.392, 2.563, -0.6596, 0.07820, -0.003536),    # ²³⁹Pu, Huber 2011
    (2.990, -2.882, 1.278, -0.3343, 0.03905, -0.001754),    # ²⁴¹Pu, Huber 2011
])
"""a_0…a_5 of S_i(E) = exp(Σ a_k E^k) [ν̄/MeV/fission, E in MeV], rows in :data:`ISOTOPES` order:
Huber, PRC 84, 024617 (2011) (²³⁵U, ²³⁹Pu, ²⁴¹Pu) and Mueller et al., PRC 83, 054615 (2011) (²³⁸U)."""

VOGEL_ENGEL = np.array([
    (0.870, -0.160, -0.0910),   # ²³⁵U
    (0.976, -0.162, -0.0790),   # ²³⁸U
    (0.896, -0.239, -0.0981),   # ²³⁹Pu
    (0.793, -0.080, -0.1085),   # ²⁴¹Pu
])
"""b_0…b_2 of S_i(E) = exp(b₀ + b₁E + b₂E²) below 2 MeV: Vogel & Engel, PRD 39, 3378 (1989)."""

ENERGY_PER_FISSION_MEV = np.array([202.36, 205.99, 211.12, 214.26])
"""Energy released per fission [MeV] (thermal-reactor conditions, ν̄ energy excluded): Ma et al.,
PRC 88, 014605 (2013), Table; :data:`ISOTOPES` order."""
ENERGY_PER_FISSION_ERROR_MEV = np.array([0.26, 0.52, 0.34, 0.33])
"""Their 1σ uncertainties [MeV] (Ma et al. 2013)."""

HUBER_MUELLER_MIN_MEV = 2.0
"""Lowest energy of the Huber–Mueller fits; below it the Vogel–Engel extension."""
REACTOR_BREAKS_MEV = (0.0, HUBER_MUELLER_MIN_MEV, 8.0, 10.0)
"""Energy panels of the reactor spectrum [MeV]: Vogel–Engel, Huber–Mueller (fitted), its extrapolation."""
REACTOR_FLUX_PRIOR = 0.025
"""Default prior on the reactor ν̄ normalisation (the ``flux`` nuisance): the ≈2.4% normalisation
uncertainty of the Huber–Mueller model (Huber 2011; Mueller et al. 2011; Mention et al., PRD 83, 073006
(2011)). The measured ν̄ yields are ≈ 5% lower (the reactor anomaly); a preset may widen it."""
CORE_GEOMETRIES = ("point", "cylinder")
CORE_NODES = 24
"""Gauss–Legendre nodes in ρ and in z for the cylinder average (error < 1e-7 for L ≥ 2R; tested against
the nested adaptive integral in ``tests/test_sources.py``)."""


def isotope_spectra_per_fission(E_MeV):
    """S_i(E) [ν̄/MeV/fission] of the four isotopes at energies E (any shape); shape (4, *E.shape), zero
    outside [0, 10] MeV."""
    E = jnp.asarray(E_MeV)[None]
    hm = jnp.polyval(jnp.asarray(HUBER_MUELLER[:, ::-1].T).reshape((6, 4) + (1,) * (E.ndim - 1)), E)
    ve = jnp.polyval(jnp.asarray(VOGEL_ENGEL[:, ::-1].T).reshape((3, 4) + (1,) * (E.ndim - 1)), E)
    inside = (E >= REACTOR_BREAKS_MEV[0]) & (E <= REACTOR_BREAKS_MEV[-1])
    low = E < HUBER_MUELLER_MIN_MEV
    # exponents are clipped before exp so that the unused branch stays finite (finite gradients)
    exponent = jnp.where(low, jnp.clip(ve, -700.0, 50.0), jnp.clip(hm, -700.0, 50.0))
    return jnp.where(inside, jnp.exp(exponent), 0.0)


def antineutrinos_per_fission(refine: int = 1):
    """N_i = ∫ S_i dE [ν̄/fission] of the four isotopes over 0–10 MeV; shape (4,)."""
    return integrate_spectra(isotope_spectra_per_fission, REACTOR_BREAKS_MEV, refine=refine)


@pytree_dataclass
class ReactorSource:
    """A reactor core as a steady ν̄_e source (docs/physics.md §1.6).

    Attributes:
        thermal_power_MW: thermal power P_th [MW].
        load_factor: fraction of the live time at full power (0–1).
        live_days: detector live time [days] (reactor on).
        fission_fractions: f_i of :data:`ISOTOPES` (sum 1) (4,).
        energy_per_fission_MeV: E_i [MeV] (4,).
        core_radius_m, core_height_m: cylinder dimensions [m] (``core="cylinder"``); unused for a point core.
        core: ``"point"`` or ``"cylinder"`` (static).
        name: reactor name (static): the flux nuisance is shared per reactor.
    """

    thermal_power_MW: jnp.ndarray
    load_factor: jnp.ndarray
    live_days: jnp.ndarray
    fission_fractions: jnp.ndarray
    energy_per_fission_MeV: jnp.ndarray
    core_radius_m: jnp.ndarray
    core_height_m: jnp.ndarray
    core: str = static_field(default="point")
    name: str = static_field(default="reactor")

    components = ("reactor_nuebar",)
    flavours = (0,)
    antineutrino = (True,)
    steady = True
    energy_breaks_MeV = REACTOR_BREAKS_MEV
    recoil_energies_MeV = (HUBER_MUELLER_MIN_MEV, REACTOR_BREAKS_MEV[-1])

    def spectrum_per_MeV(self, E_MeV):
        """Unit-normalised ν̄_e spectrum Σ f_i S_i / Σ f_i N_i [1/MeV]; shape (1, *E.shape)."""
        f = self.fission_fractions.reshape((4,) + (1,) * jnp.ndim(E_MeV))
        mix = jnp.sum(f * isotope_spectra_per_fission(E_MeV), axis=0)
        return (mix / jnp.sum(self.fission_fractions * antineutrinos_per_fission()))[None]

    def fluence_cm2(self, baseline_m):
        """ν̄_e fluence over the live time at ``baseline_m`` [cm⁻²]; shape (1,)."""
        emitted = antineutrinos_per_second(self) * self.live_days * 86400.0
        return (emitted * mean_inverse_square_m2(self, baseline_m) / (4.0 * jnp.pi * C.M_TO_CM**2))[None]


def make_reactor(thermal_power_MW, live_days, fission_fractions, *, load_factor=1.0, energy_per_fission_MeV=None,
                 core: str = "point", core_radius_m=0.0, core_height_m=0.0, name: str = "reactor") -> ReactorSource:
    """A :class:`ReactorSource` (values checked by the TOML compiler, :mod:`cevns_jax.experiment.sections`)."""
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    e = ENERGY_PER_FISSION_MEV if energy_per_fission_MeV is None else energy_per_fission_MeV
    return ReactorSource(f(thermal_power_MW), f(load_factor), f(live_days), f(fission_fractions), f(e),
                         f(core_radius_m), f(core_height_m), core=core, name=name)


def fission_rate_per_s(source: ReactorSource):
    """Fissions per second P_th × load factor / Σ f_i E_i."""
    joule_per_fission = jnp.sum(source.fission_fractions * source.energy_per_fission_MeV) * 1e6 * C.ELEMENTARY_CHARGE_C
    return source.thermal_power_MW * 1e6 * source.load_factor / joule_per_fission


def antineutrinos_per_second(source: ReactorSource):
    """ν̄_e emitted per second: fission rate × Σ f_i N_i."""
    return fission_rate_per_s(source) * jnp.sum(source.fission_fractions * antineutrinos_per_fission())


def mean_inverse_square_m2(source: ReactorSource, baseline_m):
    """⟨1/r²⟩ [1/m²] over the core seen from ``baseline_m`` (from the core centre, in its mid-plane).

    Point core: 1/L². Uniform cylinder of radius R and height H (L > R): the azimuthal average is closed,
    ∫dφ/2π (a − b cos φ)⁻¹ = (a² − b²)^(−1/2) with a = L² + ρ² + z², b = 2Lρ, and ρ², z are integrated with
    :data:`CORE_NODES`-point Gauss–Legendre (ρ² uniform on [0, R²], z on [−H/2, H/2])."""
    L2 = baseline_m**2
    if source.core == "point":
        return 1.0 / L2
    x, w = gauss_legendre(CORE_NODES)
    u = 0.5 * (x + 1.0)  # on [0, 1]
    rho2 = (source.core_radius_m**2 * u)[:, None]
    z = (source.core_height_m * (u - 0.5))[None, :]
    a = L2 + rho2 + z**2
    inv = 1.0 / jnp.sqrt(a**2 - 4.0 * L2 * rho2)
    return jnp.sum(0.25 * w[:, None] * w[None, :] * inv)
