"""cevns_jax: differentiable forecasts for coherent elastic neutrino-nucleus scattering at π-DAR sources.

Float policy: all physics runs in float64. The library does not change JAX's configuration when it
is imported; call :func:`enable_x64` first (the command line and the ``scans/`` scripts do). Public
entry points raise :class:`RuntimeError` when 64-bit floats are off, so nothing silently runs in
float32 (cross sections of 1e-40 cm² lie below float32's smallest normal number).
"""

from __future__ import annotations

import jax

from . import constants as constants
from .design import cost as cost
from . import design as design
from ._pytree import replace as replace
from .errors import CevnsInputError as CevnsInputError
from .errors import DataFileError as DataFileError
from .experiment import Experiment as Experiment
from .experiment import experiment_from_dict as experiment_from_dict
from .experiment import list_presets as list_presets
from .experiment import load_experiment as load_experiment
from .facilities import FACILITIES as FACILITIES
from .nuclei import make_target as make_target
from .rates import cevns_counts as cevns_counts
from .rates import expected_counts as expected_counts
from .rates import total_cevns as total_cevns
from .source import COMPONENTS as COMPONENTS
from .xsec import StandardModel as StandardModel
from .xsec import standard_model as standard_model

__version__ = "0.1.0"


def enable_x64() -> None:
    """Switch JAX to 64-bit floats (required by every physics function of this package)."""
    jax.config.update("jax_enable_x64", True)
