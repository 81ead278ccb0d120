"""Validation of designs on concrete values (never inside a trace): zero masses or exposures, thresholds
above the kinematic endpoint, unmeetable budgets and conflicting variables raise
:class:`~cevns_jax.errors.CevnsInputError`."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from .. import response as resp
from .._pytree import replace, require_x64
from ..errors import CevnsInputError
from ..experiment.checks import largest_signal
from .transforms import Interval, LogInterval
from .variables import Design, apply_variables, budget_mass_kg, check_structure, initial_params, realise, to_physical

__all__ = ["check_tables", "largest_signal_keVee", "check_experiments", "validate_design"]


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def _concrete(x) -> bool:
    """True unless some leaf is being traced (checks on values run only on concrete inputs)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def check_tables(design: Design, experiments) -> None:
    for label, var in design.variables.items():
        if var.kind in ("energy_edges", "time_edges_ns"):
            exp = experiments[var.experiment]
            tables = [n for n, b in exp.backgrounds.items() if b.time_profile == "table"]
            if tables:
                raise CevnsInputError(
                    f"design variable {label!r}: {exp.name} has tabulated (energy × time) background templates "
                    f"({', '.join(tables)}) that cannot be re-binned; design the edges of a preset with "
                    "computed profiles"
                )


# ----------------------------------------------------------------------------------------------
# Validation on concrete values (never inside a trace)
# ----------------------------------------------------------------------------------------------
def largest_signal_keVee(exp):
    """Largest quenched recoil energy [keVee]: T_max at the source's endpoint (E_ν = m_μ/2 for π-DAR) on the
    lightest isotope; the loader's check (:func:`cevns_jax.experiment.checks.largest_signal`), one compiled program
    per detector structure."""
    return float(largest_signal(exp, jnp.zeros(2))[0])


def check_experiments(experiments) -> None:
    """Concrete checks of designed experiments: masses and exposures > 0, thresholds below the
    kinematic endpoint (less than 1e-9 of the largest CEvNS signal above them is refused)."""
    for k, exp in enumerate(experiments):
        if not _concrete(exp):
            return
        det = exp.detector
        mass = float(det.mass_kg)
        if not np.isfinite(mass) or mass <= 0:
            raise CevnsInputError(f"experiment {k} ({exp.name}): target mass must be > 0 kg, got {mass:g}")
        pot = float(exp.source.protons_on_target)
        if not np.isfinite(pot) or pot <= 0:
            raise CevnsInputError(f"experiment {k} ({exp.name}): exposure must be > 0, got {pot:g} protons on target")
        E_max = largest_signal_keVee(exp)
        unit = det.observable

        def unreachable(x):
            smear = det.smearing
            if isinstance(smear, resp.PoissonPESmearing):
                # the photoelectron sum is truncated for the analysis bins; extend it past x for this check
                smear = replace(smear, n_max=int(np.ceil(float(x) + 10.0 * np.sqrt(max(float(x), 1.0)) + 20.0)))
            return float(1.0 - smear.cdf(jnp.asarray(x), jnp.asarray(E_max))) < 1e-9

        edges = np.asarray(det.binning.energy_edges)
        if unreachable(edges[0]):
            raise CevnsInputError(
                f"experiment {k} ({exp.name}): the lowest energy edge {edges[0]:g} {unit} is above the largest CEvNS "
                f"signal (E_ee = {E_max:.3g} keVee at E_ν = m_μ/2)"
            )
        if isinstance(det.efficiency, resp.LogisticEfficiency) and unreachable(det.efficiency.threshold):
            raise CevnsInputError(
                f"experiment {k} ({exp.name}): threshold {float(det.efficiency.threshold):g} {unit} is above the "
                f"largest CEvNS signal (E_ee = {E_max:.3g} keVee at E_ν = m_μ/2); no signal would be seen"
            )


def _box_corners(design: Design, base: dict) -> list[dict]:
    """Physical points at the corners of the scalar bounded variables (others at ``base``)."""
    boxed = [(label, var.bijection) for label, var in design.variables.items()
             if isinstance(var.bijection, (Interval, LogInterval)) and jnp.ndim(base[label]) == 0]
    corners = []
    for choice in itertools.product(*[(b.lower, b.upper) for _, b in boxed[:8]]):
        point = dict(base)
        point.update({label: value for (label, _), value in zip(boxed, choice)})
        corners.append(point)
    return corners


def validate_design(design: Design, experiments, params: dict | None = None) -> dict:
    """Check a design on concrete values and return its initial unconstrained parameters.

    Raises :class:`CevnsInputError` for conflicting variables, initial values outside a bijection's
    range, zero masses or exposures, thresholds beyond the kinematic endpoint, re-binned tabulated
    backgrounds, and a budget that cannot be met: with ``method="mass"`` the derived mass must be > 0
    at the initial point and at every corner of the boxed scalar variables (the extremes of a cost
    monotone in them), and the cost must be affine in that mass.
    """
    require_x64()
    experiments = list(experiments)
    check_structure(design, len(experiments))
    check_tables(design, experiments)
    u = initial_params(design, experiments) if params is None else params
    exps, phys = realise(design, u, experiments)
    b = design.budget
    if b is not None:
        cost_now = float(b.cost(exps))
        if b.method == "mass":
            k = b.experiment

            def cost_at(m):
                e = list(exps)
                e[k] = replace(e[k], detector=replace(e[k].detector, mass_kg=_f(m)))
                return float(b.cost(e))

            c0, c1, c2 = cost_at(0.0), cost_at(1.0), cost_at(2.0)
            if not c1 > c0:
                raise CevnsInputError(f"budget: the cost must rise with the mass of experiment {k} "
                                      f"(got {c0:g} at 0 kg, {c1:g} at 1 kg)")
            if abs(c2 - 2 * c1 + c0) > 1e-9 * max(abs(c1), 1.0):
                raise CevnsInputError(
                    "budget: method='mass' needs a cost affine in the derived mass; use method='penalty'")
            start = to_physical(design, u)
            for point in [start] + _box_corners(design, start):
                # corners lie on the box boundary (u = ±∞): evaluate at the physical values directly
                m = float(_corner_mass(design, point, experiments))
                if not m > 0:
                    where = ", ".join(f"{lab} = {np.asarray(v).round(6).tolist()}" for lab, v in point.items())
                    raise CevnsInputError(
                        f"budget {float(b.total):g} cannot be met: at {where} the other costs leave {m:g} kg for "
                        f"experiment {k}; raise the budget or narrow the variables' ranges"
                    )
        elif not np.isfinite(cost_now):
            raise CevnsInputError("budget: the cost of the initial design is not finite")
    check_experiments(exps)
    return u


def _corner_mass(design: Design, physical: dict, experiments):
    """Budget-derived mass at physical values ``physical`` (which may lie on a box boundary)."""
    return budget_mass_kg(design.budget, apply_variables(design, physical, list(experiments)))
