"""Test configuration: 64-bit floats for the whole session (never set in individual modules), and one
persistent compilation cache for the whole run.

The cache folder is a fresh temporary folder per run (made by the controlling process, inherited by the
pytest-xdist workers through the environment, removed at the end), never ``~/.cache``: tests stay
hermetic, but a program compiled by one test module (a preset's forward model, a forecast) is read back
by the others instead of being compiled again.
"""

import os
import shutil
import tempfile

import jax
import pytest

jax.config.update("jax_enable_x64", True)

_RUN_CACHE = "CEVNS_JAX_TEST_RUN_CACHE"
if not os.environ.get(_RUN_CACHE):
    os.environ[_RUN_CACHE] = tempfile.mkdtemp(prefix="cevns_jax_tests_")
os.environ["CEVNS_JAX_COMPILATION_CACHE"] = os.environ[_RUN_CACHE]  # CLI tests run in-process: same folder

from cevns_jax import enable_compilation_cache  # noqa: E402

enable_compilation_cache()


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # the controlling process (or a run without workers)
        shutil.rmtree(os.environ.pop(_RUN_CACHE, ""), ignore_errors=True)


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
