"""Δχ² along a coupling raster at fixed masses, with the crossings solved in the same program
(docs/physics.md §5.9).

Two model families have templates that are an exact, known function of one coupling at fixed masses, so
the physics is computed once per mass and the coupling raster costs only profiled fits:

* :func:`dark_matter_coupling_scan` — dark matter, whose counts (and their shape log-derivatives) scale as
  coupling^power (Y² for a dark photon at fixed α_D and m_V/m_χ, α_B² for a leptophobic mediator);
* :func:`affine_coupling_scan` — templates affine in a known strength s(g): t(g) = t₀ + s(g)(t₁ − t₀), with t₀
  those of a null model and t₁ those at a reference coupling where s = 1 (3+1 sterile mixing with one
  |U_α4|² ≠ 0: every rate is linear in P_αα = 1 − 4|U_α4|²(1 − |U_α4|²)⟨sin²Δ⟩, so s = 4|U|²(1 − |U|²) and
  the reference is |U|² = ½).

Both solve every crossing Δχ² = level along the raster (the first :data:`MAX_CROSSINGS`, islands kept) and
the expected-limit band crossings by Illinois regula falsi in ln g inside the program.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["ROOT_ITERATIONS", "MAX_CROSSINGS", "dark_matter_coupling_scan", "affine_coupling_scan"]

ROOT_ITERATIONS = 8
"""Illinois steps of the in-program crossing solver. Target: |Δ ln g| < 1e-9 from a raster bracket ≲ 0.5 wide in
ln g (the main job's 30 couplings over 6 decades; h = ln(Δχ²/level) is nearly linear in ln g there, where
Illinois is superlinear). Measured against scipy's Brent method to 1e-14 (COH-Ge-mini, 3 × 2 bins, every band
level): ≤ 1e-13 relative at 6 steps for dark matter (m_χ = 8 MeV) and ≤ 3e-13 for sterile mixing (Δm² = 1, 30 eV²),
unchanged from 6 to 20 steps; tests/test_scan.py checks the crossings against Brent at 1e-8."""
MAX_CROSSINGS = 4
"""Crossings solved per label and mass in-program (a dark-matter Δχ² crosses its level once; islands)."""


def _solved(out: dict, label: str, chi2: Callable, u, n: int, level, band_levels: tuple) -> None:
    """``out[label]``: Δχ² on the raster u = ln g (``chi2`` of one coupling); with ``level``, also
    ``{label}@crossings`` (ascending, NaN-padded to :data:`MAX_CROSSINGS`), ``{label}@brackets`` (how many
    sign changes; more than :data:`MAX_CROSSINGS` means some were not solved) and, with ``band_levels``,
    ``{label}@bands`` (the first crossing of each, NaN where there is none)."""
    chi2 = jax.vmap(chi2)
    if level is None:
        out[label] = chi2(jnp.exp(u))
        return
    n_roots = min(MAX_CROSSINGS, n - 1)
    levels = [level] * n_roots + [float(b) for b in band_levels]
    ranks = list(range(n_roots)) + [0] * len(band_levels)
    out[label], root, valid, count = _raster_then_illinois(chi2, u, levels, ranks, ROOT_ITERATIONS)
    roots = jnp.where(valid, jnp.exp(root), jnp.nan)
    out[f"{label}@crossings"] = roots[:n_roots]
    out[f"{label}@brackets"] = count[0]
    if band_levels:
        out[f"{label}@bands"] = roots[n_roots:]


def dark_matter_coupling_scan(evaluators: dict, model_of: Callable, coupling: str, couplings, power: float,
                              level: float | None = None, scale: str | None = None, band_levels: tuple = ()) -> Callable:
    """Point function θ (without the coupling) → {label: Δχ² at each of ``couplings``} for dark matter.

    At fixed masses the dark-matter counts are an exact power of the coupling (∝ Y² for a dark photon
    at fixed α_D and m_V/m_χ, ∝ α_B² for a leptophobic mediator), and so are their derivatives in the
    shape nuisances (the log-derivatives do not depend on it): the physics is computed once per mass at
    coupling 1 and rescaled by coupling^``power``. ``evaluators``: objects with ``templates``,
    ``scale_dark_matter`` and ``profiled_from_templates``.

    ``level``: also solve the crossings Δχ² = level in the same program (:func:`_solved`: outputs
    ``"{label}@crossings"``, ``"{label}@brackets"``); ``band_levels``: with ``level``, also the first crossing
    of each of these levels (the expected-limit bands, :func:`cevns_jax.stats.teststats.asimov_band_levels`),
    ``"{label}@bands"``.

    ``scale``: the name of an input that multiplies ``couplings`` (the raster is ``theta[scale] ×
    couplings``), so scans whose rasters differ by a factor share one compiled program.
    """
    ratios = jnp.asarray(couplings, dtype=jnp.float64)

    def point(theta):
        theta = dict(theta)
        c0 = theta.pop(scale) if scale is not None else 1.0
        u = jnp.log(c0) + jnp.log(ratios)
        model, cache = model_of({**theta, coupling: 1.0}), {}
        out = {}
        for label, ev in evaluators.items():
            t = ev.templates(model, cache)
            _solved(out, label, lambda c, t=t, ev=ev: ev.profiled_from_templates(ev.scale_dark_matter(t, c**power), model),
                    u, ratios.shape[0], level, band_levels)
        return out

    return point


def affine_coupling_scan(evaluators: dict, model_of: Callable, null_of: Callable, strength: Callable, couplings,
                         level: float | None = None, band_levels: tuple = ()) -> Callable:
    """Point function θ → {label: Δχ² at each of ``couplings``} for templates affine in ``strength(g)``.

    ``model_of(θ)``: the model at the reference coupling, where ``strength`` = 1; ``null_of(model)``: the
    model where ``strength`` = 0 (e.g. the SM). Each evaluator's templates (any pytree linear in the
    neutrino flux: counts, not their logarithms) are computed for both once per point, and at each
    coupling g combined as t₀ + strength(g)(t₁ − t₀): exact where the physics is affine in the strength
    (module docstring; tested against the direct Δχ² in tests/test_scan.py). ``evaluators``: objects with
    ``templates`` and ``profiled_from_templates``. ``level``, ``band_levels``: as in
    :func:`dark_matter_coupling_scan` (outputs ``@crossings``, ``@brackets``, ``@bands``).
    """
    g = jnp.asarray(couplings, dtype=jnp.float64)
    u = jnp.log(g)

    def point(theta):
        model = model_of(theta)
        null = null_of(model)
        one, zero, out = {}, {}, {}
        for label, ev in evaluators.items():
            t1, t0 = ev.templates(model, one), ev.templates(null, zero)
            diff = jax.tree_util.tree_map(jnp.subtract, t1, t0)

            def chi2(c, t0=t0, diff=diff, ev=ev):
                s = strength(c)
                return ev.profiled_from_templates(jax.tree_util.tree_map(lambda a, d: a + s * d, t0, diff), model)
            _solved(out, label, chi2, u, g.shape[0], level, band_levels)
        return out

    return point


def _raster_then_illinois(chi2, u, levels, ranks, iterations: int):
    """Δχ² on the raster u = ln g, then in each slot j the ``ranks[j]``-th sign change of
    h_j = ln(Δχ²/``levels[j]``) refined by Illinois regula falsi in u (slots: the first crossings at one
    level, and the first crossing at each expected-limit band level). One evaluation site inside one loop
    (``chi2`` of one coupling per slot at each step: the raster in slices of that size, then the guesses),
    so the profiling code is compiled once and every step costs one evaluation per slot. Returns
    (raster Δχ², roots in u, valid, sign changes at each slot's level)."""
    levels, ranks = jnp.asarray(levels, dtype=jnp.float64), jnp.asarray(ranks)
    k, m = u.shape[0], levels.shape[0]
    r = -(-k // m)  # raster steps
    u_pad = jnp.pad(u, (0, r * m - k), mode="edge")
    h = lambda d, lev: jnp.log(jnp.maximum(d, 1e-30 * lev) / lev)  # noqa: E731

    def sign_changes(raster):
        """h of every slot on the raster (m, k), where it changes sign, and each slot's interval."""
        hr = h(raster[None, :k], levels[:, None])
        changes = hr[:, :-1] * hr[:, 1:] < 0
        first = jax.vmap(lambda c, n: jnp.argsort(~c, stable=True)[n])(changes, ranks)
        return hr, changes, first

    def brackets(raster):
        hr, _, first = sign_changes(raster)
        rows = jnp.arange(m)
        return u[first], u[first + 1], hr[rows, first], hr[rows, first + 1]

    def step(i, state):
        raster, a, b, fa, fb = state
        denom = fb - fa
        safe = jnp.abs(denom) > 0
        c = jnp.where(safe, b - fb * (b - a) / jnp.where(safe, denom, 1.0), 0.5 * (a + b))
        c = jnp.clip(c, jnp.minimum(a, b), jnp.maximum(a, b))
        at = jnp.minimum(i, r - 1) * m
        d = chi2(jnp.exp(jnp.where(i < r, jax.lax.dynamic_slice(u_pad, (at,), (m,)), c)))
        raster = jnp.where(i < r, jax.lax.dynamic_update_slice(raster, d, (at,)), raster)
        fc = h(d, levels)
        flip = fc * fb < 0
        later = (jnp.where(flip, b, a), c, jnp.where(flip, fb, 0.5 * fa), fc)
        new = jax.tree_util.tree_map(lambda s0, s1, s2: jnp.where(i == r - 1, s0, jnp.where(i >= r, s1, s2)),
                                     brackets(raster), later, (a, b, fa, fb))
        return (raster, *new)

    zero = jnp.zeros(m)
    raster, _, root, _, _ = jax.lax.fori_loop(0, r + iterations, step, (jnp.zeros(r * m), zero, zero, zero, zero))
    _, changes, first = sign_changes(raster)
    return raster[:k], root, changes[jnp.arange(m), first], jnp.sum(changes, axis=1)
