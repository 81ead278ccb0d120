"""Entry points compile once per shape: a second call with the same structures compiles nothing.

Compilations are counted with JAX's own monitoring event for backend compiles (every XLA compilation,
jitted programs and eager primitives alike), so a closure jitted afresh per call would be caught.
"""

import contextlib

import jax
import jax.numpy as jnp
import pytest

from cevns_jax import design as D
from cevns_jax import replace
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml
from cevns_jax.models import NewPhysics, lmu_minus_ltau
from cevns_jax.stats import fits, limits
from cevns_jax.stats.analyses import load_analysis, with_linear_morphing
from cevns_jax.stats.fisher import fisher_blocks, fisher_matrix
from cevns_jax.stats.forecast import AsimovForecast

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """A list that collects one entry per XLA compilation inside the block: the compiled program's name."""
    seen = []

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE:
            seen.append(kwargs.get("fun_name", ""))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def twice(fn):
    """Run ``fn`` twice; return the number of compilations of each run."""
    with compilations() as first:
        fn()
    with compilations() as second:
        fn()
    return len(first), len(second)


@pytest.fixture(scope="module")
def ge():
    data = read_toml(PRESET_DIR / "COH-Ge-mini.toml", "experiment")
    data["bins"] = {"energy_edges": [1.0, 2.0, 4.0, 15.0], "time_edges_us": [0.0, 1.0, 6.0], "energy_subdivisions": 2}
    return experiment_from_dict(data, label="COH-Ge-mini", base=PRESET_DIR)


def _lmu(theta):
    return NewPhysics(zprime=lmu_minus_ltau(10.0, theta["g"]))


def _counts(p):
    return p["a"] * jnp.array([1.0, 2.0, 3.0]) + p["b"]


def test_the_compile_counter_sees_a_fresh_program():
    with compilations() as seen:
        jax.jit(lambda x: jnp.sin(x) * 1.2345678)(jnp.arange(7.0)).block_until_ready()
    assert len(seen) >= 1


def test_forecast_and_fisher_entry_points_compile_once(ge):
    # (the first call may find its per-experiment programs in the run's shared compilation cache,
    # compiled by another test worker: only the second call's count is asserted)
    first, second = twice(lambda: AsimovForecast([ge], _lmu).reference.data.block_until_ready())
    assert second == 0
    first, second = twice(lambda: fisher_blocks((ge,), ("sin2_theta_w",)).blocks.block_until_ready())
    assert first > 0 and second == 0
    p = {"a": jnp.asarray(2.0), "b": jnp.asarray(1.0)}
    first, second = twice(lambda: fisher_matrix(_counts, p, {"b": 0.5}))
    assert first > 0 and second == 0


def _objective(params):
    return jnp.sum((params["x"] - 1.5) ** 2)


def test_design_optimiser_compiles_once():
    first, second = twice(lambda: D.optimise(_objective, {"x": jnp.zeros(2)}, max_steps=5))
    assert first > 0 and second == 0
    # within one run too: the step's program (the largest by far) compiles at its first step only, however
    # the optimiser state's types look at initialisation (optax's L-BFGS starts with weakly typed scalars)
    with compilations() as seen:
        result = D.optimise(lambda p: jnp.sum((p["x"] - 0.5) ** 2 + p["x"] ** 4), {"x": jnp.zeros(3)}, max_steps=6)
    assert result.n_steps >= 2
    steps = [name for name in seen if "step" in name]
    assert len(steps) == 1, seen


@pytest.fixture(scope="module")
def csi2017():
    return load_analysis("COHERENT-CsI-2017")


def test_fit_and_data_limit_entry_points_compile_once(csi2017):
    objective = fits.Objective([csi2017], "cevns_count")
    first, second = twice(lambda: fits.best_fit(objective, 4))
    assert first > 0 and second == 0
    bare = replace(csi2017, signal_shape=None)  # (loading a preset runs an eager loop in the quadrature)
    first, second = twice(lambda: with_linear_morphing(bare).signal_shape.nominal.block_until_ready())
    assert second == 0  # (the fixture's load compiled it already)
    first, second = twice(lambda: limits.DataLimit(_lmu, analysis=csi2017, reference_steps=4).chi2_min)
    assert first > 0 and second == 0


def test_a_run_once_program_is_one_compilation(ge):
    """An experiment's SM reference (a program evaluated once per structure) on binnings no other test uses is one
    XLA compilation each: the operations on constants inside it (quadrature nodes, spectra, unit conversions) are
    compiled into it, not run eagerly one small program at a time while it is traced (the constant folding that
    ``ensure_compile_time_eval`` turns on for the call is off inside the program's own trace)."""
    from cevns_jax.stats.forecast import experiment_reference

    for n_bins in (5, 9):  # a second structure: the first's eager operations would be cached for shapes they share
        exp = replace(ge, detector=replace(ge.detector, binning=replace(
            ge.detector.binning, energy_edges=jnp.linspace(1.0, 15.0, n_bins + 1))))
        with compilations() as seen:
            experiment_reference(exp, ("quenching_k",))
        # the program, and JAX placing its large constants (a few broadcasts); measured 6 and 4 (89 and 23 with the
        # operations on constants run eagerly)
        assert seen.count("jit(experiment_reference)") == 1 and len(seen) <= 8, seen


def test_load_time_checks_compile_once_per_detector_structure():
    """A second experiment with the same kinds of target, quenching and smearing (other bin edges, baseline) is
    loaded without compiling its load-time checks again (the recoil-grid survey and the largest-signal check take
    the detector's parts, not the experiment: measured 1 small program against 3 with a program per experiment)."""
    import copy

    data = read_toml(PRESET_DIR / "COH-Ge-mini.toml", "experiment")
    experiment_from_dict(copy.deepcopy(data), label="first.toml", base=PRESET_DIR)
    other = copy.deepcopy(data)
    other["bins"]["energy_edges"], other["detector"]["baseline_m"] = [2.0, 3.0, 5.0, 8.0, 12.0], 25.0
    with compilations() as seen:
        experiment_from_dict(other, label="second.toml", base=PRESET_DIR)
    assert len(seen) <= 1, seen
