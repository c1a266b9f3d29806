"""``chinchilla fit <approach>``: fit scaling laws to a CSV of runs (or the shipped reference points).

Sub-verbs, one per approach, each added by a ``_register_<approach>(approaches)`` function below:

- ``parametric``: Approach 3, L(N, D) = E + A / N^alpha + B / D^beta by L-BFGS from the paper's 4,500-start grid
  (``chinchilla.fit.parametric``), with optional bootstrap intervals and a held-out extrapolation check.
- ``approach1``: the lower envelope of a sweep directory's training curves (``chinchilla.fit.envelope``).
- ``approach2``: IsoFLOP parabolas on a sweep directory or a results CSV (``chinchilla.fit.isoflop``).

Every verb that reads a table takes the same flags (:func:`_add_table_args`): ``--n-col --tokens-col --flops-col
--loss-col --unique-tokens-col --budget-col`` (default: the usual names, ``chinchilla.fit.table``) and ``--where``.
"""

from __future__ import annotations

import argparse
import math

from chinchilla.cli import checks
from chinchilla.cli.usage import StrictParser, strict
from chinchilla.paper import GOPHER_FLOPS

COLUMN_HELP = (
    "Columns not named are found by their usual names: N / params / parameters / n_params; D / tokens / "
    "n_tokens; C / flops / compute; loss / final_loss / eval_loss; U / unique_tokens; budget (exactly, "
    "then ignoring case). The output says which were used."
)


def json_errors(run):
    """With ``--json``, an error still prints one JSON object on stdout, ``{"error": ..., "exit_status": ...}``,
    before the usual one line on stderr, so that a script reading stdout sees what went wrong."""
    import functools

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except Exception as error:
            if getattr(args, "json", False):
                from chinchilla.cli import describe_error
                from chinchilla.cli.output import print_json

                message, status = describe_error(error)
                verb = " ".join(x for x in (args.command, getattr(args, "approach", None)) if x)
                print_json(
                    {
                        "error": message.split(": ", 1)[1] if message.startswith("error: ") else message,
                        "error_kind": "bad input" if status == 2 else "internal error",
                        "exit_status": status,
                        "command": f"chinchilla {verb}",
                    }
                )
                error.json_reported = True  # chinchilla.cli.main prints no second object
            raise

    return wrapper


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = strict(
        subparsers.add_parser(
            "fit",
            help="fit scaling laws: Approach 3 (parametric) to a CSV, Approach 1 to a sweep directory, Approach 2 to "
            "either",
            description="Fit scaling laws to training runs from a CSV file, or to the paper's points shipped with the "
            "package (--reference epoch).",
        )
    )
    approaches = parser.add_subparsers(dest="approach", metavar="<approach>", required=True, parser_class=StrictParser)
    _register_parametric(approaches)
    _register_approach1(approaches)
    _register_approach2(approaches)


def _register_parametric(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "parametric",
        help="Approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta (summed Huber loss, 4,500-start L-BFGS grid)",
        description="Approach 3 of Hoffmann et al. 2022: fit L(N, D) = E + A/N^alpha + B/D^beta by minimising the "
        "Huber loss (delta 1e-3) of log-loss residuals with L-BFGS from the paper's 4,500-start grid, in "
        "float64. Give a CSV (usual column names are found without flags), or --reference epoch for the 245 "
        "points of Figure 4 as extracted by Besiroglu et al. 2024 (5 highest-loss runs dropped by default, "
        "as they do).",
    )
    parser.add_argument("path", nargs="?", help="CSV file with a header row (one run per row)")
    parser.add_argument("--reference", choices=("epoch",), help="fit the shipped reference points instead of PATH")
    _add_table_args(parser)
    parser.add_argument(
        "--law",
        choices=("chinchilla", "data_constrained"),
        default="chinchilla",
        help="chinchilla (default) or data_constrained (Muennighoff et al. 2023)",
    )
    parser.add_argument(
        "--unique-tokens",
        type=float,
        metavar="U",
        help="with --law data_constrained: the allocation at --flops with U unique tokens (without "
        "it, the printed allocation is the 6ND frontier for unlimited unique data, and says so)",
    )
    parser.add_argument(
        "--drop-highest-loss",
        type=int,
        metavar="K",
        help="drop the K runs of highest loss first (default 5 for --reference epoch, else 0)",
    )
    parser.add_argument(
        "--reduction",
        choices=("sum", "mean"),
        default="sum",
        help="sum the Huber loss over runs (default, the paper's equation) or average it (the "
        "paper's loss scale, which stops L-BFGS early)",
    )
    parser.add_argument(
        "--top-k",
        default="auto",
        metavar="K|all|auto",
        help="run L-BFGS from the K best-ranked starts of the grid; 'all' runs every start; 'auto' "
        "(default) = 128 for sum, all for mean",
    )
    parser.add_argument(
        "--resamples",
        type=checks.count(0, 1e7, "bootstrap resamples"),
        default=0,
        metavar="R",
        help="add intervals from R resamples",
    )
    # The bootstrap's options default to None so that giving one without --resamples (or --fraction without the
    # subsample scheme) is an error rather than silently ignored (_check_bootstrap_flags).
    parser.add_argument(
        "--bootstrap-scheme",
        choices=("resample", "subsample"),
        help="resample runs with replacement (default) or subsample --fraction without",
    )
    parser.add_argument(
        "--fraction",
        type=checks.number(1e-6, 1.0, "the share of runs a subsample keeps"),
        help="with --bootstrap-scheme subsample: the share of runs kept (default 0.8, Table 2)",
    )
    parser.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="bootstrap interval percentiles (default 2.5 97.5; Table 2 uses 10 90)",
    )
    parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--flops",
        "--budget",
        dest="budget",
        type=float,
        default=GOPHER_FLOPS,
        metavar="C",
        help="FLOP budget for the allocation and tokens-per-parameter (default Gopher's 5.76e23)",
    )
    parser.add_argument(
        "--holdout-flops",
        type=float,
        metavar="C",
        help="also fit on runs below C FLOPs and report the error on the runs at or above it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_parametric)


@json_errors
def run_parametric(args: argparse.Namespace) -> int:
    from chinchilla.cli.output import print_json
    from chinchilla.fit import get_law
    from chinchilla.fit.allocate import FRONTIER_KIND, DataConstrainedParams, allocation, data_constrained_allocation
    from chinchilla.fit.parametric import fit_table
    from chinchilla.fit.table import REFERENCE_DROP_HIGHEST_LOSS

    _check_bootstrap_flags(args)
    table = _load_table(args)
    drop = args.drop_highest_loss
    if drop is None:
        drop = REFERENCE_DROP_HIGHEST_LOSS if args.reference else 0
    table = table.drop_highest_loss(drop)
    law = get_law(args.law)
    if args.unique_tokens is not None and args.law != "data_constrained":
        raise ValueError("--unique-tokens is for --law data_constrained (the Chinchilla law has no unique-data term)")
    options = {"law": law, "reduction": args.reduction, "top_k": _top_k(args.top_k)}
    fit = fit_table(table, **options, progress=_progress("fit", "starts"))
    out = {
        **fit.to_dict(),
        "source": table.source,
        "columns": _columns_used(table),
        "drop_highest_loss": drop,
        **_skipped(table),
    }
    out["warnings"] = out["warnings"] + _skipped_warning(table)
    constrained = "R_D_star" in fit.params
    if args.unique_tokens is not None:  # U itself: fewer than one sequence is refused before any solving
        from chinchilla.fit.allocate import MIN_MODEL_PARAMS, MIN_TRAINING_TOKENS, check_physical

        check_physical(MIN_MODEL_PARAMS, MIN_TRAINING_TOKENS, args.unique_tokens)
    if fit.has_frontier and constrained and args.unique_tokens is not None:
        params = DataConstrainedParams.from_mapping(fit.params, source="fit")
        out["allocation"] = data_constrained_allocation(params, args.budget, args.unique_tokens)
    elif fit.has_frontier:
        out["allocation"] = {"kind": FRONTIER_KIND, **allocation(fit.frontier, args.budget)}
        if constrained:
            out["allocation"]["warning"] = (
                "this is the 6ND frontier of the law's E, A, B, alpha, beta: it assumes "
                "unlimited unique data; give --unique-tokens U for the data-constrained "
                "allocation"
            )
    else:
        out["allocation"] = None
        out["note"] = f"alpha={fit.alpha:.4g}, beta={fit.beta:.4g}: no compute-optimal frontier"
    if out["allocation"] is not None:
        _check_allocation_domain(out, table)
    if out["allocation"] is not None and not fit.identified:
        out["allocation"]["identified"] = False
        out["allocation"]["identification_warning"] = (
            "this allocation comes from a fit that is NOT IDENTIFIED by these runs: it is not determined"
        )
    if args.resamples:
        from chinchilla.fit.bootstrap import bootstrap_table

        boot = bootstrap_table(
            table,
            n_resamples=args.resamples,
            seed=args.seed or 0,
            scheme=args.bootstrap_scheme or "resample",
            fraction=0.8 if args.fraction is None else args.fraction,
            budget_flops=args.budget,
            fit=fit,
            law=law,
            reduction=args.reduction,
            progress=_progress("bootstrap", "resamples"),
        )
        out["bootstrap"] = boot.to_dict(percentiles=tuple(args.percentiles or (2.5, 97.5)))
    if args.holdout_flops is not None:
        from chinchilla.fit.holdout import holdout_check

        holdout = holdout_check(
            table, args.holdout_flops, **options, progress=_progress("held-out fit", "starts")
        ).to_dict()
        holdout["fit"] = {k: holdout["fit"][k] for k in (*law.natural(fit.theta), "objective", "a", "b")}
        out["holdout"] = holdout
    out["all_warnings"] = (
        out["warnings"]
        + list(out.get("bootstrap", {}).get("interval_flags", {}).values())
        + [
            out["allocation"][k]
            for k in ("warning", "identification_warning")
            if out["allocation"] and k in out["allocation"]
        ]
        + (out["allocation"] or {}).get("domain_warnings", [])
        + ([out["note"]] if out["allocation"] is None and "note" in out else [])
    )
    if args.json:
        print_json(json_safe(out))
    else:
        _print_fit(out)
    return 0


def _check_allocation_domain(out: dict, table) -> None:
    """Refuse an allocation that is physically absurd (the fit stays, the allocation becomes null with a note
    saying why) and flag one far outside the runs fitted (``allocation.domain_warnings``)."""
    from chinchilla.fit.allocate import FittedRange, check_physical, domain_warnings

    alloc = out["allocation"]
    try:
        check_physical(
            alloc["n_opt"],
            alloc["d_opt"],
            alloc.get("unique_tokens"),
            what=f"{alloc['kind']} allocation at C = {alloc['flops']:.3g} FLOPs",
        )
    except ValueError as error:
        out["allocation"], out["note"] = None, f"no allocation: {error}"
        return
    fitted = FittedRange.from_table(table)
    alloc["fitted_range"] = fitted.to_dict()
    lines = domain_warnings(
        fitted, n_opt=alloc["n_opt"], d_opt=alloc["d_opt"], flops=alloc["flops"], epochs=alloc.get("epochs")
    )
    if lines:
        alloc["domain_warnings"] = lines


def _progress(what: str, unit: str):
    """The command line's progress callback for long work: a line on stderr every few seconds (none for work that
    ends sooner); the work runs in chunks, so Ctrl-C stops it within seconds (:mod:`chinchilla.fit.progress`)."""
    from chinchilla.fit.progress import StderrProgress

    return StderrProgress(what, unit)


def json_safe(value):
    """``value`` with every non-finite float (nan, inf) as None, recursively: ``--json`` output is strict JSON
    (no bare NaN or Infinity, which most JSON parsers reject)."""
    import math

    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_bootstrap_flags(args: argparse.Namespace) -> None:
    """A bootstrap option given where it has no effect is an error naming both flags: no flag is
    silently ignored."""
    if not args.resamples:
        for flag, value in (
            ("--bootstrap-scheme", args.bootstrap_scheme),
            ("--fraction", args.fraction),
            ("--percentiles", args.percentiles),
            ("--seed", args.seed),
        ):
            if value is not None:
                raise ValueError(f"{flag} would be ignored: there is no bootstrap without --resamples R (R > 0)")
    if args.fraction is not None and args.bootstrap_scheme != "subsample":
        raise ValueError(
            f"--fraction would be ignored: --bootstrap-scheme {args.bootstrap_scheme or 'resample'} "
            "draws every run with replacement; add --bootstrap-scheme subsample"
        )


def _check_seed(args: argparse.Namespace) -> None:
    if args.seed is not None and args.resamples == 0:
        raise ValueError("--seed would be ignored: --resamples 0 draws no bootstrap resample")


def _load_table(args: argparse.Namespace):
    import os

    from chinchilla.fit.table import read_csv, reference_table

    if args.reference:
        if args.path:
            raise ValueError("give a CSV path or --reference, not both")
        table = reference_table(args.reference)
        return table.where(args.where) if args.where else table
    if not args.path:
        raise ValueError("give a CSV path or --reference epoch")
    if os.path.isdir(args.path) or _is_sweep_results_csv(args.path):  # a sweep: every finished run, as the report's
        # Approach 3 fits them (the IsoFLOP points and the curve runs' ends; not WSD trunks)
        for flag, value in (
            ("--n-col", args.n_col),
            ("--tokens-col", args.tokens_col),
            ("--flops-col", args.flops_col),
            ("--budget-col", args.budget_col),
            ("--unique-tokens-col", getattr(args, "unique_tokens_col", None)),
        ):
            if value is not None:
                raise ValueError(
                    f"{flag} would be ignored: {args.path} is a sweep directory (its results name their columns)"
                )
        return _sweep_table(argparse.Namespace(**{"convention": None, "group": ALL_GROUPS, **vars(args)}))
    return read_csv(
        args.path,
        n_col=args.n_col,
        loss_col=args.loss_col,
        tokens_col=args.tokens_col,
        flops_col=args.flops_col,
        unique_tokens_col=args.unique_tokens_col,
        budget_col=args.budget_col,
        where=args.where,
    )


def _add_table_args(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """The one vocabulary for naming a table's columns and filtering its rows (every verb that reads runs)."""
    where = " (CSV; for a sweep directory, the results column)" if sweep else ""
    group = parser.add_argument_group("columns and rows", COLUMN_HELP)
    group.add_argument("--n-col", help="column with the parameter count N")
    group.add_argument("--tokens-col", help="column with training tokens D")
    group.add_argument("--flops-col", help="column with training FLOPs C (D = C / 6N when there is no D column)")
    group.add_argument(
        "--loss-col",
        help=f"column with the final loss{where}"
        + (
            " (a sweep's default: the loss its report uses, recorded in its preset.json; else final_train_loss)"
            if sweep
            else ""
        ),
    )
    if not sweep:
        group.add_argument("--unique-tokens-col", help="column with unique tokens U (for --law data_constrained)")
    group.add_argument(
        "--budget-col",
        help="column with the planned FLOP budget grouping IsoFLOP runs (default: "
        "'budget' if present, else runs are grouped by C)",
    )
    group.add_argument(
        "--where",
        metavar="EXPR",
        action="append",
        help="keep the rows for which EXPR holds, e.g. '(tokens_per_param <= 30 or N > 1e9) and "
        "loss < 3': comparisons (<=, <, >=, >, ==, !=) of + - * / expressions over N, D, C, "
        "loss, U, tokens_per_param, epochs, budget and the file's numeric columns, joined by "
        "and/or/not, grouped by brackets; a division by zero is an error. Repeat --where to "
        "combine filters with AND (each must hold)",
    )


def _columns_used(table) -> dict[str, str]:
    from chinchilla.fit.table import QUANTITY_NAMES

    return {QUANTITY_NAMES[key]: column for key, column in table.columns}


def _skipped(table) -> dict:
    """The CSV lines skipped for an empty loss, for --json (``skipped_rows``)."""
    return {
        "skipped_rows": {"lines": list(table.skipped_lines), "reason": "empty loss cell (a run without a result)"}
        if table.skipped_lines
        else None
    }


def _skipped_warning(table) -> list[str]:
    lines = list(table.skipped_lines)
    if not lines:
        return []
    shown = ", ".join(map(str, lines[:10])) + (", ..." if len(lines) > 10 else "")
    return [f"skipped {len(lines)} row(s) with an empty loss cell: line(s) {shown}"]


def _top_k(value: str) -> int | str | None:
    if value in ("auto", "all"):
        return None if value == "all" else "auto"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--top-k {value!r}: give a positive integer, 'all' or 'auto'") from None


def _print_fit(out: dict) -> None:
    print(f"{out['law']} law, {out['reduction']} reduction, {out['n_points']} runs ({out['source']})")
    warnings = list(out.get("warnings", []))
    if not out.get("identified", True):  # said first: nothing below is determined by these runs
        print(f"  {warnings.pop(0)}")
    skip = {
        "law",
        "reduction",
        "n_points",
        "source",
        "allocation",
        "bootstrap",
        "holdout",
        "stop_reasons",
        "best_start",
        "note",
        "columns",
        "warnings",
        "parameter_status",
        "best_start_on_grid_edge",
        "identification",
        "all_warnings",
        "skipped_rows",
    }
    intervals = out.get("bootstrap", {}).get("intervals", {})
    for key, value in out.items():
        if key in skip:
            continue
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        if key in intervals:
            low, high = intervals[key]
            text += f"   [{low:.4g}, {high:.4g}]"
        if key in out.get("parameter_status", {}) and out["parameter_status"][key] != "ok":
            text += f"   ({out['parameter_status'][key]})"
        print(f"  {key:<18} {text}")
    for line in warnings + list(out.get("bootstrap", {}).get("interval_flags", {}).values()):
        print(f"  warning: {line}")
    alloc = out["allocation"]
    if alloc is None:
        print(f"  {out['note']}")
    else:
        mark = "[NOT IDENTIFIED] " if alloc.get("identified") is False else ""
        print(
            f"  {mark}at C = {alloc['flops']:.3g} FLOPs, {alloc['kind']}: N_opt = {alloc['n_opt']:.4g}, "
            f"D_opt = {alloc['d_opt']:.4g} ({alloc['tokens_per_param']:.3g} tokens/param)"
            + (f", {alloc['epochs']:.3g} epochs of U = {alloc['unique_tokens']:.3g}" if "epochs" in alloc else "")
        )
        if "warning" in alloc:
            print(f"  warning: {alloc['warning']}")
        if "identification_warning" in alloc:
            print(f"  warning: {alloc['identification_warning']}")
        for line in alloc.get("domain_warnings", []):
            print(f"  warning: {line}")
    if "R_D_star" in out and (out.get("bootstrap") or out.get("G") is not None):
        print(
            "  note: a, b, G (and bootstrap tokens_per_param) describe the 6ND frontier of E, A, B, alpha, beta, "
            "i.e. unlimited unique data"
        )
    if "bootstrap" in out:
        boot = out["bootstrap"]
        low, high = boot["percentiles"]
        print(
            f"  bootstrap: {boot['n_resamples']} x {boot['scheme']}, percentiles {low:g}-{high:g}: "
            + ", ".join(
                f"{k} [{v[0]:.4g}, {v[1]:.4g}]"
                for k, v in boot["intervals"].items()
                if k in ("a", "b", "tokens_per_param")
            )
        )
    if "holdout" in out:
        h = out["holdout"]
        print(
            f"  held out C >= {h['flops_threshold']:.3g}: {h['n_test']} runs, rmse(log L) "
            f"{h['test_rmse_log']:.4f}, max |rel. error| {h['test_max_abs_rel_error']:.4f}"
        )


def _register_approach1(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "approach1",
        help="Approach 1: lower envelope of training curves (a sweep directory or a CSV) -> N_opt ∝ C^a, D_opt ∝ C^b",
        description="Approach 1 of Hoffmann et al. 2022 on training curves: a sweep directory (runs/*/metrics.jsonl) "
        "or a CSV with one row per logged step (run id, N, tokens or FLOPs so far, loss). Smooth each "
        "curve, take the lowest loss at log-spaced FLOP values, fit N_opt and D_opt as power laws of C, "
        "with 10th-90th percentile intervals over resamples of 80% of the runs.",
    )
    parser.add_argument("path", help="a sweep directory, or a CSV of training curves (one row per logged step)")
    parser.add_argument(
        "--convention",
        choices=("non_embedding", "total"),
        help="a sweep directory: which parameters N counts (default total = all parameters, as the report's headline)",
    )
    parser.add_argument("--groups", nargs="+", help="a sweep directory: only runs of these plan groups (default: all)")
    group = parser.add_argument_group(
        "a CSV of training curves", COLUMN_HELP + " The run id: run / run_id / id / run_name / name."
    )
    group.add_argument("--run-col", help="column with the run id (the rows of one run form its curve)")
    group.add_argument("--n-col", help="column with the parameter count N")
    group.add_argument("--tokens-col", help="column with the tokens seen so far")
    group.add_argument(
        "--flops-col", help="column with the FLOPs spent so far (tokens = C / 6N without a tokens column)"
    )
    group.add_argument("--loss-col", help="column with the loss at that step")
    group.add_argument(
        "--where",
        metavar="EXPR",
        action="append",
        help="keep the rows for which EXPR holds (as for the other approaches; repeat to combine with AND)",
    )
    parser.add_argument(
        "--window",
        type=checks.count(0, 1e6, "a smoothing window in logged steps (0 or 1: none)"),
        help="Gaussian smoothing window in logged steps (default: the window the sweep's report "
        "uses, recorded in its preset.json; else 10)",
    )
    parser.add_argument("--points", type=int, default=1500, help="log-spaced FLOP values (default 1500)")
    _add_bootstrap_args(parser)
    parser.set_defaults(func=run_approach1)


def _add_bootstrap_args(parser: argparse.ArgumentParser) -> None:
    """Approaches 1 and 2 share these: the bootstrap's resamples and seed, and --json."""
    parser.add_argument(
        "--resamples",
        type=checks.count(0, 1e6, "bootstrap resamples"),
        default=100,
        help="bootstrap resamples (default 100)",
    )
    parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


@json_errors
def run_approach1(args: argparse.Namespace) -> int:
    import os

    from chinchilla.cli.output import print_json
    from chinchilla.fit.envelope import fit_envelope

    _check_seed(args)
    sweep = os.path.isdir(args.path) or "://" in args.path
    csv_flags = (
        ("--run-col", args.run_col),
        ("--n-col", args.n_col),
        ("--tokens-col", args.tokens_col),
        ("--flops-col", args.flops_col),
        ("--loss-col", args.loss_col),
        ("--where", args.where),
    )
    for flag, value in csv_flags if sweep else (("--convention", args.convention), ("--groups", args.groups)):
        if value is not None:
            raise ValueError(
                f"{flag} would be ignored: {args.path} is "
                + (
                    "a sweep directory (its runs' metrics name their columns)"
                    if sweep
                    else "a CSV file of training curves, not a sweep directory"
                )
            )
    extra: dict = {}
    if sweep:
        from chinchilla.sweep.results import check_sweep_dir, load_curves

        convention = args.convention or SWEEP_CONVENTION
        check_sweep_dir(args.path)
        curves = load_curves(args.path, convention=convention, groups=args.groups)
        source, n_convention = str(args.path), N_CONVENTION_NAMES[convention]
        warnings: list[str] = []
    else:
        from chinchilla.fit.curves import read_curves_csv
        from chinchilla.fit.table import QUANTITY_NAMES

        read = read_curves_csv(
            args.path,
            run_col=args.run_col,
            n_col=args.n_col,
            tokens_col=args.tokens_col,
            flops_col=args.flops_col,
            loss_col=args.loss_col,
            where=args.where,
        )
        curves, source = read.curves, read.source
        n_convention = f"as in column {read.columns['n']!r}"
        extra = {
            "columns": {QUANTITY_NAMES.get(k, k): v for k, v in read.columns.items()},
            "skipped_rows": {"lines": list(read.skipped_lines), "reason": "empty loss cell"}
            if read.skipped_lines
            else None,
        }
        warnings = _skipped_warning(read)
    window = args.window
    if window is None:
        recorded = _recorded_analysis(args.path).get("window") if sweep else None
        window = int(recorded) if isinstance(recorded, (int, float)) else DEFAULT_WINDOW
    result = fit_envelope(
        curves,
        n_points=args.points,
        window=window,
        n_resamples=args.resamples,
        seed=args.seed or 0,
        progress=_progress("Approach 1 intervals", "resamples"),
    )
    out = {
        **result.to_dict(),
        "source": source,
        "convention": args.convention or (SWEEP_CONVENTION if sweep else None),
        "n_convention": n_convention,
        "n_curves": len(curves),
        "window": window,
        **extra,
    }
    skipped = len(curves) and (args.resamples - result.n_resamples)
    if skipped:
        warnings.append(
            f"{skipped} of {args.resamples} resamples selected a single size everywhere and were "
            "skipped (no slope to fit)"
        )
    warnings += _interval_warning(result, args.resamples)
    out["warnings"] = warnings
    out["all_warnings"] = list(warnings)
    if args.json:
        print_json(json_safe(out))
    else:
        print(
            f"Approach 1 on {len(curves)} curves of {source}; N = {n_convention}; smoothing window {window} logged "
            "steps"
        )
        _print_laws(out)
        looser = ", ".join(f"{v:.0%} in the last {1 - float(k):.0%}" for k, v in out["late_by_threshold"].items())
        print(
            f"  selected points: {looser} of their run (the paper: all in the last 15%; any run is in its last "
            f"15% at {out['late_possible']:.0%} of them); {len(out['selected_runs'])} runs on the envelope"
        )
        for line in warnings:
            print(f"  warning: {line}")
    return 0


def _register_approach2(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "approach2",
        help="Approach 2: IsoFLOP parabolas -> N_opt ∝ C^a, D_opt ∝ C^b",
        description="Approach 2 of Hoffmann et al. 2022: per FLOP budget, a parabola of final loss in ln N; its "
        "vertex is that budget's N_opt; power laws over the budgets whose minimum is interior. PATH is "
        "a sweep directory (its IsoFLOP runs) or a CSV with one run per row.",
    )
    parser.add_argument("path", help="a sweep directory, or a CSV file")
    parser.add_argument(
        "--convention",
        choices=("non_embedding", "total"),
        help="a sweep directory or its results.csv: which parameters N counts (default total, as "
        "the report's headline)",
    )
    parser.add_argument(
        "--group", help="a sweep directory or its results.csv: the IsoFLOP plan group (default isoflop)"
    )
    _add_table_args(parser, sweep=True)
    parser.add_argument(
        "--holdout-flops",
        type=float,
        metavar="C",
        help="also fit the laws on the budgets below C and print their predicted N_opt, D_opt beside "
        "the larger budgets' own",
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        help="fit each parabola to this many sizes either side of the lowest loss (default: all sizes)",
    )
    parser.add_argument(
        "--bias-check",
        nargs="?",
        const="fit",
        choices=("fit", "paper"),
        metavar="fit|paper",
        help="simulate this IsoFLOP design on an Approach 3 surface (default: fitted to the same "
        "runs; 'paper': the paper's fit) and report the bias the procedure itself induces in a, "
        "b and N_opt, D_opt at the largest budget, beside the Approach 2 result",
    )
    _add_bootstrap_args(parser)
    parser.set_defaults(func=run_approach2)


# A sweep's data (its directory, or the results.csv it writes) are read the same way whichever is given, with the
# report's headline defaults (analysis.report.AnalysisSettings: N = all parameters, the paper's convention; loss =
# the smoothed final training loss, the paper's), so that one sweep gives one answer.
SWEEP_CONVENTION = "total"
SWEEP_LOSS = "final_train_loss"  # when the sweep recorded no analysis settings (preset.json's "analysis")
DEFAULT_WINDOW = 10
ALL_GROUPS = "*"


def _recorded_analysis(path: str) -> dict:
    """The analysis settings a sweep recorded for its report (``preset.json``'s "analysis": the loss column, Approach
    1's smoothing window, ...), for a sweep directory or its results.csv; {} when there are none. A fit of the sweep
    uses them as its defaults, so that it gives the report's answer."""
    import json
    import os

    if "://" in str(path):
        return {}
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        with open(os.path.join(directory, "preset.json"), encoding="utf-8") as handle:
            analysis = json.load(handle).get("analysis")
    except (OSError, ValueError, AttributeError):
        return {}
    return analysis if isinstance(analysis, dict) else {}


SWEEP_RESULT_KEYS = frozenset({"run_id", "group", "status", "n_params", "non_embedding_params", "tokens", "flops"})
N_CONVENTION_NAMES = {"total": "all parameters", "non_embedding": "non-embedding parameters"}


def _is_sweep_results_csv(path: str) -> bool:
    """Whether a CSV file's header is a sweep's results table (``chinchilla sweep`` writes results.csv)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False  # read_csv gives the one-line error
    return SWEEP_RESULT_KEYS <= {cell.strip() for cell in header}


@json_errors
def run_approach2(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from chinchilla.cli.output import print_json
    from chinchilla.fit.isoflop import cluster_flops, fit_isoflop, isoflop_holdout

    _check_seed(args)
    sweep = os.path.isdir(args.path) or "://" in args.path
    results_csv = not sweep and _is_sweep_results_csv(args.path)
    for flag, value in (
        (
            ("--n-col", args.n_col),
            ("--tokens-col", args.tokens_col),
            ("--flops-col", args.flops_col),
            ("--budget-col", args.budget_col),
        )
        if sweep or results_csv
        else (("--convention", args.convention), ("--group", args.group))
    ):
        if value is not None:
            raise ValueError(
                f"{flag} would be ignored: {args.path} is "
                + (
                    "a sweep directory (its results name their columns)"
                    if sweep
                    else "a sweep's results table (its columns are named by --convention and --loss-col)"
                    if results_csv
                    else "a CSV file, not a sweep directory or its results.csv"
                )
            )
    if sweep or results_csv:
        table = _sweep_table(args)
        n_convention = N_CONVENTION_NAMES[args.convention or SWEEP_CONVENTION]
    else:
        from chinchilla.fit.table import read_csv

        table = read_csv(
            args.path,
            n_col=args.n_col,
            loss_col=args.loss_col,
            tokens_col=args.tokens_col,
            flops_col=args.flops_col,
            budget_col=args.budget_col,
            where=args.where,
        )
        n_convention = f"as in column {dict(table.columns)['n']!r}"
    columns = dict(table.columns)
    if table.budget is not None:  # planned budgets label the profiles; C is the runs' mean FLOPs if known
        budget, flops, grouping = table.budget, (table.flops if "flops" in columns else None), "budget column"
    else:
        clusters = cluster_flops(table.flops)
        budget, flops = clusters.labels, table.flops
        grouping = (
            clusters.description
            + " of "
            + ("their C column" if "flops" in columns else "C = 6ND")
            + " (no budget column; name one with --budget-col)"
        )
    data = (budget, table.n, table.d, table.loss)
    try:
        result = fit_isoflop(
            *data,
            flops=flops,
            neighbours=args.neighbours,
            n_resamples=args.resamples,
            seed=args.seed or 0,
            progress=_progress("Approach 2 intervals", "resamples"),
        )
    except ValueError as error:
        if table.budget is not None:
            raise
        raise ValueError(
            f"{error}; the {len(np.unique(budget))} groups were found by log-C clustering "
            f"({grouping}): if the file has a planned-budget column, name it with --budget-col"
        ) from None
    out = {
        **result.to_dict(),
        "source": table.source,
        "columns": _columns_used(table),
        "grouping": grouping,
        "n_convention": n_convention,
        "loss_column": columns["loss"],
        **_skipped(table),
    }
    out["warnings"] = out["warnings"] + _skipped_warning(table) + _interval_warning(result, args.resamples)
    if args.bias_check:
        out["bias_check"] = _bias_check(args.bias_check, table, data, flops, args.neighbours)
        out["warnings"] += out["bias_check"].pop("warnings")
        out["bias_check"]["approach2_corrected"] = _corrected(out)
    out["all_warnings"] = list(out["warnings"])
    if args.holdout_flops is not None:
        out["holdout"] = isoflop_holdout(
            *data, flops=flops, flops_threshold=args.holdout_flops, neighbours=args.neighbours
        ).to_dict()
    if args.json:
        print_json(json_safe(out))
    else:
        print(
            f"Approach 2 on {len(table)} runs of {table.source}; N = {n_convention}, loss = column "
            f"{columns['loss']!r}; {grouping}"
        )
        _print_laws(out)
        for b in out["budgets"]:
            print(
                f"  C = {b['flops']:.3g}: {b['n_runs']} runs, N_opt = {b['n_opt']:.4g}, D_opt = {b['d_opt']:.4g}, "
                + ("interior" if b["interior"] else f"NOT interior ({b['reason']})")
            )
        for b in out["budgets_left_out"]:
            print(f"  C = {b['flops']:.3g}: {b['n_runs']} runs, not fitted ({b['reason']})")
        if "bias_check" in out:
            _print_bias(out)
        for line in out["warnings"]:
            print(f"  warning: {line}")
        if "holdout" in out:
            h = out["holdout"]
            print(
                f"  held out C >= {h['flops_threshold']:.3g}: laws from the {h['n_train_budgets']} smaller budgets "
                f"(a = {h['a']:.4f}, b = {h['b']:.4f}) predict"
            )
            for r in h["budgets"]:
                print(
                    f"    C = {r['flops']:.3g}: N_opt predicted {r['n_opt_predicted']:.4g}, observed "
                    f"{r['n_opt_observed']:.4g} ({r['n_opt_rel_error']:+.1%}); D_opt predicted "
                    f"{r['d_opt_predicted']:.4g}, observed {r['d_opt_observed']:.4g} ({r['d_opt_rel_error']:+.1%})"
                    + ("" if r["interior"] else f"  [observed is not interior: {r['reason']}]")
                )
    return 0


def _bias_check(which: str, table, data, flops, neighbours) -> dict:
    """Approach 2's own bias for this design (``--bias-check``): the IsoFLOP procedure run on an Approach 3 surface
    (fitted to the same runs, or the paper's), against that surface's frontier (:func:`chinchilla.fit.isoflop.
    isoflop_bias`)."""
    from chinchilla.fit.allocate import PAPER_FIT
    from chinchilla.fit.isoflop import isoflop_bias

    warnings = []
    if which == "paper":
        law, source = PAPER_FIT, "the paper's Approach 3 fit"
    else:
        from chinchilla.fit.parametric import fit_table

        fit = fit_table(table, progress=_progress("Approach 3 fit for the bias check", "starts"))
        if not fit.has_frontier:
            raise ValueError(
                f"--bias-check: the Approach 3 fit to these runs has alpha = {fit.alpha:.4g}, "
                f"beta = {fit.beta:.4g}: no frontier to compare with; try --bias-check paper"
            )
        law, source = fit.frontier, f"Approach 3 fitted to the same {len(table)} runs"
        if not fit.identified:
            warnings.append(
                "the bias check's surface is an Approach 3 fit that is NOT IDENTIFIED by these runs ("
                + "; ".join(fit.identification.get("reasons", []))
                + "): its bias is as uncertain"
            )
    bias = isoflop_bias(law, *data[:3], flops=flops, neighbours=neighbours)
    return {**bias.to_dict(), "surface": source, "warnings": warnings}


def _corrected(out: dict) -> dict:
    """Approach 2's result with the simulated bias taken out (exponents minus the bias; N_opt, D_opt at the largest
    budget divided by 1 + the relative bias)."""
    bias = out["bias_check"]
    c = bias["flops_max"]
    n2 = out["n_law"]["coefficient"] * c ** out["a"]
    d2 = out["d_law"]["coefficient"] * c ** out["b"]
    return {
        "a": out["a"] - bias["a_bias"],
        "b": out["b"] - bias["b_bias"],
        "flops": c,
        "n_opt_approach2": n2,
        "n_opt": n2 / (1 + bias["n_opt_rel_bias"]),
        "d_opt_approach2": d2,
        "d_opt": d2 / (1 + bias["d_opt_rel_bias"]),
    }


def _print_bias(out: dict) -> None:
    bias = out["bias_check"]
    law = bias["law"]
    print(
        f"  bias check: the IsoFLOP procedure on {bias['surface']} (E = {law['E']:.4g}, A = {law['A']:.4g}, "
        f"B = {law['B']:.4g}, alpha = {law['alpha']:.4f}, beta = {law['beta']:.4f}), at these runs' N and D:"
    )
    fixed = bias["approach2_corrected"]
    print(
        f"    a: recovers {bias['a_sim']:.4f}, the surface's {bias['a_true']:.4f}: bias {bias['a_bias']:+.4f}; "
        f"Approach 2 above less the bias: {fixed['a']:.4f}"
    )
    print(
        f"    b: recovers {bias['b_sim']:.4f}, the surface's {bias['b_true']:.4f}: bias {bias['b_bias']:+.4f}; "
        f"Approach 2 above less the bias: {fixed['b']:.4f}"
    )
    print(
        f"    at C = {bias['flops_max']:.3g}: N_opt {bias['n_opt_sim']:.4g} vs the surface's "
        f"{bias['n_opt_true']:.4g} ({bias['n_opt_rel_bias']:+.1%}), D_opt {bias['d_opt_sim']:.4g} vs "
        f"{bias['d_opt_true']:.4g} ({bias['d_opt_rel_bias']:+.1%}); Approach 2's N_opt {fixed['n_opt_approach2']:.4g}"
        f" less the bias: {fixed['n_opt']:.4g}, D_opt {fixed['d_opt_approach2']:.4g} -> {fixed['d_opt']:.4g}"
    )


def _sweep_table(args: argparse.Namespace):
    """A sweep's finished IsoFLOP runs as a table (N by --convention, loss from --loss-col), read from its directory
    or from its results.csv: the same rows and columns either way."""
    import os

    from chinchilla.fit.table import ScalingTable
    from chinchilla.sweep.results import collect_results, read_results_table

    loss_col = args.loss_col or _recorded_analysis(args.path).get("loss") or SWEEP_LOSS
    group = args.group or "isoflop"  # ALL_GROUPS: every finished run but WSD trunks (Approach 3, as the report)
    directory = os.path.isdir(args.path) or "://" in args.path
    all_rows = collect_results(args.path) if directory else read_results_table(args.path)
    if all_rows and loss_col not in all_rows[0]:
        raise ValueError(f"{args.path}: no loss column {loss_col!r}; --loss-col takes final_train_loss or eval_loss")
    rows = [
        r
        for r in all_rows
        if r.get("status") == "finished"
        and r.get(loss_col) is not None
        and (r.get("group") == group if group != ALL_GROUPS else "trunk" not in str(r.get("flags") or ""))
    ]
    if not rows:
        raise ValueError(f"{args.path}: no finished runs of group {group!r} with a {loss_col!r} loss")
    n_col = {"total": "n_params", "non_embedding": "non_embedding_params"}[args.convention or SWEEP_CONVENTION]
    budgets = [r.get("budget") for r in rows]
    has_budgets = all(b is not None for b in budgets)  # curve runs have none: Approach 3 does not need them
    table = ScalingTable.from_arrays(
        [r[n_col] for r in rows],
        [r[loss_col] for r in rows],
        d=[r["tokens"] for r in rows],
        flops=[r["flops"] for r in rows],
        budget=budgets if has_budgets else None,
        source=str(args.path),
        columns=(("n", n_col), ("d", "tokens"), ("flops", "flops"), ("loss", loss_col))
        + ((("budget", "budget"),) if has_budgets else ()),
    )
    return table.where(args.where) if args.where else table


def _interval_warning(result, requested: int) -> list[str]:
    """A warning when the intervals are not reported because too few resamples fitted."""
    from chinchilla.fit.powerlaw import MIN_RESAMPLE_SHARE

    if not requested or math.isfinite(result.a_interval[0]):
        return []
    return [
        f"intervals not available: only {result.n_resamples} of {requested} resamples could be fitted (fewer "
        f"than {MIN_RESAMPLE_SHARE:.0%}), so their percentiles describe the lucky subsets, not the estimate"
    ]


def _print_laws(out: dict) -> None:
    for key, law in (("a", "n_law"), ("b", "d_law")):
        low, high = out[f"{key}_interval"]
        shown = (
            "interval not available"
            if low is None or high is None or not (math.isfinite(low) and math.isfinite(high))
            else f"[{low:.4f}, {high:.4f}] (10th-90th percentiles"
        )
        print(
            f"  {key} = {out[key]:.4f}   {shown}{')' if shown[0] == '[' else ''} ({out['n_resamples']} "
            f"resamples fitted)   coefficient {out[law]['coefficient']:.4g}"
        )
