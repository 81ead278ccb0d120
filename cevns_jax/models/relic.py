"""Thermal-relic targets for vector-portal light dark matter (docs/physics.md §4.3, §5.7).

The relic target is the Y = ε² α_D (m_χ/m_V)⁴ for which χ freezes out with Ω_χ h² = 0.120 (Planck 2018),
through χχ̄ → V* → e⁺e⁻, μ⁺μ⁻, hadrons (m_V > 2m_χ, so χχ̄ → VV is closed). Everything here is computed,
not tabulated from other relic papers:

* **Cross sections** (s-channel V, couplings g_D to χ and εeQ_f to f, α_D = g_D²/4π), with
  S(s) = Σ_ℓ β_ℓ(1 + 2m_ℓ²/s) + R(√s) the final-state factor (R = σ(e⁺e⁻→hadrons)/σ_pt(e⁺e⁻→μ⁺μ⁻)):

      σ(s) = (4π/3) α ε² α_D S(s) P(s) / |s − m_V² + i√s Γ_V(√s)|²,
      P = s β_χ (complex scalar; Majorana with L ⊃ (g_D/2) V_μ χ̄γ^μγ⁵χ),   P = (s + 2m_χ²)/β_χ (Dirac),

  β_χ = √(1 − 4m_χ²/s). Non-relativistically (v the relative velocity) σv → 16π ε²α α_D m_χ² S/(m_V² − 4m_χ²)²
  (Dirac, s-wave) and (8π/3) ε²α α_D m_χ² v² S/(m_V² − 4m_χ²)² (scalar and Majorana, p-wave); for m_V ≫ m_χ
  both are ∝ Y/m_χ², which is why Y is the relic variable (Izaguirre, Krnjaic, Schuster & Toro, PRL 115 (2015)
  251301). The V width runs with √s (V* → χχ̄ only; its SM part is O(ε²)): √sΓ = α_D s β³/12 (scalar),
  α_D (s + 2m_χ²) β/3 (Dirac), α_D s β³/6 (Majorana); it vanishes at threshold, so at fixed m_V/m_χ the relic Y
  hardly depends on α_D (< 1% for 0.1 ≤ α_D ≤ 1 above 10 MeV; the thermal tail reaching the V pole adds a
  resonant part ∝ Y/α_D, 1.6% at 10 MeV for α_D = 0.05).
* **Pseudo-Dirac** χ₁, χ₂ (m₂ = (1+Δ)m₁, off-diagonal coupling): coannihilation χ₁χ₂ → f f̄ with the Dirac
  σ (mass splitting neglected in the kinematics), σ_eff = 2r/(1+r)² σ₁₂, r = n₂/n₁ in equilibrium
  (Griest & Seckel, PRD 43 (1991) 3191); Δ → 0 is the Dirac line, which is what the usual "pseudo-Dirac"
  target curves show (Δ ≪ 1/x_f); Δ = 0.1 raises Y about fourfold at 10 MeV (χ₂ depleted at freeze-out).
* **R(√s)**: PDG compilation of e⁺e⁻ → hadrons data (``_R_TABLE``, 0.3–3.5 GeV, sampled from the PDG 2020
  R-ratio file as redistributed with GAMBIT, the ρ–ω and φ peaks at 1–2 MeV spacing), linearly interpolated; below 0.3 GeV the
  π⁺π⁻ threshold shape β_π³|F_π|²/4 with a ρ-dominance form factor, scaled to the first data point; constant
  above 3.5 GeV. π⁰γ below the ππ threshold (R ~ 10⁻⁴) is neglected. Accuracy: the data's, a few per cent
  away from the peaks, ~10% for the ω/φ peak shapes (which matter for m_χ ≈ 390 and 510 MeV only).
* **Thermal average**: Gondolo & Gelmini, Nucl. Phys. B 360 (1991) 145, eq. (3.8), Maxwell–Boltzmann.
* **Freeze-out**: the Boltzmann equation for the comoving density Ỹ = n/s,
  dỸ/dx = −√(π/45) M_Pl m_χ g_*^{1/2}(T) ⟨σv⟩_eff (Ỹ² − Ỹ_eq²)/x², g_*^{1/2} = (g_s/√g_ρ)(1 + ⅓ dln g_s/dln T)
  (Gondolo & Gelmini eq. 2.5 / Edsjö & Gondolo); ⟨σv⟩_eff = ⟨σv⟩/2 for χ ≠ χ̄ (n counts both), ⟨σv⟩ for
  Majorana. Ω h² = m_χ s₀ Ỹ_∞/(ρ_c/h²).
* **g_ρ(T), g_s(T)**: ideal gas of γ, e, μ, π, and three ν (instantaneously decoupled at T = 1 MeV, which
  gives N_eff ≈ 3.07) below ~25 MeV; the lattice-QCD + SM table of Borsanyi et al., Nature 539 (2016) 69,
  Supplementary Table S2, above ~40 MeV (monotone cubic in log T), blended in between (they differ by ≤ 0.3%
  at 18 and 40 MeV).

Numerical methods (docs/physics.md §4.3; NumPy/SciPy only, as the line is drawn, never traced by JAX):
``scipy.special.kve`` for the Bessel functions; Gauss–Legendre panels in u = √(x(√s/m_χ − 2)) for ⟨σv⟩ at
``n_thermal`` nodes in ln x, a cubic spline in between; ``PchipInterpolator`` for the lattice table and a
cubic spline of ln g in ln T for g_ρ, g_s and dln g_s/dln T (smooth, so that the adaptive integrator does
not spend its steps on kinks); the Boltzmann equation for W = ln Ỹ by ``solve_ivp(method="BDF")`` with
rtol = ``RTOL`` = 1e-8, atol = rtol/100 (LSODA's stiffness detection failed on this problem); the coupling
by ``scipy.optimize.elementwise.bracket_root``/``find_root`` (vectorised bracketing, like ``brentq``).
Error targets on Y, each tested by tightening its control: integration < 1e-5, thermal nodes and
s-quadrature < 1e-4 each; in all < 1e-3.

Assumptions: kinetic equilibrium of χ with the plasma during freeze-out; no χ asymmetry; standard
cosmology (radiation domination, no entropy injection). Valid for 1 MeV ≤ m_χ ≤ 1 GeV and m_V/m_χ ≥ 2.5.
"""

from __future__ import annotations

import functools

import numpy as np

# scipy is imported inside the functions that use it, so that `import cevns_jax` does not load it (≈ 1 s)
from .. import constants as C
from ..errors import CevnsInputError

__all__ = [
    "PARTICLES", "M_CHI_RANGE_MEV", "X_START", "X_END", "RTOL", "r_ratio", "final_state_factor",
    "mediator_width_times_sqrt_s", "annihilation_cross_section", "thermal_sigma_v", "dof",
    "entropy_density_today_cm3", "omega_h2", "required_sigma_v", "relic_Y", "relic_targets",
]

PARTICLES = ("scalar", "dirac", "majorana", "pseudo_dirac")
M_CHI_RANGE_MEV = (1.0, 1000.0)
"""Masses for which :func:`relic_Y` is validated [MeV]."""

# ------------------------------------------------------------------------------------------------
# Hadronic R ratio
# ------------------------------------------------------------------------------------------------
# (√s [GeV], R) sampled from the PDG 2020 compilation of σ(e⁺e⁻ → hadrons)/σ_pt(e⁺e⁻ → μ⁺μ⁻)
# (rpp2020-hadronicrpp_page1001, duplicate energies removed), every ~10 MeV below the ρ, 1–2 MeV over the
# ρ–ω interference and the φ, ~50 MeV above 1.2 GeV.
_R_TABLE = np.array([
    (0.300, 0.01996), (0.315, 0.03788), (0.325, 0.05454), (0.335, 0.06390), (0.345, 0.08552),
    (0.355, 0.10805), (0.365, 0.12097), (0.375, 0.13737), (0.385, 0.16656), (0.395, 0.17188),
    (0.405, 0.21923), (0.415, 0.22080), (0.425, 0.26089), (0.435, 0.27425), (0.445, 0.31145),
    (0.455, 0.32066), (0.465, 0.35802), (0.475, 0.40007), (0.485, 0.44722), (0.495, 0.47373),
    (0.505, 0.51187), (0.515, 0.56936), (0.525, 0.63063), (0.535, 0.68070), (0.545, 0.72971),
    (0.555, 0.83709), (0.565, 0.90453), (0.575, 0.97465), (0.585, 1.09225), (0.595, 1.22476),
    (0.605, 1.41544), (0.615, 1.52378), (0.625, 1.71641), (0.635, 2.02122), (0.645, 2.24829),
    (0.655, 2.56866), (0.665, 2.93779), (0.675, 3.39357), (0.685, 3.95339), (0.695, 4.54532),
    (0.705, 5.10438), (0.715, 5.83602), (0.725, 6.59411), (0.735, 7.45647), (0.745, 8.13919),
    (0.755, 8.89182), (0.765, 9.23096), (0.770, 9.97575), (0.773, 10.84473), (0.775, 11.99639),
    (0.777, 13.41493), (0.779, 15.98989), (0.78179, 19.40652), (0.78279, 19.38173), (0.784, 17.43640),
    (0.786, 13.12587), (0.789, 11.66384), (0.791, 8.81380), (0.795, 7.66560), (0.800, 6.79721),
    (0.805, 6.23400), (0.810, 5.63535), (0.815, 5.21886), (0.820, 4.88720), (0.831, 4.23669),
    (0.840, 3.69898), (0.850, 3.18187), (0.861, 2.76663), (0.870, 2.50678), (0.880, 2.20818),
    (0.890, 1.96044), (0.901, 1.78479), (0.910, 1.59830), (0.920, 1.45894), (0.930, 1.33252),
    (0.940, 1.23582), (0.950, 1.15936), (0.960, 1.07714), (0.970, 1.02009), (0.980, 0.99961),
    (0.990, 0.97810), (0.995, 1.06203), (1.000, 1.32228), (1.005, 1.58424), (1.0085, 2.08681),
    (1.010, 2.49886), (1.0125, 4.63591), (1.015, 9.34554), (1.0165, 17.25093), (1.0175, 28.33008),
    (1.0185, 44.12274), (1.0195, 50.21603), (1.020, 45.32414), (1.0205, 39.20156), (1.0215, 24.59312),
    (1.0225, 15.54325), (1.0235, 11.30355), (1.025, 7.70305), (1.0275, 4.47690), (1.030, 3.35737),
    (1.035, 2.10816), (1.040, 1.62830), (1.050, 1.25089), (1.060, 1.07190), (1.070, 0.99037),
    (1.080, 0.98193), (1.090, 0.93094), (1.100, 0.91898), (1.120, 0.86535), (1.140, 0.88320),
    (1.160, 0.88878), (1.180, 0.90032), (1.200, 0.92671), (1.250, 1.02120), (1.300, 1.18211),
    (1.350, 1.34056), (1.400, 1.58810), (1.450, 1.87040), (1.500, 2.09644), (1.550, 2.19381),
    (1.600, 2.38024), (1.650, 2.56011), (1.700, 2.45453), (1.750, 2.29808), (1.800, 2.19352),
    (1.850, 2.06290), (1.900, 2.04352), (1.950, 2.11716), (2.000, 2.18000), (2.5426, 2.22200),
    (3.000, 2.21000), (3.4996, 2.22400),
])
_R_SQRT_S_MEV = _R_TABLE[:, 0] * 1e3
_R_VALUES = _R_TABLE[:, 1]
_M_RHO_MEV = 775.26
"""ρ(770) mass [MeV], PDG 2024 (e⁺e⁻ average); only shapes R between the ππ threshold and 0.3 GeV."""


def _pipi_threshold_shape(s):
    """β_π³|F_π|²/4 with F_π = 1/(1 − s/m_ρ²) (ρ dominance), zero below 2m_π."""
    beta2 = np.clip(1.0 - 4.0 * C.M_PION_CHARGED**2 / s, 0.0, None)
    return beta2**1.5 / 4.0 / (1.0 - s / _M_RHO_MEV**2) ** 2


def r_ratio(sqrt_s_MeV):
    """Hadronic R(√s) (PDG data; ππ threshold shape below 0.3 GeV; constant above 3.5 GeV)."""
    E = np.asarray(sqrt_s_MeV, dtype=np.float64)
    R = np.interp(E, _R_SQRT_S_MEV, _R_VALUES)
    low = E < _R_SQRT_S_MEV[0]
    if np.any(low):
        scale = _R_VALUES[0] / _pipi_threshold_shape(_R_SQRT_S_MEV[0] ** 2)
        R = np.where(low, 0.0, R)
        R[low] = scale * _pipi_threshold_shape(E[low] ** 2)
    return R


def final_state_factor(s_MeV2):
    """S(s) = Σ_{ℓ=e,μ} β_ℓ(1 + 2m_ℓ²/s) + R(√s): σ(V* → SM)/σ(V* → massless μ⁺μ⁻)."""
    s = np.asarray(s_MeV2, dtype=np.float64)
    total = r_ratio(np.sqrt(s))
    for m in (C.M_ELECTRON, C.M_MUON):
        r = m**2 / s
        total = total + np.sqrt(np.clip(1.0 - 4.0 * r, 0.0, None)) * (1.0 + 2.0 * r)
    return total


# ------------------------------------------------------------------------------------------------
# Annihilation cross sections
# ------------------------------------------------------------------------------------------------
def _check_particle(particle):
    if particle not in PARTICLES:
        raise CevnsInputError(f"relic particle must be one of {PARTICLES}, got {particle!r}")


def mediator_width_times_sqrt_s(s_MeV2, m_chi_MeV, alpha_D, particle):
    """Im of the V self-energy, √s Γ(V* → χχ̄) at virtuality s [MeV²] (zero below 4m_χ²)."""
    s = np.asarray(s_MeV2, dtype=np.float64)
    beta2 = np.clip(1.0 - 4.0 * m_chi_MeV**2 / s, 0.0, None)
    beta = np.sqrt(beta2)
    if particle == "scalar":
        return alpha_D * s * beta * beta2 / 12.0
    if particle == "majorana":
        return alpha_D * s * beta * beta2 / 6.0
    return alpha_D * (s + 2.0 * m_chi_MeV**2) * beta / 3.0


def annihilation_cross_section(s_MeV2, m_chi_MeV, m_V_MeV, epsilon, alpha_D, particle="scalar", *,
                               running_width=True):
    """σ(χχ̄ → V* → e⁺e⁻, μ⁺μ⁻, hadrons) [MeV⁻²] at centre-of-mass energy² s (s > 4m_χ²).

    For ``"pseudo_dirac"`` this is σ(χ₁χ₂ → f f̄) in the degenerate limit (= Dirac). ``running_width=False``
    drops the V width (pure real propagator), e.g. to compare with QED textbook cross sections.
    """
    _check_particle(particle)
    s = np.asarray(s_MeV2, dtype=np.float64)
    beta = np.sqrt(np.clip(1.0 - 4.0 * m_chi_MeV**2 / s, 1e-300, None))
    if particle in ("scalar", "majorana"):
        P = s * beta
    else:
        P = (s + 2.0 * m_chi_MeV**2) / beta
    imag = mediator_width_times_sqrt_s(s, m_chi_MeV, alpha_D, particle) if running_width else 0.0
    denominator = (s - m_V_MeV**2) ** 2 + imag**2
    return 4.0 * np.pi / 3.0 * C.ALPHA_EM * epsilon**2 * alpha_D * final_state_factor(s) * P / denominator


# ------------------------------------------------------------------------------------------------
# Thermal average (Gondolo & Gelmini 1991)
# ------------------------------------------------------------------------------------------------
@functools.cache
def _u_quadrature(n_panels, order=8, u_max=8.0):
    """Composite Gauss–Legendre nodes and weights on u ∈ [0, u_max] (z = u², e^{−64} truncation)."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(0.0, u_max, n_panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    u = (edges[:-1, None] + half * (x + 1.0)).ravel()
    return u, (half * w).ravel()


def thermal_sigma_v(x, m_chi_MeV, m_V_MeV, epsilon, alpha_D, particle="scalar", *, n_panels=64):
    """⟨σ v_Møl⟩ [cm³/s] at x = m_χ/T (Gondolo–Gelmini, Maxwell–Boltzmann), broadcasting x against m_χ.

    ⟨σv⟩ = [1/(4m² K̂₂(x)²)] ∫₀^∞ σ(s) s (z/x)(4 + z/x) K̂₁(2x + z) e^{−z} dz,  K̂_ν(z) = e^z K_ν(z)
    (``scipy.special.kve``), with √s = m(2 + z/x) (GG eq. 3.8 with the e^{−2x} factors cancelled), evaluated
    over z = u² by 8-point Gauss–Legendre on ``n_panels`` equal panels of u ∈ [0, 8]. Masses are processed in
    blocks to bound memory.
    """
    from scipy.special import kve
    if not (isinstance(n_panels, (int, np.integer)) and n_panels >= 1):
        raise CevnsInputError(f"thermal_sigma_v: n_panels must be a positive integer, got {n_panels!r}")
    u, w = _u_quadrature(int(n_panels))
    x, m, mV = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, m_chi_MeV, m_V_MeV)))
    shape = x.shape
    x_unique, which = np.unique(x.ravel(), return_inverse=True)
    z = u**2
    # x-only factors, once per distinct x: K̂₁(2x + z) e^{−z} 2u w / K̂₂(x)²
    weights = np.concatenate([
        kve(1.0, 2.0 * xb[:, None] + z) * np.exp(-z) * 2.0 * u * w / kve(2.0, xb)[:, None] ** 2
        for xb in np.array_split(x_unique, max(1, x_unique.size * u.size // 200_000))])
    m, mV, which = m.ravel(), mV.ravel(), which.ravel()
    out = np.empty(m.size)
    block = max(1, 2_000_000 // u.size)
    for start in range(0, m.size, block):  # bounds memory only; each block is vectorised
        sl = slice(start, start + block)
        xb, mb = x_unique[which[sl], None], m[sl, None]
        zx = z / xb
        s = mb**2 * (2.0 + zx) ** 2
        sigma = annihilation_cross_section(s, mb, mV[sl, None], epsilon, alpha_D, particle)
        out[sl] = np.sum(sigma * s * zx * (4.0 + zx) * weights[which[sl]], axis=-1) / (4.0 * mb[:, 0] ** 2)
    return out.reshape(shape) * C.SIGMA_V_MEV2_TO_CM3_PER_S


# ------------------------------------------------------------------------------------------------
# Relativistic degrees of freedom g_ρ(T), g_s(T)
# ------------------------------------------------------------------------------------------------
# Borsanyi et al. 2016, Table S2: log10(T/MeV), g_ρ, g_ρ/g_s.
_BORSANYI_S2 = np.array([
    (0.00, 10.71, 1.00228), (0.50, 10.74, 1.00029), (1.00, 10.76, 1.00048), (1.25, 11.09, 1.00505),
    (1.60, 13.68, 1.02159), (2.00, 17.61, 1.02324), (2.15, 24.07, 1.05423), (2.20, 29.84, 1.07578),
    (2.40, 47.83, 1.06118), (2.50, 53.04, 1.04690), (3.00, 73.48, 1.01778), (4.00, 83.10, 1.00123),
    (4.30, 85.56, 1.00389), (4.60, 91.97, 1.00887), (5.00, 102.17, 1.00750), (5.45, 104.98, 1.00023),
])
_NU_DECOUPLING_MEV = 1.0
_BLEND_LOG10_T = (1.4, 1.6)
"""Ideal gas below 10^1.4 MeV, Borsanyi table above 10^1.6 MeV, linear blend in log T in between."""


def _ideal_gas(z, fermion, nodes):
    """(ρ/T⁴, s/T³) of one bosonic or fermionic degree of freedom of mass m = zT; ``nodes``: GL in p/T ≤ 50."""
    x, w = nodes
    p, wp = 25.0 * (x + 1.0), 25.0 * w
    E = np.sqrt(p**2 + np.asarray(z, dtype=np.float64)[..., None] ** 2)
    with np.errstate(over="ignore"):
        occupation = 1.0 / (np.exp(E) + 1.0) if fermion else 1.0 / np.expm1(np.maximum(E, 1e-300))
    rho = np.sum(p**2 * E * occupation * wp, axis=-1) / (2 * np.pi**2)
    pressure = np.sum(p**4 / E * occupation * wp, axis=-1) / (6 * np.pi**2)
    return rho, rho + pressure


def _plasma_dof(T_MeV):
    """(g_ρ, g_s) of γ, e±, μ±, π±, π⁰ at temperature T [MeV] (neutrinos excluded)."""
    g_rho = g_s = 0.0
    nodes = np.polynomial.legendre.leggauss(128)
    for g, m, fermion in ((2, 0.0, False), (4, C.M_ELECTRON, True), (4, C.M_MUON, True),
                          (2, C.M_PION_CHARGED, False), (1, C.M_PION_NEUTRAL, False)):
        rho, s = _ideal_gas(m / T_MeV, fermion, nodes)
        g_rho, g_s = g_rho + g * rho, g_s + g * s
    return g_rho * 30 / np.pi**2, g_s * 45 / (2 * np.pi**2)


def _dof_table(log10_T):
    from scipy.interpolate import PchipInterpolator
    T = 10.0**log10_T
    g_rho_p, g_s_p = _plasma_dof(T)
    g_s_dec = _plasma_dof(np.array(_NU_DECOUPLING_MEV))[1]
    tnu = np.where(T >= _NU_DECOUPLING_MEV, 1.0, np.cbrt(g_s_p / g_s_dec))  # T_ν/T from e±γ entropy
    ideal_rho = g_rho_p + 7 / 8 * 6 * tnu**4
    ideal_s = g_s_p + 7 / 8 * 6 * tnu**3
    lt, gb, ratio = _BORSANYI_S2.T
    lattice = PchipInterpolator(lt, np.stack([gb, gb / ratio], axis=-1))(np.clip(log10_T, lt[0], lt[-1]))
    lo, hi = _BLEND_LOG10_T
    weight = np.clip((log10_T - lo) / (hi - lo), 0.0, 1.0)
    return (1 - weight) * ideal_rho + weight * lattice[..., 0], (1 - weight) * ideal_s + weight * lattice[..., 1]


_LOG10_T_GRID = np.linspace(-7.0, 5.45, 623)
"""0.1 eV … 280 GeV in steps of 0.02 in log10(T/MeV); g is constant below and not needed above."""


@functools.cache
def _dof_spline():
    """Cubic spline of (ln g_ρ, ln g_s) in ln T on ``_LOG10_T_GRID``, built on first use (≈ 0.1 s). Twice
    differentiable, so that the freeze-out equation's right-hand side is smooth for the adaptive integrator."""
    from scipy.interpolate import CubicSpline
    return CubicSpline(_LOG10_T_GRID * np.log(10.0), np.log(np.stack(_dof_table(_LOG10_T_GRID), axis=-1)))


def _log_dof(ln_T_MeV):
    """(ln g_ρ, ln g_s, dln g_s/dln T) at ln T (clamped to the table; g is constant below it)."""
    spline = _dof_spline()
    ln_T = np.clip(ln_T_MeV, spline.x[0], spline.x[-1])
    values = spline(ln_T)
    return values[..., 0], values[..., 1], spline(ln_T, 1)[..., 1]


def dof(T_MeV):
    """(g_ρ, g_s, g_*^{1/2}) at plasma temperature T [MeV]; g_*^{1/2} = (g_s/√g_ρ)(1 + ⅓ dln g_s/dln T)."""
    ln_g_rho, ln_g_s, slope = _log_dof(np.log(np.asarray(T_MeV, dtype=np.float64)))
    g_s = np.exp(ln_g_s)
    return np.exp(ln_g_rho), g_s, g_s * np.exp(-0.5 * ln_g_rho) * (1.0 + slope / 3.0)


def entropy_density_today_cm3():
    """s₀ = (2π²/45) g_s(T₀) T₀³ [cm⁻³] with this module's g_s (3.94 today, for ν decoupling at 1 MeV)."""
    T0 = C.T_CMB_K * C.BOLTZMANN_MEV_PER_K
    return 2 * np.pi**2 / 45 * float(dof(T0)[1]) * (T0 / C.HBARC_MEV_CM) ** 3


def omega_h2(m_chi_MeV, yield_inf):
    """Ω h² = m_χ s₀ Ỹ_∞/(ρ_c/h²)."""
    return m_chi_MeV * entropy_density_today_cm3() * yield_inf / C.RHO_CRIT_OVER_H2_MEV_PER_CM3


# ------------------------------------------------------------------------------------------------
# Boltzmann equation and the coupling for the observed abundance
# ------------------------------------------------------------------------------------------------
X_START, X_END = 2.0, 2.0e5
"""Integration range in x = m/T (χ in equilibrium at X_START; X_END: T ≤ 5 keV for m_χ ≤ 1 GeV)."""
RTOL = 1e-8
"""Default relative tolerance of the freeze-out integration (BDF); its absolute tolerance on W = ln Ỹ is
RTOL/100 (an absolute error in W is a relative error in Ỹ). Target for Y: 1e-5 (docs/physics.md §4.3)."""
_ROOT_TOL = 1e-6
"""The coupling is accepted when |ln Ω − ln Ω_target| or the bracket width in ln k is below this."""


def _particle_factors(particle, splitting, x):
    """(ln(⟨σv⟩_eff/⟨σv⟩), ln g_χ) at x: ⟨σv⟩/2 for χ ≠ χ̄ (n counts both), coannihilation for pseudo-Dirac."""
    from scipy.special import kve
    if particle == "majorana":
        return 0.0, np.log(2.0)
    if particle != "pseudo_dirac":
        return np.log(0.5), np.log(2.0 if particle == "scalar" else 4.0)
    # r = n₂/n₁ in equilibrium = (1+Δ)² K₂((1+Δ)x)/K₂(x); σ_eff = 2r/(1+r)² σ₁₂, g = 2(1 + r)
    ln_r = 2 * np.log1p(splitting) + np.log(kve(2.0, (1 + splitting) * x) / kve(2.0, x)) - splitting * x
    ln_1pr = np.logaddexp(0.0, ln_r)
    return np.log(2.0) + ln_r - 2 * ln_1pr, np.log(2.0) + ln_1pr


def _ln_x_nodes(n_thermal):
    """Nodes in ln x on which the rates are handed to the integrator: 16 per interval of the thermal average."""
    return np.linspace(np.log(X_START), np.log(X_END), 16 * (n_thermal - 1) + 1)


def _rates(m_chi_MeV, ln_sigma_v, factors, ln_x, rows):
    """(ln A per unit coupling, W_eq = ln Ỹ_eq), each (n_x, n_rows), at ln x (n_x,) for the masses m_χ[rows]."""
    from scipy.special import kve
    t, m = ln_x[:, None], m_chi_MeV[rows][None, :]
    x = np.exp(t)
    ln_g_rho, ln_g_s, slope = _log_dof(np.log(m) - t)
    ln_f, ln_g = factors(x)
    ln_A = (np.log(np.sqrt(np.pi / 45) * C.M_PLANCK_MEV * m / C.SIGMA_V_MEV2_TO_CM3_PER_S) + ln_g_s
            - 0.5 * ln_g_rho + np.log1p(slope / 3.0) - t + ln_f + ln_sigma_v(ln_x)[:, rows])
    W_eq = np.log(45.0 / (4.0 * np.pi**4)) + ln_g + 2.0 * t + np.log(kve(2.0, x)) - x - ln_g_s
    return ln_A, W_eq


def _log_omega(m_chi_MeV, ln_sigma_v, factors, ln_k, rows, *, ln_x_nodes, rtol, block=32):
    """ln Ω h² (n,) for couplings exp(ln_k) of the masses m_χ[rows], solved ``block`` rows at a time (the
    dense Jacobian's cost grows as block³, the shared step sequence with the spread of freeze-out points)."""
    return np.concatenate([_log_omega_block(m_chi_MeV, ln_sigma_v, factors, ln_k[i:i + block], rows[i:i + block],
                                            ln_x_nodes=ln_x_nodes, rtol=rtol) for i in range(0, len(rows), block)])


def _log_omega_block(m_chi_MeV, ln_sigma_v, factors, ln_k, rows, *, ln_x_nodes, rtol):
    """ln Ω h² (n,) of the masses m_χ[rows] with couplings k = exp(ln_k) (n,), from one solve of the n
    independent equations dW/dln x = A(e^{2W_eq − W} − e^W), W = ln Ỹ, W_eq = ln Ỹ_eq, where
    A = k √(π/45) M_Pl m g_*^{1/2} ⟨σv⟩_eff/x.

    ``ln_sigma_v(ln x)``: ln⟨σv⟩ per unit coupling [cm³/s] of every mass; ``factors(x)``: (ln(⟨σv⟩_eff/⟨σv⟩),
    ln g_χ). ln A and W_eq are sampled on ``ln_x_nodes`` and handed to the integrator as one cubic spline
    (≈ 3× faster than evaluating the pieces at every call; with 16 nodes per thermal node, ln Ω moves by
    < 1e-7 against 64). The integration starts, at W = W_eq, where the relaxation rate λ = 2AỸ_eq per unit
    ln x first drops below Λ = max(1e4, 1e-4/rtol) (for every row): Ỹ tracks Ỹ_eq to ~x/Λ until then, and
    a start error decays as exp(−∫λ dln x) ≈ exp(−Λ/x) (Y moves by ≤ 3e-6 against starting at x = 2, at
    a third of the cost). Beyond X_END, A ∝ x^{−n} is integrated analytically.
    """
    from scipy.integrate import solve_ivp
    from scipy.interpolate import CubicSpline
    ln_A, W_eq = _rates(m_chi_MeV, ln_sigma_v, factors, ln_x_nodes, rows)
    ln_A = ln_A + ln_k
    below = np.log(2.0) + ln_A + W_eq < np.log(max(1e4, 1e-4 / rtol))
    start = max(0, int(np.min(np.where(below.any(axis=0), below.argmax(axis=0), 0))) - 1)
    t = ln_x_nodes[start:]
    rates = CubicSpline(t, np.stack([ln_A[start:], 2.0 * W_eq[start:]], axis=-1))

    def terms(t, W):  # (A Ỹ, A Ỹ_eq²/Ỹ); the exponents are capped only to keep rejected trial steps finite
        ln_A, two_W_eq = rates(t).T
        return np.exp(np.minimum(ln_A + W, 700.0)), np.exp(np.minimum(ln_A + two_W_eq - W, 700.0))

    def fun(t, W):
        annihilation, production = terms(t, W)
        return production - annihilation

    def jac(t, W):  # diagonal: the equations are independent
        annihilation, production = terms(t, W)
        return np.diag(-(annihilation + production))

    # a rejected trial step can overflow inside BDF's error estimate (inf − inf); the step is then retried
    # smaller, and a failed integration is caught below (seen in a loaded test worker, not reproducible alone)
    with np.errstate(invalid="ignore", over="ignore"):
        sol = solve_ivp(fun, (t[0], t[-1]), W_eq[start], method="BDF", rtol=rtol, atol=0.01 * rtol, jac=jac)
    if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):  # pragma: no cover
        raise RuntimeError(f"relic freeze-out integration failed: {sol.message}")
    n = np.maximum((ln_A[-2] - ln_A[-1]) / (t[-1] - t[-2]), 0.5)  # A ∝ x^{−n}: ∫_{x_end}^∞ A dln x = A_end/n
    return np.log(omega_h2(m_chi_MeV[rows], 1.0 / (np.exp(-sol.y[:, -1]) + np.exp(ln_A[-1]) / n)))


def _solve_coupling(log_omega, ln_guess, omega_target):
    """ln k (n_m,) with ``log_omega(ln k, rows)`` = ln ``omega_target``, for all masses at once.

    ln Ω is smooth, monotone and nearly linear in ln k (Ω ∝ k^{−s}, s = 1 − (n+1)/x_f ≈ 0.85–1), so a step of
    1.25·(ln Ω − ln Ω_target) from the guess crosses the root; scipy's vectorised ``bracket_root`` widens the
    bracket where it does not and ``find_root`` (Chandrupatla's bracketing method, the array counterpart of
    ``brentq``) then converges, each iteration one vectorised Boltzmann solve of the unconverged masses.
    Evaluations are cached so that bracket end points are not solved twice.
    """
    from scipy.optimize.elementwise import bracket_root, find_root
    cache = {}
    target = np.log(omega_target)

    def f(ln_k, rows):
        ln_k, rows = np.asarray(ln_k, dtype=np.float64), np.asarray(rows).astype(int)
        keys = list(zip(rows.ravel().tolist(), ln_k.ravel().tolist()))
        todo = [i for i, key in enumerate(keys) if key not in cache]
        if todo:
            values = log_omega(ln_k.ravel()[todo], rows.ravel()[todo]) - target
            cache.update(zip((keys[i] for i in todo), values.tolist()))
        return np.array([cache[key] for key in keys]).reshape(ln_k.shape)

    rows = np.arange(ln_guess.size)
    f0 = f(ln_guess, rows)
    ln_k1 = ln_guess + 1.25 * f0 + np.where(f0 >= 0, 1e-3, -1e-3)
    bracket = bracket_root(f, np.minimum(ln_guess, ln_k1), np.maximum(ln_guess, ln_k1), args=(rows,))
    root = find_root(f, bracket.bracket, args=(rows,), tolerances={"xatol": _ROOT_TOL, "xrtol": 0.0, "fatol": _ROOT_TOL})
    if not (np.all(bracket.success) and np.all(root.success)):  # pragma: no cover
        raise RuntimeError("relic coupling did not converge")
    return root.x


def required_sigma_v(m_chi_MeV, g_chi=2.0, self_conjugate=True, omega=C.OMEGA_DM_H2_PLANCK2018, *, rtol=RTOL):
    """Constant (s-wave) ⟨σv⟩ [cm³/s] giving Ω h² = ``omega`` for a WIMP of mass m_χ [MeV] (array).

    ``self_conjugate``: Majorana-like (⟨σv⟩_eff = ⟨σv⟩); otherwise χ ≠ χ̄ and ⟨σv⟩_eff = ⟨σv⟩/2 with
    ``g_chi`` counting both. The convention of Steigman, Dasgupta & Beacom, PRD 86 (2012) 023506. ``rtol``:
    freeze-out integration tolerance (see :data:`RTOL`).
    """
    m = np.asarray(m_chi_MeV, dtype=np.float64).ravel()
    if m.size == 0 or np.any(~np.isfinite(m)) or np.any(m <= 0) or np.any(m > 2e5):
        raise CevnsInputError(f"required_sigma_v: m_chi_MeV must lie in (0, 2e5] MeV (g_* table), got {m_chi_MeV!r}")
    factors = (0.0 if self_conjugate else np.log(0.5), np.log(g_chi))
    log_omega = functools.partial(_log_omega, m, lambda t: np.zeros((np.size(t), m.size)), lambda x: factors,
                                  ln_x_nodes=_ln_x_nodes(240), rtol=rtol)
    ln_k = _solve_coupling(log_omega, np.full(m.size, np.log(3e-26)), omega)
    return np.exp(ln_k).reshape(np.shape(m_chi_MeV))[()]


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def relic_Y(m_chi_MeV, particle="scalar", alpha_D=0.5, mass_ratio=3.0, *, splitting=0.0,
            omega=C.OMEGA_DM_H2_PLANCK2018, rtol=RTOL, n_thermal=240, n_panels=64):
    """Thermal-relic target Y = ε² α_D (m_χ/m_V)⁴ for Ω_χ h² = ``omega`` (Planck 2018: 0.120).

    ``m_chi_MeV`` [MeV] (array in, array out, 1 MeV – 1 GeV); ``particle``: ``"scalar"`` (complex scalar,
    p-wave), ``"dirac"`` (s-wave; also the Δ → 0 pseudo-Dirac), ``"majorana"`` (axial coupling
    (g_D/2)V_μχ̄γ^μγ⁵χ, p-wave), ``"pseudo_dirac"`` (coannihilation, ``splitting`` Δ = (m₂ − m₁)/m₁, 0 → Dirac);
    ``alpha_D`` dark coupling; ``mass_ratio`` m_V/m_χ (≥ 2.5). Numerical controls (defaults converged, see
    docs/physics.md §4.3 and the tests): ``rtol`` of the freeze-out integration, ``n_thermal`` nodes in ln x of
    the thermal average, ``n_panels`` Gauss–Legendre panels of its s-integral.

    Example (snowmass figure): ``relic_Y(np.geomspace(1, 300, 200), "scalar")``.
    """
    from scipy.interpolate import CubicSpline
    _check_particle(particle)
    m = np.asarray(m_chi_MeV, dtype=np.float64).ravel()
    lo, hi = M_CHI_RANGE_MEV
    if m.size == 0 or np.any(~np.isfinite(m)) or np.any(m < lo) or np.any(m > hi):
        raise CevnsInputError(f"relic_Y: m_chi_MeV must lie in [{lo}, {hi}] MeV, got {m_chi_MeV!r}")
    if not (np.isscalar(alpha_D) and 0 < alpha_D <= 4 * np.pi):
        raise CevnsInputError(f"relic_Y: alpha_D must be a number in (0, 4π], got {alpha_D!r}")
    if not (np.isscalar(mass_ratio) and 2.5 <= mass_ratio <= 100):
        raise CevnsInputError(f"relic_Y: mass_ratio = m_V/m_chi must lie in [2.5, 100], got {mass_ratio!r}")
    if particle == "pseudo_dirac" and not (np.isscalar(splitting) and 0 <= splitting <= 0.5):
        raise CevnsInputError(f"relic_Y: pseudo-Dirac splitting (m2 - m1)/m1 must lie in [0, 0.5], got {splitting!r}")
    if not (np.isscalar(omega) and omega > 0):
        raise CevnsInputError(f"relic_Y: omega must be positive, got {omega!r}")
    if not (np.isscalar(rtol) and 1e-12 <= rtol <= 1e-4):
        raise CevnsInputError(f"relic_Y: rtol must lie in [1e-12, 1e-4], got {rtol!r}")
    if not (isinstance(n_thermal, (int, np.integer)) and n_thermal >= 16):
        raise CevnsInputError(f"relic_Y: n_thermal must be an integer >= 16, got {n_thermal!r}")
    # ⟨σv⟩ per unit ε² on n_thermal nodes in ln x, a cubic spline in between (one output per mass)
    ln_x = np.linspace(np.log(X_START), np.log(X_END), n_thermal)
    sigma_v = thermal_sigma_v(np.exp(ln_x)[None, :], m[:, None], mass_ratio * m[:, None], 1.0, alpha_D, particle,
                              n_panels=n_panels)
    ln_sigma_v = CubicSpline(ln_x, np.log(sigma_v).T)
    factors = functools.partial(_particle_factors, particle, splitting)
    ln_guess = np.log(3e-26) - ln_sigma_v(np.log(20.0)) - factors(20.0)[0]  # ⟨σv⟩_eff(x = 20) = 3e-26 cm³/s
    log_omega = functools.partial(_log_omega, m, ln_sigma_v, factors, ln_x_nodes=_ln_x_nodes(n_thermal), rtol=rtol)
    Y = np.exp(_solve_coupling(log_omega, ln_guess, omega)) * alpha_D / mass_ratio**4
    return Y.reshape(np.shape(m_chi_MeV))[()]


def relic_targets(m_chi_MeV, particles=("scalar", "majorana", "dirac"), **kwargs):
    """{particle: relic_Y(m_chi_MeV, particle, **kwargs)} for plotting thermal-target lines (α_D = 0.5, m_V = 3m_χ
    by default), e.g. ``relic_targets(np.geomspace(1, 300, 200))``."""
    return {particle: relic_Y(m_chi_MeV, particle, **kwargs) for particle in particles}
