"""Command line: ``cevns list`` and ``cevns predict``.

    cevns list                          presets, one line each, with the citation
    cevns predict EXPERIMENT [--json]   expected counts in the experiment's analysis region
    cevns predict --all                 a table for every preset (the main job of the README)
    cevns predict EXPERIMENT --model M  the same under a new-physics point (TOML; see models/config.py)
    cevns fit RELEASE [--json]          fit a COHERENT data release: CEvNS count, significance, sin²θ_W
                                        (phases and a progress bar on stderr; --quiet for none)
    cevns fit RELEASE --model M         Δχ² of a new-physics point (TOML) against the SM on the release's data

EXPERIMENT is a preset name or the path of a TOML file.

Exit status: 0 success; 2 bad input (one line ``cevns: error: …`` on stderr naming the file, table
and field; no traceback); 3 a result that is not a finite number (one line ``cevns: error: …`` naming
the result field) — nothing non-finite is ever printed, and ``--json`` output is always valid JSON.
"""

from __future__ import annotations

import argparse
import json as _json
import math
import sys

from . import enable_compilation_cache, enable_x64, fast_cpu_compilation
from .errors import CevnsInputError


class NonFiniteResult(CevnsInputError):
    """A command's result holds NaN or ±inf (exit status 3): never printed, never emitted as JSON."""


def require_finite(result, where: str = "result") -> None:
    """Raise :class:`NonFiniteResult` naming the first non-finite number in a (nested) result."""
    if isinstance(result, dict):
        for key, value in result.items():
            require_finite(value, f"{where}.{key}")
    elif isinstance(result, (list, tuple)):
        for k, value in enumerate(result):
            require_finite(value, f"{where}[{k}]")
    elif isinstance(result, float) and not math.isfinite(result):
        raise NonFiniteResult(f"{where} is {result} (not a finite number); nothing printed")


class _StrictJSON:
    """``json.dumps`` for this module: checks finiteness first and never writes NaN/Infinity (invalid JSON)."""

    @staticmethod
    def dumps(obj, **kwargs) -> str:
        require_finite(obj)
        return _json.dumps(obj, allow_nan=False, **kwargs)


json = _StrictJSON()  # every ``json.dumps`` below goes through the finiteness check


def _predict(name: str, model_file: str | None = None) -> dict:
    import jax

    from .experiment import load_experiment
    from .rates import expected_counts

    exp = load_experiment(name)
    sm = model = None
    if model_file is not None:
        from .models.config import load_model

        sm, model = load_model(model_file)
    counts = jax.jit(expected_counts)(exp, sm, model)
    totals = {k: float(v.sum()) for k, v in counts.items()}
    cevns = {c: totals.pop(c) for c in exp.source.components}
    dm = totals.pop("dark_matter", None)
    result = {
        "experiment": exp.name,
        "description": exp.info.description,
        "citation": exp.info.citation,
        "observable": exp.detector.observable,
        "cevns": {"total": sum(cevns.values()), **cevns},
        "backgrounds": totals,
    }
    if model_file is not None:
        result["model"] = model_file
        result["dark_matter"] = dm
    ref = dict(exp.info.reference)
    if "cevns_predicted" in ref and model_file is None:
        result["published_prediction"] = {
            "cevns": ref["cevns_predicted"],
            "error": ref.get("cevns_predicted_error"),
            "relative_difference": result["cevns"]["total"] / ref["cevns_predicted"] - 1.0,
        }
    return result


def _print_prediction(r: dict) -> None:
    require_finite(r)
    print(f"{r['experiment']}: {r['description']}")
    print(f"  citation: {r['citation']}")
    c = r["cevns"]
    print(f"  CEvNS total            {c['total']:10.2f}")
    for name in [k for k in c if k != "total"]:
        print(f"    {name:<20s} {c[name]:10.2f}")
    if r.get("dark_matter") is not None:
        print(f"  dark matter            {r['dark_matter']:10.2f}")
    for name, value in r["backgrounds"].items():
        print(f"  background {name:<11s} {value:10.2f}")
    if "published_prediction" in r:
        p = r["published_prediction"]
        err = f" ± {p['error']:g}" if p["error"] is not None else ""
        print(f"  published CEvNS prediction {p['cevns']:g}{err}  (ours {100 * p['relative_difference']:+.1f}%)")


def _print_table(rows: list[dict]) -> None:
    require_finite(rows)
    head = f"{'experiment':<24s} {'CEvNS':>9s} {'prompt νμ':>10s} {'delayed νe':>10s} {'delayed ν̄μ':>11s} {'backgr.':>9s} {'published':>12s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["cevns"]
        pub = r.get("published_prediction")
        pub_text = f"{pub['cevns']:g} ({100 * pub['relative_difference']:+.1f}%)" if pub else "—"
        part = lambda k, w: f"{c[k]:{w}.1f}" if k in c else f"{'—':>{w}s}"  # noqa: E731  (π-DAR components)
        print(
            f"{r['experiment']:<24s} {c['total']:9.1f} {part('prompt_numu', 10)} {part('delayed_nue', 10)} "
            f"{part('delayed_numubar', 11)} {sum(r['backgrounds'].values()):9.1f} {pub_text:>12s}"
        )


def _print_fit(r: dict) -> None:
    require_finite(r)
    c, w, x = r["cevns"], r["sin2_theta_w"], r["cross_section_cm2"]
    pub = r.get("published", {})
    print(f"{r['release']} (CEvNS template: {r['signal_template']})")
    print(f"  CEvNS events        {c['best']:.1f} +{c['hi'] - c['best']:.1f} -{c['best'] - c['lo']:.1f}"
          f"   (SM prediction {r['cevns_predicted']:.1f}; published fit {pub.get('cevns', float('nan')):g} ± {pub.get('error', float('nan')):g})")
    print(f"  significance        {r['significance_sigma']:.1f} σ   (published {pub.get('significance', float('nan')):g} σ)")
    if x is not None:
        print(f"  flux-averaged σ     ({1e40 * x['best']:.0f} +{1e40 * (x['hi'] - x['best']):.0f} -{1e40 * (x['best'] - x['lo']):.0f})e-40 cm²"
              f"   (SM {1e40 * x['sm']:.0f}e-40 cm²)")
    print(f"  sin²θ_W             {w['best']:.3f} +{w['hi'] - w['best']:.3f} -{w['best'] - w['lo']:.3f}")
    print("  nuisance pulls      " + ", ".join(f"{k} = {v:+.3g}" for k, v in r["nuisances"].items()))


def _print_model_test(r: dict) -> None:
    require_finite(r)
    print(f"{r['release']}: {r['model']} against the SM ({r['n_bins']} bins, nuisances profiled)")
    print(f"  χ²(SM) = {r['chi2_sm']:.3f}   χ²(model) = {r['chi2_model']:.3f}   Δχ² = {r['delta_chi2']:+.3f}"
          "   (90% CL exclusion of one parameter: Δχ² > 2.71)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cevns", description="CEvNS forecasts at stopped-pion sources")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the shipped experiment presets")
    p = sub.add_parser("predict", help="expected counts in an experiment's analysis region")
    p.add_argument("experiment", nargs="?", help="preset name or path of a TOML file")
    p.add_argument("--all", action="store_true", help="every preset, as a table")
    p.add_argument("--model", help="TOML file with a new-physics point (see cevns_jax/models/config.py)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list with --all)")
    f = sub.add_parser("fit", help="fit a COHERENT data release")
    f.add_argument("release", help="COHERENT-CsI-2017, COHERENT-CENNS10-2020, COHERENT-CsI-2021 (releases), "
                                "CONUS+-2025, XENONnT-8B-2024, PandaX-4T-8B-2024 or COHERENT-Ge-Mini-2025 "
                                "(one-bin counting analyses)")
    f.add_argument("--template", default="model", choices=("model", "factorised"),
                   help="CEvNS template: the model's energy-time correlation, or factorised as in the CENNS-10 release")
    f.add_argument("--exact", action="store_true", help="full forward model at every step (no template morphing)")
    f.add_argument("--scan-points", default="41", metavar="N",
                   help="points of each profile Δχ² curve in the --json output (whole number, 3 to 1001); "
                        "the intervals are found by root finding and do not depend on it")
    f.add_argument("--model", help="TOML file with a new-physics point: print its Δχ² against the SM instead of the fit")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.add_argument("--quiet", "-q", action="store_true",
                   help="no progress on stderr (by default each phase of the fit is announced there; stdout "
                        "holds only the result)")
    args = parser.parse_args(argv)
    enable_x64()
    fast_cpu_compilation()
    enable_compilation_cache()
    try:
        if args.command == "list":
            from .experiment import preset_summaries

            for name, status, citation in preset_summaries():
                print(f"{name:<24s} [{status}] {citation}")
            return 0
        if args.command == "fit" and args.model is not None:
            from .stats.limits import model_test
            from .models.config import load_model

            sm, model = load_model(args.model)
            result = {**model_test(args.release, model, sm=sm, morphing="exact" if args.exact else "linear"),
                      "model": args.model}
            print(json.dumps(result, indent=2)) if args.json else _print_model_test(result)
            return 0
        if args.command == "fit":
            from .stats.fits import check_scan_points, fit

            n_scan = check_scan_points(args.scan_points, "--scan-points")
            result = fit(args.release, signal_template=args.template, n_scan=n_scan,
                         morphing="exact" if args.exact else "linear", progress=not args.quiet)
            print(json.dumps(result, indent=2)) if args.json else _print_fit(result)
            return 0
        if args.all == (args.experiment is not None):
            parser.error("give an EXPERIMENT or --all")
        if args.all:
            from .experiment import list_presets

            rows = [_predict(name, args.model) for name in list_presets()]
            print(json.dumps(rows, indent=2)) if args.json else _print_table(rows)
            return 0
        result = _predict(args.experiment, args.model)
        print(json.dumps(result, indent=2)) if args.json else _print_prediction(result)
        return 0
    except NonFiniteResult as exc:
        print(f"cevns: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 3
    except CevnsInputError as exc:
        print(f"cevns: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
