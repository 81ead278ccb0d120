"""Compilers of the sub-keV detector models (docs/physics.md §3.8): the quenching models of
:mod:`cevns_jax.quenching` and the resolutions of :mod:`cevns_jax.resolution`, read from
``[detector.quenching]`` and ``[detector.smearing]`` (dispatched from :mod:`cevns_jax.experiment.sections`).
Every field is checked where it is read; errors name the file, table and field."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import quenching as Q
from .. import resolution as S
from .. import response as resp
from .._pytree import run_once
from ..domain import LINDHARD_K_MAX
from ..errors import CevnsInputError
from ..nuclei import Target
from ..releases import _resolve, read_table
from ..tomltable import Table, as_f64 as _f

__all__ = ["SUBKEV_QUENCHING", "SUBKEV_SMEARING", "CHARGE_YIELD_PARAMETRISATIONS", "MAX_NOISE_ACCEPTANCE", "compile_subkev_quenching",
           "compile_subkev_smearing", "observable_unit", "noise_acceptance", "check_noise_acceptance"]

SUBKEV_QUENCHING = ("sorensen", "adiabatic", "chavarria", "table", "charge_yield", "none")
"""``[detector.quenching] model`` values compiled here (``none``: heat channel, the recoil energy itself)."""
SUBKEV_SMEARING = ("fano_noise", "baseline", "poisson_electrons")
"""``[detector.smearing] model`` values compiled here."""

MAX_NOISE_ACCEPTANCE = 1e-6
"""Largest accepted probability that a deposit of zero energy (noise alone) is counted in the analysis bins
with a Gaussian noise or baseline resolution: the smearing applies to every recoil, so below this the
recoils that leave (almost) no energy cannot pass the threshold as noise (docs/physics.md §3.8.2)."""

_PAIR_DEFAULTS = {"Ge": (S.GE_PAIR_ENERGY_EV, S.GE_FANO), "Si": (S.SI_PAIR_ENERGY_EV, S.SI_FANO)}
_Q_SHIFT_MAX = 1e-2
"""Largest accepted Sorensen q: for Ge it removes q·Z^{7/3}/11.5 = 2.8 keVee, far above any sub-keV threshold."""


def _elements(target: Target) -> list[str]:
    return sorted({sym.lstrip("0123456789") for sym in target.isotopes})


def _lindhard_k(tab: Table) -> float:
    return tab.number("k", positive=True, maximum=LINDHARD_K_MAX, why=" (Ge measures 0.16-0.18; see cevns_jax.domain)")


def _one_element(tab: Table, target: Target, model: str) -> None:
    if len(_elements(target)) > 1:
        raise tab.error("model", f"{model!r} quenching depends on Z and takes one k: it needs a single-element "
                                 f"target, got {'+'.join(_elements(target))}")


def compile_subkev_quenching(tab: Table, model: str, target: Target, base: Path):
    """The quenching model ``model`` (one of :data:`SUBKEV_QUENCHING`) from its table."""
    if model == "none":
        return resp.NoQuenching()
    if model in ("sorensen", "adiabatic", "chavarria", "charge_yield"):
        _one_element(tab, target, model)
    if model == "sorensen":
        return Q.SorensenQuenching(k=_f(_lindhard_k(tab)), q=_f(tab.number(
            "q", nonnegative=True, maximum=_Q_SHIFT_MAX, why=" (q = 0.01 removes 2.8 keVee in Ge)")))
    if model == "adiabatic":
        return Q.AdiabaticQuenching(k=_f(_lindhard_k(tab)), xi_keV=_f(tab.number("xi_keVnr", positive=True)))
    if model == "chavarria":
        return Q.ChavarriaQuenching(k=_f(_lindhard_k(tab)),
                                    a_inverse_keV=_f(tab.number("a_inverse_keVnr", positive=True)))
    if model == "table":
        return _table_quenching(tab, base)
    return _charge_yield(tab, target)


def _table_quenching(tab: Table, base: Path):
    if tab.has("file"):
        tab.used.add("file")
        path = _resolve(tab.data, "file", base)
        rows = read_table(path, 2)
        T, values, field = rows[:, 0], rows[:, 1], f"file ({path})"
    else:
        T, values, field = tab.numbers("T_keVnr"), tab.numbers("Q"), "Q"
    if T.ndim != 1 or T.shape != values.shape or T.size < 2:
        raise tab.error(field if tab.has("file") else "T_keVnr", "needs at least two rows of (T_keVnr, Q)")
    if not (T[0] > 0 and np.all(np.diff(T) > 0)):
        raise tab.error(field if tab.has("file") else "T_keVnr", "recoil energies must be > 0 and increase strictly")
    if np.any((values <= 0) | (values > 1)):
        raise tab.error(field, f"quenching factors must lie in (0, 1], found {values.min():g} to {values.max():g}")
    if np.any(np.diff(values * T) < 0):
        i = int(np.argmax(np.diff(values * T) < 0))
        raise tab.error(field, f"E_ee = Q·T decreases between T = {T[i]:g} and {T[i + 1]:g} keVnr; it must not "
                               "(the recoil images of bin edges are found by bisection)")
    return Q.TabulatedQuenching(log_T=_f(np.log(T)), values=_f(values))


CHARGE_YIELD_PARAMETRISATIONS = ("lenardo_2015", "nest_v2")
"""``[detector.quenching] parametrisation`` values of ``model = "charge_yield"`` (default ``lenardo_2015``)."""


def _charge_yield(tab: Table, target: Target):
    which = tab.text("parametrisation", "lenardo_2015", choices=CHARGE_YIELD_PARAMETRISATIONS)
    if which == "nest_v2":
        if _elements(target) != ["Xe"]:
            raise tab.error("parametrisation", f"'nest_v2' is fitted to liquid xenon; the target is {_elements(target)[0]}")
        return _nest_charge_yield(tab)
    p = Q.LENARDO_2015
    return Q.ChargeYieldQuenching(
        k=_f(tab.number("k", p["k"], positive=True, maximum=LINDHARD_K_MAX)),
        alpha=_f(tab.number("alpha", p["alpha"], positive=True)),
        zeta=_f(tab.number("zeta", p["zeta"], nonnegative=True)),
        beta=_f(tab.number("beta", p["beta"], positive=True)),
        gamma=_f(tab.number("gamma", p["gamma"], positive=True)),
        delta=_f(tab.number("delta", p["delta"], nonnegative=True)),
        field_V_per_cm=_f(tab.number("field_V_per_cm", positive=True)),
        W_keV=_f(tab.number("W_eV", Q.XENON_W_KEV * 1e3, positive=True) * 1e-3),
    )


def _nest_charge_yield(tab: Table):
    p = Q.NEST_V2_NR_QY
    eta = tab.number("eta", p["eta"], positive=True, why=" (N_e(T) must increase with T)")
    return Q.NestChargeYield(
        gamma=_f(tab.number("gamma", p["gamma"], positive=True)),
        delta=_f(tab.number("delta", p["delta"])),
        epsilon_keV=_f(tab.number("epsilon_keV", p["epsilon_keV"], nonnegative=True)),
        zeta_keV=_f(tab.number("zeta_keV", p["zeta_keV"], positive=True)),
        eta=_f(eta),
        field_V_per_cm=_f(tab.number("field_V_per_cm", positive=True)),
    )


def compile_subkev_smearing(tab: Table, model: str, target: Target | None = None, quenching=None):
    """(smearing, observable unit) for ``model`` (one of :data:`SUBKEV_SMEARING`)."""
    if model == "fano_noise":
        element = _elements(target)[0] if target is not None and len(_elements(target)) == 1 else None
        pair, fano = _PAIR_DEFAULTS.get(element, (..., ...))
        why = "" if element in _PAIR_DEFAULTS else " (no default for this target)"
        try:
            pair = tab.number("pair_energy_eV", pair, positive=True)
            fano = tab.number("fano", fano, nonnegative=True)
        except CevnsInputError as exc:
            raise CevnsInputError(f"{exc}{why}") from None
        s = S.FanoNoiseSmearing(noise_keV=_f(tab.number("noise_eVee", nonnegative=True) * 1e-3), fano=_f(fano),
                                pair_energy_keV=_f(pair * 1e-3))
        if float(s.noise_keV) == 0.0 and fano == 0.0:
            raise tab.error("noise_eVee", 'zero noise and zero Fano factor: use model = "none" for an ideal resolution')
        return s, observable_unit(quenching, "keVee")
    if model == "baseline":
        return S.BaselineSmearing(sigma_keV=_f(tab.number("sigma_eV", positive=True) * 1e-3)), \
            observable_unit(quenching, "keVee")
    # Poisson electrons: mean count = (electrons per unit of the quenched variable) × that variable
    charge = isinstance(quenching, Q.CHARGE_YIELD_MODELS)
    key, other = ("extraction_efficiency", "electrons_per_keVee") if charge else ("electrons_per_keVee",
                                                                                   "extraction_efficiency")
    if tab.has(other):
        what = "a charge_yield quenching (electrons)" if charge else "a quenching in keVee"
        raise tab.error(other, f"does not apply after {what}; give {key!r}")
    per_unit = tab.number(key, positive=True, maximum=1.0 if charge else None)
    width = _f(tab.number("electron_width", positive=True))
    if tab.has("gain_PE_per_electron"):  # S2 in photoelectrons
        if not charge:
            raise tab.error("gain_PE_per_electron", "applies after a charge_yield quenching (S2 of extracted electrons)")
        gain = _f(tab.number("gain_PE_per_electron", positive=True))
        return S.S2Smearing(extraction_efficiency=_f(per_unit), electron_width=width, gain_PE=gain), "PE"
    return resp.PoissonPESmearing(light_yield_PE_per_keV=_f(per_unit), spe_width=width), "electrons"


def observable_unit(quenching, default: str) -> str:
    """The observed energy unit: ``keVnr`` after no quenching (a heat channel sees the recoil energy),
    ``electrons`` after a charge yield, else ``default``."""
    if isinstance(quenching, resp.NoQuenching):
        return "keVnr"
    if isinstance(quenching, Q.CHARGE_YIELD_MODELS):
        return "electrons"
    return default


@run_once
def noise_acceptance(detector):
    """Probability that a zero-energy deposit is counted in the analysis bins (with the efficiency)."""
    return jnp.sum(resp.energy_response(detector.smearing, detector.efficiency, detector.binning, jnp.zeros(1)))


def check_noise_acceptance(exp, label: str) -> None:
    """Reject a Gaussian noise or baseline width so large against the threshold that noise alone is counted
    with probability > :data:`MAX_NOISE_ACCEPTANCE` (real analyses set thresholds several σ above the noise)."""
    smear = exp.detector.smearing
    if not isinstance(smear, (S.FanoNoiseSmearing, S.BaselineSmearing)):
        return
    p = float(noise_acceptance(exp.detector))
    if p > MAX_NOISE_ACCEPTANCE:
        field, sigma = (("noise_eVee", float(smear.noise_keV)) if isinstance(smear, S.FanoNoiseSmearing)
                        else ("sigma_eV", float(smear.sigma_keV)))
        raise CevnsInputError(
            f"{label}.detector.smearing.{field}: noise of {1e3 * sigma:g} eV passes the analysis threshold with "
            f"probability {p:.2g} (> {MAX_NOISE_ACCEPTANCE:g}) at zero deposited energy; raise the threshold "
            "(lowest bin edge or efficiency turn-on) to several noise widths"
        )
