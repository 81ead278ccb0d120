"""Profile-likelihood intervals: the crossings Δχ²(x) = level, by bracketing and Brent's method.

For one parameter of interest x with the nuisances profiled, Δχ²(x) = min_ν χ²(x, ν) − min χ²
(docs/physics.md §5.3), the interval at ``level`` (1 for 68.3%, 2.706 for 90% CL two-sided; Wilks,
docs/physics.md §5.4) is {x : Δχ²(x) ≤ level}. Each end is found on its own side of the best fit x̂:

1. Bracketing: trial points x̂ ± s·2^k (k = 0, 1, …, ``max_expansions`` − 1; s ≈ the expected 1σ,
   e.g. the Fisher error) until Δχ² > level. The last trial below the level and the first above it
   bracket the crossing. A trial beyond a physical ``bound`` (e.g. a CEvNS count ≥ 0) is replaced by
   the bound; if Δχ²(bound) ≤ level the interval is one-sided there and the end is the bound,
   reported with ``kind = "boundary"`` (never NaN).
2. Root finding: :func:`scipy.optimize.brentq` on Δχ²(x) − level inside the bracket.

Why Brent on the host rather than a jitted bisection: every evaluation is one profiled fit (a
compiled program, reused), so the cost is the number of evaluations. Brent converges superlinearly
inside a guaranteed bracket (5–6 evaluations per end, bracketing included, on the CsI-2021 fits),
where bisection needs log₂(1/1e-4) ≈ 14 after bracketing; the bracketing loop is data-dependent
control flow anyway. The ends are not differentiated through here (no gradient path).

Accuracy: ``xtol`` is absolute in x; the default is :data:`XTOL_FRACTION` × s, so an end is located
to 1e-4 of the 1σ width (≲ 1e-4 relative to the end itself for the release fits), far below the
1e-3 agreement the tests ask for. The profiled Δχ² must be converged well below the level change
this implies (δΔχ² ≈ 2e-4 at 1σ); ``tests/test_fits.py`` doubles the profiling steps and halves
``xtol``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

# scipy is imported inside the functions that use it, so that `import cevns_jax` does not load it (≈ 1 s)
from ..errors import CevnsInputError

__all__ = ["IntervalEnd", "NoCrossingError", "find_crossing", "XTOL_FRACTION", "MAX_EXPANSIONS"]

XTOL_FRACTION = 1e-4
"""Root-finder tolerance as a fraction of the bracketing step s (≈ 1σ): the end is accurate to 1e-4 σ."""
MAX_EXPANSIONS = 12
"""Bracketing doublings before giving up: trial points reach x̂ ± 2¹¹ s (≈ 2000σ)."""


class NoCrossingError(CevnsInputError):
    """Δχ² never reaches the level on one side (no bound there), or is not finite: no interval end.

    A subclass of :class:`CevnsInputError` so that the command line reports it in one line (exit 2).
    """


@dataclass(frozen=True)
class IntervalEnd:
    """One end of a profile-likelihood interval.

    ``value``: the end (x units); ``kind``: ``"crossing"`` (Δχ²(value) = level) or ``"boundary"``
    (the physical bound, Δχ²(bound) ≤ level: one-sided interval); ``delta_chi2``: Δχ² at ``value``;
    ``evaluations``: profiled fits used (bracketing + root finding).
    """

    value: float
    kind: str
    delta_chi2: float
    evaluations: int


def _finite(value: float, x: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise NoCrossingError(f"{what}: profiled Δχ² is {value} at {x:.6g}; no interval end")
    return value


def find_crossing(delta_chi2: Callable[[float], float], best: float, step: float, direction: int, *,
                  level: float = 1.0, bound: float | None = None, xtol: float | None = None,
                  max_expansions: int = MAX_EXPANSIONS, what: str = "parameter") -> IntervalEnd:
    """The end of {x : Δχ²(x) ≤ level} on one side of ``best`` (``direction`` = +1 above, −1 below).

    ``delta_chi2(x)``: profiled Δχ² (host float); Δχ²(best) ≈ 0 is assumed, not evaluated.
    ``step`` (> 0): first trial distance, doubled until Δχ² > level. ``bound``: a physical limit of
    x on this side (the interval may end there, ``kind="boundary"``). ``xtol``: absolute tolerance
    in x (default :data:`XTOL_FRACTION` × step). ``what`` names the parameter in errors.
    Raises :class:`NoCrossingError` when no crossing lies within ``max_expansions`` doublings.
    """
    from scipy.optimize import brentq
    if direction not in (1, -1):
        raise ValueError("direction must be +1 or -1")
    if not (step > 0 and math.isfinite(step)):
        raise NoCrossingError(f"{what}: bracketing step must be finite and > 0, got {step!r}")
    if level <= 0:
        raise CevnsInputError(f"{what}: Δχ² level must be > 0, got {level!r}")
    xtol = XTOL_FRACTION * step if xtol is None else float(xtol)
    known: dict[float, float] = {}  # brentq re-evaluates the bracket ends: each costs a profiled fit

    def f(x):
        x = float(x)
        if x not in known:
            known[x] = _finite(delta_chi2(x), x, what) - level
        return known[x]

    inside, distance = best, step
    for _ in range(max_expansions):
        trial = best + direction * distance
        at_bound = bound is not None and (trial - bound) * direction >= 0
        if at_bound:
            trial = bound
        above = f(trial)
        if above > 0:
            lo, hi = sorted((inside, trial))
            root = brentq(f, lo, hi, xtol=xtol, rtol=1e-12, maxiter=200)
            return IntervalEnd(float(root), "crossing", float(f(root) + level), len(known))
        if at_bound:
            return IntervalEnd(float(bound), "boundary", float(above + level), len(known))
        inside, distance = trial, 2.0 * distance
    side = "above" if direction > 0 else "below"
    raise NoCrossingError(f"{what}: Δχ² stays below {level:g} {side} the best fit {best:.6g} out to "
                          f"{inside:.6g} ({max_expansions} doublings of {step:.3g}); no interval end")
