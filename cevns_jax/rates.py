"""Expected counts per (observed energy × time) bin: the forward model (docs/physics.md §3.4).

    μ_{c,i,j} = N_units Σ_iso x_iso Φ Σ_k w_k dR_{iso,c}/dT(T_k) R_i(T_k; iso) · τ_{c,j}

* (T_k, w_k): Gauss–Legendre panels (``quadrature.py``) on [T_floor, T_max(E_νμ)] (log-spaced) and
  [T_max(E_νμ), T_max(m_μ/2)] (linear), split where the integrand has edges: the recoil images of
  bin edges and efficiency turn-ons for sharp resolutions. One grid per isotope, or one shared by every
  isotope when they quench alike (:func:`shares_response`; the response is then computed once). Accuracy measured in ``tests/test_accuracy.py`` (docs/physics.md §3.4.1).
* R_i: detector response (``response.py``); τ_{c,j}: time-bin probabilities of each component with
  the timing efficiency, by the sub-bin rule of ``binning.py`` on the time profiles of ``source.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import replace, require_x64
from .kinematics import max_recoil_energy
from .nuclei import units_per_kg
from .quadrature import LOWEST_FRACTION, panel_nodes, recoil_ceiling, response_breakpoints, response_floor
from .binning import binned_with_efficiency
from .response import energy_response
from .folding import source_rates
from .source import delayed_time_antiderivatives, prompt_time_antiderivatives, pulse_antiderivatives
from .spectra import steady_time_antiderivatives
from .xsec import resolve_standard_model

def recoil_grid(target, refine: int = 1):
    """Base recoil quadrature nodes and weights [MeV] of a target, each of shape (n_iso, n_T)."""
    M = target.mass_MeV
    return panel_nodes(max_recoil_energy(C.E_NU_MU_PROMPT, M), max_recoil_energy(C.E_NU_MAX_MICHEL, M), refine=refine)


def _isotope_columns(target):
    return target.Z[:, None], (target.Z + target.N)[:, None]


def shares_response(experiment) -> bool:
    """Whether every isotope of the target sees the same detector response (static): the quenching does
    not depend on the isotope (``quenching.isotope_independent``). Then the isotopes share one recoil grid
    (:func:`cevns_jax.quadrature.shared_base_edges`) and the response is computed once (:func:`recoil_response`)."""
    same = getattr(experiment.detector.quenching, "isotope_independent", None)
    return bool(same(experiment.target.isotopes)) if same is not None else False


def experiment_panels(experiment, T_break, T_end, shared: bool = False, log_panels: int | None = None,
                      geometric: int = 0):
    """Recoil nodes and weights [MeV] (n_iso, n_T) for ``experiment``: base panels on [T_floor, T_end]
    split at the response's breakpoints (sharp resolutions only), ``log_panels`` log-spaced ones below
    T_break (default 24). T_floor is the response floor (``quadrature.response_floor``: lower recoils are
    seen above the lowest bin edge with probability < 1e-12), at least 10⁻⁵ T_break. With ``shared`` every
    isotope gets the same nodes (rows equal), on panels that hold every isotope's T_break and T_end.
    ``geometric``: that many more panels, their edges log-spaced between T_break and T_end (the smallest T_break and
    the largest T_end with ``shared``; × ``refine``), for integrands spanning decades above T_break (a dark-matter χ
    box); T_end (and T_break) then stop at the response ceiling (``quadrature.recoil_ceiling``: higher recoils are
    seen below the top bin edge with probability < 1e-12), so that no panel is spent where nothing is seen, and the
    sharp-response breakpoints carry no derivative: a shape nuisance (quenching, resolution) then moves the response
    on fixed nodes instead of moving every node of the χ-energy integral (half of COH-Ge-mini's dark-matter template
    cost); the satellites at ±2, ±6σ_T resolve the derivative's peak at each step as they resolve the step
    (log-derivatives within 1e-5 of the moving-node ones)."""
    det = experiment.detector
    Z, A = _isotope_columns(experiment.target)
    x0 = det.binning.energy_edges[0]
    if geometric:  # a χ box may reach far above what the detector sees: its panels stop at the ceiling
        top = det.binning.energy_edges[-1]
        T_lo = LOWEST_FRACTION * T_break[:, None]
        T_end = jnp.minimum(T_end, recoil_ceiling(det.quenching, det.smearing, top, Z, A, T_lo, T_end[:, None])[:, 0])
        T_break = jnp.minimum(T_break, T_end)
    if not shared:
        T_lo = LOWEST_FRACTION * T_break[:, None]
        floor = response_floor(det.quenching, det.smearing, x0, Z, A, T_lo, T_break[:, None])[:, 0]
        extra = _with_geometric(response_breakpoints(det, Z, A, T_lo, T_end[:, None]), T_break, T_end, geometric, det)
        return panel_nodes(T_break, T_end, extra, refine=det.binning.refine, T_low=floor, log_panels=log_panels)
    T_lo, T_hi = LOWEST_FRACTION * jnp.min(T_break), jnp.max(T_end)
    floor = response_floor(det.quenching, det.smearing, x0, Z[:1], A[:1], T_lo, jnp.min(T_break))[0, 0]
    extra = _with_geometric(response_breakpoints(det, Z[:1], A[:1], T_lo, T_hi), jnp.min(T_break, keepdims=True),
                            T_hi[None], geometric, det)
    T, w = panel_nodes(T_break, T_end, extra, refine=det.binning.refine, shared=True, T_low=floor, log_panels=log_panels)
    shape = (Z.shape[0], T.shape[1])
    return jnp.broadcast_to(T, shape), jnp.broadcast_to(w, shape)


def _with_geometric(extra, T_break, T_end, geometric: int, det):
    """The breakpoints ``extra`` (rows, k) or None with ``geometric`` × refine log-spaced panels between each
    row's T_break and T_end (none when 0); with geometric panels the breakpoints carry no derivative
    (:func:`experiment_panels`)."""
    if not geometric:
        return extra
    k = geometric * det.binning.refine
    start = jnp.maximum(T_break, 1e-9 * T_end + 1e-300)[:, None]
    frac = np.linspace(0.0, 1.0, k + 1)[1:-1]
    logs = start * jnp.exp(frac * jnp.log(T_end[:, None] / start))
    return logs if extra is None else jnp.concatenate([jax.lax.stop_gradient(extra), logs], axis=1)


def neutrino_recoil_grid(experiment):
    """Recoil nodes and weights [MeV] (n_iso, n_T) of the neutrino signal of ``experiment``.

    The same for every model point: a Z′ whose weak
    charge changes sign inside a bin makes Q_V² pass smoothly through a double zero, which the base
    panels integrate to 1e-5 (measured against ``scipy`` in ``tests/test_accuracy.py``), so the grid
    needs no model-dependent edges and a response matrix can be shared by every point of a scan.
    """
    M = experiment.target.mass_MeV
    E_break, E_end = experiment.source.recoil_energies_MeV
    T_break, T_end = max_recoil_energy(E_break, M), max_recoil_energy(E_end, M)
    return experiment_panels(experiment, T_break, T_end, shared=shares_response(experiment),
                             log_panels=experiment.detector.binning.recoil_log_panels or None)


def events_per_recoil_node(experiment, sm=None, model=None):
    """Expected events of each component carried by each recoil node, before detector response.

    Returns (T [MeV], events) with T of shape (n_iso, n_T) and events of shape (n_c, n_iso, n_T) (the
    source's ``components``).
    ``model`` is an optional :class:`cevns_jax.models.NewPhysics` point (``None``: the SM). The nodes
    do not depend on the model (:func:`neutrino_recoil_grid`), so a response matrix built on them
    serves every model point.
    """
    require_x64()
    target, det = experiment.target, experiment.detector
    sm = resolve_standard_model(experiment, sm)
    T, w = neutrino_recoil_grid(experiment)
    src = experiment.source
    dRdT = source_rates(sm, model, target, T, det.baseline_m, src, refine=det.binning.refine)
    scale = src.fluence_cm2(det.baseline_m)[:, None, None] * units_per_kg(target) * det.mass_kg
    return T, scale * target.atoms_per_unit[:, None] * w * dRdT


def electron_equivalent_keV(experiment, T_MeV):
    """Quenched energy [keVee] of recoils T [MeV] on each isotope (shape (n_iso, n_T))."""
    return isotope_electron_equivalent_keV(experiment.target, experiment.detector.quenching, T_MeV)


def isotope_electron_equivalent_keV(target, quenching, T_MeV):
    """:func:`electron_equivalent_keV` from the parts it needs (a target and a quenching model), for programs
    compiled once per (target, quenching) structure rather than per experiment."""
    return quenching.electron_equivalent_keV(T_MeV * 1e3, target.Z[:, None], (target.Z + target.N)[:, None])


def recoil_response(experiment, T_MeV, shared: bool = False):
    """Response matrix R[i, iso, k] (n_E, n_iso, n_T) of the analysis energy bins at recoils T (n_iso, n_T).

    With ``shared`` (rows of T equal and :func:`shares_response`) it is computed on the first row and
    broadcast: one response for every isotope.
    """
    det = experiment.detector
    if not shared:
        return energy_response(det.smearing, det.efficiency, det.binning, electron_equivalent_keV(experiment, T_MeV))
    Z, A = _isotope_columns(experiment.target)
    E = det.quenching.electron_equivalent_keV(T_MeV[:1] * 1e3, Z[:1], A[:1])
    R = energy_response(det.smearing, det.efficiency, det.binning, E)
    return jnp.broadcast_to(R, (R.shape[0],) + T_MeV.shape)


def time_bin_fractions(experiment, antiderivatives_at, timing_efficiency=None):
    """∫_bin p(t) ε_T(t) dt for each time bin [t in ns]; shape (n_t, ...).

    ``antiderivatives_at(t)`` returns the (F, G, H) of the arrival-time profiles (their CDFs and the CDFs'
    first two antiderivatives, ``source.*_antiderivatives``), each of shape (n_t_points, ...). Each time
    sub-bin contributes its exact probability × ε_T at the sub-bin's mean arrival time, + ½ε_T'' × the
    variance (:func:`cevns_jax.binning.binned_with_efficiency`): exact for a timing efficiency quadratic
    on each sub-bin, with the efficiency's kink (``points()``) a sub-bin edge and the sub-bins sized by
    ``experiment.TIMING_STEP`` (error ≤ 1e-6 of each bin, docs/physics.md §3.4.1). A
    ``timing_efficiency`` given here replaces the detector's, without feature points.
    """
    det = experiment.detector
    if timing_efficiency is None:
        eff, point_bins = det.timing_efficiency, det.binning.time_point_bins
    else:
        eff, point_bins = timing_efficiency, ()
    return binned_with_efficiency(antiderivatives_at, eff, det.binning.time_edges_ns, det.binning.n_sub_time,
                                  points=eff.points(), point_bins=point_bins, refine=det.binning.refine)


def neutrino_time_fractions(experiment):
    """Time-bin probabilities (with timing efficiency) of the source's components; shape (n_c, n_t). A steady
    source is uniform over the analysis window: each bin holds ∫_bin ε_T dt / (window length)."""
    src = experiment.source
    if src.steady:
        edges = experiment.detector.binning.time_edges_ns
        n_c = len(src.components)
        frac = time_bin_fractions(experiment, lambda t: tuple(f.T for f in steady_time_antiderivatives(t, edges[0], n_c)))
        return frac.T / (edges[-1] - edges[0])
    return time_bin_fractions(experiment, lambda t: tuple(f.T for f in src.time_antiderivatives(t))).T


def invisible_recoils(experiment) -> bool:
    """Whether the detector cannot see nuclear recoils at all (static): a ``deuteron_breakup`` water-Cherenkov
    detector, whose CEvNS and dark-matter recoils (≲ 3 MeV deuterons, ≲ 0.4 MeV oxygen) are far below the
    Cherenkov threshold of a nucleus (docs/physics.md §11). Their counts are then exactly 0."""
    return experiment.detector.deuteron is not None


def _zero_counts(experiment, n_c: int | None = None):
    b = experiment.detector.binning
    shape = (b.energy_edges.shape[0] - 1, b.time_edges_ns.shape[0] - 1)
    return jnp.zeros(shape if n_c is None else (n_c,) + shape)


def cevns_counts(experiment, sm=None, model=None):
    """Expected CEvNS counts per component and bin; shape (n_c, n_E, n_t) (order: the source's ``components``)."""
    if invisible_recoils(experiment):
        return _zero_counts(experiment, len(experiment.source.components))
    T, events = events_per_recoil_node(experiment, sm=sm, model=model)
    R = recoil_response(experiment, T, shared=shares_response(experiment))
    spectrum = jnp.einsum("cik,eik->ce", events, R)
    return spectrum[:, :, None] * neutrino_time_fractions(experiment)[:, None, :]


def _flat_profile(experiment):
    start = experiment.detector.binning.time_edges_ns[0]

    def flat(t):  # uniform density 1/ns from the window's start (counts are normalised to the window)
        u = (t - start)[:, None]
        return u, 0.5 * u**2, u**3 / 6.0

    return flat


def flat_time_fractions(experiment):
    """Time-bin probabilities (n_t,) of a signal uniform in time over the analysis window, with the timing
    efficiency (they sum to 1 without one)."""
    from .response import NoTimingEfficiency

    flat = _flat_profile(experiment)
    frac = time_bin_fractions(experiment, flat)[:, 0]
    return frac / jnp.sum(time_bin_fractions(experiment, flat, NoTimingEfficiency())[:, 0])


def background_counts(experiment):
    """Expected counts of each background of the experiment: {name: (n_E, n_t)}."""
    from .response import NoTimingEfficiency

    out = {}
    pulse = getattr(experiment.source, "pulse", None)  # beam-timed profiles exist for a beam source only
    flat = _flat_profile(experiment)
    profiles = {
        "flat": flat,
        "beam": lambda t: tuple(f[:, None] for f in pulse_antiderivatives(t, pulse)),
        "prompt": lambda t: tuple(f[:, None] for f in prompt_time_antiderivatives(t, pulse)),
        "delayed": lambda t: tuple(f[:, None] for f in delayed_time_antiderivatives(t, pulse)),
    }
    for name, bkg in experiment.backgrounds.items():
        if bkg.time_profile == "table":
            out[name] = bkg.counts * bkg.shape
            continue
        # ``counts`` is the number in the analysis window before the timing efficiency, which then applies
        frac = time_bin_fractions(experiment, profiles[bkg.time_profile])[:, 0]
        window = time_bin_fractions(experiment, profiles[bkg.time_profile], NoTimingEfficiency())[:, 0]
        out[name] = bkg.counts * bkg.shape[:, None] * (frac / jnp.sum(window))[None, :]
    return out


DM_GEOMETRIC_PANELS = 8
"""Extra recoil panels of a dark-matter channel, log-spaced between T_max(E₋) and T_max(E₊): the η box spans
decades of recoil (≈ 16–900 keV on Cs at m_V = 60 MeV) while the detector sees its lowest tens of keV; with
linear panels alone doubling the grid moved CsI-2021 bins by 1.6e-3 (docs/physics.md §3.4.1)."""


def dark_matter_channel_counts(experiment, dm) -> dict:
    """Expected accelerator-produced dark-matter counts of each production channel per (energy × time) bin:
    {channel: (n_E, n_t)} (``models.darkmatter.channels``: ``pi0``, ``eta``, ``piminus``; ``table``).

    Each channel has its own χ spectrum (a mixture of flat boxes, ``models.darkmatter.channel_boxes``), so its
    own recoil panels, broken at T_max(E_break) (the kink of the boxes' lower edges), with
    :data:`DM_GEOMETRIC_PANELS` log-spaced ones above it; at each recoil node the χ energy is integrated on
    ``models.darkmatter.ENERGY_NODES`` product-integration nodes (the box mixture exactly, the rest interpolated),
    and each χ energy carries its own time-of-flight delay of the prompt (proton-pulse) time profile. With π⁰
    decaying in flight the π⁰ channel's lab spectrum is the one at the detector's ``beam_angle_deg`` (its direction
    to the proton beam; the direction average when None; ``models.dm_flight.directional_correction``). The three
    channels are one vectorised computation (their box mixtures have one shape) and the detector response is
    computed once on all their recoil nodes: compilation is most of a dark-matter study's time.
    """
    from .models import darkmatter as D

    require_x64()
    if invisible_recoils(experiment):
        return {c: _zero_counts(experiment) for c in D.channels(dm)}
    dm = D.at_source(dm, experiment.source)
    angle = experiment.detector.beam_angle_deg
    if dm.pi0_rapidity is not None and angle is not None:  # the detector's direction (π⁰ decaying in flight)
        dm = replace(dm, pi0_beam_cos=jnp.cos(jnp.deg2rad(angle)))
    if dm.pi0_rapidity is not None and experiment.detector.binning.refine > 1:  # the in-flight lab boxes refine too
        dm = replace(dm, pi0_lab_boxes=max(dm.pi0_lab_boxes, experiment.detector.binning.refine * D.LAB_BOXES))
    names = D.channels(dm)
    M = experiment.target.mass_MeV
    boxes = None if names == ("table",) else D.channel_boxes(dm)  # (n_channels, K)
    E_break, E_end = D.energy_box(dm, "table") if boxes is None else D.box_range(boxes)
    E_break, E_end = jnp.atleast_1d(E_break)[:, None], jnp.atleast_1d(E_end)[:, None]
    T_break, T_end = D.max_recoil(E_break, dm.m_chi_MeV, M), D.max_recoil(E_end, dm.m_chi_MeV, M)  # (n_ch, n_iso)
    shared = shares_response(experiment)
    panels = lambda a, b: experiment_panels(experiment, a, b, shared, geometric=DM_GEOMETRIC_PANELS)  # noqa: E731
    T, wT = jax.vmap(panels)(T_break, T_end)
    R = recoil_response(experiment, T.transpose(1, 0, 2).reshape(T.shape[1], -1), shared)
    R = R.reshape(R.shape[:2] + T.shape[::2]).transpose(2, 0, 1, 3)  # (n_channels, n_E, n_iso, n_T)
    if boxes is None:
        return {"table": _channel_counts(experiment, dm, None, T[0], wT[0], R[0])}
    counts = jax.vmap(lambda *a: _channel_counts(experiment, dm, *a))(boxes, T, wT, R)
    return {c: counts[k] for k, c in enumerate(names)}


def _channel_counts(experiment, dm, boxes, T, wT, R):
    """One channel's counts (n_E, n_t) on its recoil nodes ``T``, ``wT`` (n_iso, n_T) [MeV] with the energy
    response ``R`` (n_E, n_iso, n_T) there; ``boxes`` its χ spectrum (``models.darkmatter.ChiBoxes``; None: the
    model's table)."""
    from .models import darkmatter as D
    from .form_factors import nucleon_form_factors
    from .kinematics import momentum_transfer
    from .xsec import _column

    target, det, src = experiment.target, experiment.detector, experiment.source
    Mc = target.mass_MeV[:, None]
    Fp, Fn = nucleon_form_factors(_column(target), momentum_transfer(T, Mc))
    E, wE = D.energy_nodes(dm, T, Mc, D.ENERGY_NODES * det.binning.refine, channel="table", boxes=boxes)
    sig = D.dsigma_dT(dm, E, T[..., None], Mc[..., None], target.Z[:, None, None], target.N[:, None, None],
                      Fp[..., None], Fn[..., None])
    scale = D.fluence(dm, src.protons_on_target, det.baseline_m, "table", boxes) * units_per_kg(target) * det.mass_kg
    events = scale * target.atoms_per_unit[:, None, None] * wT[..., None] * wE * sig  # (n_iso, n_T, n_E)
    delay = D.time_of_flight_delay_ns(dm, E, det.baseline_m)
    tau = time_bin_fractions(experiment, lambda t: pulse_antiderivatives(t.reshape(-1, 1, 1, 1) - delay[None], src.pulse))
    return jnp.einsum("eik,ikj,tikj->et", R, events, tau)


def dark_matter_counts(experiment, dm):
    """Expected accelerator-produced dark-matter counts per (energy × time) bin, shape (n_E, n_t): the sum of
    :func:`dark_matter_channel_counts` over the production channels (docs/physics.md §4.3)."""
    return sum(dark_matter_channel_counts(experiment, dm).values())


def expected_counts(experiment, sm=None, model=None):
    """All expected counts per (energy × time) bin: {component or background name: (n_E, n_t)}.

    Keys: the source's components (π-DAR: ``prompt_numu``, ``delayed_nue``, ``delayed_numubar``), each
    background's name, ``nu_e_scattering`` (all components' neutrino–electron counts) for a detector with
    ``electron_scattering``, ``nu_d_cc`` and ``nu_d_nc`` (ν–d breakup) for a ``deuteron_breakup`` detector, the detector's inelastic
    channels (``ar40_nue_cc``, ``ar40_nc``, ``pb_nin``; docs/physics.md §12) and, for a model with dark matter (π-DAR sources only), ``dark_matter``.
    """
    if model is not None and model.dark_matter is not None and experiment.source.steady:
        from .errors import CevnsInputError

        raise CevnsInputError(f"{experiment.name}: accelerator dark matter needs a π-DAR source, not a steady one")
    signal = cevns_counts(experiment, sm=sm, model=model)
    out = {name: signal[c] for c, name in enumerate(experiment.source.components)}
    if experiment.detector.electron_scattering:
        from .electron_rates import COMPONENT, electron_counts

        out[COMPONENT] = jnp.sum(electron_counts(experiment, sm=sm, model=model), axis=0)
    if experiment.detector.deuteron is not None:  # ν–d breakup (SM cross sections, docs/physics.md §11)
        from .deuteron import deuteron_counts

        out.update(deuteron_counts(experiment))
    if experiment.detector.inelastic is not None:  # inelastic channels (SM cross sections, docs/physics.md §12)
        from .inelastic import inelastic_counts

        out.update(inelastic_counts(experiment))
    if model is not None and model.dark_matter is not None:
        out["dark_matter"] = dark_matter_counts(experiment, model.dark_matter)
    out.update(background_counts(experiment))
    return out


def total_cevns(experiment, sm=None, model=None):
    """Total expected CEvNS counts in the analysis region (scalar)."""
    return jnp.sum(cevns_counts(experiment, sm=sm, model=model))
