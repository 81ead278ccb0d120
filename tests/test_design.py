"""Detector-design optimisation (issue 6): bijections, gradients of every figure of merit against finite
differences, optax optima against brute-force grids, and boundary cases.

Cost control: presets are re-binned coarsely (3 energy × 2 time bins, 2 sub-bins) and every heavy
function is compiled once per module (the same structure is then evaluated at many points).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from cevns_jax import design as D
from cevns_jax.design.cost import ProgramCost, detector_cost_model
from cevns_jax import replace
from cevns_jax.errors import CevnsInputError
from cevns_jax.experiment import PRESET_DIR, experiment_from_dict, read_toml
from cevns_jax.stats.fisher import fisher_matrix
from cevns_jax.stats.likelihood import poisson_deviance
from cevns_jax.models import NewPhysics, lmu_minus_ltau, nsi_couplings
from cevns_jax.nuisances import nuisance_priors, predicted_counts
from cevns_jax.rates import expected_counts
from cevns_jax.xsec import StandardModel

V = D.Variable
PARAMS = ("sin2_theta_w", "delta_rn_fm", "eps_u_ee", "eps_d_ee")
REDUCTIONS = (D.FisherSigma("sin2_theta_w"), D.FisherSigma("CsI/delta_rn_fm"),  # δR_n: one per nucleus
              D.FisherSigma(("eps_u_ee", "eps_d_ee"), direction=(1.0, -1.0)), D.FisherArea())
LIMITS = (D.ExpectedLimit("lmu_ltau", 10.0), D.ExpectedLimit("dark_matter", 10.0))


def coarse(name, edges, time_edges_us=(0.0, 1.0, 6.0)):
    data = read_toml(PRESET_DIR / f"{name}.toml", "experiment")
    data["bins"] = {"energy_edges": list(edges), "time_edges_us": list(time_edges_us), "energy_subdivisions": 2}
    return experiment_from_dict(data, label=name, base=PRESET_DIR)


@pytest.fixture(scope="module")
def program():
    """Ge (Gaussian smearing, keVee) and cryogenic CsI (Poisson photoelectrons), coarsely binned."""
    return [coarse("COH-Ge-mini", [1.0, 2.0, 4.0, 15.0]), coarse("COH-CryoCsI-10kg", [4.0, 10.0, 20.0, 60.0])]


def every_kind():
    """One design of the Ge + CsI program with every kind of design variable except ``mass_kg`` and
    ``exposure``, which the splits set here (they are free variables of the single-detector designs)."""
    return D.make_design({
        "threshold": V("threshold", D.Positive(), experiment=0),
        "threshold_csi": V("threshold", D.Positive(10.0), experiment=1),
        "threshold_width": V("threshold_width", D.Positive(), experiment=1),
        "baseline_m": V("baseline_m", D.Positive(10.0), experiment=1),
        "resolution": V("resolution", D.Positive(0.1), experiment=0),
        "resolution_floor": V("resolution_floor", D.Positive(0.1), experiment=0),
        "light_yield": V("light_yield", D.LogPositive(40.0), experiment=1),
        "energy_edges": V("energy_edges", D.Increasing(0.0, 0.5, 5.0), experiment=1),
        "time_edges_ns": V("time_edges_ns", D.Increasing(-1000.0, 10.0, 500.0), experiment=0),
        "mass_split": V("mass_split", D.Simplex(28.0), members=(0, 1)),
        "exposure_split": V("exposure_split", D.Simplex(2.0), members=(0, 1)),
    })


def checker(design, experiments, foms):
    """One jitted function ``run(x, directions, h)`` → (FoM values at x, finite-difference and AD
    derivatives along each direction, aux at x). A single vmapped ``jax.jvp`` evaluates the FoMs at x
    (with the tangents) and at x ± h·d, x ± 2h·d (zero tangents), so the model compiles once; the
    finite differences use the fourth-order central stencil."""
    u0 = D.validate_design(design, experiments)
    flat0, unravel = ravel_pytree(u0)

    def values(x):
        exps, _ = D.realise(design, unravel(x), experiments)
        if foms == "fisher":
            fb = D.fisher_blocks(tuple(exps), PARAMS)
            return jnp.stack([jnp.log(r.reduce(fb.labels, fb.matrix())) for r in REDUCTIONS]), (fb.blocks, fb.prior)
        return jnp.stack([jnp.log(f(exps)) for f in foms]), ()

    @jax.jit
    def run(x, directions, h):
        n = directions.shape[0]
        points = jnp.concatenate([jnp.broadcast_to(x, directions.shape)] + [x + k * h * directions for k in (1, -1, 2, -2)])
        tangents = jnp.concatenate([directions, jnp.zeros((4 * n,) + directions.shape[1:])])
        # lax.map, not vmap: a loop of unbatched evaluations (XLA CPU's multi-threaded Eigen pool has
        # been seen to wedge on large vmapped graphs; see the report)
        vals, tans, aux = jax.lax.map(lambda pt: jax.jvp(values, (pt[0],), (pt[1],), has_aux=True), (points, tangents))
        f1, fm1, f2, fm2 = (vals[k * n:(k + 1) * n] for k in (1, 2, 3, 4))
        fd = (8.0 * (f1 - fm1) - (f2 - fm2)) / (12.0 * h)
        return vals[0], fd, tans[:n], jax.tree_util.tree_map(lambda a: a[0], aux)

    return u0, flat0, unravel, run


def directions_per_variable(u0, unravel, rng):
    """One random direction through every variable at once (each variable's block a random unit vector,
    so every kind moves by the same amount): one finite-difference stencil checks the gradient in all of
    them together (a wrong gradient of any one kind changes the directional derivative)."""
    d = {}
    for label in u0:
        block = jnp.asarray(rng.standard_normal(np.shape(u0[label])))
        d[label] = block / jnp.linalg.norm(jnp.ravel(block))
    flat, _ = ravel_pytree(d)
    return ["every variable"], (flat / jnp.linalg.norm(flat))[None, :]


def with_directions(check):
    """(design, experiments, u0, flat0, unravel, run, labels, directions): every call of ``run`` then
    uses the same direction array (one row), so it compiles once; ``run.at_start`` caches the call at u0."""
    design, exps, u0, flat0, unravel, run = check
    labels, dirs = directions_per_variable(u0, unravel, np.random.default_rng(7))
    cache = {}

    def at_start():
        if not cache:
            cache["value"] = run(flat0, dirs, 1e-3)
        return cache["value"]

    run.at_start = at_start
    return design, exps, u0, flat0, unravel, run, labels, dirs


def assert_gradients(labels, fd, ad, names):
    fd, ad = np.asarray(fd), np.asarray(ad)
    scale = np.abs(fd).max(axis=0, keepdims=True)
    err = np.abs(ad - fd) / (np.abs(fd) + 1e-6 * scale)
    bad = [(labels[i], names[j], float(ad[i, j]), float(fd[i, j])) for i, j in zip(*np.nonzero(err > 1e-4))]
    assert not bad, f"AD vs FD mismatches (variable, FoM, AD, FD): {bad}"


# ----------------------------------------------------------------------------------------------
# Bijections
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bijection, x", [
    (D.Identity(), jnp.asarray(-1.3)), (D.Positive(2.0), jnp.asarray(0.7)), (D.LogPositive(10.0), jnp.asarray(3e2)),
    (D.Interval(6.0, 30.0), jnp.asarray(7.5)), (D.LogInterval(1e-3, 1.0), jnp.asarray(0.02)),
    (D.Simplex(10.0), jnp.asarray([1.0, 2.5, 6.5])), (D.Increasing(0.0, 0.5, 5.0), jnp.asarray([4.0, 10.0, 20.0, 60.0])),
])
def test_bijections_round_trip_and_respect_constraints(bijection, x):
    u = bijection.inverse(x)
    np.testing.assert_allclose(bijection.forward(u), x, rtol=1e-12)
    far = bijection.forward(jnp.full(jnp.shape(u), 40.0)), bijection.forward(jnp.full(jnp.shape(u), -40.0))
    for y in far:
        assert np.all(np.isfinite(y))
        if isinstance(bijection, (D.Interval, D.LogInterval)):
            assert bijection.lower <= float(y) <= bijection.upper
        if isinstance(bijection, D.Simplex):
            assert float(jnp.sum(y)) == pytest.approx(10.0) and np.all(np.asarray(y) >= 0)
        if isinstance(bijection, D.Increasing):
            assert np.all(np.diff(np.asarray(y)) >= 0.5 - 1e-9)
    assert np.all(np.isfinite(jax.jacfwd(bijection.forward)(u)))


# ----------------------------------------------------------------------------------------------
# Gradients against finite differences
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fisher_check(program):
    design = every_kind()
    return with_directions((design, program) + checker(design, program, "fisher"))


@pytest.mark.slow  # the full every-kind design program: minutes of compilation
def test_fisher_gradients_match_finite_differences(fisher_check):
    """Every Fisher FoM (σ of ŝ², of δR_n, of an NSI direction; NSI ellipse area) w.r.t. every kind of
    design variable, at a perturbed design (away from the kinks of the re-binned backgrounds)."""
    design, exps, u0, flat0, unravel, run, labels, dirs = fisher_check
    x = flat0 + 0.05 * jnp.asarray(np.random.default_rng(1).standard_normal(flat0.shape))
    value, fd, ad, _ = run(x, dirs, 3e-3)  # the NSI-direction σ is ill-conditioned: 1e-3 is roundoff-limited
    assert np.all(np.isfinite(np.asarray(value)))
    assert_gradients(labels, fd, ad, ["σ(ŝ²)", "σ(δR_n)", "σ(NSI direction)", "NSI area"])


def single_detector_design(gaussian: bool):
    """Every per-experiment kind that applies to one detector (Gaussian smearing or photoelectrons)."""
    variables = {
        "threshold": V("threshold", D.Positive(10.0 if not gaussian else 1.0)),
        "threshold_width": V("threshold_width", D.Positive()),
        "baseline_m": V("baseline_m", D.Positive(10.0)),
        "energy_edges": V("energy_edges", D.Increasing(0.0, 0.1, 5.0 if not gaussian else 1.0)),
        "time_edges_ns": V("time_edges_ns", D.Increasing(-1000.0, 10.0, 500.0)),
        "mass_kg": V("mass_kg", D.LogPositive(10.0)),
        "exposure": V("exposure", D.LogPositive()),
    }
    if gaussian:
        variables |= {"resolution": V("resolution", D.Positive(0.1)), "resolution_floor": V("resolution_floor", D.Positive(0.1))}
    else:
        variables["light_yield"] = V("light_yield", D.LogPositive(40.0))
    return D.make_design(variables)


@pytest.fixture(scope="module")
def limit_checks(program):
    """The L_μ−L_τ limit on the CsI detector and the dark-matter limit on the Ge detector (one detector
    each keeps the compilation small; the program-level splits are covered by the Fisher FoMs)."""
    out = {}
    for fom, k in ((LIMITS[0], 1), (LIMITS[1], 0)):
        design = single_detector_design(gaussian=k == 0)
        out[fom.signal] = with_directions((design, [program[k]]) + checker(design, [program[k]], (fom,)))
    return out


@pytest.mark.parametrize("signal", ["lmu_ltau", pytest.param("dark_matter", marks=pytest.mark.slow)])
def test_limit_gradients_match_finite_differences_through_profiling(limit_checks, signal):
    """Expected L_μ−L_τ (g′, CsI) and dark-matter (Y, Ge) limits — nuisances profiled, root by bisection,
    implicit-function gradient — w.r.t. every kind of design variable of the detector."""
    design, exps, u0, flat0, unravel, run, labels, dirs = limit_checks[signal]
    x = flat0 + 0.05 * jnp.asarray(np.random.default_rng(2).standard_normal(flat0.shape))
    value, fd, ad, _ = run(x, dirs, 1e-3)
    assert np.all(np.isfinite(np.asarray(value)))
    assert_gradients(labels, fd, ad, [signal])


@pytest.mark.slow  # second-method / exhaustive cross-check: the slow tier (CI runs it)
def test_limit_without_nuisances_matches_the_forward_model(program):
    """Without nuisances Δχ² is the Poisson deviance of rates.expected_counts (a second path through the
    model) at g′ against g′ = 0; at the returned limit it equals 2.706 and the limit is below the bracket end."""
    ge = program[0]
    fom = D.ExpectedLimit("lmu_ltau", 10.0, include=())

    @jax.jit
    def check(exp):
        g = fom([exp])

        def total(model):
            return jnp.ravel(sum(expected_counts(exp, model=model).values()))

        signal = NewPhysics(zprime=lmu_minus_ltau(10.0, g))
        return g, poisson_deviance(total(signal), total(None))

    g, dchi2 = check(ge)
    assert float(dchi2) == pytest.approx(2.706, abs=1e-8)
    assert 1e-5 < float(g) < 0.5 * fom.bracket[1]


@pytest.mark.slow  # the full every-kind design program: minutes of compilation
def test_fisher_figures_of_merit_match_the_fisher_module(program, fisher_check):
    """The joint Fisher matrix of the Ge + CsI program built independently here with fisher.fisher_matrix
    (one parameter dict for both detectors: flux shared at the SNS First Target Station, δR_n one per
    nucleus, the rest per detector) gives the same four FoMs at the start design."""
    design, exps, u0, flat0, unravel, run, labels, dirs = fisher_check
    value, _, _, _ = run.at_start()
    both = set(nuisance_priors(program[0])) & set(nuisance_priors(program[1]))

    def label(exp, name):  # one SNS station: flux shared; form factors per nucleus; one detector's: unqualified
        if name not in both or name == "flux":
            return name
        return f"{exp.target.name}/{name}" if name == "form_factor_radius" else f"{exp.name}/{name}"

    priors = {label(exp, name): sigma for exp in program for name, sigma in nuisance_priors(exp).items()}

    def mu(p):
        parts = []
        for exp in program:
            rn = p[f"{exp.target.name}/delta_rn_fm"]
            target = replace(exp.target, form_factor="helm_rms", neutron_radius_fm=exp.target.neutron_radius_fm + rn)
            nus = {name: p[label(exp, name)] for name in nuisance_priors(exp)}
            model = NewPhysics(nsi=nsi_couplings(ee_u=p["eps_u_ee"], ee_d=p["eps_d_ee"]))
            sm = StandardModel(sin2_theta_w=p["sin2_theta_w"], couplings="rc")
            parts.append(jnp.ravel(sum(predicted_counts(replace(exp, target=target), nus, sm=sm, model=model).values())))
        return jnp.concatenate(parts)

    p0 = {"sin2_theta_w": jnp.asarray(0.23857), "Ge/delta_rn_fm": jnp.asarray(0.0), "CsI/delta_rn_fm": jnp.asarray(0.0),
          "eps_u_ee": jnp.asarray(0.0),
          "eps_d_ee": jnp.asarray(0.0), **{k: jnp.asarray(0.0) for k in priors}}
    F = fisher_matrix(mu, p0, priors)
    order = [F.index(label) for label in D.fisher_labels(program, PARAMS)]
    matrix = jnp.asarray(F.matrix[np.ix_(order, order)])
    expected = [float(jnp.log(r.reduce(D.fisher_labels(program, PARAMS), matrix))) for r in REDUCTIONS]
    np.testing.assert_allclose(np.asarray(value), expected, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# Optax optimum against a brute-force grid
# ----------------------------------------------------------------------------------------------
def test_one_variable_budget_design_matches_grid(program):
    """Threshold of the Ge detector with its mass bought by the money left (budget by parametrisation)
    and an analytic FoM 1/m + (E_th − 1.2)²: optax through optimise_design vs a 2001-point grid."""
    exp = program[0]
    cost = ProgramCost((detector_cost_model(fixed=10.0, per_kg=2.0, threshold_cost=5.0, threshold_ref_keVee=1.5),))
    box = D.Interval(0.6, 3.0)
    design = D.make_design({"threshold": V("threshold", box)}, budget=D.Budget(60.0, cost))

    def fom(exps):
        det = exps[0].detector
        return 1.0 / det.mass_kg + (det.efficiency.threshold - 1.2) ** 2

    result = D.optimise_design(fom, design, [exp], log=False)
    assert result.converged and result.grad_norm[-1] < 1e-6
    grid = np.linspace(0.6 + 1e-6, 3.0 - 1e-6, 2001)
    obj = jax.jit(jax.vmap(lambda x: D.make_objective(fom, log=False)({"threshold": box.inverse(x)}, design, [exp])))
    best = grid[int(np.argmin(obj(jnp.asarray(grid))))]
    assert float(result.physical["threshold"]) == pytest.approx(best, abs=grid[1] - grid[0])
    # the budget is spent exactly: cost of the optimum = budget
    realised, phys = D.realise(design, {k: jnp.asarray(v) for k, v in result.params.items()}, [exp])
    assert float(cost(realised)) == pytest.approx(60.0, rel=1e-10)
    assert float(phys["budget_mass_kg"]) == pytest.approx(float(result.physical["budget_mass_kg"]), rel=1e-10)
    assert result.path["threshold"].shape == (result.n_steps + 1,) and np.isfinite(result.objective).all()


@pytest.mark.slow  # the full every-kind design program: minutes of compilation
def test_two_variable_budget_penalty_design_matches_grid(program, fisher_check):
    """Masses of Ge and CsI (two free variables) minimising the NSI Fisher-ellipse area (ŝ², δR_n and
    every nuisance marginalised) under a budget imposed as a penalty: optax (L-BFGS) vs a grid with
    0.5 kg spacing. The linear mass scaling of the Fisher blocks used here agrees with a full
    recomputation of a realised design (second method)."""
    design, exps, u0, flat0, unravel, run, labels, dirs = fisher_check
    _, _, _, (blocks, prior) = run.at_start()
    names = D.fisher_labels(program, PARAMS)
    m0 = jnp.asarray([float(e.detector.mass_kg) for e in program])
    cost = ProgramCost((detector_cost_model(per_kg=3.0), detector_cost_model(per_kg=1.0)))
    budget = D.Budget(90.0, cost, method="penalty", weight=1000.0, width=0.01)
    area = D.FisherArea()
    bijection = D.LogPositive(10.0)

    def by_masses(m):
        exps_m = [D.replace(e, detector=D.replace(e.detector, mass_kg=mk)) for e, mk in zip(program, m)]
        return jnp.log(area.reduce(names, D.scaled_fisher(blocks, prior, m / m0))) + D.budget_penalty(budget, cost(exps_m))

    result = D.optimise(lambda u: by_masses(bijection.forward(u)), bijection.inverse(m0),
                        physical=lambda u: {"mass_kg": bijection.forward(u)})
    assert result.converged
    step = 0.5
    a, b = np.meshgrid(np.arange(1.0, 30.0, step), np.arange(1.0, 90.0, step), indexing="ij")
    vals = np.asarray(jax.jit(jax.vmap(by_masses))(jnp.asarray(np.stack([a.ravel(), b.ravel()], axis=1))))
    best = np.array([a.ravel()[np.argmin(vals)], b.ravel()[np.argmin(vals)]])
    np.testing.assert_allclose(result.physical["mass_kg"], best, atol=step)
    assert result.value <= vals.min() + 1e-12
    # the optimum sits on the budget within the penalty's smooth corner (width 1%)
    spent = float(cost([D.replace(e, detector=D.replace(e.detector, mass_kg=m)) for e, m in zip(program, result.physical["mass_kg"])]))
    assert spent == pytest.approx(90.0, rel=3 * 0.01)

    # full recomputation at a realised design with Ge + CsI = 28 kg in the optimum's proportion
    m = np.asarray(result.physical["mass_kg"])
    masses = m / m.sum() * 28.0
    u = dict(u0)
    u["mass_split"] = D.Simplex(28.0).inverse(jnp.asarray(masses))
    value, _, _, _ = run(ravel_pytree(u)[0], dirs, 1e-3)
    scaled = area.reduce(names, D.scaled_fisher(blocks, prior, jnp.asarray(masses) / m0))
    assert float(value[3]) == pytest.approx(float(jnp.log(scaled)), abs=1e-9)


# ----------------------------------------------------------------------------------------------
# Boundaries and bad input
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow  # the full every-kind design program: minutes of compilation
def test_threshold_near_the_kinematic_endpoint_is_a_boundary_result_never_nan(program, fisher_check, limit_checks):
    """Largest quenched signals: ≈21 keVee (Ge, T_max on ⁷⁰Ge) and ≈270 PE (CsI). With thresholds of
    19 keVee and 230 PE the signal in the bins is ~e⁻⁴⁰ of nominal: the limits are the bracket's upper
    end (boundary result, zero gradient), the Fisher σ's huge or +∞, nothing is NaN (values and
    gradients); a threshold above the endpoint is refused."""
    def with_threshold(exp, x):
        return D.replace(exp, detector=D.replace(exp.detector, efficiency=D.replace(exp.detector.efficiency, threshold=x)))

    D.check_experiments([with_threshold(program[0], 19.0), with_threshold(program[1], 230.0)])  # below: accepted
    checks = [(fisher_check, {"threshold": 19.0, "threshold_csi": 230.0}, None),
              (limit_checks["lmu_ltau"], {"threshold": 230.0}, LIMITS[0]),
              (limit_checks["dark_matter"], {"threshold": 19.0}, LIMITS[1])]
    for (design, exps, u0, flat0, unravel, run, labels, dirs), thresholds, limit in checks:
        u = dict(u0)
        for label, x in thresholds.items():
            u[label] = design.variables[label].bijection.inverse(jnp.asarray(x))
        value, _, ad, _ = run(ravel_pytree(u)[0], dirs, 1e-3)
        assert not np.any(np.isnan(np.asarray(value))) and not np.any(np.isnan(np.asarray(ad)))
        if limit is not None:
            assert float(np.exp(value[0])) == pytest.approx(limit.bracket[1], rel=1e-12)
            np.testing.assert_array_equal(np.asarray(ad), 0.0)
        else:
            nominal, _, _, _ = run.at_start()
            assert np.all(np.asarray(value) > np.asarray(nominal) + 5.0)  # σ at least e⁵ × nominal, or +∞
    with pytest.raises(CevnsInputError, match="above the largest CEvNS signal"):
        D.FisherSigma()([with_threshold(program[1], 400.0)])


def test_zero_mass_unmeetable_budget_and_conflicts_are_refused(program):
    ge = program[0]
    with pytest.raises(CevnsInputError, match="mass must be > 0"):
        LIMITS[0]([D.replace(ge, detector=D.replace(ge.detector, mass_kg=jnp.asarray(0.0)))])
    cost = ProgramCost((detector_cost_model(fixed=10.0, per_kg=2.0, threshold_cost=5.0, threshold_ref_keVee=1.5),))
    design = D.make_design({"threshold": V("threshold", D.Interval(0.6, 3.0))}, budget=D.Budget(25.0, cost))
    with pytest.raises(CevnsInputError, match="budget 25 cannot be met"):
        D.validate_design(design, [ge])
    both = D.make_design({"m": V("mass_kg", D.Positive())}, budget=D.Budget(60.0, cost))
    with pytest.raises(CevnsInputError, match="already set by the budget"):
        D.validate_design(both, [ge])
    with pytest.raises(CevnsInputError, match="outside the range"):
        D.validate_design(D.make_design({"t": V("threshold", D.Interval(2.0, 3.0))}), [ge])
    with pytest.raises(CevnsInputError, match="unknown design variable kind"):
        V("thresh")
    with pytest.raises(CevnsInputError, match="needs Gaussian smearing"):
        D.validate_design(D.make_design({"r": V("resolution", experiment=1)}), program[:2])
