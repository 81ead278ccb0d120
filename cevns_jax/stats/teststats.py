"""Profile-likelihood test statistics, their asymptotic laws, CLs and expected limits (docs/physics.md §5.11).

Notation of Cowan, Cranmer, Gross & Vitells, EPJC 71, 1554 (2011), arXiv:1007.1727 ("CCGV"), with a
signal strength μ ≥ 0 and t = −2 ln λ(μ) = χ²(μ, ν̂̂) − χ²(μ̂, ν̂) (the ``t`` of a toy fit,
:func:`cevns_jax.stats.toys.fit_counts`):

* t_μ (two-sided; Feldman–Cousins' ordering when μ̂ is fitted within μ ≥ 0, then called t̃_μ);
* q_μ = t if μ̂ ≤ μ else 0 (upper limits; q̃_μ when μ̂ is fitted within μ ≥ 0), CCGV eqs. (14), (16);
* q₀ = t at μ = 0 if μ̂ ≥ 0 else 0 (discovery), CCGV eq. (12).

Asymptotic laws (Wilks; Wald): t_μ ~ χ²₁ (with k POIs, χ²_k); q_μ and q₀ ~ ½δ(0) + ½χ²₁, so
p = 1 − Φ(√q) (CCGV eqs. 52–59); q̃_μ has the two-branch law of CCGV eq. (65)–(66) with the Asimov
μ²/σ² = q_{μ,A} (q_μ of the background-only Asimov data set). CLs = p_μ / (1 − p_b) (Read, J. Phys. G
28, 2693 (2002)). Expected limits (CCGV eqs. 89 and 91): the band N (−2…2) is the μ at which
√q_{μ,A}(μ) = Φ⁻¹(1 − α) + N (CLs+b) or Φ⁻¹(1 − α Φ(N)) + N (CLs).

The statistics built from toys use the same definitions with the toy distributions in place of the
asymptotic laws; a toy whose fits did not converge is counted on the conservative side (never dropped).
NumPy/SciPy throughout (host side); the statistics themselves (:func:`q_mu`, :func:`q0`) are plain
``where`` expressions that also run under ``jit`` on jnp arrays.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# scipy is imported inside the functions that use it, so that `import cevns_jax` does not load it (≈ 1 s)

from ..errors import CevnsInputError

__all__ = ["q_mu", "q0", "pvalue_t", "pvalue_q", "pvalue_q_tilde", "clb_q_tilde", "cls_asymptotic",
           "significance", "expected_limit_asymptotic", "limit_from_cls", "cls_from_toys",
           "expected_cls_from_toys", "asimov_band_levels", "BAND_SIGMAS", "TIE_TOLERANCE"]

TIE_TOLERANCE = 1e-9
"""Toys whose statistic equals the observed one within this (absolute, χ² units) count as at least as
extreme: with discrete data a toy can reproduce the observed counts exactly, and its statistic then
differs from the observed one by rounding only."""


def q_mu(t, mu_hat, mu):
    """q_μ (or q̃_μ if μ̂ was fitted within μ ≥ 0): t where μ̂ ≤ μ, else 0 (CCGV eqs. 14, 16)."""
    return (mu_hat <= mu) * t


def q0(t, mu_hat):
    """q₀: t (tested at μ = 0) where μ̂ ≥ 0, else 0 (CCGV eq. 12)."""
    return (mu_hat >= 0) * t


def pvalue_t(t, dof: int = 1):
    """Asymptotic p-value of t_μ: χ²_dof survival function (Wilks)."""
    from scipy import stats
    return stats.chi2.sf(np.maximum(t, 0.0), dof)


def pvalue_q(q):
    """Asymptotic p-value of q_μ or q₀ (half-χ²₁): 1 − Φ(√q) (CCGV eq. 59)."""
    from scipy import stats
    return stats.norm.sf(np.sqrt(np.maximum(q, 0.0)))


def pvalue_q_tilde(q, q_asimov):
    """Asymptotic p_μ of q̃_μ (CCGV eq. 66) with μ²/σ² = ``q_asimov`` (background-only Asimov q_μ)."""
    from scipy import stats
    q, qa = np.maximum(q, 0.0), np.maximum(q_asimov, 1e-300)
    return np.where(q <= qa, stats.norm.sf(np.sqrt(q)), stats.norm.sf((q + qa) / (2.0 * np.sqrt(qa))))


def clb_q_tilde(q, q_asimov):
    """Asymptotic 1 − p_b = P(q̃_μ ≥ q | μ′ = 0) (CCGV eq. 65 at μ′ = 0)."""
    from scipy import stats
    q, qa = np.maximum(q, 0.0), np.maximum(q_asimov, 1e-300)
    return np.where(q <= qa, stats.norm.cdf(np.sqrt(qa) - np.sqrt(q)), stats.norm.sf((q - qa) / (2.0 * np.sqrt(qa))))


def cls_asymptotic(q, q_asimov, tilde: bool = True) -> dict:
    """Asymptotic {"cls", "clsb", "clb"} of an observed q̃_μ (``tilde``) or q_μ and the Asimov q_{μ,A}.
    For q_μ, 1 − p_b = Φ(√q_A − √q) (CCGV eq. 53 at μ′ = 0)."""
    from scipy import stats
    if tilde:
        clsb, clb = pvalue_q_tilde(q, q_asimov), clb_q_tilde(q, q_asimov)
    else:
        clsb = pvalue_q(q)
        clb = stats.norm.cdf(np.sqrt(np.maximum(q_asimov, 0.0)) - np.sqrt(np.maximum(q, 0.0)))
    return {"cls": clsb / clb, "clsb": clsb, "clb": clb}


def significance(p):
    """Z = Φ⁻¹(1 − p) (one-sided Gaussian significance of a p-value)."""
    from scipy import stats
    return stats.norm.isf(p)


def _root(f: Callable, lo: float, hi: float, what: str, xtol: float) -> float:
    from scipy.optimize import brentq
    flo, fhi = f(lo), f(hi)
    if not (np.isfinite(flo) and np.isfinite(fhi)) or flo * fhi > 0:
        raise CevnsInputError(f"{what}: no sign change between μ = {lo:g} ({flo:.3g}) and μ = {hi:g} ({fhi:.3g}); "
                              "widen the bracket")
    return float(brentq(f, lo, hi, xtol=xtol, rtol=1e-12))


def expected_limit_asymptotic(q_asimov_of: Callable, bracket: tuple, alpha: float = 0.05, n_sigma: float = 0.0,
                              cls: bool = True, xtol: float = 1e-8) -> float:
    """Expected upper limit on μ at band ``n_sigma`` (0: median; ±1, ±2: the bands) from the Asimov σ
    (CCGV eqs. 89, 91): the root in ``bracket`` of √q_{μ,A}(μ) = Φ⁻¹(1 − αΦ(N)) + N (CLs) or
    Φ⁻¹(1 − α) + N (CLs+b). ``q_asimov_of(μ)``: q_μ of the background-only Asimov data (host float)."""
    from scipy import stats
    target = (stats.norm.isf(alpha * stats.norm.cdf(n_sigma)) if cls else stats.norm.isf(alpha)) + n_sigma
    return _root(lambda m: np.sqrt(max(float(q_asimov_of(m)), 0.0)) - target, *bracket,
                 what=f"expected limit ({n_sigma:+g}σ)", xtol=xtol)


BAND_SIGMAS = (-2.0, -1.0, 1.0, 2.0)
"""The bands drawn around a median expected limit: ±1σ and ±2σ."""


def asimov_band_levels(alpha: float = 0.1, n_sigma=BAND_SIGMAS, cls: bool = True) -> np.ndarray:
    """The Asimov Δχ² levels whose crossings are the expected limits of bands ``n_sigma`` (CCGV eqs. 89, 91).

    The expected limit of band N solves √q_{μ,A}(μ) = Φ⁻¹(1 − αΦ(N)) + N (CLs) or Φ⁻¹(1 − α) + N (CLs+b),
    with q_{μ,A} the profiled Δχ² of μ on the background-only Asimov data: it is the crossing of
    Δχ²_A = level_N, level_N = (that right-hand side)². At N = 0 with CLs and α = 0.1 the level is
    Φ⁻¹(0.95)² = 2.7055, the 90% CL raster level of a Wilks limit, so the median CLs limit at 90% CL is
    the usual Asimov limit. Raises :class:`CevnsInputError` for a band whose right-hand side is ≤ 0 (CLs+b
    with N ≤ −Φ⁻¹(1 − α): no limit above μ = 0). Returns an array of the levels in ``n_sigma`` order."""
    from scipy.special import ndtr, ndtri  # (not scipy.stats: ~1 s to import, for Φ and Φ⁻¹)
    if not 0.0 < alpha < 1.0:
        raise CevnsInputError(f"expected-limit bands: alpha must lie in (0, 1), got {alpha!r}")
    n = np.atleast_1d(np.asarray(n_sigma, dtype=float))
    target = (-ndtri(alpha * ndtr(n)) if cls else np.full(n.shape, -ndtri(alpha))) + n  # Φ⁻¹(1 − p) = −Φ⁻¹(p)
    if np.any(target <= 0) or not np.all(np.isfinite(target)):
        raise CevnsInputError(f"expected-limit bands: no positive limit for bands {n[~(target > 0)].tolist()} "
                              f"(alpha {alpha}, {'CLs' if cls else 'CLs+b'})")
    return target**2


def limit_from_cls(cls_of: Callable, bracket: tuple, alpha: float = 0.05, xtol: float = 1e-8) -> float:
    """The μ in ``bracket`` where ``cls_of(μ)`` (CLs or CLs+b, host float) falls to ``alpha``."""
    return _root(lambda m: np.log(max(float(cls_of(m)), 1e-300)) - np.log(alpha), *bracket, what="upper limit",
                 xtol=xtol)


def cls_from_toys(q_obs, q_sb, q_b, converged_sb=None, converged_b=None, tie: float = TIE_TOLERANCE) -> dict:
    """CLs of an observed statistic from toys under μ (``q_sb``) and under μ′ = 0 (``q_b``), last axis toys:
    CLs+b = P(q ≥ q_obs | μ), CLb = P(q ≥ q_obs | 0). Failed toys (``converged_*`` = 0) count against
    exclusion: as extreme in the s+b sample, as not extreme in the b sample (both raise CLs).
    Returns {"cls", "clsb", "clb", "clsb_error", "clb_error" (binomial), "failed_sb", "failed_b"}."""
    q_obs = np.asarray(q_obs)[..., None]
    q_sb, q_b = np.asarray(q_sb), np.asarray(q_b)
    ok_sb = np.ones(q_sb.shape, bool) if converged_sb is None else np.asarray(converged_sb) > 0.5
    ok_b = np.ones(q_b.shape, bool) if converged_b is None else np.asarray(converged_b) > 0.5
    clsb = np.mean((q_sb >= q_obs - tie) | ~ok_sb, axis=-1)
    clb = np.mean((q_b >= q_obs - tie) & ok_b, axis=-1)
    n_sb, n_b = q_sb.shape[-1], q_b.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        cls = clsb / clb
    return {"cls": cls, "clsb": clsb, "clb": clb, "clsb_error": np.sqrt(clsb * (1 - clsb) / n_sb),
            "clb_error": np.sqrt(clb * (1 - clb) / n_b), "failed_sb": 1 - ok_sb.mean(axis=-1),
            "failed_b": 1 - ok_b.mean(axis=-1)}


def expected_cls_from_toys(q_sb, q_b, n_sigma: float = 0.0, converged_sb=None, converged_b=None) -> np.ndarray:
    """Expected CLs at band ``n_sigma`` from toys: CLs of the Φ(−N) quantile of q under μ′ = 0 (a larger N is a
    weaker limit, a smaller q). The expected limit of band N is where this falls to α (:func:`limit_from_cls`)."""
    from scipy import stats
    q_n = np.quantile(np.asarray(q_b), stats.norm.cdf(-n_sigma), axis=-1, method="inverted_cdf")
    return cls_from_toys(q_n, q_sb, q_b, converged_sb, converged_b)["cls"]
