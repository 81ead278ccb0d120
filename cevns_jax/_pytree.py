"""Immutable pytree dataclasses (no extra dependency).

Every physical object is a frozen dataclass registered with ``jax.tree_util.register_dataclass``:
array fields are leaves (traceable, differentiable, vmappable); fields declared with
:func:`static_field` are small hashable configuration (model names, node counts) kept in the treedef.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, TypeVar

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


RUN_ONCE = {"xla_backend_optimization_level": 0}
"""``compiler_options`` of ``jax.jit`` for programs evaluated once or a few times per structure (an
experiment's SM reference, the Fisher blocks): LLVM optimisation level 0 compiles them about twice as fast
(CsI-2021's SM reference 6.8 → 3.0 s on 2 CPU cores) and their single run stays well under a second. The same
IEEE arithmetic as the default level (XLA never enables fast-math by default). Programs that run over grids
keep XLA's default level."""


def _without_constant_folding(fn: Callable) -> Callable:
    """``fn`` traced with JAX's eager constant folding off. :func:`run_once` calls its program under
    ``jax.ensure_compile_time_eval`` (so that a call made while another program is traced runs now), and that
    setting stays on while the program itself is traced: every operation on constants inside ``fn`` (node
    tables, spectra, unit conversions) would then run eagerly, one small XLA compilation each; measured, 1–4 s
    of each experiment's SM reference. The setting is JAX's own (``jax._src.config.eager_constant_folding``, what
    ``ensure_compile_time_eval`` sets); without it (another JAX release) ``fn`` is traced as it is."""
    folding = getattr(getattr(getattr(jax, "_src", None), "config", None), "eager_constant_folding", None)
    if folding is None:
        return fn

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with folding(False):
            return fn(*args, **kwargs)
    return traced


def run_once(fn: Callable, **jit_kwargs) -> Callable:
    """``fn`` jitted for a few evaluations per input structure: called on concrete inputs it runs as its own
    program compiled with :data:`RUN_ONCE` (also while another program is being traced: it is evaluated then,
    ``jax.ensure_compile_time_eval``, and enters that program as a constant instead of being compiled into
    it); called on traced inputs (inside ``grad``, ``vmap`` or ``jit`` of its inputs) it is an ordinary
    nested ``jax.jit``. ``fn`` must not close over traced values."""
    try:
        once = jax.jit(_without_constant_folding(fn), compiler_options=RUN_ONCE, **jit_kwargs)
    except TypeError:  # a jax release without per-program compiler options: XLA's default level
        once = jax.jit(_without_constant_folding(fn), **jit_kwargs)
    nested = jax.jit(fn, **jit_kwargs)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            return nested(*args, **kwargs)
        with jax.ensure_compile_time_eval():
            return once(*args, **kwargs)
    return call


def require_x64() -> None:
    """Raise unless JAX runs in 64-bit floats (never compute physics silently in float32)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "cevns_jax needs 64-bit floats: call cevns_jax.enable_x64() (or set JAX_ENABLE_X64=1) before use"
        )
