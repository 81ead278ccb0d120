"""Fisher matrices by automatic differentiation, with labelled parameters (docs/physics.md §5.4).

    F = Jᵀ diag(1/μ) J + diag(1/σ²)   (prior terms for nuisances only),   J = ∂μ/∂p by ``jax.jacfwd``

Profiling over nuisances is the Schur complement F_θθ − F_θν F_νν⁻¹ F_νθ, computed with
``jnp.linalg.solve``; marginalised errors are √(F⁻¹)_ii, fixed-others errors 1/√F_ii.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

# Δχ² for two-parameter joint regions (Wilks, 2 d.o.f.)
DELTA_CHI2_2D = {0.683: 2.296, 0.90: 4.605, 0.95: 5.991}


def _labels(params: dict) -> list[str]:
    """Labels in ``ravel_pytree`` order (dict keys sorted), one per scalar."""
    labels = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        size = int(np.size(leaf))
        labels += [key] if size == 1 else [f"{key}[{i}]" for i in range(size)]
    return labels


@dataclass(frozen=True)
class Fisher:
    """A labelled Fisher matrix."""

    labels: tuple[str, ...]
    matrix: np.ndarray

    def index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"no parameter {label!r}; parameters: {', '.join(self.labels)}") from None

    def covariance(self) -> np.ndarray:
        return np.linalg.inv(self.matrix)

    def marginalised_errors(self) -> dict[str, float]:
        """σ_i = √(F⁻¹)_ii: every other parameter free."""
        return dict(zip(self.labels, np.sqrt(np.diag(self.covariance()))))

    def fixed_errors(self) -> dict[str, float]:
        """σ_i = 1/√F_ii: every other parameter fixed."""
        return dict(zip(self.labels, 1.0 / np.sqrt(np.diag(self.matrix))))

    def profile(self, keep: list[str]) -> "Fisher":
        """Schur complement onto the parameters ``keep`` (the others profiled out)."""
        k = [self.index(lab) for lab in keep]
        o = [i for i in range(len(self.labels)) if i not in k]
        A = self.matrix[np.ix_(k, k)]
        if not o:
            return Fisher(tuple(keep), A)
        B, D = self.matrix[np.ix_(k, o)], self.matrix[np.ix_(o, o)]
        return Fisher(tuple(keep), A - B @ np.linalg.solve(D, B.T))

    def fix(self, fixed: list[str]) -> "Fisher":
        """Drop parameters held fixed (rows and columns removed)."""
        keep = [i for i, lab in enumerate(self.labels) if lab not in fixed]
        return Fisher(tuple(self.labels[i] for i in keep), self.matrix[np.ix_(keep, keep)])

    def __add__(self, other: "Fisher") -> "Fisher":
        """Sum of two Fisher matrices over the union of their parameters (shared labels add)."""
        labels = list(self.labels) + [lab for lab in other.labels if lab not in self.labels]
        F = np.zeros((len(labels), len(labels)))
        for fish in (self, other):
            idx = [labels.index(lab) for lab in fish.labels]
            F[np.ix_(idx, idx)] += fish.matrix
        return Fisher(tuple(labels), F)

    def ellipse(self, x: str, y: str, delta_chi2: float = DELTA_CHI2_2D[0.683], n_points: int = 200, centre=(0.0, 0.0)):
        """Points (2, n_points) of the marginalised ellipse δθᵀ C⁻¹ δθ = Δχ² in (x, y)."""
        i, j = self.index(x), self.index(y)
        C = self.covariance()[np.ix_([i, j], [i, j])]
        vals, vecs = np.linalg.eigh(C)
        phi = np.linspace(0.0, 2 * np.pi, n_points)
        circle = np.stack([np.cos(phi), np.sin(phi)])
        return np.asarray(centre)[:, None] + vecs @ (np.sqrt(vals * delta_chi2)[:, None] * circle)


def fisher_matrix(mu_fn: Callable, params: dict, priors: dict | None = None) -> Fisher:
    """Fisher matrix of Poisson counts ``mu_fn(params)`` (any shape) at ``params``.

    ``priors`` maps parameter names to Gaussian prior widths (nuisances); others get no prior term.
    """
    priors = priors or {}
    flat, unravel = ravel_pytree(params)

    def mu_flat(x):
        return jnp.ravel(mu_fn(unravel(x)))

    mu, J = jax.jit(lambda x: (mu_flat(x), jax.jacfwd(mu_flat)(x)))(flat)
    F = (J.T / jnp.maximum(mu, 1e-300)) @ J
    labels = _labels(params)
    prior_diag = np.zeros(len(labels))
    for idx, lab in enumerate(labels):
        sigma = priors.get(lab.split("[")[0])
        if sigma not in (None, np.inf):
            prior_diag[idx] = 1.0 / sigma**2
    return Fisher(tuple(labels), np.asarray(F) + np.diag(prior_diag))
