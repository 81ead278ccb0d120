"""TOML tables for user-set physics: ``[physics]`` (electroweak configuration) and
``[detector.nuclear]`` (nuclear masses, radii, Helm skin). Every field is validated on load and every
error names the file, table and field (docs/physics.md §2.3–§2.5).

``[physics]`` (also accepted as a model file's ``[standard_model]`` table)::

    couplings = "rc"          # rc (default) | tree | radiative | explicit
    sin2_theta_w = 0.23857    # ŝ² of the coupling formula (rc, tree, radiative)
    rho = 1.0086              # radiative: ρ, κ̂ (number or [e, μ, τ]), λ_uL, λ_dL, λ_uR, λ_dR
    kappa = 0.9978
    lambda_uL = -0.0031
    lambda_dL = -0.0025
    lambda_uR = 3.75e-5
    lambda_dR = 7.5e-5
    gvp = [0.0382, 0.0300, 0.0256]   # explicit: g_V^p, g_V^n (number or [e, μ, τ])
    gvn = -0.5117
    t2_term = false           # +T²/(2E²) in dσ/dT

``[detector.nuclear]`` (values keyed by isotope "133Cs" or element "Cs"; a number means every isotope)::

    mass_MeV = { "133Cs" = 123800.0, "127I" = 118210.0 }   # nuclear masses [MeV]
    helm_radius_fm = 4.7       # Helm box radius R₀ [fm] (form_factor = "helm_r0")
    proton_radius_fm = 4.7     # point rms radii [fm] (form_factor = "helm_rms")
    neutron_radius_fm = { Cs = 5.0, I = 4.9 }
    skin_fm = 0.9              # Helm skin thickness s [fm]
"""

from __future__ import annotations

from .errors import CevnsInputError
from .nuclei import FORM_FACTOR_MODELS, Target, make_target
from .tomltable import Table
from .xsec import COUPLING_SCHEMES, RADIATIVE_PARAMETERS, StandardModel, standard_model

__all__ = ["electroweak_from_table", "target_from_tables", "NUCLEAR_FIELDS", "PHYSICS_FIELDS"]

NUCLEAR_FIELDS = ("mass_MeV", "helm_radius_fm", "proton_radius_fm", "neutron_radius_fm", "skin_fm")
PHYSICS_FIELDS = ("couplings", "sin2_theta_w", *RADIATIVE_PARAMETERS, "gvp", "gvn", "t2_term")


def _number_or_list(tab: Table, key: str):
    value = tab.get(key, None)
    if value is None:
        return None
    if isinstance(value, list):
        return tab.numbers(key, length=3)
    return tab.number(key)


def electroweak_from_table(tab: Table) -> StandardModel:
    """A :class:`StandardModel` from a ``[physics]`` table (unknown fields rejected)."""
    couplings = tab.text("couplings", "rc", choices=COUPLING_SCHEMES)
    s2 = None
    if tab.has("sin2_theta_w"):
        s2 = tab.number("sin2_theta_w")
        if not 0.0 < s2 < 1.0:
            raise tab.error("sin2_theta_w", f"must lie in (0, 1), got {s2}")
    kwargs = {k: tab.number(k) for k in RADIATIVE_PARAMETERS if k != "kappa" and tab.has(k)}
    for key in ("kappa", "gvp", "gvn"):
        value = _number_or_list(tab, key)
        if value is not None:
            kwargs[key] = value
    t2 = tab.get("t2_term", False)
    if not isinstance(t2, bool):
        raise tab.error("t2_term", f"must be true or false, got {t2!r}")
    tab.check_unused()
    try:
        return standard_model(couplings, s2, t2_term=t2, **kwargs)
    except CevnsInputError as exc:
        raise CevnsInputError(f"{tab.where}.{exc}") from None


def _keyed(tab: Table, key: str, *, table_only: bool = False):
    """A number (every isotope) or a table {isotope or element: number}, type-checked."""
    value = tab.get(key, None)
    if value is None:
        return None
    if isinstance(value, dict):
        sub = Table(value, f"{tab.where}.{key}")
        out = {k: sub.number(k) for k in value}
        sub.check_unused()
        return out
    if table_only:
        raise tab.error(key, f"must be a table keyed by isotope (e.g. {{ \"133Cs\" = 123800.0 }}), got {value!r}")
    return tab.number(key)


def target_from_tables(spec, form_factor: str, nuclear: Table, where: str) -> Target:
    """The detector's :class:`Target` from its ``target`` spec, ``form_factor`` and ``[detector.nuclear]``.

    Errors from the nuclear inputs are reported as ``<file>.detector.nuclear.<field>: …``; errors in the
    composition as ``<file>.detector.target: …``.
    """
    kwargs = dict(
        mass_MeV=_keyed(nuclear, "mass_MeV", table_only=True),
        helm_radius_fm=_keyed(nuclear, "helm_radius_fm"),
        proton_radius_fm=_keyed(nuclear, "proton_radius_fm"),
        neutron_radius_fm=_keyed(nuclear, "neutron_radius_fm"),
        skin_fm=nuclear.number("skin_fm", None) if nuclear.has("skin_fm") else None,
    )
    nuclear.check_unused()
    if form_factor not in FORM_FACTOR_MODELS:
        raise CevnsInputError(f"{where}.form_factor: unknown value {form_factor!r}; choose one of {', '.join(FORM_FACTOR_MODELS)}")
    try:
        make_target(spec)  # the composition alone, so its errors name detector.target
    except CevnsInputError as exc:
        raise CevnsInputError(f"{where}.target: {exc}") from None
    try:
        return make_target(spec, form_factor=form_factor, **kwargs)
    except CevnsInputError as exc:
        raise CevnsInputError(f"{nuclear.where}.{exc}") from None
