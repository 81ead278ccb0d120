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
from collections.abc import Mapping

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

_RUN_CACHE = "CEVNS_JAX_TEST_RUN_CACHE"
if not os.environ.get(_RUN_CACHE):
    os.environ[_RUN_CACHE] = tempfile.mkdtemp(prefix="cevns_jax_tests_")
os.environ["CEVNS_JAX_COMPILATION_CACHE"] = os.environ[_RUN_CACHE]  # CLI tests run in-process: same folder

from cevns_jax import enable_compilation_cache, fast_cpu_compilation  # noqa: E402

enable_compilation_cache()
fast_cpu_compilation()  # before any test starts the backend; workers and subprocesses inherit XLA_FLAGS

TEST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
"""LLVM optimisation level 0 for every program the tests compile (a flag already in ``XLA_FLAGS`` wins). A test
compiles a program and runs it a few times, so compilation is most of the suite (57% of its time at the default
level 2, running the programs under 16%): at level 0 programs compile about twice as fast and run up to three
times slower, and the default tier took 5.8 instead of 7.0 minutes, the slow tier 6.7 instead of 8.3 (idle
2 cores, jaxlib 0.10.2; README). Results are unchanged: no fast-math at any level, the same IEEE arithmetic (every test passes
at both). The jobs in ``scans/`` and the command line keep XLA's default level: their programs run long."""
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_COMPILE_FLAG}".strip()


_approx = pytest.approx


def _approx_of_arrays(expected, *args, **kwargs):
    """``pytest.approx`` with a JAX array taken as the NumPy array of its values. pytest 9.2 reads
    ``getattr(expected, "flat", expected)`` of any sequence-like ``expected`` to look for Decimals, and a JAX
    array raises NotImplementedError there instead of AttributeError (CI installs the newest pytest)."""
    if isinstance(expected, jax.Array):
        expected = np.asarray(expected)
    return _approx(expected, *args, **kwargs)


pytest.approx = _approx_of_arrays


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # the controlling process (or a run without workers)
        shutil.rmtree(os.environ.pop(_RUN_CACHE, ""), ignore_errors=True)


class _Presets(Mapping):
    """Every preset by name, each loaded on first access and then kept (a worker running a few test
    modules loads only the presets they use: loading runs the input checks, tens of small compilations)."""

    def __init__(self):
        from cevns_jax.experiment import list_presets

        self._names, self._loaded = tuple(list_presets()), {}

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        if name not in self._loaded:
            from cevns_jax.experiment import load_experiment

            self._loaded[name] = load_experiment(name)
        return self._loaded[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


@pytest.fixture(scope="session")
def presets():
    """Experiment presets by name, each loaded once per session (on first use)."""
    return _Presets()


@pytest.fixture(scope="session")
def jit_total():
    """jax.jit(total_cevns) (total CEvNS counts), shared so each preset structure compiles once."""
    from cevns_jax.rates import total_cevns

    return jax.jit(total_cevns)


@pytest.fixture(scope="session")
def jit_counts():
    """jax.jit(expected_counts), shared so each preset structure compiles once."""
    from cevns_jax.rates import expected_counts

    return jax.jit(expected_counts)


@pytest.fixture(scope="session")
def batched_jvp():
    """``batched_jvp(f, batch)``: one compiled program giving f(x) and its derivative along v for up to ``batch``
    rows of points and directions (shorter calls are padded with the last row, so every call of a test module
    runs the same program). Returns ``run(points, directions) -> (values, derivatives)`` as NumPy arrays."""
    import jax.numpy as jnp

    def make(f, batch: int):
        program = jax.jit(jax.vmap(lambda x, v: jax.jvp(f, (x,), (v,))))

        def run(points, directions):
            points, directions = np.asarray(points, float), np.asarray(directions, float)
            pad = lambda a: np.concatenate([a, np.repeat(a[-1:], batch - len(a), axis=0)])  # noqa: E731
            values, derivatives = program(jnp.asarray(pad(points)), jnp.asarray(pad(directions)))
            return np.asarray(values)[: len(points)], np.asarray(derivatives)[: len(points)]

        return run

    return make


HEAVIEST_FIRST = (
    "test_models.py", "test_sources.py", "test_accuracy.py", "test_rates.py", "test_dm_offshell.py",
    "test_likelihood.py", "test_toys.py", "test_fits.py", "test_electron.py", "test_subkev.py", "test_scan.py",
    "test_dm_channels.py", "test_inelastic.py", "test_source.py", "test_design.py", "test_transforms.py",
    "test_solar_presets.py", "test_facility_presets.py", "test_relic.py", "test_compile_once.py", "test_xsec.py",
    "test_d2o.py", "test_response.py", "test_physics_config.py", "test_jobs.py", "test_reactor_presets.py",
    "test_runtime.py", "test_inputs.py", "test_germanium.py", "test_dm_flight.py",
)
"""A scheduling hint, nothing else: the test modules that took longest (default tier, ``--durations=0``
summed per module, 2026-11-29, session 18), in that order. pytest-xdist hands each worker whole modules (``--dist loadfile``) as it runs
short of work, in collection order (``--no-loadscope-reorder``; its default order is by number of tests,
which queued the few-test, compile-heavy modules last, one worker finishing them alone while the other
idled): the longest start first, the many short ones fill the gaps. Modules not listed follow in their
usual order."""


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order is kept
