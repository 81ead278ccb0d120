"""Nuclear data and target materials (docs/physics.md §2.5).

A :class:`Target` holds every isotope of a material as arrays of shape ``(n_iso,)``, so that a
compound (CsI, NaI) or a natural element (Ge, Xe) is a vectorised sum over isotopes.

Sources:
* Z, N, mass excesses Δ: AME2020 (Wang et al., Chin. Phys. C 45, 030003 (2021)); for Na, Ar, Ge, I
  and Cs the values cross-checked with dukecevns ``isomaps.h`` (docs/physics.md §2.5).
* Isotopic abundances: IUPAC 2009 (Berglund & Wieser, Pure Appl. Chem. 83, 397 (2011)).
* Charge radii: Angeli & Marinova, At. Data Nucl. Data Tables 99, 69 (2013).
* Nuclear mass M = A·u − Z·m_e + Δ (electron binding, ≲ 0.2 MeV, neglected). A user may give the
  nuclear masses instead (``make_target(mass_MeV=...)``); the molar mass is always derived from the
  masses in the target, Σ_iso x_iso (M_iso + Z m_e)/u g/mol, so it and the number of nuclei per kg follow.
* Point-proton radius R_p² = R_ch² − r_p² − (N/Z) r_n² with r_p² = 0.7071 fm² (CODATA 2018 r_p = 0.8409 fm)
  and r_n² = −0.1161 fm² (PDG).
* Default neutron skins ΔR_np = R_n − R_p: 0.2 fm (Cs, I, Xe, W), 0.1 fm (Ar, Ge), 0.05 fm (Na), 0 (O, Al,
  Si, Ca): typical nuclear-model values (assumption; R_n is a fit parameter of the analyses).
* Al, Si, Ca, W (cryogenic calorimeters and CCDs, docs/physics.md §3.8), checked value by value against the
  tables: mass excesses from AME2020 as carried by NUBASE2020 (Kondev et al., Chin. Phys. C 45, 030001
  (2021)), rounded to 1 keV for Al, Si, Ca and given to 0.1 keV for ⁴⁶Ca and W; abundances IUPAC 2009
  (Berglund & Wieser 2011, "representative isotopic composition", the values NIST tabulates; Al, Ca and
  W are identical in NUBASE2020, whose newer Si values differ by ≤ 3e-4); charge radii from Angeli &
  Marinova 2013 (their table as distributed by the IAEA NDS). The radii enter only the form factor, which
  is ≈ 1 at reactor momentum transfers.
* H (¹H, ²H; heavy water ``D2O`` = ²H₂O for the ν–d breakup channel, docs/physics.md §11): mass excesses
  AME2020 (7.289, 13.136 MeV), abundances IUPAC 2009, charge radii Angeli & Marinova 2013 (0.8783,
  2.1421 fm). Natural oxygen in D₂O (isotopic enrichment of the water's oxygen neglected).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from . import constants as C
from ._pytree import pytree_dataclass, static_field
from .errors import CevnsInputError
from .form_factors import HELM_SKIN_FM

PROTON_RADIUS_SQ_FM2 = 0.8409**2
NEUTRON_RADIUS_SQ_FM2 = -0.1161


@dataclass(frozen=True)
class Isotope:
    """Static nuclear data of one isotope."""

    symbol: str
    Z: int
    N: int
    abundance: float
    mass_excess_MeV: float
    charge_radius_fm: float

    @property
    def A(self) -> int:
        return self.Z + self.N

    @property
    def nuclear_mass_MeV(self) -> float:
        """M = A·u − Z·m_e + Δ [MeV]."""
        return self.A * C.AMU_MEV - self.Z * C.M_ELECTRON + self.mass_excess_MeV

    @property
    def atomic_mass_g_per_mol(self) -> float:
        return self.A + self.mass_excess_MeV / C.AMU_MEV

    @property
    def point_proton_radius_fm(self) -> float:
        r2 = self.charge_radius_fm**2 - PROTON_RADIUS_SQ_FM2 - self.N / self.Z * NEUTRON_RADIUS_SQ_FM2
        return float(np.sqrt(r2))


def _iso(sym, Z, N, ab, delta, rch):
    return Isotope(sym, Z, N, ab, delta, rch)


ELEMENTS: dict[str, tuple[Isotope, ...]] = {
    "H": (
        _iso("1H", 1, 0, 0.999885, 7.289, 0.8783),
        _iso("2H", 1, 1, 0.000115, 13.136, 2.1421),
    ),
    "O": (
        _iso("16O", 8, 8, 0.99757, -4.737, 2.6991),
        _iso("17O", 8, 9, 0.00038, -0.809, 2.6932),
        _iso("18O", 8, 10, 0.00205, -0.783, 2.7726),
    ),
    "Na": (_iso("23Na", 11, 12, 1.0, -9.530, 2.9936),),
    "Al": (_iso("27Al", 13, 14, 1.0, -17.197, 3.0610),),
    "Si": (
        _iso("28Si", 14, 14, 0.92223, -21.493, 3.1224),
        _iso("29Si", 14, 15, 0.04685, -21.895, 3.1176),
        _iso("30Si", 14, 16, 0.03092, -24.433, 3.1336),
    ),
    "Ar": (
        _iso("36Ar", 18, 18, 0.003336, -30.231, 3.3905),
        _iso("38Ar", 18, 20, 0.000629, -34.714, 3.4028),
        _iso("40Ar", 18, 22, 0.996035, -35.040, 3.4274),
    ),
    "Ca": (
        _iso("40Ca", 20, 20, 0.96941, -34.846, 3.4776),
        _iso("42Ca", 20, 22, 0.00647, -38.547, 3.5081),
        _iso("43Ca", 20, 23, 0.00135, -38.409, 3.4954),
        _iso("44Ca", 20, 24, 0.02086, -41.469, 3.5179),
        _iso("46Ca", 20, 26, 0.00004, -43.1396, 3.4953),
        _iso("48Ca", 20, 28, 0.00187, -44.225, 3.4771),
    ),
    "Ge": (
        _iso("70Ge", 32, 38, 0.2057, -70.561, 4.0414),
        _iso("72Ge", 32, 40, 0.2745, -72.585, 4.0576),
        _iso("73Ge", 32, 41, 0.0775, -71.297, 4.0632),
        _iso("74Ge", 32, 42, 0.3650, -73.422, 4.0742),
        _iso("76Ge", 32, 44, 0.0773, -73.212, 4.0811),
    ),
    "I": (_iso("127I", 53, 74, 1.0, -88.984, 4.7500),),
    "Xe": (
        _iso("124Xe", 54, 70, 0.000952, -87.661, 4.7664),
        _iso("126Xe", 54, 72, 0.000890, -89.146, 4.7725),
        _iso("128Xe", 54, 74, 0.019102, -89.860, 4.7774),
        _iso("129Xe", 54, 75, 0.264006, -88.696, 4.7775),
        _iso("130Xe", 54, 76, 0.040710, -89.880, 4.7818),
        _iso("131Xe", 54, 77, 0.212324, -88.413, 4.7808),
        _iso("132Xe", 54, 78, 0.269086, -89.279, 4.7859),
        _iso("134Xe", 54, 80, 0.104357, -88.126, 4.7899),
        _iso("136Xe", 54, 82, 0.088573, -86.429, 4.7964),
    ),
    "Cs": (_iso("133Cs", 55, 78, 1.0, -88.070, 4.8041),),
    "W": (
        _iso("180W", 74, 106, 0.0012, -49.6362, 5.3491),
        _iso("182W", 74, 108, 0.2650, -48.2461, 5.3559),
        _iso("183W", 74, 109, 0.1431, -46.3657, 5.3611),
        _iso("184W", 74, 110, 0.3064, -45.7055, 5.3658),
        _iso("186W", 74, 112, 0.2843, -42.5086, 5.3743),
    ),
}
"""Natural elements with their isotopes."""

ISOTOPES: dict[str, Isotope] = {iso.symbol: iso for isos in ELEMENTS.values() for iso in isos}

DEFAULT_NEUTRON_SKIN_FM = {"H": 0.0, "O": 0.0, "Na": 0.05, "Al": 0.0, "Si": 0.0, "Ca": 0.0, "Ar": 0.1, "Ge": 0.1, "I": 0.2,
                           "Xe": 0.2, "Cs": 0.2, "W": 0.2}

MATERIALS: dict[str, dict[str, int]] = {
    "CsI": {"Cs": 1, "I": 1},
    "NaI": {"Na": 1, "I": 1},
    "Ar": {"Ar": 1},
    "Ge": {"Ge": 1},
    "Xe": {"Xe": 1},
    "Na": {"Na": 1},
    "I": {"I": 1},
    "Cs": {"Cs": 1},
    "O": {"O": 1},
    "Si": {"Si": 1},
    "Al": {"Al": 1},
    "Ca": {"Ca": 1},
    "W": {"W": 1},
    "CaWO4": {"Ca": 1, "W": 1, "O": 4},
    "Al2O3": {"Al": 2, "O": 3},
    "D2O": {"2H": 2, "O": 1},
}
"""Named materials: formula units as {element or isotope: atoms per unit}."""

FORM_FACTOR_MODELS = ("helm", "helm_r0", "helm_rms", "klein_nystrand")
MASS_TOLERANCE_MEV_PER_NUCLEON = 10.0
"""A given nuclear mass must lie within this × A of A·u: covers every convention in use (AME masses,
A·u, Z m_p + N m_n ≈ A·u + 7.5 MeV·A) and catches unit slips (GeV, amu)."""


@pytree_dataclass
class Target:
    """A target material: all isotopes as arrays of shape (n_iso,).

    Attributes:
        Z, N: proton and neutron numbers (float arrays).
        mass_MeV: nuclear masses [MeV]; the molar mass (:attr:`molar_mass_g_per_mol`) follows from them.
        atoms_per_unit: atoms of each isotope per formula unit (stoichiometry × abundance).
        proton_radius_fm, neutron_radius_fm: point-proton / point-neutron rms radii [fm]
            (used by the ``helm_rms`` form factor).
        helm_radius_fm: Helm box radius R₀ per isotope [fm] (used by ``helm_r0``; Lewin–Smith values
            otherwise, for reference).
        skin_fm: Helm skin thickness s [fm] of every Helm model (0.9 fm by default), scalar.
        radius_scale: common factor on every nuclear radius of every form-factor model (1 by default;
            the ``form_factor_radius`` nuisance moves it).
        form_factor: ``"helm"`` (Lewin–Smith radius, one shape for protons and neutrons; default),
            ``"helm_r0"`` (given box radii R₀), ``"helm_rms"`` (Helm with R₀ from the rms radii, separate F_p and F_n) or
            ``"klein_nystrand"``.
        name: material name.
        isotopes: isotope symbols (static, for labels).
    """

    Z: jnp.ndarray
    N: jnp.ndarray
    mass_MeV: jnp.ndarray
    atoms_per_unit: jnp.ndarray
    proton_radius_fm: jnp.ndarray
    neutron_radius_fm: jnp.ndarray
    radius_scale: jnp.ndarray
    helm_radius_fm: jnp.ndarray
    skin_fm: jnp.ndarray
    form_factor: str = static_field(default="helm")
    name: str = static_field(default="custom")
    isotopes: tuple = static_field(default=())

    @property
    def molar_mass_g_per_mol(self):
        """Molar mass of one formula unit [g/mol], Σ x_iso (M_iso + Z m_e)/u (follows ``mass_MeV``)."""
        return jnp.sum(self.atoms_per_unit * (self.mass_MeV + self.Z * C.M_ELECTRON)) / C.AMU_MEV


def make_target(
    composition: str | dict[str, int | float],
    *,
    form_factor: str = "helm",
    neutron_skin_fm: dict[str, float] | None = None,
    name: str | None = None,
    mass_MeV: dict[str, float] | None = None,
    helm_radius_fm: float | dict[str, float] | None = None,
    proton_radius_fm: float | dict[str, float] | None = None,
    neutron_radius_fm: float | dict[str, float] | None = None,
    skin_fm: float | None = None,
) -> Target:
    """Build a :class:`Target` from a material name (``"CsI"``) or a formula ``{"Cs": 1, "I": 1}``.

    Keys of a formula are elements (natural abundances) or single isotopes (``"40Ar"``).

    Nuclear inputs (to reproduce another code's configuration; see :func:`nuclear_overrides` for the
    rules): ``mass_MeV`` {isotope or single-isotope element: nuclear mass [MeV]}; ``helm_radius_fm``
    (box radius R₀ [fm], one number for every isotope or a table; needs ``form_factor="helm_r0"``);
    ``proton_radius_fm`` / ``neutron_radius_fm`` (point rms radii [fm], number or table; need
    ``"helm_rms"``); ``skin_fm`` (Helm skin thickness s [fm], default 0.9; any Helm model).
    """
    if isinstance(composition, str):
        if composition not in MATERIALS:
            raise CevnsInputError(
                f"unknown target material {composition!r}; known materials: {', '.join(MATERIALS)} "
                "(or give a formula such as {Cs = 1, I = 1})"
            )
        label, formula = composition, MATERIALS[composition]
    else:
        label, formula = name or "".join(composition), dict(composition)
    if not formula:
        raise CevnsInputError("target composition is empty")
    if form_factor not in FORM_FACTOR_MODELS:
        raise CevnsInputError(f"unknown form factor {form_factor!r}; choose one of {', '.join(FORM_FACTOR_MODELS)}")
    skins = dict(DEFAULT_NEUTRON_SKIN_FM)
    skins.update(neutron_skin_fm or {})
    rows = []
    for key, count in formula.items():
        if not isinstance(count, (int, float)) or isinstance(count, bool) or not count > 0:
            raise CevnsInputError(f"target composition: atoms of {key!r} per unit must be a positive number, got {count!r}")
        if key in ELEMENTS:
            element, isotopes = key, [(iso, iso.abundance) for iso in ELEMENTS[key]]
        elif key in ISOTOPES:
            element = next(el for el, isos in ELEMENTS.items() if ISOTOPES[key] in isos)
            isotopes = [(ISOTOPES[key], 1.0)]
        else:
            raise CevnsInputError(
                f"target composition: unknown element or isotope {key!r}; known: "
                f"{', '.join(list(ELEMENTS) + list(ISOTOPES))}"
            )
        for iso, abundance in isotopes:
            rows.append((iso, count * abundance, skins.get(element, 0.0)))
    isos = [r[0] for r in rows]
    per_unit = np.array([r[1] for r in rows])
    r_p = np.array([iso.point_proton_radius_fm for iso in isos])
    r_n = r_p + np.array([r[2] for r in rows])
    masses = np.array([iso.nuclear_mass_MeV for iso in isos])
    symbols = tuple(iso.symbol for iso in isos)
    Z = np.array([iso.Z for iso in isos], dtype=np.float64)
    A = np.array([iso.A for iso in isos], dtype=np.float64)
    s = HELM_SKIN_FM if skin_fm is None else skin_fm
    masses, R0, r_p, r_n, s = nuclear_overrides(
        symbols, Z, A, form_factor, masses, r_p, r_n, s, mass_MeV=mass_MeV, helm_radius_fm=helm_radius_fm,
        proton_radius_fm=proton_radius_fm, neutron_radius_fm=neutron_radius_fm,
        skin_given=skin_fm is not None, neutron_skin_given=bool(neutron_skin_fm),
    )
    f = lambda xs: jnp.asarray(np.asarray(xs, dtype=np.float64))  # noqa: E731
    return Target(
        Z=f(Z),
        N=f([iso.N for iso in isos]),
        mass_MeV=f(masses),
        atoms_per_unit=f(per_unit),
        proton_radius_fm=f(r_p),
        neutron_radius_fm=f(r_n),
        radius_scale=f(1.0),
        helm_radius_fm=f(R0),
        skin_fm=f(s),
        form_factor=form_factor,
        name=label,
        isotopes=symbols,
    )


def _per_isotope(field: str, value, symbols: tuple[str, ...], *, elements_ok: bool) -> dict[int, float]:
    """{isotope index: number} from one number (every isotope) or a table keyed by isotope or element."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return {k: _finite(field, value) for k in range(len(symbols))}
    out = {}
    for key, v in value.items():
        hits = [k for k, sym in enumerate(symbols) if sym == key or sym.lstrip("0123456789") == key]
        if not hits:
            raise CevnsInputError(f"{field}[{key!r}]: not an isotope or element of this target ({', '.join(symbols)})")
        if key not in symbols and len(hits) > 1 and not elements_ok:
            raise CevnsInputError(
                f"{field}[{key!r}]: the element has {len(hits)} isotopes in this target; key the value by isotope "
                f"({', '.join(symbols[k] for k in hits)})"
            )
        for k in hits:
            if k in out:
                raise CevnsInputError(f"{field}[{key!r}]: {symbols[k]} is given twice (by element and by isotope)")
            out[k] = _finite(f"{field}[{key!r}]", v)
    return out


def _finite(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise CevnsInputError(f"{field}: must be a finite number, got {value!r}")
    return float(value)


def nuclear_overrides(symbols, Z, A, form_factor, masses, r_p, r_n, skin, *, mass_MeV=None, helm_radius_fm=None,
                      proton_radius_fm=None, neutron_radius_fm=None, skin_given=False, neutron_skin_given=False):
    """Apply user nuclear inputs to the default per-isotope arrays, checking every value.

    Returns (masses [MeV], Helm R₀ [fm], r_p [fm], r_n [fm], s [fm]). Rules (each violation raises
    :class:`CevnsInputError` naming the field and isotope):

    * masses > 0 and within ``MASS_TOLERANCE_MEV_PER_NUCLEON`` × A of A·u; an element key only for an
      element with one isotope in the target;
    * ``skin_fm`` ≥ 0, and only with a Helm model; with ``"helm"`` the Lewin–Smith R₀² must stay > 0;
    * ``helm_radius_fm`` > 0, required by and only with ``"helm_r0"``;
    * ``proton_radius_fm``/``neutron_radius_fm`` > √3 s (so that R₀² = 5/3 (r² − 3s²) > 0), only with
      ``"helm_rms"``; ``neutron_radius_fm`` replaces the default neutron skins (not both).
    """
    from .form_factors import lewin_smith_radius_fm

    masses, r_p, r_n = np.array(masses, dtype=np.float64), np.array(r_p, dtype=np.float64), np.array(r_n, dtype=np.float64)
    for k, M in _per_isotope("mass_MeV", mass_MeV, symbols, elements_ok=False).items():
        if not M > 0 or abs(M - A[k] * C.AMU_MEV) > MASS_TOLERANCE_MEV_PER_NUCLEON * A[k]:
            raise CevnsInputError(
                f"mass_MeV[{symbols[k]!r}]: {M!r} MeV is not a nuclear mass of A = {A[k]:.0f} (expected within "
                f"{MASS_TOLERANCE_MEV_PER_NUCLEON:g} MeV × A of A·u = {A[k] * C.AMU_MEV:.1f} MeV)"
            )
        masses[k] = M
    helm_models = ("helm", "helm_r0", "helm_rms")
    skin = _finite("skin_fm", skin)
    if skin_given and form_factor not in helm_models:
        raise CevnsInputError(f"skin_fm: used only by the Helm form factors ({', '.join(helm_models)}), not {form_factor!r}")
    if skin < 0:
        raise CevnsInputError(f"skin_fm: must be >= 0, got {skin}")
    R0 = np.array(lewin_smith_radius_fm(np.asarray(A), HELM_SKIN_FM), dtype=np.float64)
    if form_factor == "helm" and not np.all(np.isfinite(np.asarray(lewin_smith_radius_fm(np.asarray(A), skin)))):
        raise CevnsInputError(f"skin_fm: {skin} fm is too large for the Lewin–Smith radius of A = {A.min():.0f}")
    given_R0 = _per_isotope("helm_radius_fm", helm_radius_fm, symbols, elements_ok=True)
    if (form_factor == "helm_r0") != (helm_radius_fm is not None):
        raise CevnsInputError("helm_radius_fm: required by, and used only by, form_factor = 'helm_r0'")
    if form_factor == "helm_r0" and len(given_R0) != len(symbols):
        missing = [symbols[k] for k in range(len(symbols)) if k not in given_R0]
        raise CevnsInputError(f"helm_radius_fm: missing a value for {', '.join(missing)}")
    for k, R in given_R0.items():
        if not R > 0:
            raise CevnsInputError(f"helm_radius_fm[{symbols[k]!r}]: must be > 0 fm, got {R}")
        R0[k] = R
    for field, value, arr in (("proton_radius_fm", proton_radius_fm, r_p), ("neutron_radius_fm", neutron_radius_fm, r_n)):
        if value is not None and form_factor != "helm_rms":
            raise CevnsInputError(f"{field}: used only by form_factor = 'helm_rms', not {form_factor!r}")
        for k, r in _per_isotope(field, value, symbols, elements_ok=True).items():
            arr[k] = r
    if neutron_radius_fm is not None and neutron_skin_given:
        raise CevnsInputError("neutron_radius_fm: give either neutron radii or neutron skins, not both")
    if form_factor == "helm_rms":
        for field, arr in (("proton_radius_fm", r_p), ("neutron_radius_fm", r_n)):
            bad = [k for k in range(len(symbols)) if not arr[k] > np.sqrt(3.0) * skin]
            if bad:
                k = bad[0]
                raise CevnsInputError(
                    f"{field}[{symbols[k]!r}]: {arr[k]:.4g} fm must exceed √3·s = {np.sqrt(3.0) * skin:.4g} fm "
                    "(Helm R₀² = 5/3 (r² − 3s²) > 0)"
                )
    return masses, R0, r_p, r_n, skin


def units_per_kg(target: Target):
    """Formula units (molecules or atoms) per kg of target."""
    return C.AVOGADRO * C.KG_TO_G / target.molar_mass_g_per_mol
