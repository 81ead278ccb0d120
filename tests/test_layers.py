"""The statistics and design layers import only downward (read with ``ast``; nothing is imported here).

Order: physics and models → ``results`` (a data structure) and ``nuisances`` → ``stats`` (likelihood,
intervals, morphing → fisher, forecast → analyses → fits → limits) → ``scan`` → ``design`` → ``cli``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cevns_jax"
ABOVE = {
    "results": ("nuisances", "stats", "scan", "design", "cli"),
    "nuisances": ("stats", "scan", "design", "cli"),
    "stats": ("scan", "design", "cli"),
    "scan": ("design", "cli"),
    "design": ("cli",),
}
STATS_ORDER = ("likelihood", "intervals", "crossings", "morphing", "fisher", "forecast", "analyses", "fits", "limits")


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


def test_stats_modules_import_only_earlier_stats_modules():
    bad = []
    for i, mod in enumerate(STATS_ORDER):
        path = PACKAGE / "stats" / f"{mod}.py"
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[1:2] == ["stats"] and len(parts) > 2 and parts[2] in STATS_ORDER[i:]:
                bad.append(f"stats/{mod}.py imports {name}")
    assert not bad, bad
