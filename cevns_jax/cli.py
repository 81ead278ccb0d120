"""Command line: ``cevns list`` and ``cevns predict``.

    cevns list                          presets, one line each, with the citation
    cevns predict EXPERIMENT [--json]   expected counts in the experiment's analysis region
    cevns predict --all                 a table for every preset (the main job of the README)

EXPERIMENT is a preset name or the path of a TOML file. Bad input prints one clear line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import enable_x64
from .errors import CevnsInputError
from .source import COMPONENTS


def _predict(name: str) -> dict:
    import jax

    from .experiment import load_experiment
    from .rates import expected_counts

    exp = load_experiment(name)
    counts = jax.jit(expected_counts)(exp)
    totals = {k: float(v.sum()) for k, v in counts.items()}
    cevns = {c: totals.pop(c) for c in COMPONENTS}
    result = {
        "experiment": exp.name,
        "description": exp.info.description,
        "citation": exp.info.citation,
        "observable": exp.detector.observable,
        "cevns": {"total": sum(cevns.values()), **cevns},
        "backgrounds": totals,
    }
    ref = dict(exp.info.reference)
    if "cevns_predicted" in ref:
        result["published_prediction"] = {
            "cevns": ref["cevns_predicted"],
            "error": ref.get("cevns_predicted_error"),
            "relative_difference": result["cevns"]["total"] / ref["cevns_predicted"] - 1.0,
        }
    return result


def _print_prediction(r: dict) -> None:
    print(f"{r['experiment']}: {r['description']}")
    print(f"  citation: {r['citation']}")
    c = r["cevns"]
    print(f"  CEvNS total            {c['total']:10.2f}")
    for name in COMPONENTS:
        print(f"    {name:<20s} {c[name]:10.2f}")
    for name, value in r["backgrounds"].items():
        print(f"  background {name:<11s} {value:10.2f}")
    if "published_prediction" in r:
        p = r["published_prediction"]
        err = f" ± {p['error']:g}" if p["error"] is not None else ""
        print(f"  published CEvNS prediction {p['cevns']:g}{err}  (ours {100 * p['relative_difference']:+.1f}%)")


def _print_table(rows: list[dict]) -> None:
    head = f"{'experiment':<24s} {'CEvNS':>9s} {'prompt νμ':>10s} {'delayed νe':>10s} {'delayed ν̄μ':>11s} {'backgr.':>9s} {'published':>12s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["cevns"]
        pub = r.get("published_prediction")
        pub_text = f"{pub['cevns']:g} ({100 * pub['relative_difference']:+.1f}%)" if pub else "—"
        print(
            f"{r['experiment']:<24s} {c['total']:9.1f} {c['prompt_numu']:10.1f} {c['delayed_nue']:10.1f} "
            f"{c['delayed_numubar']:11.1f} {sum(r['backgrounds'].values()):9.1f} {pub_text:>12s}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cevns", description="CEvNS forecasts at stopped-pion sources")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the shipped experiment presets")
    p = sub.add_parser("predict", help="expected counts in an experiment's analysis region")
    p.add_argument("experiment", nargs="?", help="preset name or path of a TOML file")
    p.add_argument("--all", action="store_true", help="every preset, as a table")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list with --all)")
    args = parser.parse_args(argv)
    enable_x64()
    try:
        if args.command == "list":
            from .experiment import preset_summaries

            for name, status, citation in preset_summaries():
                print(f"{name:<24s} [{status}] {citation}")
            return 0
        if args.all == (args.experiment is not None):
            parser.error("give an EXPERIMENT or --all")
        if args.all:
            from .experiment import list_presets

            rows = [_predict(name) for name in list_presets()]
            print(json.dumps(rows, indent=2)) if args.json else _print_table(rows)
            return 0
        result = _predict(args.experiment)
        print(json.dumps(result, indent=2)) if args.json else _print_prediction(result)
        return 0
    except CevnsInputError as exc:
        print(f"cevns: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
