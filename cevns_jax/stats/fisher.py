"""Fisher matrices by automatic differentiation, with labelled parameters (docs/physics.md §5.4).

    F = Jᵀ diag(1/μ) J + diag(1/σ²)   (prior terms for nuisances only),   J = ∂μ/∂p by ``jax.jacfwd``

Profiling over nuisances is the Schur complement F_θθ − F_θν F_νν⁻¹ F_νθ, computed with
``jnp.linalg.solve``; marginalised errors are √(F⁻¹)_ii, fixed-others errors 1/√F_ii.

The core for experiments (:func:`fisher_blocks`, jit/grad-able in the experiments, so designs can be
optimised on it) gives one data block per experiment on the joint labels of the nuisance registry
(:func:`cevns_jax.nuisances.program_nuisances`: ŝ² and NSI couplings global, δR_n per target
nucleus, flux per target station, the rest per detector). :class:`Fisher` is the labelled NumPy
matrix for studies and plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .. import constants as C
from .._pytree import pytree_dataclass, replace, run_once, static_field
from ..errors import CevnsInputError
from ..nuisances import has_cevns, nuisance_priors, predicted_counts, program_nuisances
from ..xsec import resolve_standard_model

__all__ = ["DELTA_CHI2_2D", "Fisher", "fisher_matrix", "PHYSICS_DEFAULTS", "check_parameters", "FisherBlocks",
           "fisher_labels", "fisher_blocks", "scaled_fisher", "profiled_fisher", "marginal_covariance", "label_indices"]

DELTA_CHI2_2D = C.DELTA_CHI2_2D


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


@partial(jax.jit, static_argnums=0)
def _mu_and_jacobian(mu_fn: Callable, params: dict):
    """Counts and ∂μ/∂p (flat); compiled once per ``mu_fn`` (hashable) and parameter structure."""
    flat, unravel = ravel_pytree(params)

    def mu_flat(x):
        return jnp.ravel(mu_fn(unravel(x)))

    return mu_flat(flat), jax.jacfwd(mu_flat)(flat)


def fisher_matrix(mu_fn: Callable, params: dict, priors: dict | None = None) -> Fisher:
    """Fisher matrix of Poisson counts ``mu_fn(params)`` (any shape) at ``params``.

    ``priors`` maps parameter names to Gaussian prior widths (nuisances); others get no prior term.
    """
    priors = priors or {}
    mu, J = _mu_and_jacobian(mu_fn, params)
    F = (J.T / jnp.maximum(mu, 1e-300)) @ J
    labels = _labels(params)
    prior_diag = np.zeros(len(labels))
    for idx, lab in enumerate(labels):
        sigma = priors.get(lab.split("[")[0])
        if sigma not in (None, np.inf):
            prior_diag[idx] = 1.0 / sigma**2
    return Fisher(tuple(labels), np.asarray(F) + np.diag(prior_diag))


# ----------------------------------------------------------------------------------------------
# The core for experiments: per-experiment data blocks on joint labels
# ----------------------------------------------------------------------------------------------
NSI_FLAVOURS = ("ee", "mumu", "tautau", "emu", "etau", "mutau")
PHYSICS_DEFAULTS = {"sin2_theta_w": C.SIN2_THETA_W_LOW_ENERGY, "delta_rn_fm": 0.0,
                    **{f"eps_{q}_{fl}": 0.0 for q in "ud" for fl in NSI_FLAVOURS}}
"""Physics parameters of a Fisher study, with the point (the SM) at which F is evaluated (ŝ² of an
experiment with its own ``[physics]`` table: that experiment's value)."""


def check_parameters(parameters) -> tuple[str, ...]:
    """Distinct names among :data:`PHYSICS_DEFAULTS` (a name may carry a scope key, ``"CsI/delta_rn_fm"``)."""
    parameters = tuple(parameters)
    unknown = [p for p in parameters if p.rsplit("/", 1)[-1] not in PHYSICS_DEFAULTS]
    if unknown or not parameters or len(set(parameters)) != len(parameters):
        raise CevnsInputError(
            f"Fisher parameters must be distinct names among {', '.join(PHYSICS_DEFAULTS)}; got {parameters}"
        )
    return parameters


def _physics_point(exp, name: str):
    if name == "sin2_theta_w":
        return jnp.asarray(resolve_standard_model(exp).sin2_theta_w, dtype=jnp.float64)
    return jnp.asarray(PHYSICS_DEFAULTS[name], dtype=jnp.float64)


def model_counts(exp, theta: dict, nuisances: dict):
    """Flat expected counts of ``exp`` at physics parameters ``theta`` (names of :data:`PHYSICS_DEFAULTS`)
    and nuisances (full model)."""
    from ..models import NewPhysics
    from ..models.nsi import couplings as nsi_couplings

    sm = resolve_standard_model(exp)  # the experiment's own electroweak configuration (TOML [physics])
    if "sin2_theta_w" in theta:
        sm = replace(sm, sin2_theta_w=theta["sin2_theta_w"])
    # names eps_<quark>_<flavours> → nsi_couplings(<flavours>_<quark>=…)
    eps = {f"{k[6:]}_{k[4]}": v for k, v in theta.items() if k.startswith("eps_")}
    model = NewPhysics(nsi=nsi_couplings(**eps)) if eps else None
    target = exp.target
    if "delta_rn_fm" in theta:
        target = replace(target, form_factor="helm_rms", neutron_radius_fm=target.neutron_radius_fm + theta["delta_rn_fm"])
    counts = predicted_counts(replace(exp, target=target), nuisances, sm=sm, model=model)
    return jnp.ravel(sum(counts.values()))


@pytree_dataclass
class FisherBlocks:
    """Per-experiment data Fisher matrices on joint labels: ``blocks`` (n_experiments, P, P), ``prior``
    1/σ² per label (0 for physics parameters), ``labels`` and each experiment's label indices ``members``."""

    blocks: jnp.ndarray
    prior: jnp.ndarray
    labels: tuple = static_field(default=())
    members: tuple = static_field(default=())

    def matrix(self, weights=None):
        """F = Σₖ wₖ blocksₖ + diag(prior) (weights default 1)."""
        w = jnp.ones(self.blocks.shape[0]) if weights is None else weights
        return scaled_fisher(self.blocks, self.prior, w)

    def fisher(self, weights=None, experiment: int | None = None) -> Fisher:
        """Labelled :class:`Fisher` of the program (or of one experiment alone, on its own labels)."""
        F = np.asarray(self.matrix(weights))
        if experiment is None:
            return Fisher(self.labels, F)
        idx = list(self.members[experiment])
        w = 1.0 if weights is None else float(np.asarray(weights)[experiment])
        own = w * np.asarray(self.blocks[experiment]) + np.diag(np.asarray(self.prior))
        return Fisher(tuple(self.labels[i] for i in idx), own[np.ix_(idx, idx)])


def _fisher_labels(experiments, parameters, include, share=()):
    # a detector without CEvNS (ν–d breakup) carries none of the CEvNS parameters (docs/physics.md §11)
    declared = [{**{p: None for p in parameters if has_cevns(e)}, **nuisance_priors(e, include)} for e in experiments]
    local, priors = program_nuisances(list(experiments), declared, share)
    params = [lab for lab, s in priors.items() if s is None]
    labels = params + [lab for lab, s in priors.items() if s is not None]
    return local, priors, tuple(labels)


def fisher_labels(experiments, parameters, include=None, share: tuple = ()) -> tuple[str, ...]:
    """The labels of :func:`fisher_blocks` (static; no computation)."""
    return _fisher_labels(experiments, check_parameters(parameters), include, share)[2]


@partial(run_once, static_argnames=("parameters", "include", "share"))
def fisher_blocks(experiments: tuple, parameters: tuple, include: tuple | None = None, share: tuple = ()) -> FisherBlocks:
    """Per-experiment data Fisher matrices of a program at the SM point, on the registry's joint labels.

    Labels: the physics ``parameters`` (labelled by their scope: ŝ², NSI global; δR_n per target
    nucleus), then the nuisances (``include``: names kept; ``share``: scope overrides of the registry,
    :func:`cevns_jax.nuisances.check_share`). ``blocks[k] = Jₖᵀ diag(1/μₖ) Jₖ`` (full
    model, ``jax.jacfwd``). Every count of an experiment is proportional to its mass × exposure
    (backgrounds included), so its block scales linearly with them at fixed response:
    F(w) = Σₖ wₖ blocksₖ + diag(prior) (:func:`scaled_fisher`) is exact for mass and exposure designs.
    """
    parameters = check_parameters(parameters)
    local, priors, labels = _fisher_labels(experiments, parameters, include, share)
    index = {lab: i for i, lab in enumerate(labels)}
    blocks, members = [], []
    for exp, names in zip(experiments, local):
        p0 = {lab: (_physics_point(exp, name) if name in parameters else jnp.zeros((), dtype=jnp.float64))
              for name, lab in names.items()}
        flat0, unravel = ravel_pytree(p0)
        inverse = {lab: name for name, lab in names.items()}

        def mu(x, exp=exp, inverse=inverse):
            p = {inverse[lab]: v for lab, v in unravel(x).items()}
            counts = model_counts(exp, {k: p[k] for k in parameters if k in p},
                                  {k: v for k, v in p.items() if k not in parameters})
            return counts, counts

        J, mu0 = jax.jacfwd(mu, has_aux=True)(flat0)
        safe = jnp.where(mu0 > 0, mu0, 1.0)
        Jw = jnp.where(mu0[:, None] > 0, J / jnp.sqrt(safe)[:, None], 0.0)
        idx = np.array([index[lab] for lab in sorted(p0)])  # ravel_pytree orders a dict by sorted key
        blocks.append(jnp.zeros((len(labels), len(labels))).at[np.ix_(idx, idx)].add(Jw.T @ Jw))
        members.append(tuple(sorted(index[lab] for lab in p0)))
    prior = jnp.asarray([0.0 if priors[lab] is None else 1.0 / priors[lab] ** 2 for lab in labels])
    return FisherBlocks(jnp.stack(blocks), prior, labels, tuple(members))


def scaled_fisher(blocks, prior, weights):
    """F = Σₖ wₖ blocksₖ + diag(prior): the program's Fisher matrix with experiment k's mass × exposure
    scaled by wₖ (exact; see :func:`fisher_blocks`)."""
    return jnp.tensordot(weights, blocks, axes=1) + jnp.diag(prior)


def profiled_fisher(F, keep) -> jnp.ndarray:
    """Fisher matrix of the parameters at indices ``keep`` with every other one marginalised: the Schur
    complement F_kk − F_kr F_rr⁻¹ F_rk (``jnp.linalg.solve``)."""
    keep = list(keep)
    rest = [i for i in range(F.shape[0]) if i not in keep]
    A = F[np.ix_(keep, keep)]
    if rest:
        B, D = F[np.ix_(keep, rest)], F[np.ix_(rest, rest)]
        A = A - B @ jnp.linalg.solve(D, B.T)
    return A


def marginal_covariance(F, keep) -> jnp.ndarray:
    """Covariance of the parameters at indices ``keep``, every other one marginalised."""
    return jnp.linalg.inv(profiled_fisher(F, keep))


def label_indices(labels, names) -> list[int]:
    """Indices of ``names`` in ``labels``; a bare name matches its one scoped label (``"CsI/delta_rn_fm"``)."""
    labels = list(labels)
    out = []
    for n in names:
        hits = [i for i, lab in enumerate(labels) if lab == n] or [i for i, lab in enumerate(labels) if lab.endswith("/" + n)]
        if len(hits) != 1:
            what = "no parameter" if not hits else "several parameters"
            raise CevnsInputError(f"Fisher matrix has {what} {n!r}; it has {labels}")
        out.append(hits[0])
    return out
