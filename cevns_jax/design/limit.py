"""Expected-limit figure of merit: the Asimov 90% CL limit on a coupling at fixed mass, with the
nuisances profiled and an implicit-function gradient (see :class:`ExpectedLimit`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from .. import constants as C
from ..errors import CevnsInputError
from ..nuisances import shape_names
from ..rates import electron_equivalent_keV, events_per_recoil_node, neutrino_time_fractions
from ..response import energy_response
from ..stats.forecast import ForecastSpec, Signals, asimov_reference, profiled_delta_chi2, signals
from .validate import check_experiments

__all__ = ["ExpectedLimit"]

DM_Y_REF = 1e-10
"""Y of the dark-matter template (counts ∝ Y² at fixed masses are rescaled from it)."""


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def _fold(events, R, tau):
    """CEvNS counts (n_E, n_t) from events per recoil node (3, n_iso, n_T), response (n_E, n_iso, n_T)
    and time fractions (3, n_t), summed over the flux components (as ``rates.cevns_counts``)."""
    spectrum = jnp.einsum("cik,eik->ce", events, R)
    return jnp.sum(spectrum[:, :, None] * tau[:, None, :], axis=0)


@dataclass(frozen=True)
class ExpectedLimit:
    """Expected 90 % CL (Asimov, Δχ² = ``level``) limit on a coupling at fixed mass.

    ``signal="lmu_ltau"``: g′ of gauged L_μ−L_τ at M_Z′ = ``mass_MeV``; ``signal="dark_matter"``: Y of
    scalar dark matter at m_χ = ``mass_MeV`` (α_D = 0.5, m_V = 3 m_χ; N_DM ∝ Y² exactly at fixed masses,
    so one template at Y = 1e-10 is rescaled). The statistic is the forecast core's
    (:func:`cevns_jax.stats.forecast.profiled_delta_chi2`): every preset prior (or ``include``), labels
    and sharing from the nuisance registry, ``pi0`` for dark matter (the facility's prior unless
    ``pi0_prior`` overrides it), the detector nuisances acting on
    CEvNS and dark matter alike; profiled with ``n_profile`` Fisher-scoring steps.

    Root finding: ``n_bisect`` bisections of t = ln g on ``bracket`` (default 1e-6–1e-2 for g′,
    1e-14–1e-6 for Y; 50 bisections narrow ln(10⁴) to 1e-14), then one Newton step
    g = exp(t* − (Δχ²(t*) − level)/∂_tΔχ²) with t* and the slope held constant: its value is t* to
    solver precision and its gradient the implicit-function theorem's. The first crossing is found
    when Δχ² rises monotonically through the level inside the bracket (true for these signals; the
    linear template morphing saturates Δχ² far above the level, so keep the bracket's upper end
    within a few decades of the limit).

    Boundary results (documented, never NaN): if Δχ² stays below the level over the bracket (no
    sensitivity, e.g. a threshold near the kinematic endpoint) the upper bracket end is returned, if
    it is above the level already at the lower end the lower end; both with zero gradient.
    :meth:`diagnose` reports which case applies.
    """

    signal: str = "lmu_ltau"
    mass_MeV: float = 10.0
    level: float = C.DELTA_CHI2_90CL
    bracket: tuple | None = None
    n_bisect: int = 50
    n_profile: int = 8
    include: tuple | None = None
    pi0_prior: float | None = None

    def __post_init__(self):
        if self.signal not in ("lmu_ltau", "dark_matter"):
            raise CevnsInputError(f"ExpectedLimit signal must be 'lmu_ltau' or 'dark_matter', got {self.signal!r}")
        if self.bracket is None:
            object.__setattr__(self, "bracket", (1e-6, 1e-2) if self.signal == "lmu_ltau" else (1e-14, 1e-6))
        lo, hi = self.bracket
        if not 0 < lo < hi:
            raise CevnsInputError(f"ExpectedLimit bracket must satisfy 0 < low < high, got {self.bracket}")
        if not self.mass_MeV > 0:
            raise CevnsInputError(f"ExpectedLimit mass must be > 0 MeV, got {self.mass_MeV}")

    @property
    def spec(self) -> ForecastSpec:
        return ForecastSpec(self.include, self.signal == "dark_matter", self.n_profile, self.pi0_prior)

    # -- per-design ingredients ------------------------------------------------------------
    def terms(self, experiments) -> dict:
        """The Asimov reference of the program (SM data, SM CEvNS templates and log-derivatives,
        backgrounds) and per experiment the coupling-independent signal pieces: response and time
        fractions (L_μ−L_τ: the recoil grid does not depend on the model, so R serves every coupling)
        or the dark-matter template at Y = :data:`DM_Y_REF` with its own log-derivatives."""
        reference = asimov_reference(tuple(experiments), self.spec)
        pieces = []
        for exp, labels in zip(reference.experiments, reference.labels):
            if self.signal == "lmu_ltau":
                T, _ = events_per_recoil_node(exp)
                det = exp.detector
                R = energy_response(det.smearing, det.efficiency, det.binning, electron_equivalent_keV(exp, T))
                pieces.append((R, neutrino_time_fractions(exp)))
            else:
                from ..models import NewPhysics, dark_matter, epsilon_from_Y

                eps = epsilon_from_Y(_f(DM_Y_REF), self.mass_MeV)
                model = NewPhysics(dark_matter=dark_matter(self.mass_MeV, 3.0 * self.mass_MeV, eps, 0.5))
                pieces.append(signals(exp, model, shape_names(dict(labels))))
        return {"reference": reference, "pieces": pieces}

    def _signals(self, terms, t):
        """Per-experiment :class:`~cevns_jax.stats.forecast.Signals` at coupling e^t."""
        if self.signal == "lmu_ltau":
            from ..models import NewPhysics, lmu_minus_ltau

            model = NewPhysics(zprime=lmu_minus_ltau(self.mass_MeV, jnp.exp(t)))
            return [Signals(_fold(events_per_recoil_node(exp, model=model)[1], R, tau))
                    for exp, (R, tau) in zip(terms["reference"].experiments, terms["pieces"])]
        return [s.scaled_dark_matter((jnp.exp(t) / DM_Y_REF) ** 2) for s in terms["pieces"]]

    def _delta_chi2_at(self, terms, t):
        return profiled_delta_chi2(terms["reference"], self._signals(terms, t))

    def delta_chi2(self, experiments, coupling, terms=None):
        """Profiled Asimov Δχ² of the coupling (g′ or Y) against the SM."""
        terms = self.terms(experiments) if terms is None else terms
        return self._delta_chi2_at(terms, jnp.log(_f(coupling)))

    def _solve(self, terms):
        """(t*, f(lo), f(hi)) with f = Δχ² − level: bisection of t = ln g (no gradient flows).

        One loop evaluates f at the two bracket ends (iterations 0 and 1) and then bisects, so the
        profiled Δχ² is compiled once."""
        terms = jax.lax.stop_gradient(terms)

        def f(t):
            return self._delta_chi2_at(terms, t) - self.level

        lo, hi = jnp.log(_f(self.bracket[0])), jnp.log(_f(self.bracket[1]))

        def body(i, state):
            a, b, f_lo, f_hi = state
            t = jnp.where(i == 0, lo, jnp.where(i == 1, hi, 0.5 * (a + b)))
            value = f(t)
            f_lo = jnp.where(i == 0, value, f_lo)
            f_hi = jnp.where(i == 1, value, f_hi)
            above = ~(value <= 0)  # NaN (only at absurdly large couplings) counts as above
            bisecting = i >= 2
            return (jnp.where(bisecting & ~above, t, a), jnp.where(bisecting & above, t, b), f_lo, f_hi)

        a, b, f_lo, f_hi = jax.lax.fori_loop(0, self.n_bisect + 2, body, (lo, hi, _f(0.0), _f(0.0)))
        return 0.5 * (a + b), f_lo, f_hi

    def __call__(self, experiments):
        check_experiments(experiments)
        terms = self.terms(experiments)
        t_star, f_lo, f_hi = self._solve(terms)
        t_star = jax.lax.stop_gradient(t_star)
        inside = (f_lo < 0) & ~(f_hi <= 0)

        def g(t):
            return self._delta_chi2_at(terms, t)

        # one Newton step from t*: its value is t* to solver precision and its gradient with respect to
        # the design is the implicit-function theorem's −∂_dΔχ²/∂_tΔχ² (slope held constant)
        value, slope = jax.jvp(g, (t_star,), (jnp.ones_like(t_star),))
        slope = jax.lax.stop_gradient(slope)
        ok = inside & (slope > 0)
        t = t_star - jnp.where(ok, (value - self.level) / jnp.where(ok, slope, 1.0), 0.0)
        lo, hi = jnp.log(_f(self.bracket[0])), jnp.log(_f(self.bracket[1]))
        t = jnp.where(inside, t, jnp.where(f_hi <= 0, hi, lo))
        return jnp.exp(t)

    def diagnose(self, experiments) -> dict:
        """Concrete diagnostics: Δχ² at the bracket ends, the limit and which regime applies."""
        check_experiments(experiments)
        value, f_lo, f_hi = _diagnose(self, tuple(experiments))
        if float(f_hi) <= 0:
            regime = "no crossing in the bracket: limit above the upper end (boundary result)"
        elif float(f_lo) >= 0:
            regime = "Δχ² above the level at the lower end: limit below the bracket (boundary result)"
        else:
            regime = "crossing inside the bracket"
        return {"limit": float(value), "delta_chi2_low": float(f_lo) + self.level,
                "delta_chi2_high": float(f_hi) + self.level, "regime": regime}


@partial(jax.jit, static_argnums=0)
def _diagnose(fom: ExpectedLimit, experiments: tuple):
    """The limit and Δχ² − level at the bracket ends (one compiled program per FoM and program structure)."""
    _, f_lo, f_hi = fom._solve(fom.terms(experiments))
    return fom(experiments), f_lo, f_hi
