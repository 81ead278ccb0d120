"""Fisher figures of merit of a program of experiments (callable frozen dataclasses ``fom(experiments)``).

Built on the Fisher core :func:`cevns_jax.stats.fisher.fisher_blocks` (labels from the nuisance
registry: ŝ² and NSI couplings global, δR_n per target nucleus, flux per target station, every other
nuisance per detector). A parameter name may be bare (``"delta_rn_fm"``, when the program has one
nucleus) or scoped (``"CsI/delta_rn_fm"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from ..errors import CevnsInputError
from ..stats.fisher import check_parameters, fisher_blocks, label_indices, profiled_fisher
from .validate import check_experiments

__all__ = ["fisher_information", "FisherSigma", "FisherArea"]


def _base(names) -> tuple:
    """Parameter names without scope keys, each once (what :func:`fisher_blocks` takes)."""
    return tuple(dict.fromkeys(n.rsplit("/", 1)[-1] for n in names))


def fisher_information(experiments, parameters, *, include=None):
    """(labels, F): the program's joint Fisher matrix (JAX array), data plus Gaussian nuisance priors."""
    fb = fisher_blocks(tuple(experiments), _base(parameters), None if include is None else tuple(include))
    return fb.labels, fb.matrix()


def _inverse_sqrt(x):
    """1/√x for x > 0 and +∞ otherwise (no information), with finite gradients in both branches."""
    positive = x > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, x, 1.0)), jnp.inf)


@dataclass(frozen=True)
class FisherSigma:
    """Marginalised Fisher 1σ of ``parameter`` (one name), or of the combination n·θ along a
    ``direction`` n (normalised) in two parameters (a tuple of names), e.g. an NSI direction.

    ``others``: further physics parameters to marginalise (e.g. ``("delta_rn_fm",)`` for ŝ²: one per
    nucleus of the program); every nuisance is marginalised. :meth:`reduce` applies the same
    reduction to any labelled Fisher matrix. A design without information on the parameter (e.g. a
    threshold near the kinematic endpoint) gives σ = +∞ (a documented boundary result, never NaN).
    """

    parameter: str | tuple = "sin2_theta_w"
    direction: tuple | None = None
    others: tuple = ()
    include: tuple | None = None

    def __post_init__(self):
        names = self.names
        if self.direction is None and len(names) != 1:
            raise CevnsInputError("FisherSigma of several parameters needs a direction")
        if self.direction is not None and (len(names) != 2 or len(self.direction) != 2):
            raise CevnsInputError(
                f"a FisherSigma direction takes two parameters and two components, got {names}, {self.direction}")
        check_parameters(names + tuple(self.others))

    @property
    def names(self) -> tuple:
        return (self.parameter,) if isinstance(self.parameter, str) else tuple(self.parameter)

    def reduce(self, labels, F):
        P = profiled_fisher(F, label_indices(labels, self.names))
        if self.direction is None:
            return _inverse_sqrt(P[0, 0])
        n = jnp.asarray(self.direction, dtype=jnp.float64)
        n = n / jnp.linalg.norm(n)
        # σ² = nᵀ P⁻¹ n = nᵀ adj(P) n / det P for the 2×2 profiled matrix
        det = P[0, 0] * P[1, 1] - P[0, 1] * P[1, 0]
        adj = n[0] ** 2 * P[1, 1] - 2.0 * n[0] * n[1] * P[0, 1] + n[1] ** 2 * P[0, 0]
        ok = (det > 0) & (adj > 0)
        return jnp.where(ok, jnp.sqrt(jnp.where(ok, adj, 1.0)) * _inverse_sqrt(jnp.where(ok, det, 1.0)), jnp.inf)

    def __call__(self, experiments):
        check_experiments(experiments)
        return self.reduce(*fisher_information(experiments, self.names + tuple(self.others), include=self.include))


@dataclass(frozen=True)
class FisherArea:
    """√det of the marginalised covariance of two parameters, 1/√det of their profiled Fisher matrix
    (the Δχ² ellipse has area π Δχ² √det C); +∞ without information (boundary result, never NaN)."""

    parameters: tuple = ("eps_u_ee", "eps_d_ee")
    others: tuple = ()
    include: tuple | None = None

    def __post_init__(self):
        if len(self.parameters) != 2:
            raise CevnsInputError(f"FisherArea needs two parameters, got {self.parameters}")
        check_parameters(tuple(self.parameters) + tuple(self.others))

    def reduce(self, labels, F):
        P = profiled_fisher(F, label_indices(labels, self.parameters))
        return _inverse_sqrt(P[0, 0] * P[1, 1] - P[0, 1] * P[1, 0])

    def __call__(self, experiments):
        check_experiments(experiments)
        return self.reduce(*fisher_information(experiments, tuple(self.parameters) + tuple(self.others),
                                               include=self.include))
