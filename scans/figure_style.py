"""Shared figure style of the scan scripts: one look per detector set, typeset labels, readable ticks,
legends outside the data.

Every detector set has a colour *and* a line style (and, where two curves can coincide — CryoCsI-700kg
dominates the combination — a marker); the combination is a solid black line drawn under the detectors'
curves (which stay visible on top of it) and over the green/yellow expected bands centred on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # no POSIX file locks (Windows): the record's entries are merged without one
    fcntl = None

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

__all__ = ["STYLES", "style", "plain_log_ticks", "legend_outside", "wrap_math", "save_figure", "FigureRecord"]

STYLES = {
    "COH-Ar-750": dict(color="#1f77b4", ls="-", lw=1.6),
    "COH-CryoCsI-10kg": dict(color="#ff7f0e", ls=(0, (6, 2)), lw=1.6),
    "COH-CryoCsI-700kg": dict(color="#d62728", ls="-.", lw=1.5, marker="o", ms=3.5, markevery=0.08),
    "COH-Ge-mini": dict(color="#2ca02c", ls=(0, (2, 1.5)), lw=1.8),
    "NaIvETe": dict(color="#9467bd", ls=(0, (8, 2, 1, 2, 1, 2)), lw=1.5),
    "combined": dict(color="k", ls="-", lw=2.0, zorder=1.9),
    "COHERENT-CsI-2021": dict(color="0.35", ls=":", lw=1.4),
    "combined + COH-D2O": dict(color="k", ls="--", lw=1.6, marker="s", ms=4, mfc="none"),
}
"""Matplotlib line properties per detector set (``combined``: solid black, drawn under the others)."""


def style(label: str) -> dict:
    """Line properties of a detector set (black solid for an unknown label)."""
    return dict(STYLES.get(label, dict(color="k", ls="-", lw=1.2)))


def plain_log_ticks(axis, values) -> None:
    """Label a log axis spanning less than ~2.5 decades at 1, 2, 5 × 10ᵏ in plain numbers (no "2×10⁰")."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if np.log10(hi / lo) > 2.5:
        return
    axis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(mticker.NullFormatter())


def legend_outside(ax, fontsize: float = 7.5, **kwargs):
    """The legend to the right of the axes (never over the data)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=fontsize,
                     frameon=False, **kwargs)


def wrap_math(text: str, width: int) -> str:
    """``textwrap.fill`` that never breaks inside a ``$…$`` mathtext span."""
    import textwrap

    parts = text.split("$")
    glued = "$".join(p.replace(" ", "\x00") if i % 2 else p for i, p in enumerate(parts))
    return textwrap.fill(glued, width, break_on_hyphens=False).replace("\x00", " ")


def save_figure(fig, out, name: str, tight: bool = True, dpi: int = 120) -> None:
    """Save ``fig`` as ``out/name.png`` and ``out/name.pdf`` and close it.

    The tight bounding box (padded by matplotlib's default 0.1 inch) is computed once and given to both
    saves: ``bbox_inches="tight"`` would draw the figure twice per file only to measure it. PDFs carry no
    creation date, so redrawing the same results writes the same bytes."""
    if tight:
        fig.tight_layout()
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
    fig.savefig(f"{out}/{name}.png", dpi=dpi, bbox_inches=bbox)
    fig.savefig(f"{out}/{name}.pdf", dpi=dpi, bbox_inches=bbox, metadata={"CreationDate": None})
    plt.close(fig)


def _file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class FigureRecord:
    """Which figures on disk are what drawing them again would write (their PNG and PDF are byte-reproducible,
    :func:`save_figure`), so a rerun from finished results skips them.

    A figure is current when the hash of its inputs (every array and number it draws, given by the caller), the
    drawing code (``scripts`` and this module) and the matplotlib version equals the one recorded when it was
    last drawn, and both its files still have the SHA-256 recorded then (a figure edited, replaced or deleted
    by hand is drawn again). ``force`` (``--redraw``) draws everything. The record is a JSON file beside the
    results it depends on, written atomically; processes sharing it merge their entries under a file lock."""

    def __init__(self, path: Path, scripts=(), force: bool = False):
        from cevns_jax.provenance import content_hash

        self.path, self.force, self._hash = Path(path), force, content_hash
        code = hashlib.sha256(matplotlib.__version__.encode())
        for script in sorted({Path(__file__).resolve(), *(Path(s).resolve() for s in scripts)}):
            code.update(script.name.encode() + script.read_bytes())
        self.code = code.hexdigest()
        try:
            self.table = json.loads(self.path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            self.table = {}
        self.table = self.table if isinstance(self.table, dict) else {}
        self.skipped = 0

    def _key(self, name: str, inputs) -> str:
        return self._hash({"name": name, "inputs": inputs, "code": self.code})

    def current(self, out, name: str, inputs) -> bool:
        """Whether ``out/name.{png,pdf}`` are what drawing ``inputs`` now would write (counted in ``skipped``)."""
        entry = self.table.get(f"{out}/{name}")
        ok = (not self.force and isinstance(entry, dict) and entry.get("key") == self._key(name, inputs)
              and all(_file_sha(Path(out) / f"{name}.{ext}") == entry.get(ext) for ext in ("png", "pdf")))
        self.skipped += ok
        return ok

    def record(self, out, name: str, inputs) -> None:
        """Record ``out/name.{png,pdf}``, just written from ``inputs``."""
        entry = {"key": self._key(name, inputs), **{ext: _file_sha(Path(out) / f"{name}.{ext}") for ext in ("png", "pdf")}}
        self.table[f"{out}/{name}"] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the main job's two processes share the record: under a lock, merge this entry into what is on disk
        with open(self.path.with_suffix(".lock"), "w") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                table = json.loads(self.path.read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                table = {}
            table = {**(table if isinstance(table, dict) else {}), f"{out}/{name}": entry}
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
