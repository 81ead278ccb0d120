"""The dark-matter flux at a detector's angle to the proton beam (docs/physics.md §4.3, "The detector's angle to
the beam"; cevns_jax/models/dm_flight.py::directional_correction).

Independent references: a second derivation in the meson rest frame (χ emitted at cos θ* uniform, boosted, weighted
by the Legendre series of the π⁰ directions at the χ–π⁰ angle, integrated by SciPy), the identity that the average
over detector directions is the direction-averaged flux, a Monte Carlo of the decay chain with fixed seed, central
finite differences in the angle, and the halving of the quadratures.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import legendre
from scipy import integrate

from cevns_jax import load_experiment, rates
from cevns_jax import replace
from cevns_jax.errors import CevnsInputError
from cevns_jax.facilities import LEGENDRE_ORDERS, pi0_direction_moments
from cevns_jax.models import dark_matter
from cevns_jax.models.dm_flight import (DIRECTION_ENERGY_NODES, DIRECTION_REST_NODES, directional_correction,
                                        in_flight_boxes, legendre_coefficients)

M_CHI = 10.0
LO, HI, W = np.array([11.0, 30.0]), np.array([40.0, 60.0]), np.array([0.7, 0.3])  # rest boxes [MeV]
Y, YW = np.array([0.4, 1.3]), np.array([0.55, 0.45])  # two π⁰ rapidities
MOMENTS = np.zeros((2, LEGENDRE_ORDERS))
MOMENTS[0, :2] = [0.1, 0.05]  # ⟨P_1⟩, ⟨P_2⟩ of each rapidity's π⁰ directions (a band-limited distribution)
MOMENTS[1, :2] = [0.6, 0.3]


@functools.partial(jax.jit, static_argnames=("energy_nodes", "rest_nodes"))
def _boxes(cos_detector, energy_nodes=DIRECTION_ENERGY_NODES, rest_nodes=DIRECTION_REST_NODES):
    lo, hi, mass = in_flight_boxes(LO, HI, W, M_CHI, Y, YW, 33)
    extra = directional_correction(lo, hi, M_CHI, LO, HI, W, Y, YW, legendre_coefficients(MOMENTS, cos_detector),
                                   energy_nodes, rest_nodes)
    return lo, hi, mass, extra


def _rest_frame_cdf(E, cos_detector):
    """Fraction of χ (relative to the direction average) with lab energy ≤ E seen at the detector direction: in the
    meson frame χ of energy x are emitted at cos θ* = u uniform; in the lab, s = γ(x + βp*u) and cos ψ = γ(p*u + βx)/p_s
    (the χ–π⁰ angle); the weight is 1 + Σ_l (2l + 1) ⟨P_l⟩ P_l(cos θ_d) P_l(cos ψ) (addition theorem)."""
    total = 0.0
    for y, wy, mom in zip(Y, YW, MOMENTS):
        g, b = np.cosh(y), np.tanh(y)
        coef = [(2 * l + 1) * mom[l - 1] * legendre.legval(cos_detector, np.eye(l + 1)[l]) for l in (1, 2)]

        def inner(u, x):
            ps = np.sqrt(x * x - M_CHI**2)
            s = g * (x + b * ps * u)
            cos_psi = g * (ps * u + b * x) / np.sqrt(s * s - M_CHI**2)
            return 0.5 * (1 + coef[0] * cos_psi + coef[1] * 0.5 * (3 * cos_psi**2 - 1))

        for a, bb, wk in zip(LO, HI, W):
            def u_max(x):
                ps = np.sqrt(x * x - M_CHI**2)
                return float(np.clip((E / g - x) / (b * ps), -1.0, 1.0))

            with warnings.catch_warnings():  # quadpack's round-off notice near a χ at rest in the lab (|cos ψ| ≤ 1)
                warnings.simplefilter("ignore", integrate.IntegrationWarning)
                value, _ = integrate.dblquad(inner, a, bb, -1.0, u_max, epsabs=1e-10, epsrel=1e-9)
            total += wy * wk / (bb - a) * value
    return total


@pytest.mark.parametrize("angle", [pytest.param(30.0, marks=pytest.mark.slow), pytest.param(90.0, marks=pytest.mark.slow),
                                   137.0])  # one angle in the default tier, the others in the slow tier (CI runs both)
def test_box_masses_against_the_rest_frame_derivation(angle):
    """Masses of 6 wide lab ranges (sums of boxes) and the total against the rest-frame double integral (a second
    derivation: χ emitted in the meson frame, not the lab density in E* used by the package), to 5e-4 of the total
    (the lab-energy quadrature with 2 nodes per box and two sharp rest boxes at two speeds, whose kinks the 192
    rapidities of a real table smear out: 1.6e-4 measured); with 16 nodes per box the total to 1e-5 (2.5e-6)."""
    c = np.cos(np.radians(angle))
    lo, hi, mass, extra = (np.asarray(v) for v in _boxes(c))
    edges = np.concatenate([lo[::6], hi[-1:]])
    direct = np.diff([_rest_frame_cdf(E, c) for E in edges])
    ours = np.array([np.sum((mass + extra)[i:i + 6]) for i in range(0, 33, 6)])
    assert abs(np.sum(mass + extra) - np.sum(direct)) < 5e-4 * np.sum(direct)  # the total: every χ below the top
    fine = _boxes(c, energy_nodes=16, rest_nodes=16)
    assert abs(float(np.sum(fine[2] + fine[3])) - np.sum(direct)) < 1e-5 * np.sum(direct)
    np.testing.assert_allclose(ours, direct, atol=5e-4 * np.sum(direct))
    assert abs(np.sum(mass + extra) - 1.0) > 0.05  # the direction matters here (otherwise the test could not fail)


def test_average_over_detector_directions_is_the_direction_average():
    """∫ d cos θ_d / 2 of the flux at θ_d is the flux averaged over directions (∫ P_l = 0 for l ≥ 1): Gauss–Legendre
    in cos θ_d, exact for the degree-8 polynomial, gives a correction of 0 in every box."""
    x, w = np.polynomial.legendre.leggauss(6)
    extras = np.array([np.asarray(_boxes(c)[3]) for c in x])
    np.testing.assert_allclose(0.5 * w @ extras, 0.0, atol=1e-13)
    assert np.max(np.abs(extras)) > 1e-3


def _sns_box(m_V=30.0):
    """The on-shell π⁰ → γV, V → χχ̄ rest box [MeV] (one flat box)."""
    m_pi = 134.9768
    EV, pV = (m_pi**2 + m_V**2) / (2 * m_pi), (m_pi**2 - m_V**2) / (2 * m_pi)
    ps = np.sqrt(m_V**2 / 4 - M_CHI**2)
    return np.array([EV / 2 - pV / m_V * ps]), np.array([EV / 2 + pV / m_V * ps])


@functools.partial(jax.jit, static_argnames=("n_boxes", "energy_nodes", "rest_nodes"))
def _sns_boxes(cos_detector, n_boxes=33, energy_nodes=DIRECTION_ENERGY_NODES, rest_nodes=DIRECTION_REST_NODES):
    """Lab boxes and their masses at the detector direction for the SNS π⁰ table (speeds and direction moments)."""
    from cevns_jax.facilities import pi0_rapidity_nodes

    y, w = pi0_rapidity_nodes("SNS-2021")
    a, b = _sns_box()
    lo, hi, mass = in_flight_boxes(a, b, np.ones(1), M_CHI, y, w, n_boxes)
    coef = legendre_coefficients(jnp.asarray(pi0_direction_moments("SNS-2021")), cos_detector)
    return lo, hi, mass + directional_correction(lo, hi, M_CHI, a, b, np.ones(1), y, w, coef, energy_nodes, rest_nodes)


@pytest.mark.parametrize("angle", [90.0, 137.0])
def test_halving_the_direction_quadratures(angle):
    """SNS π⁰, the detector at 90° and 137°: each quadrature of the anisotropic part halved (``rest_nodes`` doubled;
    the lab boxes doubled, which halves the lab-energy step) moves the flux by < 1e-3 of the largest box in every
    energy range of the coarse boxes (target 1e-3; measured ≤ 3e-4), and the total by < 1e-4."""
    c = np.cos(np.radians(angle))
    lo, hi, base = (np.asarray(v) for v in _sns_boxes(c))
    finer_rest = np.asarray(_sns_boxes(c, rest_nodes=2 * DIRECTION_REST_NODES)[2])
    lo2, hi2, finer_energy = (np.asarray(v) for v in _sns_boxes(c, n_boxes=66))
    # the 66 boxes have other edges: compare on the 33-box edges through the cumulative masses (interpolated
    # linearly inside a fine box: a flat box)
    F = np.concatenate([[0.0], np.cumsum(finer_energy)])
    edges = np.concatenate([lo2, hi2[-1:]])
    regrouped = np.diff(np.interp(np.concatenate([lo, hi[-1:]]), edges, F))
    scale = np.max(base)
    assert np.max(np.abs(finer_rest - base)) < 1e-3 * scale
    assert abs(np.sum(finer_energy) - np.sum(base)) < 1e-4
    assert np.max(np.abs(np.cumsum(regrouped) - np.cumsum(base))) < 1e-3 * scale


@pytest.mark.slow  # a Monte Carlo (second-method) check: the slow tier (CI runs it)
def test_sns_direction_factor_against_a_monte_carlo():
    """The SNS π⁰ table (GEANT4 moments) at 90° and 137°: the total χ flux relative to the direction average
    against a Monte Carlo of the chain (π⁰ of the table's rapidities, directions drawn from the Legendre series,
    χ boxes, boost) counted in a band of cos θ around the detector: 0.86 and 0.72 for m_χ = 10 MeV, m_V = 30 MeV
    (session 20's Monte Carlo on the raw GEANT4 list: 0.853 ± 0.005 and 0.727 ± 0.005)."""
    from cevns_jax.facilities import pi0_rapidity_nodes

    y, w = pi0_rapidity_nodes("SNS-2021")
    mom = pi0_direction_moments("SNS-2021")
    a, b = _sns_box()
    totals = {angle: float(jnp.sum(_sns_boxes(np.cos(np.radians(angle)))[2])) for angle in (90.0, 137.0)}
    # the Monte Carlo: per rapidity node, π⁰ directions from the band-limited density ½[1 + Σ(2l+1)⟨P_l⟩P_l]
    rng = np.random.default_rng(7)
    n = 2_000_000
    node = rng.choice(y.size, size=n, p=w)
    grid = np.linspace(-1, 1, 4001)
    series = 0.5 * (1 + legendre.legval(grid, np.concatenate([np.zeros((y.size, 1)), mom * (2 * np.arange(1, 9) + 1)], 1).T))
    density = np.maximum(series, 0.0)  # a table bin with one π⁰ can dip below 0; the clip changes ≤ 1e-3 here
    cdf = np.cumsum(density, axis=1)
    cdf /= cdf[:, -1:]
    order = np.argsort(node)
    cos_pi = np.empty(n)
    for k in np.unique(node):
        sel = order[np.searchsorted(node[order], k):np.searchsorted(node[order], k, side="right")]
        cos_pi[sel] = np.interp(rng.random(sel.size), cdf[k], grid)
    phi = rng.uniform(0, 2 * np.pi, n)
    sin_pi = np.sqrt(1 - cos_pi**2)
    axis = np.stack([sin_pi * np.cos(phi), sin_pi * np.sin(phi), cos_pi], 1)
    x = rng.uniform(a[0], b[0], n)
    pst = np.sqrt(x**2 - M_CHI**2)
    u = rng.uniform(-1, 1, n)
    f = rng.uniform(0, 2 * np.pi, n)
    d = np.stack([np.sqrt(1 - u**2) * np.cos(f), np.sqrt(1 - u**2) * np.sin(f), u], 1)
    g, beta = np.cosh(y[node]), np.tanh(y[node])
    par = np.sum(d * axis, 1) * pst
    p_lab = pst[:, None] * d + axis * ((g - 1) * par + g * beta * x)[:, None]
    cos_chi = p_lab[:, 2] / np.linalg.norm(p_lab, axis=1)
    for angle, expected in ((90.0, 0.86), (137.0, 0.72)):
        band = np.abs(cos_chi - np.cos(np.radians(angle))) < 0.03
        mc = band.mean() / 0.03  # density in cos θ relative to the isotropic ½
        sigma = np.sqrt(band.sum()) / n / 0.03
        assert totals[angle] == pytest.approx(mc, abs=4 * sigma + 2e-3), angle
        assert totals[angle] == pytest.approx(expected, abs=0.02)


@pytest.mark.slow  # a finite-difference (second-method) check on a release's program: the slow tier (CI runs it)
def test_angle_is_a_differentiable_leaf():
    """COHERENT-CsI-2021 (90° in its preset): counts fall from 45° to 137°, and the derivative in the angle equals a
    central difference."""
    exp = load_experiment("COHERENT-CsI-2021")
    assert float(exp.detector.beam_angle_deg) == 90.0
    dm = dark_matter(10.0, 30.0, 1e-4, 0.5)

    def total(angle):
        return rates.dark_matter_channel_counts(replace(exp, detector=replace(exp.detector, beam_angle_deg=angle)),
                                                dm)["pi0"].sum()

    values, slopes = jax.jit(jax.vmap(jax.value_and_grad(total)))(jnp.array([45.0, 90.0, 137.0, 90.001, 89.999]))
    assert values[0] > values[1] > values[2] > 0
    assert float(slopes[1]) == pytest.approx(float(values[3] - values[4]) / 0.002, rel=1e-5)
    averaged = float(jax.jit(lambda: rates.dark_matter_channel_counts(
        replace(exp, detector=replace(exp.detector, beam_angle_deg=None)), dm)["pi0"].sum())())
    assert 0.75 < float(values[1]) / averaged < 0.9  # 90°: the fast, forward χ that pass the threshold are missed


@pytest.mark.parametrize("angle", [190.0, -1.0, "90"])
def test_angle_is_checked_when_the_file_is_read(angle):
    """An angle outside [0°, 180°] or not a number is refused, naming the field."""
    from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml

    data = read_toml(PRESET_DIR / "COHERENT-CsI-2021.toml", "experiment")
    data["detector"]["beam_angle_deg"] = angle
    with pytest.raises(CevnsInputError, match="beam_angle_deg"):
        experiment_from_dict(data, label="COHERENT-CsI-2021", base=PRESET_DIR)


@pytest.mark.slow  # a second-method (forward/reverse/finite-difference) check: the slow tier (CI runs it)
def test_reverse_and_forward_derivatives_of_the_boxes_agree():
    """The lab boxes at 90° (SNS π⁰, the s-quadrature's 33 rest boxes at m_χ = 20, m_V = 55 MeV, some starting
    3e-5 MeV above m_χ and some out of reach of a lab energy): ∂(Σ_k r_k w_k)/∂m_χ by reverse and forward mode and
    by a central difference of step 1e-6 MeV agree (reverse mode once read garbage from the series evaluated off
    [−1, 1] on empty ranges: 0.4% off)."""
    from cevns_jax.models import darkmatter as dmod

    exp = load_experiment("COHERENT-CsI-2021")
    r = jnp.asarray(np.random.default_rng(3).uniform(0.5, 1.5, 33))

    def f(masses):
        dm = replace(dmod.at_source(dark_matter(masses[0], masses[1], epsilon=1e-4), exp.source),
                     pi0_beam_cos=jnp.asarray(0.0))
        return jnp.sum(r * dmod.channel_boxes(dm).weight[0])

    x = jnp.array([20.0, 55.0])
    rev = np.asarray(jax.jit(jax.grad(f))(x))
    fwd = np.asarray(jax.jit(jax.jacfwd(f))(x))
    np.testing.assert_allclose(rev, fwd, rtol=1e-9, atol=1e-12)
    h = 1e-6
    fd = (float(f(x.at[0].add(h))) - float(f(x.at[0].add(-h)))) / (2 * h)
    assert rev[0] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_angle_is_refused_for_a_steady_source():
    """A reactor has no proton beam: ``beam_angle_deg`` is an error naming the field."""
    from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml

    data = read_toml(PRESET_DIR / "CONUS+-2025.toml", "experiment")
    data["detector"]["beam_angle_deg"] = 90.0
    with pytest.raises(CevnsInputError, match="beam_angle_deg"):
        experiment_from_dict(data, label="CONUS+-2025", base=PRESET_DIR)
