"""The source family: one interface for every neutrino source, and the steady user-tabulated kind.

Every source kind (π-DAR :class:`cevns_jax.source.Source`, :class:`cevns_jax.reactor.ReactorSource`,
:class:`cevns_jax.solar.SolarSource`, :class:`TabulatedSource`) is a pytree that answers (docs/physics.md §1.5):

* ``components`` (static): the names of its flux components, in the order of every array axis ``c``;
* ``flavours`` (static): the flavour (0 = e, 1 = μ, 2 = τ) each component scatters as (ν̄ with the ν
  couplings: the vector charge enters CEvNS squared);
* ``antineutrino`` (static, optional): whether each component is a ν̄ (neutrino–electron scattering tells
  them apart, :mod:`cevns_jax.electron`; absent or empty: all neutrinos);
* ``energy_breaks_MeV`` (static): increasing energies [MeV] between which every component's spectrum is
  smooth; the first is the lowest energy, the last the endpoint (the flux vanishes above);
* ``recoil_energies_MeV`` (static): (E_break, E_end) [MeV], the neutrino energies whose recoil end points
  place the recoil quadrature's log/linear split and its end;
* ``spectrum_per_MeV(E)``: each component's unit-normalised spectrum at energies E [1/MeV], shape
  (n_c, *E.shape) (zero outside the breaks);
* ``fluence_cm2(baseline_m)``: each component's time-integrated fluence at the detector over the
  exposure [cm⁻²], shape (n_c,);
* ``steady`` (static): True for a steady source (reactor, Sun, table): no beam timing; each component
  is spread uniformly over the analysis time window (:func:`steady_time_antiderivatives`). A beam source
  also has ``time_antiderivatives(t)``.

Folding a cross section with a steady source integrates over E with Gauss–Legendre panels between
consecutive breaks, each clipped below at E_min(T) (:func:`energy_nodes`), so no panel holds a kink of
the kinematic factor or a jump of the spectrum (docs/physics.md §3.4.1).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._pytree import pytree_dataclass, static_field

__all__ = ["ENERGY_NODES_PER_PANEL", "MAX_TABLE_PANELS", "gauss_legendre", "table_panels", "energy_nodes", "energy_moments",
           "integrate_spectra", "steady_time_antiderivatives", "TabulatedSource", "make_tabulated_source"]

_LOWEST_MEV = 1e-9
"""Lower end [MeV] of a panel that starts at 0 (the log mapping needs E > 0; nothing below is reachable)."""
MAX_TABLE_PANELS = 128
"""Most energy panels of a tabulated spectrum (:class:`TabulatedSource`)."""
ENERGY_NODES_PER_PANEL = 32
"""Gauss–Legendre nodes (in ln E) per energy panel of a steady source (between two breaks, above E_min(T)).
Measured change when the step is halved (``refine = 2``, ``tests/test_sources.py``): 2e-15 of the largest
rate for the analytic reactor spectrum; 2.4e-9 for the solar tables (16 nodes per 0.1 MeV panel, edges on
the table rows); the package's target is 1e-4 per bin (docs/physics.md §3.4.1)."""


def gauss_legendre(n: int):
    """Gauss–Legendre nodes and weights on [−1, 1] (numpy, float64)."""
    return np.polynomial.legendre.leggauss(int(n))


def table_panels(table_energies, E_low: float, E_high: float, nodes: int, refine: int = 1):
    """Gauss–Legendre nodes and weights [MeV] on [E_low, E_high] with one panel between consecutive tabulated
    energies inside it (each split in ``refine``), ``nodes`` per panel; static numpy (a cross-section table's
    kinks are panel ends, so the rule is exact up to its order on each piece)."""
    E = np.asarray(table_energies, dtype=float)
    inner = E[(E > E_low) & (E < E_high)]
    edges = np.concatenate([[E_low], inner, [E_high]])
    edges = np.concatenate([np.linspace(a, b, refine + 1)[:-1] for a, b in zip(edges[:-1], edges[1:])] + [[E_high]])
    x, w = gauss_legendre(nodes)
    half = 0.5 * np.diff(edges)[:, None]
    mid = 0.5 * (edges[1:] + edges[:-1])[:, None]
    return (mid + half * np.asarray(x)[None, :]).ravel(), (half * np.asarray(w)[None, :]).ravel()


def energy_nodes(source, E_min_MeV, refine: int = 1):
    """Energy nodes E [MeV] and quadrature weights dE [MeV] of a steady source above E_min [MeV] (any
    shape): ∫_{E_min} φ_c(E) g(E) dE ≈ Σ_k φ_c(E_k) g(E_k) dE_k.

    Both of shape (*E_min.shape, n_nodes): one panel of ``energy_nodes_per_panel × refine`` Gauss–Legendre
    nodes between consecutive ``energy_breaks_MeV``, each clipped below at E_min (a panel entirely below
    E_min has zero width and weight). Nodes are Gauss–Legendre in ln E: the kinematic factor
    1 − T/E − MT/2E² ≈ 1 − (E_min/E)² varies on the scale E_min, which is smooth in ln E at any recoil, and a
    smooth spectrum stays smooth in ln E (panels span at most a few e-folds except the lowest one).
    """
    rule, breaks = _panel_rule(source, refine)
    lo = jnp.clip(jnp.asarray(E_min_MeV)[..., None], breaks[:-1], breaks[1:])  # (..., n_panels)
    nodes, weights = _log_panel(lo, breaks[1:], *rule)  # (..., n_panels, n_x)
    shape = nodes.shape[:-2] + (-1,)
    return nodes.reshape(shape), weights.reshape(shape)


def _panel_rule(source, refine: int):
    """((x, w) Gauss–Legendre on [−1, 1], the panel breaks [MeV]) of a steady source's energy quadrature."""
    rule = gauss_legendre(getattr(source, "energy_nodes_per_panel", ENERGY_NODES_PER_PANEL) * refine)
    return rule, np.maximum(np.asarray(source.energy_breaks_MeV, dtype=float), _LOWEST_MEV)


def _log_panel(lo, hi, x, wx):
    """Nodes E and weights dE [MeV] of the rule (x, wx) in ln E on each panel [lo, hi]; shape (*lo.shape, n_x)."""
    half_log = 0.5 * jnp.log(hi / lo)
    E = lo[..., None] * jnp.exp(half_log[..., None] * (x + 1.0))
    return E, E * half_log[..., None] * wx


def energy_moments(source, E_min_MeV, powers=(0, 1, 2), refine: int = 1, weight=None):
    """J_n(E_min) = ∫_{E_min} φ_c(E) E^{−n} dE [MeV^{−n}] for n in ``powers``, with exactly the rule of
    :func:`energy_nodes`; shape (len(powers), n_c, *E_min.shape). With ``weight(E, dE)`` (shape
    (n_c, n_w, *E.shape), any function of the node and its quadrature weight, such as oscillation
    probabilities averaged over the node's cell) the integrand is φ_c(E) w_cw(E) E^{−n}, shape
    (len(powers), n_c, n_w, *E_min.shape).

    Only the panel holding E_min depends on E_min: every panel above it is whole, the same for every E_min.
    So the whole panels are integrated once (their nodes do not depend on E_min), summed from the top down
    (J over the panels above break j), and each E_min adds its own partial panel [E_min, next break]: the
    same nodes and weights as :func:`energy_nodes` regrouped, at (n_panels + n_E_min) × n_x spectrum
    evaluations instead of n_panels × n_E_min × n_x (XENONnT ⁸B: 2.5 × 10⁶ per isotope and flavour → 1.6 × 10⁴).
    Continuous in E_min across a break (the partial panel shrinks to zero width there), and differentiable
    in E_min and in the source's leaves."""
    rule, breaks = _panel_rule(source, refine)

    def panel_integrals(lo, hi):  # (len(powers), n_c, *lo.shape): each panel [lo, hi], GL in ln E
        E, dE = _log_panel(lo, hi, *rule)  # (*lo.shape, n_x)
        weighted = source.spectrum_per_MeV(E) * dE  # (n_c, *lo.shape, n_x)
        if weight is not None:
            weighted = weighted[:, None] * weight(E, dE)  # (n_c, n_w, *lo.shape, n_x)
        return jnp.stack([jnp.sum(weighted * E ** -int(n), axis=-1) for n in powers])

    whole = panel_integrals(jnp.asarray(breaks[:-1]), jnp.asarray(breaks[1:]))  # (n_p, n_c, n_panels)
    above = jnp.concatenate([jnp.cumsum(whole[..., ::-1], axis=-1)[..., ::-1], jnp.zeros_like(whole[..., :1])],
                            axis=-1)  # over the panels from j upwards; (n_p, n_c, n_panels + 1)
    E_min = jnp.asarray(E_min_MeV, dtype=float)
    j = jnp.clip(jnp.searchsorted(jnp.asarray(breaks), E_min, side="right") - 1, 0, len(breaks) - 2)
    hi = jnp.asarray(breaks)[j + 1]
    lo = jnp.clip(E_min, jnp.asarray(breaks)[j], hi)
    return panel_integrals(lo, hi) + above[..., j + 1]


def integrate_spectra(spectra, breaks, refine: int = 1, moment: int = 0, nodes: int = ENERGY_NODES_PER_PANEL):
    """∫ S(E) E^moment dE over ``breaks`` [MeV] (panels as in :func:`energy_nodes`) of a function
    ``spectra(E)`` returning (..., *E.shape); shape (...)."""
    x, wx = gauss_legendre(nodes * refine)
    total = 0.0
    for a, b in zip(breaks[:-1], breaks[1:]):
        E = jnp.asarray(a + 0.5 * (b - a) * (x + 1.0))
        total = total + jnp.sum(spectra(E) * E**moment * (0.5 * (b - a) * wx), axis=-1)
    return total


def steady_time_antiderivatives(t_ns, start_ns, n_components: int):
    """(F, G, H) of a uniform arrival-time density 1/ns from the window start ``start_ns`` (a steady source;
    counts are normalised to the window by the time folding), each of shape (n_c, *t.shape)."""
    u = jnp.asarray(t_ns) - start_ns
    F, G, H = u, 0.5 * u**2, u**3 / 6.0
    return tuple(jnp.broadcast_to(v, (n_components,) + v.shape) for v in (F, G, H))


@pytree_dataclass
class TabulatedSource:
    """A steady source given by tabulated spectra: the user-tabulated kind (docs/physics.md §1.5).

    Attributes:
        energy_MeV: increasing table energies [MeV] (n_E,), shared by every component.
        spectra: each component's spectrum on them, any normalisation (n_c, n_E); linear between nodes,
            normalised to unit integral here (so only the shape matters).
        fluence: each component's fluence at the detector over the exposure [cm⁻²] (n_c,).
        components, flavours: names and flavours (0 = e, 1 = μ, 2 = τ) of the components (static).
        antineutrino: whether each component is an antineutrino (static; empty: all neutrinos). It matters
            for neutrino–electron scattering only (:mod:`cevns_jax.electron`).
        name: a label (static).
    """

    energy_MeV: jnp.ndarray
    spectra: jnp.ndarray
    fluence: jnp.ndarray
    components: tuple = static_field(default=("tabulated",))
    flavours: tuple = static_field(default=(0,))
    breaks: tuple = static_field(default=(0.0, 1.0))
    name: str = static_field(default="tabulated")
    antineutrino: tuple = static_field(default=())

    steady = True
    energy_nodes_per_panel = 4
    """Per panel (one table interval, or a few): 4 Gauss–Legendre nodes integrate a linear spectrum times a
    smooth cross section to ~1e-8."""

    @property
    def energy_breaks_MeV(self) -> tuple:
        """The table energies (the piecewise-linear spectrum is smooth between them), every k-th of them for
        tables longer than :data:`MAX_TABLE_PANELS` intervals (kinks inside a panel then cost O(h²) of the
        table step h)."""
        step = -(-(len(self.breaks) - 1) // MAX_TABLE_PANELS)
        return self.breaks[::step] + (() if (len(self.breaks) - 1) % step == 0 else self.breaks[-1:])

    @property
    def recoil_energies_MeV(self) -> tuple:
        return (0.5 * self.breaks[-1], self.breaks[-1])

    def _interpolated(self, E):
        return jnp.stack([jnp.interp(E, self.energy_MeV, s, left=0.0, right=0.0) for s in self.spectra])

    def spectrum_per_MeV(self, E_MeV):
        """Unit-normalised spectra [1/MeV] at E (trapezoid-normalised table, linear interpolation)."""
        norm = jnp.sum(0.5 * (self.spectra[:, 1:] + self.spectra[:, :-1]) * jnp.diff(self.energy_MeV), axis=-1)
        return self._interpolated(E_MeV) / norm.reshape((-1,) + (1,) * jnp.ndim(E_MeV))

    def fluence_cm2(self, baseline_m):
        """The tabulated fluence [cm⁻²]: given at the detector, so independent of the baseline."""
        return self.fluence


def make_tabulated_source(energy_MeV, spectra, fluence_cm2, components, flavours, name: str = "tabulated",
                          antineutrino=()):
    """A :class:`TabulatedSource` (numbers checked by the TOML compiler; here only shapes)."""
    E = np.asarray(energy_MeV, dtype=float)
    S = np.atleast_2d(np.asarray(spectra, dtype=float))
    return TabulatedSource(
        energy_MeV=jnp.asarray(E), spectra=jnp.asarray(S), fluence=jnp.asarray(np.asarray(fluence_cm2, dtype=float)),
        components=tuple(components), flavours=tuple(int(f) for f in flavours), breaks=tuple(float(e) for e in E),
        name=name, antineutrino=tuple(bool(a) for a in antineutrino),
    )
