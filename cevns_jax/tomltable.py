"""Validated access to parsed TOML tables: every error names the file, table and field.

:class:`Table` wraps one TOML table with its location (``file.table.sub``) and typed getters
(numbers, whole numbers, strings from a set of choices, number lists, sub-tables); it records which
fields were read so that unknown fields are reported (:meth:`Table.check_unused`). :func:`read_toml`
parses a TOML file (experiments and models alike).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from .errors import CevnsInputError

__all__ = ["read_toml", "Table", "strings", "as_float_array", "as_f64", "edges"]


def read_toml(path: str | Path, what: str) -> dict:
    """Parse a TOML file; a missing or malformed file raises :class:`CevnsInputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CevnsInputError(f"{what} file not found: {path}")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CevnsInputError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise CevnsInputError(f"{path}: malformed TOML: {exc}") from None


# ----------------------------------------------------------------------------------------------
@dataclass
class Table:
    """A TOML table with its location, for error messages that name file, table and field."""

    data: dict
    where: str
    used: set = field(default_factory=set)

    def error(self, key: str, problem: str) -> CevnsInputError:
        return CevnsInputError(f"{self.where}.{key}: {problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise CevnsInputError(f"{self.where}: missing required field {key!r}")
            return default
        return self.data[key]

    def number(self, key: str, default: Any = ..., *, positive: bool = False, nonnegative: bool = False,
               minimum: float | None = None, maximum: float | None = None, why: str = "") -> float:
        """A finite number; ``minimum``/``maximum`` are inclusive bounds, ``why`` explains them in the error."""
        value = self.get(key, default)
        if value is default and default is not ...:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, got {value!r} ({type(value).__name__})")
        value = float(value)
        if not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value}")
        if positive and value <= 0:
            raise self.error(key, f"must be > 0, got {value}")
        if nonnegative and value < 0:
            raise self.error(key, f"must be >= 0, got {value}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum:g}{why}, got {value:g}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum:g}{why}, got {value:g}")
        return value

    def whole(self, key: str, default: Any = ..., minimum: int = 1) -> int:
        value = self.number(key, default)
        if value != int(value) or value < minimum:
            raise self.error(key, f"must be a whole number >= {minimum}, got {value}")
        return int(value)

    def text(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"unknown value {value!r}; choose one of {', '.join(choices)}")
        return value

    def numbers(self, key: str, default: Any = ..., *, length: int | None = None) -> np.ndarray:
        value = self.get(key, default)
        if value is default and default is not ...:
            return value
        arr = as_float_array(value)
        if arr is None:
            raise self.error(key, f"must be a list of numbers, got {value!r}")
        if not np.all(np.isfinite(arr)):
            raise self.error(key, "contains a non-finite value")
        if length is not None and arr.shape[-1] != length:
            raise self.error(key, f"must have {length} entries, got {arr.shape[-1]}")
        return arr

    def table(self, key: str, default: Any = ...) -> Table:
        value = self.get(key, default)
        if value is default and default is not ...:
            return Table({}, f"{self.where}.{key}")
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {value!r}")
        return Table(value, f"{self.where}.{key}")

    def check_unused(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise CevnsInputError(f"{self.where}: unknown field(s) {', '.join(map(repr, unknown))}")


def strings(tab: Table, key: str) -> tuple[str, ...]:
    value = tab.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise tab.error(key, "must be a list of strings")
    return tuple(value)


def as_float_array(value: Any) -> np.ndarray | None:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim == 0 or arr.dtype == object:
        return None
    return arr


def as_f64(x) -> jnp.ndarray:
    return jnp.asarray(np.asarray(x, dtype=np.float64))


def edges(tab: Table, key: str, range_key: str, bins_key: str, unit: str, *, nonnegative: bool = False) -> np.ndarray:
    """Strictly increasing bin edges from ``key`` or from ``range_key`` and ``bins_key`` (≥ 0 if ``nonnegative``)."""
    if tab.has(key):
        edges = tab.numbers(key)
    else:
        lo, hi = tab.numbers(range_key, length=2)
        n = tab.number(bins_key, positive=True)
        if n != int(n):
            raise tab.error(bins_key, f"must be a whole number, got {n}")
        edges = np.linspace(lo, hi, int(n) + 1)
        key = range_key
    if edges.ndim != 1 or edges.size < 2:
        raise tab.error(key, f"needs at least two edges [{unit}], got {edges.tolist()}")
    if not np.all(np.diff(edges) > 0):
        raise tab.error(key, f"bin edges [{unit}] must increase strictly, got {edges.tolist()}")
    if nonnegative and edges[0] < 0:
        raise tab.error(key, f"bin edges [{unit}] must be >= 0 (an energy), got {edges.tolist()}")
    return edges
