"""jit, vmap and grad through the forward model; gradients against central finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cevns_jax import rates
from cevns_jax import replace

GRAD_RTOL = 1e-5


def total(exp):
    return rates.total_cevns(exp)


def set_leaf(exp, path, value):
    """Functional update of one nested leaf given as attribute names."""
    if len(path) == 1:
        return replace(exp, **{path[0]: value})
    return replace(exp, **{path[0]: set_leaf(getattr(exp, path[0]), path[1:], value)})


def get_leaf(exp, path):
    for p in path:
        exp = getattr(exp, p)
    return exp


CASES = [
    ("COHERENT-CENNS10-2020", ("detector", "quenching", "a")),
    ("COHERENT-CENNS10-2020", ("detector", "quenching", "b_per_keVnr")),
    ("COHERENT-CsI-2021", ("detector", "quenching", "pulls")),
    ("COH-Ar-750", ("detector", "efficiency", "threshold")),
    ("COH-CryoCsI-10kg", ("detector", "efficiency", "threshold")),
    ("COHERENT-CENNS10-2020", ("detector", "mass_kg")),
    ("COHERENT-CENNS10-2020", ("detector", "baseline_m")),
    ("COHERENT-CENNS10-2020", ("source", "nu_per_proton")),
    ("COHERENT-CENNS10-2020", ("source", "pulse", "mean_ns")),
    ("COHERENT-CsI-2021", ("source", "pulse", "mean_ns")),
    ("COHERENT-CENNS10-2020", ("detector", "binning", "energy_edges")),
    ("COH-Ge-mini", ("target", "radius_scale")),
]
SLOW_CASES = [("COHERENT-CsI-2021", ("source", "pulse", "mean_ns"))]  # the same leaf as CENNS10's: slow tier


def set_leaves(exp, paths, values):
    for path, value in zip(paths, values):
        exp = set_leaf(exp, path, value)
    return exp


_PROGRAMS = {}


def value_and_gradient(name):
    """(Total counts, their gradient) in the leaves of preset ``name`` that :data:`CASES` checks, as a tuple:
    one compiled program per preset shared by its cases (the finite differences reuse it)."""
    if name not in _PROGRAMS:
        paths = tuple(p for n, p in CASES if n == name)
        _PROGRAMS[name] = paths, jax.jit(jax.value_and_grad(lambda values, exp: total(set_leaves(exp, paths, values))))
    return _PROGRAMS[name]


@pytest.mark.parametrize("name,path", [pytest.param(*c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in CASES],
                         ids=[f"{n}:{'.'.join(p)}" for n, p in CASES])
def test_gradient_matches_central_differences(presets, name, path):
    exp = presets[name]
    paths, program = value_and_gradient(name)
    values = tuple(jnp.asarray(get_leaf(exp, p), dtype=jnp.float64) for p in paths)
    i = paths.index(path)
    x0 = values[i]
    value, grads = program(values, exp)
    grad = np.asarray(grads[i])
    assert np.all(np.isfinite(grad))

    def f(x):
        return float(program(values[:i] + (jnp.asarray(x, dtype=jnp.float64),) + values[i + 1:], exp)[0])

    flat = np.asarray(x0, dtype=np.float64).reshape(-1)
    for k in range(flat.size):
        h = 1e-4 * max(abs(flat[k]), 1e-2)
        e = np.zeros_like(flat)
        e[k] = h
        fd = (f((flat + e).reshape(np.shape(x0))) - f((flat - e).reshape(np.shape(x0)))) / (2 * h)
        g = grad.reshape(-1)[k]
        scale = max(abs(fd), 1e-6 * abs(float(value)) / max(abs(flat[k]), 1e-2))
        assert abs(g - fd) <= GRAD_RTOL * scale + 1e-9, (k, g, fd)


@pytest.mark.slow  # a heavy cross-check (tens of seconds of compilation); a lighter one stays in the default tier
def test_jit_equals_eager(presets):
    exp = presets["COHERENT-CENNS10-2020"]
    eager = rates.expected_counts(exp)
    jitted = jax.jit(rates.expected_counts)(exp)
    for key in eager:
        np.testing.assert_allclose(jitted[key], eager[key], rtol=1e-12, atol=1e-14)


def test_vmap_over_three_points_equals_loop(presets):
    exp = presets["COHERENT-CENNS10-2020"]
    a = jnp.array([0.23, 0.246, 0.26])
    baseline = jnp.array([20.0, 27.5, 35.0])

    def f(a_i, L_i):
        e = set_leaf(set_leaf(exp, ("detector", "quenching", "a"), a_i), ("detector", "baseline_m"), L_i)
        return rates.cevns_counts(e)

    batched = jax.jit(jax.vmap(f))(a, baseline)
    looped = jnp.stack([jax.jit(f)(a[i], baseline[i]) for i in range(3)])
    np.testing.assert_allclose(batched, looped, rtol=1e-12)


def test_no_recompilation_for_new_values(presets):
    exp = presets["COHERENT-CsI-2021"]
    traces = []

    @jax.jit
    def f(e):
        traces.append(1)
        return rates.total_cevns(e)

    f(exp)
    f(set_leaf(exp, ("detector", "mass_kg"), jnp.asarray(20.0, dtype=jnp.float64)))
    f(set_leaf(exp, ("source", "pulse", "mean_ns"), jnp.asarray(450.0, dtype=jnp.float64)))
    assert len(traces) == 1


def test_float64_everywhere(presets):
    for leaf in jax.tree_util.tree_leaves(presets["COHERENT-CsI-2021"]):
        assert jnp.asarray(leaf).dtype == jnp.float64


def test_entry_points_refuse_float32(presets):
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(RuntimeError, match="64-bit"):
            rates.events_per_recoil_node(presets["COHERENT-CsI-2021"])
    finally:
        jax.config.update("jax_enable_x64", True)
