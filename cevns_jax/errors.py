"""Exceptions raised on bad user input, and the policy for model parameters outside their domain.

Every message names the offending file, table and field (TOML input) or the parameter (Python input).

Model parameters (masses, mixings, sin²θ_W, …) are checked by the constructors that build the
parameter pytrees (:func:`cevns_jax.models.universal`, :func:`cevns_jax.xsec.standard_model`, …)
through :func:`domain_checked`:

* a concrete value (a Python or NumPy number, a concrete JAX array) outside its domain raises
  :class:`CevnsInputError` naming the parameter and the value;
* a traced value (inside ``jit``, ``vmap``, ``grad``, e.g. a scan) cannot raise: every entry outside
  its domain becomes NaN, so the result computed from it, and its gradient, are NaN — never the finite
  result of another point (a negative Z′ mass is not silently |M|). Values and gradients at points
  inside the domain are unchanged.

Pytrees built directly from their dataclasses bypass the constructors and are not checked.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CevnsInputError", "DataFileError", "domain_checked"]


class CevnsInputError(ValueError):
    """Invalid user input: an unknown preset, a malformed TOML file, an out-of-range parameter."""


class DataFileError(CevnsInputError):
    """A data file (release table, efficiency table) is missing, malformed or modified."""


_TRACED = (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError)


def domain_checked(value, valid: Callable, problem: str, *, also=()) -> jnp.ndarray:
    """``value`` as a float64 array, checked against ``valid(value) -> bool array``.

    Concrete: raise :class:`CevnsInputError` ``"{problem}, got {value}"`` unless every entry is valid.
    Traced: return ``value`` where valid, NaN elsewhere (NaN gradient there too). ``also`` are further traced booleans (broadcast
    against ``value``) that must hold too, e.g. a joint condition on several parameters.
    """
    x = jnp.asarray(value, dtype=jnp.float64)
    ok = valid(x)
    for cond in also:
        ok = ok & cond
    try:
        ok_now = np.asarray(ok)
        shown = np.asarray(x)
    except _TRACED:
        # x + (0 or NaN) rather than where(ok, x, NaN): same value, and the gradient is NaN too (not 0)
        return x + jnp.where(ok, 0.0, jnp.nan)
    if not np.all(ok_now):
        text = f"{float(shown):g}" if shown.ndim == 0 else np.array2string(shown, precision=6)
        raise CevnsInputError(f"{problem}, got {text}")
    return x
