"""Dark matter from every production channel: π⁰ → γV, η → γV, π⁻p → nV (docs/physics.md §4.3).

Independent references: PDG branching ratios and masses typed here, the 129.4 MeV photon of π⁻p → nγ at rest,
two-body kinematics by energy–momentum conservation, Lorentz boosts, central finite differences, and the
exact log-normal scaling of a channel by its own nuisance.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import rates
from cevns_jax.facilities import FACILITIES, eta_to_pi0
from cevns_jax.models import darkmatter as dmod
from cevns_jax.models import dark_matter
from cevns_jax.nuisances import declaration, nuisance_priors
from cevns_jax.stats.morphing import channel_log_derivatives

M_PI0, M_ETA, M_PIM, M_P, M_N = 134.9768, 547.862, 139.57039, 938.27208816, 939.56542052  # PDG 2024 [MeV]


def test_eta_to_pi0_branching_ratio_at_small_mediator_mass():
    """BR(η→γV)/BR(π⁰→γV) → BR(η→γγ)/BR(π⁰→γγ) = 0.3936/0.98823 (PDG) as m_V → 0; each follows (1 − m_V²/M²)³."""
    dm = dark_matter(1e-3, 3e-3, epsilon=1e-3, eta_per_proton=0.0)
    ratio = float(dmod.branching_ratio(dm, "eta") / dmod.branching_ratio(dm, "pi0"))
    assert ratio == pytest.approx(0.3936 / 0.98823, rel=1e-8)  # phase factors differ by 3(m_V/m_π0)² = 1.5e-9
    dm = dark_matter(50.0, 300.0, epsilon=1e-3)
    assert float(dmod.branching_ratio(dm, "pi0")) == 0.0  # above m_π0: only η (and nothing from π⁻ capture)
    assert float(dmod.branching_ratio(dm, "piminus")) < 1e-150  # p_V floored at 1e-150 MeV (finite gradients)
    assert float(dmod.branching_ratio(dm, "eta")) == pytest.approx(2e-6 * (1 - (300 / M_ETA) ** 2) ** 3 * 0.3936, rel=1e-12)
    lepto = dark_matter(10.0, 30.0, alpha_B=1e-6)  # η and π⁻ channels are dark-photon only
    assert float(dmod.branching_ratio(lepto, "eta")) == 0.0 and float(dmod.branching_ratio(lepto, "piminus")) == 0.0


def test_piminus_capture_gives_a_monochromatic_mediator():
    """π⁻p → nγ at rest gives a 129.4 MeV photon (the classic line); a massive V takes energy E_V with
    E_V + √(m_n² + p_V²) = m_π⁻ + m_p and E_V² − p_V² = m_V² (checked independently here)."""
    E0, p0 = (float(x) for x in dmod.mediator_kinematics(dark_matter(1e-4, 3e-4, epsilon=1e-3), "piminus"))
    assert E0 == pytest.approx(129.4, abs=0.05) and p0 == pytest.approx(E0, rel=1e-6)
    for mV in (30.0, 100.0, 137.0):
        E, p = (float(x) for x in dmod.mediator_kinematics(dark_matter(mV / 3, mV, epsilon=1e-3), "piminus"))
        assert E + np.sqrt(M_N**2 + p**2) == pytest.approx(M_PIM + M_P, rel=1e-12)
        assert E**2 - p**2 == pytest.approx(mV**2, rel=1e-9)
    # rate: ε² R_γ p_V/p_γ per stopped π⁻ (R_γ = 2%), vanishing at the kinematic end m_V = m_π⁻ + m_p − m_n
    dm = dark_matter(20.0, 60.0, epsilon=1e-3)
    p = float(dmod.mediator_kinematics(dm, "piminus")[1])
    assert float(dmod.branching_ratio(dm, "piminus")) == pytest.approx(1e-6 * 0.02 * p / E0, rel=1e-6)
    end = M_PIM + M_P - M_N
    assert float(dmod.branching_ratio(dark_matter(end / 3.0 * 0.999, end * 0.999, epsilon=1e-3), "piminus")) < 1e-8


@pytest.mark.parametrize("channel,M", [("pi0", M_PI0), ("eta", M_ETA)])
def test_chi_energy_box_from_a_lorentz_boost(channel, M):
    """E± = γ(E* ± βp*) with γ = E_V/m_V, β = p_V/E_V of the V from meson → γV at rest."""
    m_chi, mV = (15.0, 70.0) if channel == "pi0" else (120.0, 400.0)
    EV = (M**2 + mV**2) / (2 * M)
    gamma, beta = EV / mV, np.sqrt(1 - (mV / EV) ** 2)
    Es, ps = mV / 2, np.sqrt(mV**2 / 4 - m_chi**2)
    lo, hi = (float(x) for x in dmod.on_shell_energy_box(dark_matter(m_chi, mV, epsilon=1e-3), channel))
    assert lo == pytest.approx(gamma * (Es - beta * ps), rel=1e-12)
    assert hi == pytest.approx(gamma * (Es + beta * ps), rel=1e-12)


def test_facility_yields_and_nuisances(presets):
    """Every facility states η and stopped-π⁻ yields with a source; the π⁻/π⁰ ratio is the GEANT 18324/52935
    of the SNS; η/π⁰ grows with the beam energy; ``eta``/``piminus`` are declared, log-normal, per station."""
    for f in FACILITIES.values():
        assert f.eta_per_proton > 0 and f.piminus_per_proton > 0, f.name
        assert len(f.eta_source) > 40 and len(f.piminus_source) > 40, f.name
        assert f.piminus_per_proton / f.pi0_per_proton == pytest.approx(18324 / 52935, rel=1e-3)
    assert eta_to_pi0(0.8) < eta_to_pi0(1.0) < eta_to_pi0(1.3) < eta_to_pi0(2.0) == eta_to_pi0(3.0)
    for name in ("eta", "piminus"):
        d = declaration(name)
        assert d.form == "lognormal" and d.scope == "station" and not d.shape
    priors = nuisance_priors(presets["COH-Ar-750"], dark_matter=True)
    assert priors["eta"] == FACILITIES["SNS-PPU"].eta_rel_uncertainty and priors["piminus"] == 0.5


def test_channel_morph_scales_one_channel_exactly():
    """Morph.at: shape nuisances linear, a channel nuisance an exact e^ν on that channel's part of each bin."""
    a, b = jnp.array([2.0, 1.0, 0.0]), jnp.array([1.0, 3.0, 0.0])

    def parts(nu):
        return {"pi0": a * (1 + nu["q"]), "eta": b * (1 + 2 * nu["q"])}

    m = channel_log_derivatives(parts, ("q",), {"eta": "eta"})
    np.testing.assert_allclose(m.nominal, a + b)
    np.testing.assert_allclose(m.logd[0], [(2 + 2) / 3, (1 + 6) / 4, 0.0])
    np.testing.assert_allclose(m.at({"eta": 0.3}), a + b * np.exp(0.3), rtol=1e-14)
    np.testing.assert_allclose(m.scaled(2.0).at({"eta": -0.2}), 2 * (a + b * np.exp(-0.2)), rtol=1e-14)


BATCH = 9
"""Points per call of the module's one compiled program (each test fills one batch)."""


@pytest.fixture(scope="module")
def channel_program(presets, batched_jvp):
    """One compiled program for the module: per-channel total counts (and their sum through predicted_counts) in
    (m_χ, ε, ν_η, ν_π⁻) at m_V = 3m_χ on COH-CryoCsI-10kg, and their derivative along a direction; vectorised over
    a batch of :data:`BATCH` points and directions."""
    from cevns_jax.nuisances import predicted_counts
    from cevns_jax.models import NewPhysics

    exp = presets["COH-CryoCsI-10kg"]

    def totals(x):
        m_chi, eps, nu_eta, nu_pim = x[0], x[1], x[2], x[3]
        dm = dark_matter(m_chi, 3.0 * m_chi, epsilon=eps)
        own = dmod.at_source(dm, exp.source)  # the facility's yields, then scaled by the channel nuisances
        per = rates.dark_matter_channel_counts(exp, dmod.scale_channels(own, {"eta": nu_eta, "piminus": nu_pim}))
        full = predicted_counts(exp, {"eta": nu_eta, "piminus": nu_pim}, model=NewPhysics(dark_matter=dm))["dark_matter"]
        return jnp.stack([jnp.sum(per[c]) for c in dmod.CHANNELS] + [jnp.sum(full)])

    return batched_jvp(totals, BATCH)


def _x(m_chi, eps=1e-4, nu_eta=0.0, nu_pim=0.0):
    return np.array([m_chi, eps, nu_eta, nu_pim])


MIXED = np.array([0.3, 1e-5, 0.2, -0.1])
"""A direction moving every input (a NaN or ∞ in any partial derivative shows in the directional derivative)."""


def test_channel_counts_null_point_reach_and_nuisances(channel_program):
    """ε = 0: no counts, finite derivatives; the signal stays > 0 up to m_V < m_η (η only above m_π0); each channel
    nuisance scales its channel alone by e^ν, and predicted_counts sums the channels."""
    points = [_x(10.0, 0.0), _x(10.0), _x(150.0), _x(182.0), _x(10.0, 1e-4, 0.4, -0.3)]
    N, dN = channel_program(points, [MIXED] * len(points))
    zero, low, high, edge, shifted = N
    assert np.all(zero == 0.0) and np.all(np.isfinite(dN))
    assert np.all(low[:3] > 0) and low[3] == pytest.approx(low[:3].sum(), rel=1e-12)
    assert high[0] == 0.0 and high[2] == 0.0 and high[1] > 0  # m_V = 450 MeV: between m_π0 and m_η
    assert edge[1] > 0  # m_V = 546 MeV < m_η = 547.862 MeV
    np.testing.assert_allclose(shifted[:3], low[:3] * np.exp([0.0, 0.4, -0.3]), rtol=1e-12)
    assert shifted[3] == pytest.approx(shifted[:3].sum(), rel=1e-12)


@pytest.mark.slow  # a finite-difference (second-method) check: the slow tier (CI runs it)
def test_channel_counts_gradient_matches_finite_differences(channel_program):
    """∂N_c/∂m_χ (m_V = 3m_χ moves every kinematic end) against central differences at m_χ = 10, 40, 100 MeV, with
    ∂N_c/∂ε = 4N_c/ε (N ∝ ε⁴ per channel) in the same directional derivative."""
    points, directions = [], []
    for m_chi in (10.0, 40.0, 100.0):
        h = 1e-5 * m_chi
        points += [_x(m_chi), _x(m_chi + h), _x(m_chi - h)]
        directions += [np.array([1.0, 1e-4, 0.0, 0.0])] * 3  # ∂/∂m_χ + 1e-4 ∂/∂ε
    N, dN = channel_program(points, directions)
    for i, m_chi in zip((0, 3, 6), (10.0, 40.0, 100.0)):
        fd_m = (N[i + 1] - N[i + 2]) / (2e-5 * m_chi)
        for c in range(4):
            if N[i, c] > 0:
                along_m = dN[i, c] - 4 * N[i, c]  # the ε part: 1e-4 × 4N/ε at ε = 1e-4
                assert along_m == pytest.approx(fd_m[c], rel=2e-4, abs=1e-9 * N[i, c] / m_chi), (c, m_chi)


@pytest.mark.slow  # a finite-difference (second-method) check: the slow tier (CI runs it)
def test_sharp_response_derivative_on_fixed_recoil_nodes(presets):
    """COH-Ge-mini (a resolution sharper than a recoil panel): its dark-matter recoil nodes stay put when the
    quenching moves (the bin-edge breakpoints carry no derivative, docs/physics.md §4.3), and the derivative in
    quenching_k still equals central differences of the counts, to 3e-4 of the largest log-derivative in bins
    holding > 1e-3 of the largest (measured 1.5e-4 with the π⁰ in flight, whose 33 lab boxes put kinks in the recoil
    spectrum between panel edges, so the difference quotient sees the quadrature error move with the bin-edge
    breakpoints; 8e-6 with the π⁰ at rest)."""
    import jax

    from cevns_jax.nuisances import apply_nuisances

    exp, dm = presets["COH-Ge-mini"], dark_matter(21.0, 63.0, 1e-4, 0.5)

    def counts(k):
        return rates.dark_matter_counts(apply_nuisances(exp, {"quenching_k": k}), dm)

    h = 1e-4
    N, dN = jax.jit(jax.vmap(lambda k: jax.jvp(counts, (k,), (1.0,))))(jnp.array([0.0, h, -h]))
    big = N[0] > 1e-3 * N[0].max()
    logd_fd, logd = ((N[1] - N[2]) / (2 * h))[big] / N[0][big], dN[0][big] / N[0][big]
    assert np.max(np.abs(logd)) > 1.0  # the quenching matters here
    np.testing.assert_allclose(logd, logd_fd, atol=3e-4 * np.max(np.abs(logd)))
