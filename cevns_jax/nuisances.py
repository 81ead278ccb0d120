"""Nuisance parameters: named scalars with Gaussian priors that move leaves of an experiment.

Each experiment's ``[systematics]`` table (and each background's ``prior``) declares which nuisances
it has and their prior widths σ (docs/physics.md §5.1). Values are a plain dict ``{name: scalar}`` (a
pytree), zero at the nominal point. Conventions:

* relative nuisances (prediction × (1 + ν)): ``flux`` (neutrino yield per proton; shared by every
  detector at a source in joint fits), ``mass``, ``efficiency``, ``background:<name>``;
  ``form_factor_radius`` scales every nuclear radius by (1 + ν); ``pi0`` scales the π⁰ yield of a
  dark-matter model (shared by all dark-matter channels at a source);
* absolute shifts: ``quenching_a``, ``quenching_b_per_keVnr`` (LAr linear QF), ``quenching_factor``
  (constant QF), ``quenching_k`` (Lindhard k), ``pulse_mean_us`` (proton-pulse mean, μs);
* standard-normal pulls along release systematic directions: ``quenching_pca_0``,
  ``quenching_pca_1`` (CsI 2021 quenching), ``efficiency_pca`` (CsI 2021 efficiency).
"""

from __future__ import annotations

import jax.numpy as jnp

from ._pytree import replace
from .errors import CevnsInputError
from .source import COMPONENTS

_EXPANDED = {"quenching_pca": ("quenching_pca_0", "quenching_pca_1")}
KNOWN = (
    "flux", "mass", "efficiency", "quenching_a", "quenching_b_per_keVnr", "quenching_factor", "quenching_k",
    "pulse_mean_us", "quenching_pca_0", "quenching_pca_1", "efficiency_pca", "form_factor_radius", "pi0",
)


def nuisance_priors(experiment) -> dict[str, float]:
    """Prior widths σ of the experiment's nuisances, {name: σ} (PCA entries expanded)."""
    out = {}
    for name, sigma in experiment.info.priors:
        for n in _EXPANDED.get(name, (name,)):
            if not (n in KNOWN or n.startswith("background:")):
                raise CevnsInputError(f"{experiment.name}: unknown systematic {n!r}; known: {', '.join(KNOWN)}")
            if n.startswith("background:") and n.split(":", 1)[1] not in experiment.backgrounds:
                raise CevnsInputError(f"{experiment.name}: prior for unknown background {n!r}")
            out[n] = float(sigma)
    return out


def check_nuisances(experiment) -> None:
    """Every declared systematic must exist and fit the detector model (e.g. ``quenching_a`` needs linear
    quenching); raises :class:`CevnsInputError` naming the systematic."""
    from . import response as R

    needs = {
        "quenching_a": ("quenching", R.LinearQuenching), "quenching_b_per_keVnr": ("quenching", R.LinearQuenching),
        "quenching_factor": ("quenching", R.ConstantQuenching), "quenching_k": ("quenching", R.LindhardQuenching),
        "quenching_pca_0": ("quenching", R.PolynomialQuenching), "quenching_pca_1": ("quenching", R.PolynomialQuenching),
        "efficiency_pca": ("efficiency", R.Coherent2021Efficiency),
    }
    for name in nuisance_priors(experiment):
        if name in needs:
            part, cls = needs[name]
            model = getattr(experiment.detector, part)
            if not isinstance(model, cls):
                raise CevnsInputError(
                    f"{experiment.name}: systematic {name!r} needs {part} model {cls.__name__}, "
                    f"but the detector has {type(model).__name__}"
                )
            if name.startswith("quenching_pca") and model.shifts.shape[0] < 2:
                raise CevnsInputError(f"{experiment.name}: systematic {name!r} needs two PCA shift rows")


def zero_nuisances(priors: dict[str, float]) -> dict:
    """The nominal point: every nuisance at 0 (float64 scalars)."""
    return {k: jnp.zeros((), dtype=jnp.float64) for k in priors}


def apply_nuisances(experiment, values: dict):
    """Experiment with the nuisance ``values`` applied to its leaves, plus multiplicative factors.

    Returns ``(experiment', signal_factor, background_factors)`` where the factors multiply the CEvNS
    counts and each background's counts (relative normalisation nuisances).
    """
    v = lambda name: values.get(name, 0.0)  # noqa: E731
    src, det = experiment.source, experiment.detector
    src = replace(src, nu_per_proton=src.nu_per_proton * (1.0 + v("flux")))
    if "pulse_mean_us" in values:
        src = replace(src, pulse=replace(src.pulse, mean_ns=src.pulse.mean_ns + 1e3 * v("pulse_mean_us")))
    q = det.quenching
    if "quenching_a" in values or "quenching_b_per_keVnr" in values:
        q = replace(q, a=q.a + v("quenching_a"), b_per_keVnr=q.b_per_keVnr + v("quenching_b_per_keVnr"))
    if "quenching_factor" in values:
        q = replace(q, factor=q.factor + v("quenching_factor"))
    if "quenching_k" in values:
        q = replace(q, k=q.k + v("quenching_k"))
    if "quenching_pca_0" in values:
        q = replace(q, pulls=q.pulls + jnp.stack([v("quenching_pca_0"), v("quenching_pca_1")]))
    eff = det.efficiency
    if "efficiency_pca" in values:
        eff = replace(eff, pull=eff.pull + v("efficiency_pca"))
    det = replace(det, quenching=q, efficiency=eff, mass_kg=det.mass_kg * (1.0 + v("mass")))
    target = experiment.target
    if "form_factor_radius" in values:
        target = replace(target, radius_scale=target.radius_scale * (1.0 + v("form_factor_radius")))
    exp = replace(experiment, source=src, detector=det, target=target)
    signal_factor = 1.0 + v("efficiency")
    background_factors = {name: 1.0 + v(f"background:{name}") for name in experiment.backgrounds}
    return exp, signal_factor, background_factors


def neutrino_induced(experiment, name: str) -> bool:
    """Whether background ``name`` is made by the beam's neutrinos (named ``nin``, or with a ``prompt`` or
    ``delayed`` time profile), so that it scales with the ``flux`` nuisance."""
    return name == "nin" or experiment.backgrounds[name].time_profile in ("prompt", "delayed")


def predicted_counts(experiment, values: dict, sm=None, model=None):
    """Expected counts {component or background: (n_E, n_t)} at nuisance ``values``.

    Neutrino-induced backgrounds (time profile ``prompt``/``delayed`` or named ``nin``) also scale with
    the flux nuisance.
    """
    from .models.darkmatter import at_source
    from .rates import background_counts, cevns_counts, dark_matter_counts

    exp, signal_factor, bkg_factors = apply_nuisances(experiment, values)
    signal = cevns_counts(exp, sm=sm, model=model) * signal_factor
    out = {name: signal[c] for c, name in enumerate(COMPONENTS)}
    if model is not None and model.dark_matter is not None:
        pi0 = 1.0 + values.get("pi0", 0.0)  # production normalisation (π⁰ yield or tabulated yield)
        dm = at_source(model.dark_matter, exp.source)  # π⁰ yield of the experiment's facility
        out["dark_matter"] = dark_matter_counts(exp, dm) * signal_factor * pi0
    flux = 1.0 + values.get("flux", 0.0)
    for name, counts in background_counts(exp).items():
        out[name] = counts * bkg_factors[name] * (flux if neutrino_induced(experiment, name) else 1.0)
    return out
