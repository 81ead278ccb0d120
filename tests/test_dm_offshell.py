"""Dark matter from P → γχχ̄ through an on- or off-shell vector (π⁰, η at rest; docs/physics.md §4.3).

Independent references: the narrow-width limit BR(P → γV) = 2ε²(1 − m_V²/M²)³ BR(P → γγ) with PDG values typed
here; the contact limit m_V ≫ M, its m_χ → 0 closed form ∫₀¹(1 − x)³x dx = 1/20 and scipy quadrature at finite
m_χ; the χ energy range of a three-body decay at rest (m_χ ≤ E ≤ M/2); halving the s-quadrature; central
finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from cevns_jax import rates
from cevns_jax.errors import CevnsInputError
from cevns_jax.models import darkmatter as dmod
from cevns_jax.models import dark_matter, dm_production

M_PI0, M_ETA = 134.9768, 547.862  # PDG 2024 [MeV]
BR = {"pi0": 0.98823, "eta": 0.3936}  # PDG 2024 BR(P → γγ)
MASS = {"pi0": M_PI0, "eta": M_ETA}


@pytest.mark.parametrize("channel,m_chi,m_V", [("pi0", 10.0, 30.0), ("pi0", 30.0, 100.0), ("eta", 100.0, 400.0)])
@pytest.mark.parametrize("particle", ["scalar", "dirac"])
def test_narrow_width_limit_is_the_on_shell_rate(channel, m_chi, m_V, particle):
    """α_D → 0: BR(P → γχχ̄) → BR(P → γV) BR(V → χχ̄) = 2ε²(1 − m_V²/M²)³ BR(P→γγ); the off-shell part is O(Γ_V/m_V)."""
    eps = 1e-3
    on_shell = 2 * eps**2 * (1 - (m_V / MASS[channel]) ** 2) ** 3 * BR[channel]
    for alpha_D, rel in ((1e-6, 1e-5), (1e-9, 1e-8)):
        dm = dark_matter(m_chi, m_V, eps, alpha_D, particle=particle)
        assert float(dmod.pair_branching_ratio(dm, channel)) == pytest.approx(on_shell, rel=rel)
        assert float(dmod.branching_ratio(dm, channel)) == pytest.approx(on_shell, rel=1e-12)


def test_contact_limit_for_a_heavy_mediator():
    """m_V ≫ M: dBR/ds → 2ε² BR(P→γγ) (1 − s/M²)³ α_D s β³/(12π m_V⁴) (scalar χ); for m_χ → 0 the integral is
    α_D M⁴/(240π m_V⁴) × 2ε² BR(P→γγ); at finite m_χ compared with scipy; ∝ m_V⁻⁴."""
    eps, aD, mV = 1e-3, 0.5, 1e5
    for channel in ("pi0", "eta"):
        M = MASS[channel]
        dm = dark_matter(1e-3, mV, eps, aD)
        closed = 2 * eps**2 * BR[channel] * aD * M**4 / (240 * np.pi * mV**4)
        assert float(dmod.pair_branching_ratio(dm, channel)) == pytest.approx(closed, rel=1e-5)
    M, m = M_ETA, 120.0
    f = lambda s: (1 - s / M**2) ** 3 * s * (1 - 4 * m**2 / s) ** 1.5  # noqa: E731
    ref = 2 * eps**2 * BR["eta"] * aD / (12 * np.pi * mV**4) * quad(f, 4 * m**2, M**2, epsrel=1e-12)[0]
    assert float(dmod.pair_branching_ratio(dark_matter(m, mV, eps, aD), "eta")) == pytest.approx(ref, rel=1e-5)
    ratio = dmod.pair_branching_ratio(dark_matter(m, 2e4, eps, aD), "eta") / dmod.pair_branching_ratio(
        dark_matter(m, 4e4, eps, aD), "eta")
    assert float(ratio) == pytest.approx(16.0, rel=1e-3)


def test_chi_spectrum_is_normalised_and_inside_the_three_body_range():
    """The χ energy pdf integrates to 1 and lies in [m_χ, M/2] (three-body kinematics at rest)."""
    for channel, m_chi, m_V in (("pi0", 10.0, 30.0), ("eta", 200.0, 600.0), ("eta", 50.0, 2000.0)):
        dm = dark_matter(m_chi, m_V, 1e-3)
        E, w = dmod.energy_nodes(dm, jnp.array([1e-9]), jnp.array([1e6]), channel=channel)
        assert float(jnp.sum(w)) == pytest.approx(1.0, rel=1e-6)
        live = np.asarray(w)[0] != 0
        assert np.all(np.asarray(E)[0][live] >= m_chi * (1 - 1e-12))
        assert np.all(np.asarray(E)[0][live] <= MASS[channel] / 2 * (1 + 1e-12))


@pytest.mark.parametrize("m_chi,m_V", [(10.0, 30.0), (50.0, 130.0), (200.0, 600.0), (150.0, 500.0)])
def test_halving_the_s_quadrature(monkeypatch, m_chi, m_V):
    """Recoil spectrum ∝ BR Σ w σ(E, T) on Cs: S_NODES → S_NODES/2 changes its integral over T by < 1e-3 (the
    stated target for counts) and each recoil holding > 5% of the peak by < 2e-2 (box edges crossing E_min(T) are
    kinks in s)."""
    dm = dark_matter(m_chi, m_V, 1e-3, 0.5)
    M, Z, N = 123800.0, 55.0, 78.0
    T = jnp.geomspace(1e-3, 0.3, 200)[None, :]

    def rate(channel):
        E, w = dmod.energy_nodes(dm, T, M, channel=channel)
        sig = dmod.dsigma_dT(dm, E, T[..., None], M, Z, N, 1.0, 1.0)
        return np.asarray(dmod.pair_branching_ratio(dm, channel) * jnp.sum(w * sig, axis=-1))[0]

    channels = ("pi0", "eta") if 2 * m_chi < M_PI0 else ("eta",)
    full = {c: rate(c) for c in channels}
    monkeypatch.setattr(dm_production, "S_NODES", dm_production.S_NODES // 2)
    for c in channels:
        half = rate(c)
        assert full[c][0] > 0
        assert np.trapezoid(half, T[0]) == pytest.approx(np.trapezoid(full[c], T[0]), rel=1e-3)
        big = full[c] > 0.05 * full[c].max()  # the falling edge near T_max moves more
        np.testing.assert_allclose(half[big], full[c][big], rtol=2e-2)


def test_product_integration_of_a_box_mixture():
    """box_mixture_nodes against adaptive scipy quadrature box by box: overlapping boxes, a negative weight, a
    zero-width box of weight 0, the lower limit below, inside and above the boxes; h with a pole near E = 0.8."""
    lo, hi = np.array([1.0, 2.0, 1.5, 2.2, 3.0]), np.array([3.0, 2.5, 4.0, 2.3, 3.0])
    w = np.array([0.5, 0.3, 0.3, -0.1, 0.0])
    h = lambda E: np.exp(-E) / (E**2 - 0.8**2)  # noqa: E731
    for E_low in (0.9, 1.7, 2.25, 3.5, 4.5):
        E, W = dm_production.box_mixture_nodes(jnp.array(lo), jnp.array(hi), jnp.array(w), jnp.array(E_low), 32,
                                                 m_MeV=0.8)
        ref = sum(wk / (b - a) * quad(h, max(a, E_low), max(b, E_low), epsabs=0, epsrel=1e-13)[0]
                  for a, b, wk in zip(lo, hi, w) if b > a)
        assert float(jnp.sum(W * h(E))) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_box_mixture_derivatives_match_finite_differences():
    """The box-mixture nodes' derivatives (one unit-tangent pass in E_low, the boxes' and the mass's own pass)
    equal central differences: a direction moving every argument, and a Jacobian in E_low taken over several
    directions at once (as ``jacfwd`` over nuisances that move the recoil nodes)."""
    lower, upper = jnp.array([20.0, 30.0, 25.0, 40.0]), jnp.array([60.0, 50.0, 90.0, 45.0])
    weight, E_low = jnp.array([0.3, 0.2, 0.4, 0.1]), jnp.array([10.0, 28.0, 33.0, 47.0, 55.0])
    mass = jnp.array(15.0)

    @jax.jit
    def flat(lo, up, w, m, e):
        return jnp.concatenate([jnp.ravel(a) for a in dm_production.box_mixture_nodes(lo, up, w, e, 16, m_MeV=m)])

    args = (lower, upper, weight, mass, E_low)
    direction = (jnp.array([0.3, -0.2, 0.5, 0.1]), jnp.array([0.4, 0.1, -0.3, 0.2]),
                 jnp.array([0.01, -0.02, 0.03, 0.01]), jnp.array(0.7), jnp.array([0.5, -0.4, 0.2, 0.3, -0.1]))
    h = 1e-5
    # central differences: the moving direction, then each E_low alone (one batch of 2 + 2 × 5 points)
    steps = [direction] + [tuple(jnp.zeros_like(a) for a in args[:4]) + (jnp.eye(E_low.size)[k],) for k in range(E_low.size)]
    batch = [tuple(jnp.stack([a + sign * h * d[i] for d in steps for sign in (1.0, -1.0)]) for i, a in enumerate(args))]
    values = jax.vmap(flat)(*batch[0])
    fd = (values[0::2] - values[1::2]) / (2 * h)
    tangent = jax.jit(lambda *a: jax.jvp(flat, a, direction)[1])(*args)
    np.testing.assert_allclose(tangent, fd[0], rtol=1e-6, atol=1e-8 * float(jnp.max(jnp.abs(tangent))))
    J = jax.jit(jax.jacfwd(lambda e: flat(lower, upper, weight, mass, e)))(E_low)  # (outputs, 5): five directions at once
    np.testing.assert_allclose(J.T, fd[1:], rtol=1e-6, atol=1e-8 * float(jnp.max(jnp.abs(J))))


@pytest.mark.parametrize("m_chi,m_V", [(10.0, 30.0), (50.0, 130.0), (150.0, 500.0)])
def test_halving_the_energy_nodes(m_chi, m_V):
    """χ-energy nodes 32 → 16 (product integration in ln p, every channel) change the recoil spectrum on Cs by
    < 1e-8 integrated over T and at each recoil holding > 1e-3 of the peak (measured ≤ 2e-9; the E map gave 4e-4):
    the 32 nodes are for the time of flight (tests/test_accuracy.py)."""
    dm = dark_matter(m_chi, m_V, 1e-3, 0.5)
    T = jnp.geomspace(1e-3, 0.3, 200)[None, :]
    for channel in dmod.CHANNELS:
        rate = {}
        for n in (16, 32):
            E, w = dmod.energy_nodes(dm, T, 123800.0, n, channel=channel)
            rate[n] = np.asarray(jnp.sum(w * dmod.dsigma_dT(dm, E, T[..., None], 123800.0, 55.0, 78.0, 1.0, 1.0), -1))[0]
        if rate[32].max() == 0:
            continue
        assert np.trapezoid(rate[16], T[0]) == pytest.approx(np.trapezoid(rate[32], T[0]), rel=1e-8)
        big = rate[32] > 1e-3 * rate[32].max()
        np.testing.assert_allclose(rate[16][big], rate[32][big], rtol=1e-8)


BATCH = 6
"""Points per call of the one compiled program (the reach and gradient tests each fill one batch)."""


@pytest.fixture(scope="module")
def offshell_program(presets, batched_jvp):
    """One compiled program for the module: per-channel total counts on COH-CryoCsI-10kg and their derivative
    along a direction, vectorised over a batch of :data:`BATCH` points (rows of (m_χ, m_V, ε, α_D) and of
    directions)."""
    exp = presets["COH-CryoCsI-10kg"]

    def totals(x):
        per = rates.dark_matter_channel_counts(exp, dark_matter(x[0], x[1], x[2], x[3]))
        return jnp.stack([jnp.sum(per[c]) for c in dmod.CHANNELS])

    return batched_jvp(totals, BATCH)


def _mixed_direction(x):
    """A step of 1e-4 relative in every parameter, signs mixed (a NaN or ∞ in any partial derivative shows)."""
    return np.array([0.6, -0.8, 0.5, 0.3]) * 1e-4 * np.asarray(x)


def test_reach_beyond_the_on_shell_end(offshell_program):
    """m_V = 3m_χ above m_η: η → γχχ̄ off shell keeps counts finite and > 0 up to m_χ = 270 MeV; π⁰ and π⁻ give
    exactly 0 there; m_χ ≥ m_η/2 is outside the domain. At m_χ = 17, 70 MeV counts and derivatives are finite
    (once NaN: a recoil break below m_χ from negative remainder weights)."""
    points = [(m, 3 * m, 1e-4, 0.5) for m in (190.0, 230.0, 270.0, 17.0, 70.0)]
    N, dN = offshell_program(points, [_mixed_direction(x) for x in points])
    assert np.all(np.isfinite(N)) and np.all(np.isfinite(dN))
    for k in range(3):
        assert N[k, 1] > 0 and N[k, 0] == 0.0 and N[k, 2] == 0.0, points[k]
    with pytest.raises(CevnsInputError):
        dark_matter(M_ETA / 2 + 0.01, 3 * M_ETA)


def test_gradients_match_finite_differences(offshell_program):
    """The derivative of N_c along a direction mixing (m_χ, m_V, ε, α_D) against a central difference, at an
    off-shell η point (m_V > m_η) and at an on-shell π⁰ point with π⁻ closed."""
    rows = []
    for m_chi, m_V in ((200.0, 600.0), (60.0, 140.0)):
        x0 = np.array([m_chi, m_V, 1e-4, 0.5])
        v = _mixed_direction(x0)
        rows += [x0, x0 + v, x0 - v]
    N, dN = offshell_program(rows, [_mixed_direction(rows[0])] * 3 + [_mixed_direction(rows[3])] * 3)
    for i in (0, 3):
        fd = (N[i + 1] - N[i + 2]) / 2
        for c in range(3):
            assert dN[i, c] == pytest.approx(fd[c], rel=1e-4, abs=1e-12 * N[i].max()), (i, c)
        assert N[i].max() > 0
