"""An explicit, replaceable cost model for detector design (issue 6). Every number here is an ASSUMPTION.

The cost of a detector, in arbitrary "cost units" (read them as k$ if you like; nothing here is a
quote), is

    cost = fixed + per_kg·m                                        (target, shielding, DAQ)
         + cryogenic·(cryo_fixed + cryo_per_kg·m)                  (cryostat, cryocooler, LN₂)
         + threshold_cost·(E_ref / E_th)^threshold_power           (sensors and noise work; rises as E_th falls)
         + light_yield_cost·(LY / LY_ref)^light_yield_power        (photosensor coverage; PE readouts only)

with m the target mass [kg], E_th the efficiency's 50 % point converted to keVee (a threshold in PE is
divided by the light yield), LY the light yield [PE/keVee]. A program costs the sum over its detectors.

Replace it freely: :class:`cevns_jax.design.Budget` accepts any pytree (or
``jax.tree_util.Partial``) ``cost`` with ``cost(experiments) -> scalar``. With the budget imposed by
parametrisation (the mass of one detector is what the money left buys), the cost must be affine in
that mass; :func:`cevns_jax.design.validate_design` checks this.

The presets below are illustrative round numbers for a demonstration study, not an estimate of any
real detector; they are listed in the docstring of each factory so that a reader sees what was assumed.
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import response as resp
from .._pytree import pytree_dataclass, static_field
from ..errors import CevnsInputError


@pytree_dataclass
class DetectorCost:
    """Cost of one detector (cost units); every field is an assumption. See the module docstring."""

    fixed: jnp.ndarray
    per_kg: jnp.ndarray
    cryo_fixed: jnp.ndarray
    cryo_per_kg: jnp.ndarray
    threshold_cost: jnp.ndarray
    threshold_ref_keVee: jnp.ndarray
    threshold_power: jnp.ndarray
    light_yield_cost: jnp.ndarray
    light_yield_ref: jnp.ndarray
    light_yield_power: jnp.ndarray
    cryogenic: bool = static_field(default=False)


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def detector_cost_model(*, fixed=0.0, per_kg=0.0, cryo_fixed=0.0, cryo_per_kg=0.0, cryogenic=False,
                        threshold_cost=0.0, threshold_ref_keVee=1.0, threshold_power=2.0,
                        light_yield_cost=0.0, light_yield_ref=1.0, light_yield_power=1.0) -> DetectorCost:
    """A :class:`DetectorCost` from keyword arguments (all default to no cost)."""
    values = dict(fixed=fixed, per_kg=per_kg, cryo_fixed=cryo_fixed, cryo_per_kg=cryo_per_kg,
                  threshold_cost=threshold_cost, threshold_ref_keVee=threshold_ref_keVee,
                  threshold_power=threshold_power, light_yield_cost=light_yield_cost,
                  light_yield_ref=light_yield_ref, light_yield_power=light_yield_power)
    for key, v in values.items():
        try:
            bad = not float(v) >= 0.0
        except TypeError:  # traced
            bad = False
        if bad:
            raise CevnsInputError(f"cost model: {key} must be a number >= 0, got {v!r}")
    for key in ("threshold_ref_keVee", "light_yield_ref"):
        if float(values[key]) <= 0:
            raise CevnsInputError(f"cost model: {key} must be > 0, got {values[key]!r}")
    return DetectorCost(**{k: _f(v) for k, v in values.items()}, cryogenic=cryogenic)


def threshold_keVee(experiment):
    """The efficiency's 50 % point in keVee (a PE threshold divided by the light yield); None if the
    efficiency has no threshold parameter (then the threshold term of the cost is 0)."""
    eff, smear = experiment.detector.efficiency, experiment.detector.smearing
    if not isinstance(eff, resp.LogisticEfficiency):
        return None
    light_yield = getattr(smear, "light_yield_PE_per_keV", None)
    return eff.threshold if light_yield is None else eff.threshold / light_yield


def detector_cost(model: DetectorCost, experiment):
    """Cost of one (designed) experiment under ``model`` [cost units]."""
    m = experiment.detector.mass_kg
    total = model.fixed + model.per_kg * m
    if model.cryogenic:
        total = total + model.cryo_fixed + model.cryo_per_kg * m
    e_th = threshold_keVee(experiment)
    if e_th is not None:
        total = total + model.threshold_cost * (model.threshold_ref_keVee / e_th) ** model.threshold_power
    light_yield = getattr(experiment.detector.smearing, "light_yield_PE_per_keV", None)
    if light_yield is not None:
        total = total + model.light_yield_cost * (light_yield / model.light_yield_ref) ** model.light_yield_power
    return total


@pytree_dataclass
class ProgramCost:
    """Cost of a multi-detector program: one :class:`DetectorCost` per experiment, summed."""

    detectors: tuple

    def __call__(self, experiments):
        if len(experiments) != len(self.detectors):
            raise CevnsInputError(
                f"cost model has {len(self.detectors)} detector entries but the program has {len(experiments)} experiments"
            )
        return sum(detector_cost(c, e) for c, e in zip(self.detectors, experiments))


def cryogenic_csi_cost() -> DetectorCost:
    """ASSUMED cost of an undoped cryogenic CsI detector with SiPM readout (illustrative, cost units ≈ k$):

    fixed 150 (shielding, DAQ, installation); crystal 1.5 /kg; cryostat + cryocooler 100 fixed and
    1 /kg; threshold 60 × (0.2 keVee / E_th)² — 0.2 keVee is the COH-CryoCsI-10kg preset's 8 PE at
    40 PE/keVee, and the square says halving the threshold costs four times the sensor and noise work.
    """
    return detector_cost_model(fixed=150.0, per_kg=1.5, cryogenic=True, cryo_fixed=100.0, cryo_per_kg=1.0,
                               threshold_cost=60.0, threshold_ref_keVee=0.2, threshold_power=2.0)
