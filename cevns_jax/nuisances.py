"""The nuisance registry: every nuisance declared once — its form, what it acts on, how it is shared.

Each experiment's ``[systematics]`` table (and each background's ``prior``) declares which nuisances
it has and their prior widths σ (docs/physics.md §5.1). Values are a plain dict ``{name: scalar}`` (a
pytree), zero at the nominal point, each with a Gaussian prior (ν/σ)². :data:`REGISTRY` says for
every name

* its **form**: ``"lognormal"`` — a normalisation factor e^ν (positive for every ν, so a signal can
  never be profiled away: Δχ² keeps rising with the signal; to first order 1 + ν, so Fisher matrices
  at ν = 0 are those of a relative nuisance); ``"relative"`` — a factor 1 + ν; ``"shift"`` — an
  absolute shift of a leaf of the experiment (quenching, pulse timing, nuclear radii), a *shape*
  nuisance; ``"pull"`` — a standard-normal pull along a release's systematic direction (a shape
  nuisance too);
* what it **acts on**: the CEvNS signal, the dark-matter signal, neutrino-induced backgrounds
  (:func:`neutrino_induced`), or one background;
* its **scope**, i.e. which experiments of a joint analysis share one value: ``"detector"`` (each its
  own), ``"nucleus"`` (every detector with the same target material, e.g. both CsI detectors),
  ``"station"`` (every detector fed by the same target station: the SNS First Target Station eras
  and the Proton Power Upgrade share one flux and one π⁰ yield, the Second Target Station has its own,
  :func:`cevns_jax.facilities.target_station`) or ``"global"``.

Decisions (issue 11): the dark-matter signal gets the detector nuisances (efficiency, quenching,
timing, mass) exactly like CEvNS, in forecasts as in data fits; it does not scale with the neutrino
flux but with the π⁰ yield (``pi0``); flux and π⁰ are log-normal and shared per target station;
parameters of Fisher studies such as δR_n are shared per nucleus. :func:`program_nuisances` is the
one labelling function: a nuisance is labelled by its bare name when every experiment that has it
shares one scope key, else ``"<key>/<name>"`` (key: experiment name, target material or station). A joint
analysis may override a scope (``share``, e.g. one Lindhard k for every germanium detector of a joint
reactor and stopped-pion fit, docs/physics.md §5.6).

Names: relative ``mass``, ``efficiency``, ``background:<name>``, ``deuteron_cross_section`` (the ν–d breakup
cross sections, global), ``ar40_cc_cross_section`` and ``ar40_nc_cross_section`` (inelastic argon channels,
global); log-normal ``nin_yield`` (neutrino-induced neutrons from lead, global; docs/physics.md §12); log-normal ``flux`` (the source
normalisation: ν yield per proton; for a reactor the ν̄ per fission, shared per reactor name, prior
:data:`cevns_jax.reactor.REACTOR_FLUX_PRIOR`; for the Sun the line fluxes), ``pi0`` (π⁰ yield); shifts ``quenching_a``, ``quenching_b_per_keVnr`` (LAr linear QF),
``quenching_factor`` (constant QF), ``quenching_k`` (Lindhard k, also of the sub-keV models with a k), ``quenching_zeta_keV`` (the NEST v2 xenon yield's sub-keV roll-off), ``pulse_mean_us`` (proton-pulse
mean, μs), ``form_factor_radius`` (relative scale of every nuclear radius: radius × (1 + ν)); pulls
``quenching_pca_0``, ``quenching_pca_1`` (CsI 2021 quenching), ``efficiency_pca`` (CsI 2021 efficiency).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from ._pytree import replace
from .errors import CevnsInputError
from .facilities import FACILITIES, target_station

__all__ = [
    "Nuisance", "REGISTRY", "DEUTERON", "ARGON_INELASTIC", "NIN", "KNOWN", "has_cevns", "PI0_PRIOR", "pi0_prior", "DM_CHANNEL_NUISANCES",
    "dark_matter_priors", "declaration", "check_share", "scope_key", "program_nuisances",
    "nuisance_priors", "check_nuisances", "zero_nuisances", "apply_nuisances", "neutrino_induced",
    "normalisation", "shape_names", "predicted_counts",
]

FORMS = ("lognormal", "relative", "shift", "pull")
SCOPES = ("detector", "nucleus", "station", "global")
SIGNALS = ("cevns", "dark_matter")


@dataclass(frozen=True)
class Nuisance:
    """One nuisance declaration (see the module docstring)."""

    name: str
    form: str
    acts_on: tuple[str, ...]
    scope: str
    description: str = ""

    @property
    def shape(self) -> bool:
        """A shape nuisance moves a leaf of the experiment (linear template morphing in fits)."""
        return self.form in ("shift", "pull")


_DETECTOR = ("cevns", "dark_matter")
DEUTERON = ("nu_d_cc", "nu_d_nc")
"""The ν–d breakup components (:data:`cevns_jax.deuteron.CHANNELS`): like CEvNS they follow the flux, the
target mass and the efficiency, and the ν–d cross-section normalisation."""
ELECTRON = ("nu_e_scattering",)
"""The neutrino–electron scattering component (:data:`cevns_jax.electron_rates.COMPONENT`): the same flux, target
mass and efficiency as CEvNS, no quenching."""
ARGON_INELASTIC = ("ar40_nue_cc", "ar40_nc")
"""The inelastic argon channels (:mod:`cevns_jax.inelastic`): flux, target mass, efficiency and their own
cross-section normalisation."""
NIN = ("pb_nin",)
"""Neutrino-induced neutrons from lead: flux and their own yield (not the target's mass or efficiency)."""
REGISTRY: dict[str, Nuisance] = {n.name: n for n in (
    Nuisance("flux", "lognormal", ("cevns", "neutrino_induced") + DEUTERON + ELECTRON + ARGON_INELASTIC + NIN,
             "station",
             "source normalisation: ν yield per proton (π-DAR), ν̄ per fission (reactor), line flux (Sun)"),
    Nuisance("pi0", "lognormal", ("dark_matter",), "station",
             "π⁰ yield per proton (dark-matter production; scales every production channel)"),
    Nuisance("eta", "lognormal", ("dark_matter:eta",), "station", "η yield per proton relative to π⁰ (η → γV only)"),
    Nuisance("piminus", "lognormal", ("dark_matter:piminus",), "station",
             "stopped π⁻ per proton × radiative-capture fraction relative to π⁰ (π⁻p → nV only)"),
    Nuisance("mass", "relative", _DETECTOR + DEUTERON + ELECTRON + ARGON_INELASTIC, "detector", "target mass"),
    Nuisance("efficiency", "relative", _DETECTOR + DEUTERON + ELECTRON + ARGON_INELASTIC, "detector",
             "detection efficiency normalisation"),
    Nuisance("ar40_cc_cross_section", "relative", ("ar40_nue_cc",), "global",
             "⁴⁰Ar(ν_e, e⁻) cross section (MARLEY table), common to every argon detector"),
    Nuisance("ar40_nc_cross_section", "relative", ("ar40_nc",), "global",
             "⁴⁰Ar inelastic NC cross section (SNOwGLoBES table), common to every argon detector"),
    Nuisance("nin_yield", "lognormal", NIN, "global",
             "neutrino-induced neutron yield of lead relative to the theory table (Engel et al. 2003); measured "
             "0.29 (+0.17/−0.16) × MARLEY (arXiv:2212.11295): prior ≈ 0.6 in ln (docs/physics.md §12)"),
    Nuisance("deuteron_cross_section", "relative", DEUTERON, "global",
             "ν–d breakup cross sections (Nakamura et al. 2002), common to every heavy-water detector"),
    Nuisance("quenching_a", "shift", _DETECTOR, "detector", "LAr linear quenching: constant term"),
    Nuisance("quenching_b_per_keVnr", "shift", _DETECTOR, "detector", "LAr linear quenching: slope [1/keVnr]"),
    Nuisance("quenching_factor", "shift", _DETECTOR, "detector", "constant quenching factor"),
    Nuisance("quenching_k", "shift", _DETECTOR, "detector", "Lindhard k"),
    Nuisance("quenching_zeta_keV", "shift", _DETECTOR, "detector",
             "NEST v2 xenon charge yield: energy of the sub-keV roll-off ζ [keVnr] (±0.1, quenching.NEST_V2_NR_QY_SIGMA)"),
    Nuisance("quenching_pca_0", "pull", _DETECTOR, "detector", "CsI 2021 quenching, first PCA direction"),
    Nuisance("quenching_pca_1", "pull", _DETECTOR, "detector", "CsI 2021 quenching, second PCA direction"),
    Nuisance("efficiency_pca", "pull", _DETECTOR, "detector", "CsI 2021 efficiency, PCA direction"),
    Nuisance("pulse_mean_us", "shift", _DETECTOR + ("beam_backgrounds",), "detector",
             "proton-pulse mean in the experiment's time coordinate [μs]"),
    Nuisance("form_factor_radius", "shift", _DETECTOR, "nucleus", "relative scale of every nuclear radius"),
    # parameters of Fisher studies (no prior): shared like nuisances
    Nuisance("sin2_theta_w", "shift", ("cevns",), "global", "weak mixing angle ŝ²"),
    Nuisance("delta_rn_fm", "shift", ("cevns",), "nucleus", "shift of every neutron rms radius [fm]"),
)}
KNOWN = tuple(k for k in REGISTRY if k not in ("sin2_theta_w", "delta_rn_fm"))
"""Names an experiment may declare in ``[systematics]`` (plus ``background:<name>``)."""
PI0_PRIOR = 0.15
"""Prior on the π⁰ yield of an experiment whose source is no facility preset (every preset states its own,
:func:`pi0_prior`): the ±15% of the GEANT SNS yield (:data:`cevns_jax.facilities.PI0_SNS_1GEV`)."""
_EXPANDED = {"quenching_pca": ("quenching_pca_0", "quenching_pca_1")}


def pi0_prior(experiment) -> float:
    """Prior width σ of the π⁰ yield of the experiment's facility (``Facility.pi0_rel_uncertainty``: 15% for
    the GEANT yield of the SNS eras, 25% where the yield is scaled from the ν yield as an assumption:
    SNS-PPU, SNS-STS, ESS, CSNS, Lujan, J-PARC-MLF), else :data:`PI0_PRIOR` (docs/physics.md §5.1)."""
    facility = FACILITIES.get(experiment.info.facility or experiment.source.name)
    return facility.pi0_rel_uncertainty if facility is not None and facility.pi0_rel_uncertainty > 0 else PI0_PRIOR


DM_CHANNEL_NUISANCES = ("eta", "piminus")
"""Nuisances of single dark-matter production channels (``models.darkmatter.CHANNEL_NUISANCES``): each scales its
channel's yield by e^ν (exactly, also in template fits: :meth:`cevns_jax.stats.morphing.Morph.at`); ``pi0`` scales all."""


def dark_matter_priors(experiment, pi0: float | None = None, declared: dict | None = None) -> dict[str, float]:
    """Prior widths of the production nuisances of dark matter: ``pi0`` (the override ``pi0``, else the declared
    one, else the facility's, :func:`pi0_prior`), ``eta`` and ``piminus`` (declared, else the facility's
    ``eta_rel_uncertainty`` / ``piminus_rel_uncertainty``, else ``facilities.ETA_PRIOR_WIDTH`` / ``PIMINUS_PRIOR_WIDTH``)."""
    from .facilities import ETA_PRIOR_WIDTH, PIMINUS_PRIOR_WIDTH

    declared = declared or {}
    facility = FACILITIES.get(experiment.info.facility or experiment.source.name)
    own = lambda field, default: (getattr(facility, field) if facility is not None and getattr(facility, field) > 0  # noqa: E731
                                  else default)
    return {"pi0": float(pi0) if pi0 is not None else declared.get("pi0", pi0_prior(experiment)),
            "eta": declared.get("eta", own("eta_rel_uncertainty", ETA_PRIOR_WIDTH)),
            "piminus": declared.get("piminus", own("piminus_rel_uncertainty", PIMINUS_PRIOR_WIDTH))}


def declaration(name: str) -> Nuisance:
    """The registry entry of ``name`` (``background:<x>``: relative, acts on background x, per detector)."""
    if name.startswith("background:"):
        return Nuisance(name, "relative", (name,), "detector", f"normalisation of background {name[11:]!r}")
    if name.startswith("eps_"):
        return Nuisance(name, "shift", ("cevns",), "global", "NSI coupling")
    try:
        return REGISTRY[name]
    except KeyError:
        raise CevnsInputError(f"unknown nuisance {name!r}; known: {', '.join(REGISTRY)}") from None


def check_share(share) -> tuple:
    """``share``, a tuple of (nuisance name, scope) pairs overriding the registry's scopes in one joint
    analysis (e.g. ``(("quenching_k", "nucleus"),)``: one Lindhard k for every germanium detector, reactor
    and stopped-pion alike), checked: known names, known scopes, each name once."""
    share = tuple(tuple(pair) for pair in share)
    names = [pair[0] for pair in share if len(pair) == 2]
    for pair in share:
        if len(pair) != 2 or not isinstance(pair[0], str) or pair[1] not in SCOPES:
            raise CevnsInputError(f"share: expected (nuisance name, scope) pairs with a scope in {SCOPES}, got {pair!r}")
        declaration(pair[0])  # a named error for an unknown nuisance
        if names.count(pair[0]) > 1:
            raise CevnsInputError(f"share: nuisance {pair[0]!r} given more than once")
    return share


def scope_key(name: str, experiment, detector_key: str | None = None, share: tuple = ()) -> str:
    """Which value of nuisance ``name`` the experiment uses: its name (``detector_key`` if given), its
    target material, its target station, or ``""`` (global); ``share`` overrides the registry's scope
    (:func:`check_share`)."""
    scope = dict(share).get(name, declaration(name).scope)
    if scope == "detector":
        return detector_key or experiment.name
    if scope == "nucleus":
        return experiment.target.name
    if scope == "station":
        return target_station(experiment.info.facility or experiment.source.name)
    return ""


def program_nuisances(experiments, declared: list[dict], share: tuple = ()) -> tuple[list[dict], dict]:
    """Labels of a joint analysis: per experiment {name: label} and the joint {label: σ} (``share``: scope
    overrides, :func:`check_share`).

    ``declared[k]`` = {name: σ (None: no prior)} of experiment k. A name is labelled bare when every
    experiment declaring it has the same :func:`scope_key`, else ``"<key>/<name>"``; experiments with
    the same name are told apart as ``"<name>#<k>"``. Experiments that share a label but declare different
    widths (e.g. the π⁰ yield of the SNS First Target Station: 15% in the measured eras, 25% at the
    Proton Power Upgrade) get the widest, whatever their order.
    """
    share = check_share(share)
    names = [e.name for e in experiments]
    det = [n if names.count(n) == 1 else f"{n}#{k}" for k, n in enumerate(names)]
    keys = {}
    for k, (exp, decl) in enumerate(zip(experiments, declared)):
        for name in decl:
            keys.setdefault(name, set()).add(scope_key(name, exp, det[k], share))
    local, priors = [], {}
    for k, (exp, decl) in enumerate(zip(experiments, declared)):
        labels = {}
        for name, sigma in decl.items():
            label = name if len(keys[name]) == 1 else f"{scope_key(name, exp, det[k], share)}/{name}"
            labels[name] = label
            known = priors.setdefault(label, sigma)
            if known is not None and sigma is not None and sigma > known:
                priors[label] = sigma
        local.append(labels)
    return local, priors


def nuisance_priors(experiment, include=None, dark_matter: bool = False, pi0: float | None = None) -> dict[str, float]:
    """Prior widths σ of the experiment's nuisances, {name: σ} (PCA entries expanded; ``include``
    keeps only those names; ``dark_matter`` adds ``pi0``, ``eta`` and ``piminus`` (:func:`dark_matter_priors`:
    ``pi0`` the width ``pi0`` if given (an explicit override), else the one declared in ``[systematics]``, else
    the facility's, :func:`pi0_prior`)."""
    out = {}
    for name, sigma in experiment.info.priors:
        for n in _EXPANDED.get(name, (name,)):
            if not (n in KNOWN or n.startswith("background:")):
                raise CevnsInputError(f"{experiment.name}: unknown systematic {n!r}; known: {', '.join(KNOWN)}")
            if n.startswith("background:") and n.split(":", 1)[1] not in experiment.backgrounds:
                raise CevnsInputError(f"{experiment.name}: prior for unknown background {n!r}")
            out[n] = float(sigma)
    if include is not None:
        out = {k: v for k, v in out.items() if k in include}
    if dark_matter:
        out.update(dark_matter_priors(experiment, pi0, out))
    return out


def check_nuisances(experiment) -> None:
    """Every declared systematic must exist and fit the detector model (e.g. ``quenching_a`` needs linear
    quenching); raises :class:`CevnsInputError` naming the systematic."""
    from . import quenching as Q
    from . import response as R

    with_k = (R.LindhardQuenching, Q.SorensenQuenching, Q.AdiabaticQuenching, Q.ChavarriaQuenching,
              Q.ChargeYieldQuenching)  # every model with a Lindhard k leaf
    needs = {
        "quenching_a": ("quenching", R.LinearQuenching), "quenching_b_per_keVnr": ("quenching", R.LinearQuenching),
        "quenching_factor": ("quenching", R.ConstantQuenching), "quenching_k": ("quenching", with_k),
        "quenching_zeta_keV": ("quenching", Q.NestChargeYield),
        "quenching_pca_0": ("quenching", R.PolynomialQuenching), "quenching_pca_1": ("quenching", R.PolynomialQuenching),
        "efficiency_pca": ("efficiency", R.Coherent2021Efficiency),
    }
    inel = experiment.detector.inelastic
    carried = () if inel is None else inel.channels
    for name in nuisance_priors(experiment):
        needed = {"ar40_cc_cross_section": "ar40_nue_cc", "ar40_nc_cross_section": "ar40_nc", "nin_yield": "pb_nin"}
        if name in needed and needed[name] not in carried:
            raise CevnsInputError(f"{experiment.name}: systematic {name!r} needs the inelastic channel "
                                  f"{needed[name]!r} in [detector.inelastic] channels")
        if name == "deuteron_cross_section" and has_cevns(experiment):
            raise CevnsInputError(f"{experiment.name}: systematic {name!r} needs a detector with "
                                  'channel = "deuteron_breakup"')
        if not has_cevns(experiment) and declaration(name).shape:
            raise CevnsInputError(f"{experiment.name}: a deuteron_breakup detector takes normalisation systematics "
                                  f"only (flux, mass, efficiency, deuteron_cross_section, backgrounds), not {name!r}")
        if name in needs:
            part, cls = needs[name]
            model = getattr(experiment.detector, part)
            if not isinstance(model, cls):
                names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
                raise CevnsInputError(
                    f"{experiment.name}: systematic {name!r} needs {part} model {names}, "
                    f"but the detector has {type(model).__name__}"
                )
            if name.startswith("quenching_pca") and model.shifts.shape[0] < 2:
                raise CevnsInputError(f"{experiment.name}: systematic {name!r} needs two PCA shift rows")


def zero_nuisances(priors: dict) -> dict:
    """The nominal point: every nuisance at 0 (float64 scalars)."""
    return {k: jnp.zeros((), dtype=jnp.float64) for k in priors}


def shape_names(names) -> tuple[str, ...]:
    """The shape nuisances among ``names`` (those morphed linearly in template fits)."""
    return tuple(n for n in names if declaration(n).shape)


def has_cevns(experiment) -> bool:
    """Whether the experiment sees CEvNS (and dark-matter) recoils: every detector but a ``deuteron_breakup``
    one (docs/physics.md §11). A Fisher study's CEvNS parameters (ŝ², δR_n, NSI) act only on these."""
    return experiment.detector.deuteron is None


def neutrino_induced(experiment, name: str) -> bool:
    """Whether background ``name`` is made by the beam's neutrinos (named ``nin``, or with a ``prompt`` or
    ``delayed`` time profile), so that it scales with the ``flux`` nuisance."""
    bkg = experiment.backgrounds.get(name)
    return name == "nin" or (bkg is not None and bkg.time_profile in ("prompt", "delayed"))


def _factor(nuisance: Nuisance, value):
    return jnp.exp(value) if nuisance.form == "lognormal" else 1.0 + value


def normalisation(values: dict, component: str, induced: bool = False):
    """Product of the normalisation factors (log-normal e^ν, relative 1 + ν) of ``values`` acting on
    ``component`` (``"cevns"``, ``"dark_matter"`` or a background name; ``induced``: a neutrino-induced
    background, which also follows ``flux``). The one place where normalisation nuisances act."""
    factor = 1.0
    for name, value in values.items():
        decl = declaration(name)
        if decl.shape:
            continue
        hit = component in decl.acts_on or f"background:{component}" in decl.acts_on
        if hit or (induced and "neutrino_induced" in decl.acts_on):
            factor = factor * _factor(decl, value)
    return factor


def apply_nuisances(experiment, values: dict):
    """The experiment with the *shape* nuisances of ``values`` applied to its leaves (normalisation
    nuisances are factors, :func:`normalisation`)."""
    v = lambda name: values.get(name, 0.0)  # noqa: E731
    src, det = experiment.source, experiment.detector
    if "pulse_mean_us" in values:  # beam sources only (the loader refuses it for a steady source)
        src = replace(src, pulse=replace(src.pulse, mean_ns=src.pulse.mean_ns + 1e3 * v("pulse_mean_us")))
    q = det.quenching
    if "quenching_a" in values or "quenching_b_per_keVnr" in values:
        q = replace(q, a=q.a + v("quenching_a"), b_per_keVnr=q.b_per_keVnr + v("quenching_b_per_keVnr"))
    if "quenching_factor" in values:
        q = replace(q, factor=q.factor + v("quenching_factor"))
    if "quenching_k" in values:
        q = replace(q, k=q.k + v("quenching_k"))
    if "quenching_zeta_keV" in values:
        q = replace(q, zeta_keV=q.zeta_keV + v("quenching_zeta_keV"))
    if "quenching_pca_0" in values or "quenching_pca_1" in values:
        q = replace(q, pulls=q.pulls + jnp.stack([v("quenching_pca_0"), v("quenching_pca_1")]))
    eff = det.efficiency
    if "efficiency_pca" in values:
        eff = replace(eff, pull=eff.pull + v("efficiency_pca"))
    det = replace(det, quenching=q, efficiency=eff)
    target = experiment.target
    if "form_factor_radius" in values:
        target = replace(target, radius_scale=target.radius_scale * (1.0 + v("form_factor_radius")))
    return replace(experiment, source=src, detector=det, target=target)


def predicted_counts(experiment, values: dict, sm=None, model=None):
    """Expected counts {component or background: (n_E, n_t)} at nuisance ``values`` (full model).

    CEvNS components, neutrino–electron scattering, ν–d breakup and dark matter follow the detector
    nuisances; dark matter the yields of the experiment's facility (× e^ν_π⁰, the η channel also × e^ν_η, the
    π⁻ channel × e^ν_π⁻), CEvNS, neutrino–electron
    scattering, ν–d breakup and neutrino-induced backgrounds the flux (× e^ν_flux); ν–d breakup also the
    ν–d cross-section normalisation (``deuteron_cross_section``).
    """
    from .models.darkmatter import at_source, scale_channels
    from .rates import background_counts, cevns_counts, dark_matter_counts

    exp = apply_nuisances(experiment, values)
    signal = cevns_counts(exp, sm=sm, model=model) * normalisation(values, "cevns")
    out = {name: signal[c] for c, name in enumerate(exp.source.components)}
    if exp.detector.electron_scattering:  # the same flux, mass and efficiency as CEvNS; no quenching
        from .electron_rates import COMPONENT, electron_counts

        out[COMPONENT] = jnp.sum(electron_counts(exp, sm=sm, model=model), axis=0) * normalisation(values, COMPONENT)
    if exp.detector.deuteron is not None:  # ν–d breakup: flux, mass, efficiency, ν–d cross section
        from .deuteron import deuteron_counts

        for name, counts in deuteron_counts(exp).items():
            out[name] = counts * normalisation(values, name)
    if exp.detector.inelastic is not None:  # inelastic channels: flux, mass, efficiency, own cross sections
        from .inelastic import inelastic_counts

        for name, counts in inelastic_counts(exp).items():
            out[name] = counts * normalisation(values, name)
    if model is not None and model.dark_matter is not None:
        dm = scale_channels(at_source(model.dark_matter, exp.source), values)  # the facility's yields × e^ν_channel
        out["dark_matter"] = dark_matter_counts(exp, dm) * normalisation(values, "dark_matter")
    for name, counts in background_counts(exp).items():
        out[name] = counts * normalisation(values, name, neutrino_induced(experiment, name))
    return out
