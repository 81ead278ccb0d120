"""Labelled scan results: a finished scan as named axes with units, named outputs and provenance.

    from cevns_jax.scan import load
    res = load("results/snowmass/lmutau_3y_12x30")
    res.dims["combined"]                  # ("mass_MeV", "g"): the grid axes, then the output's own
    res.coords["mass_MeV"], res.units["mass_MeV"]   # the axis values and "MeV"
    res["combined"]                       # the Δχ² grid (NumPy, read-only)
    res.sel(mass_MeV=10.0)["combined"]    # the row at one mass (exact coordinate; dimension dropped)
    res.attrs["identity"]["scan"]         # hash of everything the values were computed from
    res.to_dict()                         # plain Python (xarray's ``Dataset.to_dict`` layout), JSON-ready
    res.to_xarray()                       # an ``xarray.Dataset`` if xarray is installed (not a dependency)

:class:`LabelledScan` is a small, dependency-free structure (NumPy only) shaped like an xarray Dataset:
``coords`` (one 1-D array per dimension), ``data`` (one array per output, its dimensions in ``dims``),
``units`` (free text per coordinate or output, where known; ``"1"`` is dimensionless, as in the CF
conventions) and ``attrs`` (provenance: description, scan identity hashes, package and JAX versions,
device, creation time). An output's own trailing dimensions are named by the scan's ``output_axes``
where it declared them (e.g. the coupling raster of a dark-matter scan), else ``<output>_dim<i>`` with
integer coordinates. Reading a results folder is :func:`cevns_jax.scan.load` (which verifies every chunk);
this module only builds the structure from arrays and a ``meta.json`` dictionary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import CevnsInputError

__all__ = ["LabelledScan", "labelled_scan", "SEL_RTOL"]

SEL_RTOL = 1e-9
"""Relative tolerance of :meth:`LabelledScan.sel`: a coordinate matches when equal to this precision
(log-axis values such as ``np.geomspace(1, 1000, 4)[1]`` differ from ``10.0`` in the last bits)."""

_ANNOTATIONS = ("axes", "units", "output_axes")  # meta.json keys that become coordinates and units, not attrs


def _readonly(a) -> np.ndarray:
    a = np.array(a)  # a copy: the structure owns its arrays
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class LabelledScan:
    """A scan's outputs with named dimensions, coordinates, units and provenance (see the module docstring).

    ``grid``: the names of the scan's grid axes (the leading dimensions every output shares).
    Arrays are read-only copies; :meth:`sel` returns a new structure.
    """

    coords: dict
    data: dict
    dims: dict
    units: dict
    attrs: dict
    grid: tuple

    def __post_init__(self):
        for name, dims in self.dims.items():
            shape = tuple(np.shape(self.coords[d])[0] for d in dims if d in self.coords)
            if name not in self.data or len(shape) != len(dims) or np.shape(self.data[name]) != shape:
                raise CevnsInputError(f"labelled scan: output {name!r} of shape {np.shape(self.data.get(name))} "
                                      f"does not match its dimensions {dims}")

    def __getitem__(self, name: str) -> np.ndarray:
        """An output's array, or a coordinate's values."""
        if name in self.data:
            return self.data[name]
        if name in self.coords:
            return self.coords[name]
        raise KeyError(f"{name!r}: not an output ({', '.join(self.data)}) or coordinate ({', '.join(self.coords)})")

    def __contains__(self, name: str) -> bool:
        return name in self.data or name in self.coords

    def __iter__(self):
        return iter(self.data)

    @property
    def sizes(self) -> dict:
        """Length of every dimension: {name: n} (selected scalar coordinates excluded)."""
        return {k: int(np.shape(v)[0]) for k, v in self.coords.items() if np.ndim(v) == 1}

    def sel(self, **selection) -> LabelledScan:
        """Select by coordinate value: ``sel(mass_MeV=10.0)`` drops that dimension, ``sel(g=[1e-4, 1e-3])``
        keeps it with the listed values. Values must be on the grid (to :data:`SEL_RTOL`); one that is not
        raises :class:`~cevns_jax.errors.CevnsInputError` naming the axis and the nearest grid values."""
        coords, data = dict(self.coords), dict(self.data)
        dims = {k: tuple(v) for k, v in self.dims.items()}
        for name, wanted in selection.items():
            if name not in self.sizes:
                raise CevnsInputError(f"sel: {name!r} is not a dimension of this scan; dimensions: "
                                      f"{', '.join(self.sizes)}")
            axis = np.asarray(coords[name])
            scalar = np.ndim(wanted) == 0
            index = np.array([self._index(name, axis, float(w)) for w in np.atleast_1d(wanted)], dtype=int)
            take = index[0] if scalar else index
            coords[name] = _readonly(axis[take])
            for var, d in dims.items():
                if name in d:
                    data[var] = _readonly(np.take(data[var], take, axis=d.index(name)))
                    if scalar:
                        dims[var] = tuple(x for x in d if x != name)
        grid = tuple(g for g in self.grid if np.ndim(coords[g]) == 1)
        return LabelledScan(coords, data, dims, dict(self.units), dict(self.attrs), grid)

    @staticmethod
    def _index(name: str, axis: np.ndarray, value: float) -> int:
        close = np.nonzero(np.abs(axis - value) <= SEL_RTOL * np.maximum(np.abs(axis), abs(value)))[0]
        if close.size == 0:
            near = axis[np.argsort(np.abs(axis - value))[:2]]
            raise CevnsInputError(f"sel: {name} = {value!r} is not on the grid; nearest values: "
                                  f"{', '.join(repr(float(v)) for v in sorted(near))}")
        return int(close[0])

    def to_dict(self) -> dict:
        """Plain Python (lists, str, float), JSON-serialisable, in the layout of ``xarray.Dataset.to_dict()``
        (so ``xarray.Dataset.from_dict(res.to_dict())`` rebuilds it)."""

        def var(dims, values, name):
            return {"dims": list(dims), "data": np.asarray(values).tolist(),
                    "attrs": {"units": self.units[name]} if name in self.units else {}}

        return {
            "coords": {k: var((k,) if np.ndim(v) == 1 else (), v, k) for k, v in self.coords.items()},
            "attrs": json.loads(json.dumps(self.attrs, default=str)),
            "dims": self.sizes,
            "data_vars": {k: var(self.dims[k], self.data[k], k) for k in self.data},
        }

    def to_xarray(self):
        """An ``xarray.Dataset`` (xarray is imported only here; it is not a dependency of cevns_jax).

        Units go to each variable's ``attrs["units"]``; nested provenance (description, identity) is stored
        as JSON strings so the dataset can be written with ``to_netcdf``."""
        try:
            import xarray as xr
        except ImportError as err:
            raise ImportError("LabelledScan.to_xarray needs xarray, which cevns_jax does not install: "
                              "`pip install xarray`, or use the LabelledScan itself (or .to_dict())") from err

        def attrs(name):
            return {"units": self.units[name]} if name in self.units else {}

        coords = {k: (((k,) if np.ndim(v) == 1 else ()), np.asarray(v), attrs(k)) for k, v in self.coords.items()}
        data = {k: (self.dims[k], np.asarray(v), attrs(k)) for k, v in self.data.items()}
        flat = {k: v if isinstance(v, (str, int, float)) and not isinstance(v, bool) else json.dumps(v, default=str)
                for k, v in self.attrs.items()}
        return xr.Dataset(data, coords=coords, attrs=flat)

    def __repr__(self) -> str:
        def unit(k):
            return f" [{self.units[k]}]" if k in self.units else ""

        lines = [f"LabelledScan {self.attrs.get('path', '')}".rstrip()]
        lines += [f"  {k}{unit(k)}: {np.asarray(v).size} values {_span(v)}" for k, v in self.coords.items()]
        lines += [f"  {k}{unit(k)}: {self.dims[k]}" for k in self.data]
        ident = (self.attrs.get("identity") or {}).get("scan")
        if ident:
            lines.append(f"  identity {ident[:16]}…, cevns_jax {self.attrs.get('cevns_jax', '?')}")
        return "\n".join(lines)


def _span(v) -> str:
    v = np.asarray(v)
    return f"= {v.item()!r}" if v.ndim == 0 else f"{v.min():g} … {v.max():g}" if v.size else ""


def labelled_scan(values: dict, grid: dict, meta: dict, output_coords: dict | None = None,
                  path: str | None = None) -> LabelledScan:
    """Build a :class:`LabelledScan` from a scan's assembled outputs ``values`` ({name: array of the grid
    shape + the output's own shape}), its grid coordinates ``grid`` ({axis name: values}, in axis order),
    its ``meta.json`` dictionary (units and provenance) and ``output_coords`` ({name: values}, the axes of
    the outputs' own trailing dimensions; used for every output whose trailing shape they match)."""
    coords = {k: _readonly(v) for k, v in grid.items()}
    extra = dict(output_coords or {})
    n_grid, dims, data = len(grid), {}, {}
    for name, arr in values.items():
        own = np.shape(arr)[n_grid:]
        if extra and tuple(len(v) for v in extra.values()) == own:
            names = tuple(extra)
            coords.update({k: _readonly(v) for k, v in extra.items()})
        else:
            names = tuple(f"{name}_dim{i}" for i in range(len(own)))
            coords.update({k: _readonly(np.arange(n)) for k, n in zip(names, own)})
        dims[name] = tuple(grid) + names
        data[name] = _readonly(arr)
    units = {k: str(u) for k, u in (meta.get("units") or {}).items() if k in coords or k in data}
    attrs = {k: v for k, v in meta.items() if k not in _ANNOTATIONS}
    if path is not None:
        attrs["path"] = str(path)
    return LabelledScan(coords, data, dims, units, attrs, tuple(grid))

