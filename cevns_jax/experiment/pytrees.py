"""The experiment as a pytree: (source, target, detector, backgrounds) with array leaves, plus static
metadata (:class:`ExperimentInfo`: name, citation, assumptions, nuisance priors, facility)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from .._pytree import pytree_dataclass, static_field
from ..binning import Binning
from ..nuclei import Target
from ..source import Source

__all__ = ["Detector", "Background", "TIME_PROFILES", "ExperimentInfo", "Experiment"]

TIME_PROFILES = ("table", "flat", "beam", "prompt", "delayed")
"""Values of :attr:`Background.time_profile`."""

@pytree_dataclass
class Detector:
    """Detector and analysis: mass [kg], baseline [m], response chain and bins. ``electron_scattering``
    (static, default False) adds neutrino–electron elastic scattering as a signal channel
    (:mod:`cevns_jax.electron_rates`, docs/physics.md §10). ``deuteron`` (a
    :class:`cevns_jax.deuteron.DeuteronResponse`, or ``None``) makes it a heavy-water Cherenkov detector of the
    ν–d breakup channel (TOML ``channel = "deuteron_breakup"``, docs/physics.md §11): it then sees no nuclear
    recoils. ``inelastic`` (a :class:`cevns_jax.inelastic.InelasticResponse`, or ``None``) adds the inelastic
    channels of TOML ``[detector.inelastic] channels`` (docs/physics.md §12). ``beam_angle_deg`` (or ``None``: the
    flux averaged over directions) is the angle between the proton beam and the direction from the target to the
    detector [degrees]: it sets the flux of dark matter from π⁰ decaying in flight (docs/physics.md §4.3)."""

    mass_kg: jnp.ndarray
    baseline_m: jnp.ndarray
    quenching: Any
    smearing: Any
    efficiency: Any
    timing_efficiency: Any
    binning: Binning
    observable: str = static_field(default="keVee")
    electron_scattering: bool = static_field(default=False)
    deuteron: Any = None
    inelastic: Any = None
    beam_angle_deg: jnp.ndarray | None = None


@pytree_dataclass
class Background:
    """A background with ``counts`` expected in the analysis region.

    ``shape`` is a normalised (n_E, n_t) template when ``time_profile == "table"``, otherwise a
    normalised energy distribution (n_E,) combined with a computed time profile: ``"flat"``
    (steady state), ``"beam"`` (proton pulse, e.g. beam-related neutrons), ``"prompt"`` or
    ``"delayed"`` (neutrino timing, e.g. neutrino-induced neutrons).
    """

    counts: jnp.ndarray
    shape: jnp.ndarray
    time_profile: str = static_field(default="table")


@dataclass(frozen=True)
class ExperimentInfo:
    """Static description of an experiment (hashable; not traced)."""

    name: str
    description: str = ""
    citation: str = ""
    status: str = "user"
    assumptions: tuple[str, ...] = ()
    priors: tuple[tuple[str, float], ...] = ()
    reference: tuple[tuple[str, float], ...] = ()
    source_file: str = ""
    facility: str = ""


@pytree_dataclass
class Experiment:
    """A complete experiment: source × target × detector (+ backgrounds)."""

    source: Source
    target: Target
    detector: Detector
    backgrounds: dict
    electroweak: Any = None
    """The experiment's own electroweak configuration (:class:`cevns_jax.xsec.StandardModel`, from its
    ``[physics]`` table) or ``None`` (the default SM); every consumer uses it unless given ``sm``."""
    info: ExperimentInfo = static_field(default=ExperimentInfo("custom"))

    @property
    def name(self) -> str:
        return self.info.name

