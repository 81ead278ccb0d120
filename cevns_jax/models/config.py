"""New-physics points as TOML files (``cevns predict EXPERIMENT --model FILE.toml``).

Tables (each optional): ``[standard_model]`` (the fields of an experiment's ``[physics]`` table:
couplings, sin2_theta_w, ρ/κ/λ, gvp/gvn, t2_term; see :mod:`cevns_jax.physicsconfig`; without it the
experiment's own electroweak configuration is used), ``[zprime]`` (kind =
universal | b_minus_l | lmu_ltau | general, mass_MeV, g — or g_nu, g_u, g_d for general),
``[nsi]`` (entries such as ee_u = 0.1, emu_d = 0.02), ``[em]`` (magnetic_moment_muB,
charge_radius_cm2, millicharge_e: a number or [e, μ, τ]), ``[sterile]`` (dm2_eV2, Ue4_sq, Umu4_sq, Utau4_sq,
baseline_spread_m), ``[dark_matter]`` (m_chi_MeV, m_V_MeV (default 3 m_χ), epsilon or Y or alpha_B,
alpha_D (0.5), particle, pi0_per_proton, eta_per_proton, piminus_per_proton (default: the facility's yields),
pi0_motion ("flight", the facility's GEANT4 π⁰ speeds, or "rest")), ``[scalar]`` (mass_MeV, g,
optional g_q). Unknown tables or fields are errors naming the field.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..errors import CevnsInputError
from ..physicsconfig import electroweak_from_table
from ..tomltable import Table as _Table
from ..tomltable import read_toml
from . import NewPhysics, b_minus_l, general, lmu_minus_ltau, universal
from .darkmatter import dark_matter, epsilon_from_Y
from .em import properties
from .nsi import couplings
from .sterile import mixing


def _flavour(tab: _Table, key: str):
    value = tab.get(key, 0.0)
    if isinstance(value, list):
        return tab.numbers(key, length=3)
    return tab.number(key, 0.0, nonnegative=key == "magnetic_moment_muB")


@contextmanager
def _named(t: _Table):
    """Prefix a constructor's domain error (e.g. sin²θ_W ∉ (0, 1), m_V < 2m_χ) with the file and table."""
    try:
        yield
    except CevnsInputError as exc:
        if str(exc).startswith(t.where):
            raise
        raise CevnsInputError(f"{t.where}: {exc}") from None


def model_from_dict(data: dict, label: str = "<model>"):
    """(StandardModel or ``None``, NewPhysics) from a parsed model description (``None``: no
    ``[standard_model]`` table, so the experiment's own electroweak configuration applies)."""
    root = _Table(data, label)
    sm = electroweak_from_table(root.table("standard_model")) if root.has("standard_model") else None
    parts = {}
    if root.has("zprime"):
        t = root.table("zprime")
        kind = t.text("kind", choices=("universal", "b_minus_l", "lmu_ltau", "general"))
        mass = t.number("mass_MeV", positive=True)
        with _named(t):
            if kind == "general":
                parts["zprime"] = general(mass, t.numbers("g_nu", length=3), t.number("g_u"), t.number("g_d"))
            else:
                build = {"universal": universal, "b_minus_l": b_minus_l, "lmu_ltau": lmu_minus_ltau}[kind]
                parts["zprime"] = build(mass, t.number("g", nonnegative=True))
        t.check_unused()
    if root.has("nsi"):
        t = root.table("nsi")
        allowed = {f"{a}{b}_{q}" for a in ("e", "mu", "tau") for b in ("e", "mu", "tau") for q in ("u", "d")}
        bad = sorted(set(t.data) - allowed)
        if bad:
            raise CevnsInputError(f"{t.where}: unknown NSI entries {', '.join(bad)}; use e.g. ee_u, emu_d, tautau_u")
        parts["nsi"] = couplings(**{k: t.number(k) for k in t.data})
    if root.has("em"):
        t = root.table("em")
        with _named(t):
            parts["em"] = properties(_flavour(t, "magnetic_moment_muB"), _flavour(t, "charge_radius_cm2"),
                                     _flavour(t, "millicharge_e"))
        t.check_unused()
    if root.has("sterile"):
        t = root.table("sterile")
        U = [t.number(k, 0.0, nonnegative=True, maximum=1.0) for k in ("Ue4_sq", "Umu4_sq", "Utau4_sq")]
        if sum(U) >= 1:
            raise CevnsInputError(f"{t.where}: |U_e4|² + |U_μ4|² + |U_τ4|² must be < 1, got {sum(U):g}")
        with _named(t):
            parts["sterile"] = mixing(t.number("dm2_eV2", nonnegative=True), *U,
                                      baseline_spread_m=t.number("baseline_spread_m", 0.5, nonnegative=True))
        t.check_unused()
    if root.has("dark_matter"):
        t = root.table("dark_matter")
        m_chi = t.number("m_chi_MeV", positive=True)
        m_V = t.number("m_V_MeV", 3 * m_chi, positive=True)
        alpha_D = t.number("alpha_D", 0.5, positive=True)
        given = [k for k in ("epsilon", "Y", "alpha_B") if t.has(k)]
        if len(given) != 1:
            raise CevnsInputError(f"{t.where}: give exactly one of epsilon, Y or alpha_B")
        pi0 = t.number("pi0_per_proton", positive=True) if t.has("pi0_per_proton") else None  # None: the facility's
        own = {k: t.number(k, nonnegative=True) for k in ("eta_per_proton", "piminus_per_proton") if t.has(k)}
        kw = dict(particle=t.text("particle", "scalar", choices=("scalar", "dirac")), pi0_per_proton=pi0, **own,
                  pi0_at_rest=t.text("pi0_motion", "flight", choices=("flight", "rest")) == "rest")
        with _named(t):
            if given[0] == "alpha_B":
                parts["dark_matter"] = dark_matter(m_chi, m_V, alpha_D=alpha_D,
                                                   alpha_B=t.number("alpha_B", nonnegative=True), **kw)
            else:
                eps = t.number("epsilon", nonnegative=True) if given[0] == "epsilon" else float(
                    epsilon_from_Y(t.number("Y", nonnegative=True), m_chi, m_V, alpha_D))
                parts["dark_matter"] = dark_matter(m_chi, m_V, eps, alpha_D, **kw)
        t.check_unused()
    if root.has("scalar"):
        from .scalar import scalar_mediator

        t = root.table("scalar")
        g = t.number("g", nonnegative=True)
        with _named(t):
            parts["scalar"] = scalar_mediator(t.number("mass_MeV", positive=True), g, t.number("g_q", g))
        t.check_unused()
    root.check_unused()
    return sm, NewPhysics(**parts)


def load_model(path: str | Path):
    """(StandardModel, NewPhysics) from a TOML file."""
    return model_from_dict(read_toml(path, "model"), label=Path(path).name)


__all__ = ["load_model", "model_from_dict"]
