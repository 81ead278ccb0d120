"""Experiments as data: TOML descriptions validated on load and compiled into a pytree.

An :class:`Experiment` is (source, target, detector, backgrounds) with array leaves, plus static
metadata (:class:`ExperimentInfo`: name, citation, assumptions, nuisance priors). Presets ship as TOML
files in ``cevns_jax/presets``; users add a detector by writing a TOML file (see the presets and the
README for the schema). Loading checks every field and names the file, table and field of a problem.

Modules, each importing only those before it: :mod:`~cevns_jax.experiment.pytrees` (the pytrees) →
:mod:`~cevns_jax.experiment.sections` (one compiler per TOML table) → :mod:`~cevns_jax.experiment.checks`
(checks that need the physics) → :mod:`~cevns_jax.experiment.load` (the public loading API).
"""

from ..tomltable import read_toml
from .pytrees import TIME_PROFILES, Background, Detector, Experiment, ExperimentInfo
from .sections import EXPOSURES, TIMING_STEP
from .load import (OFF_SUFFIX, PRESET_DIR, experiment_from_dict, list_presets, load_experiment, load_exposures,
                   preset_summaries, reactor_off_description)

__all__ = [
    "Experiment", "Detector", "Background", "ExperimentInfo", "TIME_PROFILES", "EXPOSURES", "TIMING_STEP",
    "PRESET_DIR", "experiment_from_dict", "load_experiment", "read_toml", "list_presets", "preset_summaries",
    "OFF_SUFFIX", "load_exposures", "reactor_off_description",
]
