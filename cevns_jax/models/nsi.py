"""Vector non-standard interactions (docs/physics.md §4.4).

L_NSI = −2√2 G_F Σ ε^{fP}_{αβ} (ν̄_α γ^μ P_L ν_β)(f̄ γ_μ P f), ε^{fV} = ε^{fL} + ε^{fR}, normalised like
g_V^p = ½ − 2s² (as bradkav/CEvNS, pyCEvNS and dukecevns). For an incoming ν_α:

    Q_αα = Z (g_V^p + 2ε^u_αα + ε^d_αα) F_p + N (g_V^n + ε^u_αα + 2ε^d_αα) F_n
    Q²(ν_α) = Q_αα² + Σ_{β≠α} |Z (2ε^u_αβ + ε^d_αβ) F_p + N (ε^u_αβ + 2ε^d_αβ) F_n|²

(flavour-changing terms add incoherently: the outgoing neutrino differs).
"""

from __future__ import annotations

import jax.numpy as jnp

from .._pytree import pytree_dataclass


@pytree_dataclass
class NSI:
    """Vector NSI couplings to u and d quarks, real symmetric 3×3 matrices in flavour (e, μ, τ)."""

    eps_u: jnp.ndarray
    eps_d: jnp.ndarray


def couplings(eps_u=None, eps_d=None, **diagonal) -> NSI:
    """NSI from full matrices and/or named entries, e.g. ``couplings(ee_u=0.1, ee_d=-0.05, emu_u=0.02)``."""
    index = {"e": 0, "mu": 1, "tau": 2}
    mats = {"u": jnp.zeros((3, 3)) if eps_u is None else jnp.asarray(eps_u, dtype=jnp.float64),
            "d": jnp.zeros((3, 3)) if eps_d is None else jnp.asarray(eps_d, dtype=jnp.float64)}
    for key, value in diagonal.items():
        pair, quark = key.rsplit("_", 1)
        a, b = next((x, pair[len(x):]) for x in ("tau", "mu", "e") if pair.startswith(x) and pair[len(x):] in index)
        i, j = index[a], index[b]
        mats[quark] = mats[quark].at[i, j].set(value).at[j, i].set(value)
    return NSI(mats["u"], mats["d"])


def _nucleus(Z, N, Fp, Fn, eu, ed):
    return Z * (2 * eu + ed) * Fp + N * (eu + 2 * ed) * Fn


def charge_squared(model: NSI, Q_sm, Z, N, Fp, Fn):
    """Effective Q² per flavour (3, …) with NSI, from the SM charges per flavour ``Q_sm`` (3, …)."""
    out = []
    for a in range(3):
        q = Q_sm[a] + _nucleus(Z, N, Fp, Fn, model.eps_u[a, a], model.eps_d[a, a])
        q2 = q**2
        for b in range(3):
            if b != a:
                q2 = q2 + _nucleus(Z, N, Fp, Fn, model.eps_u[a, b], model.eps_d[a, b]) ** 2
        out.append(q2)
    return jnp.stack(out)
