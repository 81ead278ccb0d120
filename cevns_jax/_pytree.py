"""Immutable pytree dataclasses (no extra dependency).

Every physical object is a frozen dataclass registered with ``jax.tree_util.register_dataclass``:
array fields are leaves (traceable, differentiable, vmappable); fields declared with
:func:`static_field` are small hashable configuration (model names, node counts) kept in the treedef.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def pytree_dataclass(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass and register it as a JAX pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    return jax.tree_util.register_dataclass(cls)


def static_field(**kwargs: Any) -> Any:
    """A dataclass field kept out of the leaves (configuration, not data)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["static"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def replace(obj: T, **changes: Any) -> T:
    """Functional update of a pytree dataclass (``dataclasses.replace``)."""
    return dataclasses.replace(obj, **changes)


def require_x64() -> None:
    """Raise unless JAX runs in 64-bit floats (never compute physics silently in float32)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "cevns_jax needs 64-bit floats: call cevns_jax.enable_x64() (or set JAX_ENABLE_X64=1) before use"
        )
