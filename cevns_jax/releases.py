"""Readers for COHERENT's public data releases shipped in ``cevns_jax/data`` (see its README).

Every reader checks the number of columns and that values are finite (and non-negative where they are
counts), and names the file and line of any problem. Files must be UTF-8 text. Readers return NumPy
arrays: the releases are fixed inputs, turned into pytree leaves by the experiment compiler.

Shipped files (anything under ``cevns_jax/data``) carry a SHA-256 in ``cevns_jax/data/SHA256SUMS``
(``sha256sum`` format); a shipped file that is modified, truncated or unlisted is refused, naming it,
when read — a release cut at a row boundary still parses and would silently change the prediction.
User files (elsewhere) are not checksummed; they get the structural checks only.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DataFileError

DATA_DIR = Path(str(resources.files("cevns_jax") / "data"))
_SPLIT = re.compile(r"[,\s]+")
MANIFEST = "SHA256SUMS"
"""Name of the checksum manifest of the shipped data files, inside :data:`DATA_DIR`."""


def data_path(relative: str | Path) -> Path:
    """Path of a shipped data file, e.g. ``data_path("csi2021/brnPE.txt")``."""
    return DATA_DIR / relative


def read_table(path: str | Path, n_columns: int, *, nonnegative_columns: tuple[int, ...] = ()) -> np.ndarray:
    """Read a whitespace- or comma-separated numeric table, skipping blank and ``#`` lines.

    Raises :class:`DataFileError` naming the file and line for a missing file, a row with the wrong
    number of columns, a non-numeric or non-finite entry, or a negative value in a count column.
    """
    path = Path(path)
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f for f in _SPLIT.split(text) if f]
        if len(fields) != n_columns:
            raise DataFileError(f"{path}:{lineno}: expected {n_columns} columns, found {len(fields)}: {line.strip()!r}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise DataFileError(f"{path}:{lineno}: non-numeric entry in {line.strip()!r}") from None
        if not all(np.isfinite(values)):
            raise DataFileError(f"{path}:{lineno}: non-finite value in {line.strip()!r}")
        for col in nonnegative_columns:
            if values[col] < 0:
                raise DataFileError(f"{path}:{lineno}: negative count {values[col]} in column {col + 1}")
        rows.append(values)
    if not rows:
        raise DataFileError(f"{path}: no data rows")
    return np.asarray(rows, dtype=np.float64)


def edges_from_centres(centres: np.ndarray) -> np.ndarray:
    """Bin edges of a uniform grid given its sorted, unique centres."""
    c = np.unique(centres)
    if c.size < 2:
        raise DataFileError("cannot infer bin edges from fewer than two bin centres")
    width = np.diff(c)
    if not np.allclose(width, width[0], rtol=1e-6, atol=1e-9):
        raise DataFileError("bin centres are not uniformly spaced")
    return np.concatenate([c - width[0] / 2, c[-1:] + width[0] / 2])


def rebin(src_edges: np.ndarray, values: np.ndarray, dst_edges: np.ndarray, axis: int = 0) -> np.ndarray:
    """Re-bin histogram ``values`` (contents, not densities) from ``src_edges`` to ``dst_edges``.

    Contents are shared in proportion to overlap (exact for piecewise-uniform densities); anything
    outside ``src_edges`` counts as zero.
    """
    values = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    cum = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    x = np.clip(np.asarray(dst_edges, dtype=np.float64), src_edges[0], src_edges[-1])
    flat = cum.reshape(cum.shape[0], -1)
    at = np.stack([np.interp(x, src_edges, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    out = np.diff(at, axis=0).reshape((len(dst_edges) - 1,) + values.shape[1:])
    return np.moveaxis(out, 0, axis)


def grid_histogram(path: str | Path, value_columns: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """A histogram stored as rows of (centre₁, …, centre_d, content): returns (edges per axis, contents).

    Used for the CENNS-10 3-D PDFs (energy, F90, time) and the CsI 2017 (PE, time) histograms.
    """
    path = Path(path)
    first = _first_row(path)
    n_axes = len(first) - value_columns
    table = read_table(path, n_axes + value_columns, nonnegative_columns=(n_axes,))
    centres = [np.unique(table[:, k]) for k in range(n_axes)]
    shape = tuple(c.size for c in centres)
    if int(np.prod(shape)) != table.shape[0]:
        raise DataFileError(f"{path}: {table.shape[0]} rows do not fill a {shape} grid")
    index = tuple(np.searchsorted(c, table[:, k]) for k, c in enumerate(centres))
    contents = np.zeros(shape)
    contents[index] = table[:, n_axes]
    return [edges_from_centres(c) for c in centres], contents


def _first_row(path: Path) -> list[str]:
    for line in read_text(path).splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            return [f for f in _SPLIT.split(text) if f]
    raise DataFileError(f"{path}: no data rows")


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a data file; a shipped file is first checked against :data:`MANIFEST`.

    Raises :class:`DataFileError` naming the file if it is missing, not UTF-8, or a shipped file whose
    SHA-256 differs from the manifest (modified or truncated) or that the manifest does not list.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    raw = path.read_bytes()
    verify_shipped(path, raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFileError(f"{path}:{line}: not a UTF-8 text file (byte {exc.start}: {exc.reason})") from None


def shipped_checksums() -> dict[str, str]:
    """{path relative to :data:`DATA_DIR`: SHA-256 hex digest} from the manifest."""
    manifest = DATA_DIR / MANIFEST
    if not manifest.is_file():
        raise DataFileError(f"checksum manifest of the shipped data not found: {manifest}; reinstall cevns_jax")
    sums = {}
    for lineno, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise DataFileError(f"{manifest}:{lineno}: expected '<sha256>  <path>', got {line!r}")
        sums[name.strip()] = digest.lower()
    return sums


def verify_shipped(path: str | Path, content: bytes | None = None) -> None:
    """Refuse a file under :data:`DATA_DIR` whose SHA-256 is not the one in :data:`MANIFEST` (others pass)."""
    path = Path(path)
    try:
        rel = path.resolve().relative_to(DATA_DIR.resolve()).as_posix()
    except ValueError:
        return  # a user file: not checksummed
    expected = shipped_checksums().get(rel)
    if expected is None:
        raise DataFileError(f"{path}: not a shipped data file (not listed in {DATA_DIR / MANIFEST})")
    actual = hashlib.sha256(path.read_bytes() if content is None else content).hexdigest()
    if actual != expected:
        raise DataFileError(
            f"{path}: shipped data file modified or truncated (SHA-256 {actual[:16]}… differs from {expected[:16]}… "
            f"in {MANIFEST}); reinstall cevns_jax or restore the file"
        )


def event_histogram(path: str | Path, energy_edges: np.ndarray, time_edges_us: np.ndarray) -> np.ndarray:
    """2-D histogram (energy × time) of an unbinned event list (columns: PE, time [μs])."""
    events = read_table(path, 2)
    counts, _, _ = np.histogram2d(events[:, 0], events[:, 1], bins=[energy_edges, time_edges_us])
    return counts


def projection(path: str | Path, dst_edges: np.ndarray) -> np.ndarray:
    """A 1-D release projection (centre, content) re-binned onto ``dst_edges``."""
    table = read_table(path, 2, nonnegative_columns=(1,))
    return rebin(edges_from_centres(table[:, 0]), table[:, 1], dst_edges)


def template(spec: dict, energy_edges: np.ndarray, time_edges_us: np.ndarray, base: Path) -> np.ndarray:
    """Build a background template (n_E, n_t) on the experiment's bins from a TOML ``template`` table.

    Kinds (``kind`` key):
    * ``grid``: a (centres…, content) histogram file; axes other than the first (energy) and the last
      (time) are summed over (e.g. CENNS-10's F90); re-binned to the analysis bins.
    * ``events``: an unbinned event list (PE, time μs) histogrammed in the analysis bins.
    * ``projections``: the product of an energy projection and a time projection (CsI 2021 BRN, NIN).
      The time projection carries the normalisation (expected counts over all energies); the energy
      projection gives the fraction inside each energy bin.

    A steady-state background measured in an anti-coincidence (AC) window is noisy bin by bin; with
    ``time_shape = "flat"`` or ``"exponential"`` the template becomes its energy projection times a
    smooth time profile (same total): flat, or exp(−λt) with λ fitted to the time projection by binned
    maximum likelihood (the COHERENT CsI steady state falls by ≈20–40% across the window).
    """
    out = _template(spec, energy_edges, time_edges_us, base)
    shape = spec.get("time_shape")
    if shape is None:
        return out
    if shape not in ("flat", "exponential"):
        raise DataFileError(f"unknown time_shape {shape!r}; use 'flat' or 'exponential'")
    rate = 0.0 if shape == "flat" else fit_exponential_rate(time_edges_us, out.sum(axis=0))
    return np.outer(out.sum(axis=1), exponential_bin_fractions(time_edges_us, rate))


def exponential_bin_fractions(edges: np.ndarray, rate: float) -> np.ndarray:
    """Fractions of a density ∝ exp(−rate·t) on [edges[0], edges[-1]] in each bin (flat for rate = 0)."""
    if abs(rate) < 1e-12:
        w = np.diff(edges)
    else:
        w = -np.diff(np.exp(-rate * (edges - edges[0])))  / rate
    return w / w.sum()


def fit_exponential_rate(edges: np.ndarray, counts: np.ndarray) -> float:
    """Binned maximum-likelihood decay rate λ [1/unit of edges] of counts ∝ exp(−λt), on a fine grid."""
    span = edges[-1] - edges[0]
    grid = np.linspace(-5.0 / span, 5.0 / span, 4001)
    loglike = [np.sum(counts * np.log(np.maximum(exponential_bin_fractions(edges, r), 1e-300))) for r in grid]
    return float(grid[int(np.argmax(loglike))])


def _template(spec: dict, energy_edges: np.ndarray, time_edges_us: np.ndarray, base: Path) -> np.ndarray:
    kind = spec.get("kind")
    resolve = lambda key: _resolve(spec, key, base)  # noqa: E731
    if kind == "grid":
        edges, contents = grid_histogram(resolve("file"))
        if contents.ndim > 2:
            contents = contents.sum(axis=tuple(range(1, contents.ndim - 1)))
        out = rebin(edges[0], contents, energy_edges, axis=0)
        return rebin(edges[-1], out, time_edges_us, axis=1)
    if kind == "events":
        return event_histogram(resolve("file"), energy_edges, time_edges_us)
    if kind == "projections":
        e_table = read_table(resolve("energy_file"), 2, nonnegative_columns=(1,))
        e = projection(resolve("energy_file"), energy_edges) / np.sum(e_table[:, 1])
        t = projection(resolve("time_file"), time_edges_us)
        return np.outer(e, t)
    raise DataFileError(f"unknown template kind {kind!r}; use 'grid', 'events' or 'projections'")


def _resolve(spec: dict, key: str, base: Path) -> Path:
    """A file named in a TOML table: ``package:`` prefix for shipped data, else relative to the TOML."""
    if key not in spec:
        raise DataFileError(f"template needs a {key!r} entry")
    name = str(spec[key])
    if name.startswith("package:"):
        return data_path(name.removeprefix("package:"))
    path = Path(name)
    return path if path.is_absolute() else base / path
