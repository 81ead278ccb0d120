"""The statistics and design layers import only downward (read with ``ast``; nothing is imported here).

Order: physics and ``models`` → ``results`` (a data structure) → ``nuisances`` → ``experiment`` (pytrees → subkev →
source_tables →
sections → checks → load) → ``stats`` (likelihood, intervals, morphing, coupling_scan → fisher, forecast → analyses → fits →
limits; minimise, teststats, screen → toys → neyman) → ``scan`` (→ ``toyscan``) → ``design`` → ``cli``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cevns_jax"
ABOVE = {
    "models": ("results", "nuisances", "experiment", "stats", "scan", "design", "cli"),
    "results": ("nuisances", "experiment", "stats", "scan", "design", "cli"),
    "nuisances": ("experiment", "stats", "scan", "design", "cli"),
    "experiment": ("stats", "scan", "design", "cli"),
    "stats": ("scan", "design", "cli"),
    "scan": ("design", "cli"),
    "design": ("cli",),
}
STATS_ORDER = ("likelihood", "intervals", "crossings", "morphing", "coupling_scan", "fisher", "forecast", "analyses", "fits", "limits",
               "minimise", "teststats", "screen", "toys", "neyman")
EXPERIMENT_ORDER = ("pytrees", "subkev", "source_tables", "sections", "checks", "load")


def imported_modules(path: Path) -> set[str]:
    """Absolute dotted names (inside cevns_jax) imported by the module at ``path``, at any depth."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("cevns_jax")}


def layer_files(layer: str):
    path = PACKAGE / layer
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_upward_imports(layer):
    bad = []
    for path in layer_files(layer):
        for name in imported_modules(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in ABOVE[layer]:
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad, bad


@pytest.mark.parametrize("package, order", [("stats", STATS_ORDER), ("experiment", EXPERIMENT_ORDER)])
def test_package_modules_import_only_earlier_modules(package, order):
    assert sorted(p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__") == sorted(order)
    bad = []
    for i, mod in enumerate(order):
        path = PACKAGE / package / f"{mod}.py"
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[1:2] == [package] and len(parts) > 2 and parts[2] in order[i:]:
                bad.append(f"{package}/{mod}.py imports {name}")
    assert not bad, bad
