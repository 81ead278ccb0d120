"""Test configuration: 64-bit floats for the whole session (never set in individual modules)."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
os.environ["CEVNS_JAX_COMPILATION_CACHE"] = "0"  # hermetic: CLI tests run in-process and must not write ~/.cache


@pytest.fixture(scope="session")
def presets():
    """Compiled experiment presets, loaded once per session."""
    from cevns_jax.experiment import list_presets, load_experiment

    return {name: load_experiment(name) for name in list_presets()}


@pytest.fixture(scope="session")
def jit_counts():
    """jax.jit(expected_counts), shared so each preset structure compiles once."""
    from cevns_jax.rates import expected_counts

    return jax.jit(expected_counts)
