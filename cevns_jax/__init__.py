"""cevns_jax: differentiable forecasts for coherent elastic neutrino-nucleus scattering at π-DAR sources.

Float policy: all physics runs in float64. The library does not change JAX's configuration when it
is imported; call :func:`enable_x64` first (the command line and the ``scans/`` scripts do). Public
entry points raise :class:`RuntimeError` when 64-bit floats are off, so nothing silently runs in
float32 (cross sections of 1e-40 cm² lie below float32's smallest normal number).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from . import constants as constants
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
from .reactor import ReactorSource as ReactorSource
from .reactor import make_reactor as make_reactor
from .solar import SolarSource as SolarSource
from .solar import make_solar as make_solar
from .spectra import TabulatedSource as TabulatedSource
from .spectra import make_tabulated_source as make_tabulated_source
from .source import COMPONENTS as COMPONENTS
from .xsec import StandardModel as StandardModel
from .xsec import standard_model as standard_model

__version__ = "0.1.0"

_LAZY = {"design": "cevns_jax.design", "cost": "cevns_jax.design.cost"}
"""Subpackages imported on first use (``cevns_jax.design``, ``cevns_jax.cost``): the design layer pulls in optax
and the statistics engine, ≈ 0.35 s of every process start (the command line, each worker) that most never use."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "constants", "cost", "design", "replace", "CevnsInputError", "DataFileError", "Experiment", "experiment_from_dict",
    "list_presets", "load_experiment", "FACILITIES", "make_target", "cevns_counts", "expected_counts", "total_cevns",
    "COMPONENTS", "ReactorSource", "make_reactor", "SolarSource", "make_solar", "TabulatedSource",
    "make_tabulated_source", "StandardModel", "standard_model", "enable_x64", "enable_compilation_cache", "CACHE_ENV",
    "fast_cpu_compilation", "CPU_COMPILE_FLAGS", "FLAGS_VERIFIED_JAXLIB", "XLA_DEFAULTS_ENV",
    "__version__",
]


def enable_x64() -> None:
    """Switch JAX to 64-bit floats (required by every physics function of this package)."""
    jax.config.update("jax_enable_x64", True)


CACHE_ENV = "CEVNS_JAX_COMPILATION_CACHE"
"""Environment variable: a folder for JAX's persistent compilation cache, or ``0``/``off`` to disable it."""


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Keep compiled XLA programs on disk so a second run of the same job skips compilation.

    Folder: ``path``, else ``$CEVNS_JAX_COMPILATION_CACHE``, else ``$XDG_CACHE_HOME/cevns_jax/jax``
    (``~/.cache/cevns_jax/jax``). Setting ``CEVNS_JAX_COMPILATION_CACHE=0`` (or ``off``) opts out.
    The command line and the ``scans/`` jobs call this; the library alone never does. Every program is
    stored, also the small ones eager code compiles (a warm ``cevns predict --all`` took 36 s instead
    of 130 s on a loaded 2-core machine). Returns the folder, or ``None`` when disabled.
    """
    setting = os.environ.get(CACHE_ENV, "")
    if path is None and setting.lower() in ("0", "off", "no", "false"):
        return None
    folder = Path(path or setting or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cevns_jax" / "jax")
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


XLA_DEFAULTS_ENV = "CEVNS_JAX_XLA_DEFAULTS"
"""Environment variable: ``0``/``off`` keeps XLA's own CPU compiler settings (:func:`fast_cpu_compilation`)."""

CPU_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)
"""XLA CPU flags set by :func:`fast_cpu_compilation`: XLA's elemental (LLVM IR) fusion emitter instead of its
newer MLIR fusion emitters. Compilation, most of a cold start, is 25–40% faster on this package's programs at
the same run time (measured with jaxlib 0.10.2 on 2 CPU cores: three presets' forward models 8.0 → 5.0 s,
the Ar-750 scan program 4.0 → 3.0 s with 0.95 → 0.89 s run; README, Speed). Results are unchanged: the
emitters generate the same arithmetic (the test suite runs with the flag)."""

FLAGS_VERIFIED_JAXLIB = ((0, 10),)
"""jaxlib releases (major, minor) whose XLA knows :data:`CPU_COMPILE_FLAGS` (measured with 0.10.2). Any other
release is left alone: XLA aborts the process on a flag it does not know, and jaxlib 0.11.2 no longer knows
``--xla_cpu_use_fusion_emitters`` (seen on a GPU machine, session 19)."""


def fast_cpu_compilation() -> bool:
    """Append :data:`CPU_COMPILE_FLAGS` to ``XLA_FLAGS`` so that XLA compiles CPU programs faster.

    XLA reads ``XLA_FLAGS`` when its backend starts, so call this before the first computation (the command
    line, the ``scans/`` jobs and the test suite do; the library alone never does). A flag already present in
    ``XLA_FLAGS`` is kept as the user set it; ``CEVNS_JAX_XLA_DEFAULTS=0`` opts out, and jaxlib releases other
    than those in :data:`FLAGS_VERIFIED_JAXLIB` are left alone (an unknown XLA flag aborts the process).
    Returns whether the flags are in ``XLA_FLAGS``.
    """
    if os.environ.get(XLA_DEFAULTS_ENV, "").lower() in ("0", "off", "no", "false"):
        return False
    import jaxlib

    try:
        version = tuple(int(p) for p in jaxlib.__version__.split(".")[:2])
    except ValueError:
        return False
    if version not in FLAGS_VERIFIED_JAXLIB:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    extra = [f for f in CPU_COMPILE_FLAGS if f.split("=")[0] not in flags]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
    return True
