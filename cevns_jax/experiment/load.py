"""The public loading API: an experiment description (a TOML file, a preset name or a parsed dict)
compiled into an :class:`~cevns_jax.experiment.Experiment`, every field checked before any compute."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from .. import response as resp
from .._pytree import replace, require_x64
from ..binning import Binning, assign_points
from ..domain import MIN_BASELINE_M, check_experiment
from ..deuteron import DeuteronResponse, check_deuteron
from ..errors import CevnsInputError
from ..inelastic import CHANNELS as INELASTIC_CHANNELS, InelasticResponse, check_inelastic
from ..nuclei import FORM_FACTOR_MODELS
from ..nuisances import check_nuisances
from ..physicsconfig import electroweak_from_table, target_from_tables
from ..quadrature import recoil_log_panels, sharp_response_satellites
from ..resolution import S2Smearing
from ..tomltable import Table, as_f64 as _f, edges, read_toml, strings
from .checks import check_reachable
from .subkev import check_noise_acceptance
from .pytrees import Detector, Experiment, ExperimentInfo
from .sections import (SOURCE_KINDS, compile_background, compile_efficiency, compile_quenching, compile_smearing,
                       compile_source, compile_timing_efficiency, time_subdivisions)

__all__ = ["PRESET_DIR", "DETECTOR_CHANNELS", "OFF_SUFFIX", "experiment_from_dict", "load_experiment", "load_exposures",
           "reactor_off_description", "list_presets", "preset_summaries"]

PRESET_DIR = Path(str(resources.files("cevns_jax") / "presets"))
DETECTOR_CHANNELS = ("cevns", "deuteron_breakup")
"""Values of ``[detector] channel``: CEvNS (default) or ν–d breakup in heavy water (docs/physics.md §11)."""


def experiment_from_dict(data: dict, *, label: str = "<dict>", base: Path | None = None) -> Experiment:
    """Compile an experiment description (the parsed TOML) into an :class:`Experiment`."""
    require_x64()
    base = base or Path.cwd()
    root = Table(data, label)
    meta = root.table("experiment")
    name = meta.text("name")
    status = meta.text("status", "user", choices=("validation", "planned", "user"))
    info_kwargs = dict(
        name=name,
        description=meta.text("description", ""),
        citation=meta.text("citation", ""),
        status=status,
        assumptions=strings(meta, "assumptions"),
    )
    reference = meta.table("reference", {})
    info_kwargs["reference"] = tuple((k, reference.number(k)) for k in reference.data)
    meta.check_unused()

    det = root.table("detector")
    mass = det.number("mass_kg", positive=True)
    src_tab = root.table("source")
    kind = src_tab.text("kind", "pion_dar", choices=SOURCE_KINDS)
    # the Sun and a tabulated flux are given at the detector: their baseline is optional (sterile oscillations only)
    far = kind in ("solar", "tabulated")
    baseline = det.number("baseline_m", 1.0 if far else ..., minimum=MIN_BASELINE_M,
                          why=" (point-source flux; see cevns_jax.domain)")
    source, facility, exposure = compile_source(src_tab, baseline, base)
    beam_angle = det.number("beam_angle_deg", None, minimum=0.0, maximum=180.0,
                            why=" (the angle between the proton beam and the direction to the detector)")
    if beam_angle is not None and source.steady:
        raise det.error("beam_angle_deg", "only a π-DAR source has a proton beam (it sets the dark-matter flux "
                        "from mesons decaying in flight)")
    steady = source.steady
    electroweak = electroweak_from_table(root.table("physics")) if root.has("physics") else None

    target_spec = det.get("target")
    form_factor = det.text("form_factor", "helm", choices=FORM_FACTOR_MODELS)
    if not isinstance(target_spec, (str, dict)):
        raise det.error("target", f"must be a material name or a formula table, got {target_spec!r}")
    target = target_from_tables(target_spec, form_factor, det.table("nuclear", {}), det.where)
    channel = det.text("channel", "cevns", choices=DETECTOR_CHANNELS)
    deuteron = None
    if channel == "deuteron_breakup":  # a heavy-water Cherenkov detector: ν–d breakup, no nuclear recoils
        if det.has("quenching") or det.get("response", "detector") != "detector":
            field = "quenching" if det.has("quenching") else "response"
            raise det.error(field, 'a deuteron_breakup (water-Cherenkov) detector sees no nuclear recoils: give no '
                            'quenching table and keep response = "detector" (smearing and efficiency act on electrons)')
        dtab = det.table("deuteron", {})
        deuteron = DeuteronResponse(nc_efficiency=_f(dtab.number("nc_efficiency", 0.0, nonnegative=True, maximum=1.0)))
        dtab.check_unused()
    elif det.has("deuteron"):
        raise det.error("deuteron", 'the [detector.deuteron] table needs channel = "deuteron_breakup"')
    response = det.text("response", "detector", choices=("detector", "none"))
    if deuteron is not None:
        quenching = resp.NoQuenching()
        smearing, observable = compile_smearing(det.table("smearing"), target, quenching)
        observable = "keVee" if observable == "keVnr" else observable  # electrons: their energy is keVee
        efficiency = compile_efficiency(det.table("efficiency", {}), base)
    elif response == "none":  # ideal detector: bins in true recoil energy [keVnr]
        present = [k for k in ("quenching", "smearing", "efficiency") if det.has(k)]
        if present:
            raise det.error("response", f'"none" (ideal detector, bins in keVnr) takes no {", ".join(present)} table')
        quenching, smearing, observable = resp.NoQuenching(), resp.NoSmearing(), "keVnr"
        efficiency = resp.FlatEfficiency(value=_f(1.0))
    else:
        quenching = compile_quenching(det.table("quenching"), target, base)
        smearing, observable = compile_smearing(det.table("smearing"), target, quenching)
        efficiency = compile_efficiency(det.table("efficiency", {}), base)
    timing = compile_timing_efficiency(det.table("timing_efficiency", {}))
    inelastic = _compile_inelastic(det.table("inelastic"), channel) if det.has("inelastic") else None
    electron_scattering = det.get("electron_scattering", False)
    if not isinstance(electron_scattering, bool):
        raise det.error("electron_scattering", f"must be true or false, got {electron_scattering!r}")
    if steady and not isinstance(timing, resp.NoTimingEfficiency):
        raise det.error("timing_efficiency", f"a steady source ({kind}) has no beam timing: use model = \"none\"")
    det.check_unused()

    bins = root.table("bins")
    energy_edges = edges(bins, "energy_edges", "energy_range", "energy_bins", observable, nonnegative=True)
    no_time = not any(bins.has(k) for k in ("time_edges_us", "time_range_us", "time_bins"))
    # a steady source needs no time bins: one bin, over which its signal and flat backgrounds are uniform
    time_edges_us = np.array([0.0, 1.0]) if steady and no_time else edges(bins, "time_edges_us", "time_range_us",
                                                                           "time_bins", "μs")
    n_sub_e = bins.whole("energy_subdivisions", 1)
    n_sub_t = bins.whole("time_subdivisions") if bins.has("time_subdivisions") else time_subdivisions(timing, time_edges_us)
    bins.check_unused()
    energies = source.recoil_energies_MeV if steady else None  # None: the π-DAR defaults of cevns_jax.quadrature
    binning = Binning(
        _f(energy_edges), _f(time_edges_us * 1e3), n_sub_energy=n_sub_e, n_sub_time=n_sub_t,
        point_bins=assign_points(efficiency.points(), energy_edges),
        time_point_bins=assign_points(timing.points(), time_edges_us * 1e3),
        recoil_satellites=() if deuteron is not None else sharp_response_satellites(target, quenching, smearing,
                                                                                    energy_edges, energies),
        recoil_log_panels=0 if deuteron is not None else recoil_log_panels(target, quenching, smearing, energy_edges,
                                                                           energies),
    )
    if isinstance(smearing, resp.PoissonPESmearing):
        smearing = replace(smearing, n_max=resp.poisson_pe_terms(float(energy_edges[-1]), float(smearing.spe_width)))
    elif isinstance(smearing, S2Smearing):  # the same sizing in electrons
        top = float(energy_edges[-1]) / float(smearing.gain_PE)
        smearing = replace(smearing, n_max=resp.poisson_pe_terms(top, float(smearing.electron_width)))

    backgrounds, background_priors = {}, []
    entries = root.get("backgrounds", [])
    if not isinstance(entries, list):
        raise root.error("backgrounds", "must be an array of tables ([[backgrounds]])")
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CevnsInputError(f"{label}.backgrounds[{k}]: must be a table")
        btab = Table(entry, f"{label}.backgrounds[{k}]")
        bname = btab.text("name")
        if bname in backgrounds or bname in ("prompt_numu", "delayed_nue", "delayed_numubar", "nu_e_scattering", "nu_d_cc",
                                            "nu_d_nc") + INELASTIC_CHANNELS:
            raise btab.error("name", f"duplicate or reserved background name {bname!r}")
        btab.where = f"{label}.backgrounds[{bname}]"
        backgrounds[bname], prior = compile_background(btab, energy_edges, time_edges_us, base, mass, exposure,
                                                                observable)
        if steady and backgrounds[bname].time_profile not in ("table", "flat"):
            raise btab.error("time_profile", f"a steady source ({kind}) has no beam: use \"flat\" or \"table\"")
        if prior is not None:
            background_priors.append((f"background:{bname}", prior))

    systematics = root.table("systematics", {})
    priors = tuple((k, systematics.number(k, positive=True)) for k in systematics.data) + tuple(background_priors)
    if steady and "pulse_mean_us" in systematics.data:
        raise systematics.error("pulse_mean_us", f"a steady source ({kind}) has no proton pulse")
    root.check_unused()

    detector = Detector(_f(mass), _f(baseline), quenching, smearing, efficiency, timing, binning, observable,
                        electron_scattering=electron_scattering, deuteron=deuteron, inelastic=inelastic,
                        beam_angle_deg=None if beam_angle is None else _f(beam_angle))
    info = ExperimentInfo(**info_kwargs, priors=priors, source_file=label, facility=facility)
    exp = Experiment(source=source, target=target, detector=detector, backgrounds=backgrounds, electroweak=electroweak,
                     info=info)
    if electron_scattering:
        from ..electron_rates import check_electron_scattering

        check_electron_scattering(exp, f"{det.where}.electron_scattering")
    check_experiment(exp, label)
    check_noise_acceptance(exp, label)
    if deuteron is not None:
        check_deuteron(exp, f"{det.where}.channel")
    else:
        check_reachable(exp, bins, energy_edges)
    check_inelastic(exp, f"{det.where}.inelastic.channels")
    check_nuisances(exp)
    return exp


def _compile_inelastic(tab: Table, channel: str) -> InelasticResponse:
    """The ``[detector.inelastic]`` table (docs/physics.md §12): ``channels`` (a non-empty list of
    :data:`cevns_jax.inelastic.CHANNELS`), optional ``excitation_MeV`` and ``gamma_MeV`` (argon CC and NC),
    ``lead_kg`` and ``nin_efficiency`` (required with ``pb_nin``) and ``nin_scale`` (default 1)."""
    from .. import constants as C

    if channel != "cevns":
        raise tab.error("channels", f'inelastic channels need a CEvNS detector (channel = "cevns"), not {channel!r}')
    names = strings(tab, "channels")
    bad = [n for n in names if n not in INELASTIC_CHANNELS]
    if not names or bad or len(set(names)) != len(names):
        raise tab.error("channels", f"must be a non-empty list of distinct names from {', '.join(INELASTIC_CHANNELS)}"
                        + (f"; unknown {bad[0]!r}" if bad else ""))
    nin = "pb_nin" in names
    for key in ("lead_kg", "nin_efficiency", "nin_scale"):
        if not nin and tab.has(key):
            raise tab.error(key, 'needs "pb_nin" in channels')
    out = InelasticResponse(
        excitation_MeV=_f(tab.number("excitation_MeV", C.E_X_AR40_IAS, nonnegative=True, maximum=20.0)),
        gamma_MeV=_f(tab.number("gamma_MeV", C.E_GAMMA_AR40_NC, positive=True, maximum=20.0)),
        lead_kg=_f(tab.number("lead_kg", positive=True) if nin else 0.0),
        nin_efficiency=_f(tab.number("nin_efficiency", nonnegative=True, maximum=1.0) if nin else 0.0),
        nin_scale=_f(tab.number("nin_scale", 1.0, nonnegative=True) if nin else 1.0),
        channels=names)
    tab.check_unused()
    return out


OFF_SUFFIX = " (reactor off)"
"""Appended to an experiment's name for its reactor-off exposure (:func:`load_exposures`)."""


def reactor_off_description(data: dict, label: str = "<dict>") -> dict | None:
    """The reactor-off exposure of a reactor description with ``[source] off_live_days``: the same detector,
    bins and backgrounds (whose ``rate_per_kg_day`` or ``rate_per_kg_day_keV`` then scale with the off live
    time), ``load_factor = 0`` (no ν̄: no CEvNS signal), ``live_days`` the off time and the name
    suffixed with :data:`OFF_SUFFIX` (docs/physics.md §1.5). ``None`` when the description has none."""
    source = data.get("source", {})
    if not isinstance(source, dict) or "off_live_days" not in source:
        return None
    if source.get("kind") != "reactor":
        raise CevnsInputError(f"{label}.source.off_live_days: only a reactor source has a reactor-off exposure")
    experiment = dict(data.get("experiment", {}))
    backgrounds = data.get("backgrounds", [])
    for k, v in enumerate(backgrounds if isinstance(backgrounds, list) else []):
        if isinstance(v, dict) and "counts" in v:
            raise CevnsInputError(f"{label}.backgrounds[{v.get('name', k)}].counts: a fixed count does not scale to the "
                                  "reactor-off live time; give rate_per_kg_day or rate_per_kg_day_keV")
    experiment["name"] = f"{experiment.get('name', label)}{OFF_SUFFIX}"
    experiment.pop("reference", None)  # the published numbers are those of the reactor-on exposure
    off = {k: v for k, v in source.items() if k != "off_live_days"}
    off.update(live_days=source["off_live_days"], load_factor=0.0)
    return {**data, "experiment": experiment, "source": off}


def load_exposures(name_or_path: str | Path) -> list[Experiment]:
    """A preset or TOML file as its exposures: ``[reactor on]``, or ``[reactor on, reactor off]`` when its
    ``[source]`` gives ``off_live_days`` (:func:`reactor_off_description`). In a joint likelihood the off
    exposure fixes the background normalisation when its nuisances are shared with the on exposure at
    ``station`` scope (``share`` of :class:`cevns_jax.stats.forecast.AsimovForecast`)."""
    on = load_experiment(name_or_path)
    path = _preset_path(name_or_path)
    data = read_toml(path, "experiment")
    off = reactor_off_description(data, path.name)
    if off is None:
        return [on]
    return [on, experiment_from_dict(off, label=f"{path.name}{OFF_SUFFIX}", base=path.parent)]


def _preset_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        path = PRESET_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise CevnsInputError(
                f"unknown experiment {str(name_or_path)!r}; available presets: {', '.join(list_presets())} "
                "(or give the path of a TOML file)"
            )
    return path


def load_experiment(name_or_path: str | Path) -> Experiment:
    """Load a preset by name (see :func:`list_presets`) or a TOML file by path."""
    path = _preset_path(name_or_path)
    return experiment_from_dict(read_toml(path, "experiment"), label=path.name, base=path.parent)


def list_presets() -> list[str]:
    """Names of the shipped experiment presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def preset_summaries() -> list[tuple[str, str, str]]:
    """(name, status, citation) of every shipped preset, without compiling them."""
    out = []
    for name in list_presets():
        meta = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text()).get("experiment", {})
        out.append((name, meta.get("status", ""), meta.get("citation", "")))
    return out
