"""New physics as pure functions of parameter pytrees (docs/physics.md §4).

A :class:`NewPhysics` bundles optional sub-models; the SM is every field ``None`` (or every coupling
at its null value, which reproduces the SM exactly). Each sub-model acts in one of three ways:

* a modification of the weak charge per flavour: :mod:`.zprime` (general, universal, B−L, L_μ−L_τ),
  :mod:`.nsi`, the charge radii of :mod:`.em`;
* an extra incoherent cross section: the magnetic moments of :mod:`.em`, a light scalar (:mod:`.scalar`);
* a factor on the flux per flavour: :mod:`.sterile` (3+1 oscillations);
* an extra signal component with its own flux, cross section and timing: :mod:`.darkmatter`
  (with its thermal-relic targets in :mod:`.relic`).

Parameter domains (masses > 0, 0 ≤ |U|² ≤ 1, Δm² ≥ 0, …) are enforced by the constructors: a concrete
value outside raises :class:`~cevns_jax.errors.CevnsInputError`, a traced one (jit/vmap/grad, scans)
becomes NaN — see :func:`cevns_jax.errors.domain_checked` and each module's docstring.
"""

from __future__ import annotations

from typing import Any

from .._pytree import pytree_dataclass
from .darkmatter import DarkMatter, at_source, benchmark_Y, dark_matter, epsilon_from_Y
from .em import Electromagnetic
from .em import properties as em_properties
from .scalar import Scalar, scalar_mediator
from .nsi import NSI
from .nsi import couplings as nsi_couplings
from .relic import relic_Y
from .sterile import Sterile
from .sterile import mixing as sterile_mixing
from .zprime import ZPrime, b_minus_l, general, lmu_minus_ltau, universal

__all__ = [
    "NewPhysics", "ZPrime", "NSI", "Electromagnetic", "Sterile", "DarkMatter", "dark_matter", "at_source", "benchmark_Y",
    "epsilon_from_Y", "relic_Y", "Scalar", "scalar_mediator",
    "universal", "b_minus_l", "lmu_minus_ltau", "general", "nsi_couplings", "em_properties", "sterile_mixing",
]


@pytree_dataclass
class NewPhysics:
    """Optional new-physics sub-models (``None``: absent)."""

    zprime: Any = None
    nsi: Any = None
    em: Any = None
    sterile: Any = None
    dark_matter: Any = None
    scalar: Any = None
