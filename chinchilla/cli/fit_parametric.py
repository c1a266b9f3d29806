"""``chinchilla fit parametric``: Approach 3, L(N, D) = E + A / N^alpha + B / D^beta by L-BFGS from the paper's
4,500-start grid (``chinchilla.fit.parametric``), with the compute-optimal allocation at a budget (refused when
physically absurd, flagged when far outside the runs), optional bootstrap intervals and a held-out extrapolation
check."""

from __future__ import annotations

import argparse

from chinchilla.cli import checks
from chinchilla.cli.fit_inputs import add_table_args, columns_used, load_table, skipped_rows, skipped_warning
from chinchilla.cli.output import json_safe, progress
from chinchilla.paper import GOPHER_FLOPS


def register(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "parametric",
        help="Approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta (summed Huber loss, 4,500-start L-BFGS grid)",
        description="Approach 3 of Hoffmann et al. 2022: fit L(N, D) = E + A/N^alpha + B/D^beta by minimising the "
        "Huber loss (delta 1e-3) of log-loss residuals with L-BFGS from the paper's 4,500-start grid, in "
        "float64. Give a CSV (usual column names are found without flags), or --reference epoch for the 245 "
        "points of Figure 4 as extracted by Besiroglu et al. 2024 (5 highest-loss runs dropped by default, "
        "as they do).",
    )
    parser.add_argument(
        "path", nargs="?", help="a CSV file with a header row (one run per row), a sweep directory or its results.csv"
    )
    parser.add_argument("--reference", choices=("epoch",), help="fit the shipped reference points instead of PATH")
    add_table_args(parser)
    parser.add_argument(
        "--law",
        choices=("chinchilla", "data_constrained"),
        default="chinchilla",
        help="chinchilla (default) or data_constrained (Muennighoff et al. 2023)",
    )
    parser.add_argument(
        "--unique-tokens",
        type=checks.number(1.0, 1e30, "a token count"),
        metavar="U",
        help="with --law data_constrained: the allocation at --flops with U unique tokens (without "
        "it, the printed allocation is the 6ND frontier for unlimited unique data, and says so)",
    )
    parser.add_argument(
        "--drop-highest-loss",
        type=checks.count(0, 1e9, "a number of runs"),
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
        type=_top_k,
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
        type=checks.PERCENTILE,
        nargs=2,
        action=checks.IncreasingPair,
        metavar=("LOW", "HIGH"),
        help="bootstrap interval percentiles (default 2.5 97.5; Table 2 uses 10 90)",
    )
    parser.add_argument("--seed", type=checks.SEED, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--flops",
        "--budget",
        dest="budget",
        type=checks.FLOPS,
        default=GOPHER_FLOPS,
        metavar="C",
        help="FLOP budget for the allocation and tokens-per-parameter (default Gopher's 5.76e23)",
    )
    parser.add_argument(
        "--holdout-flops",
        type=checks.FLOPS,
        metavar="C",
        help="also fit on runs below C FLOPs and report the error on the runs at or above it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_parametric)


def run_parametric(args: argparse.Namespace) -> int:
    from chinchilla.cli.output import print_json
    from chinchilla.fit import get_law
    from chinchilla.fit.allocate import FRONTIER_KIND, DataConstrainedParams, allocation, data_constrained_allocation
    from chinchilla.fit.parametric import fit_table
    from chinchilla.fit.table import REFERENCE_DROP_HIGHEST_LOSS

    _check_bootstrap_flags(args)
    table = load_table(args)
    drop = args.drop_highest_loss
    if drop is None:
        drop = REFERENCE_DROP_HIGHEST_LOSS if args.reference else 0
    table = table.drop_highest_loss(drop)
    law = get_law(args.law)
    if args.unique_tokens is not None and args.law != "data_constrained":
        raise ValueError("--unique-tokens is for --law data_constrained (the Chinchilla law has no unique-data term)")
    _check_law_columns(args, law, table)
    options = {"law": law, "reduction": args.reduction, "top_k": args.top_k}
    fit = fit_table(table, **options, progress=progress("fit", "starts"))
    out = {
        **fit.to_dict(),
        "source": table.source,
        "columns": columns_used(table),
        "drop_highest_loss": drop,
        **skipped_rows(table),
    }
    out["warnings"] = out["warnings"] + skipped_warning(table)
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
            progress=progress("bootstrap", "resamples"),
        )
        out["bootstrap"] = boot.to_dict(percentiles=tuple(args.percentiles or (2.5, 97.5)))
    if args.holdout_flops is not None:
        from chinchilla.fit.holdout import holdout_check

        holdout = holdout_check(
            table, args.holdout_flops, **options, progress=progress("held-out fit", "starts")
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


def _check_law_columns(args: argparse.Namespace, law, table) -> None:
    """A law that reads unique tokens U, on runs without them: say where U comes from, before any fitting."""
    import os

    from chinchilla.cli.fit_inputs import is_sweep_results_csv
    from chinchilla.fit.table import DEFAULT_COLUMN_NAMES

    if "u" not in law.covariates or table.unique_tokens is not None:
        return
    names = DEFAULT_COLUMN_NAMES["unique_tokens"]
    usual = ", ".join(names[:-1]) + " or " + names[-1]
    need = f"--law {args.law} needs each run's unique tokens U (the distinct tokens its training data hold)"
    if args.reference:
        raise ValueError(f"{need}, which the reference points do not record; fit a CSV with a column {usual}")
    if os.path.isdir(args.path) or is_sweep_results_csv(args.path):
        raise ValueError(
            f"{need}, which a sweep does not record; write its runs to a CSV with a column {usual} and fit that"
        )
    raise ValueError(
        f"{need}: {args.path} has no column {usual}; add one, or name yours with --unique-tokens-col COLUMN"
    )


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


def _top_k(text: str) -> int | str | None:
    """``--top-k``'s type: a count of starts, 'all' (None: every start) or 'auto'."""
    if text in ("auto", "all"):
        return None if text == "all" else "auto"
    try:
        return checks.count(1, 1e9, "starts to run L-BFGS from")(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error}; give a positive whole number, 'all' or 'auto'") from None


def _print_fit(out: dict) -> None:
    from chinchilla.fit.table import counted

    print(f"{out['law']} law, {out['reduction']} reduction, {counted(out['n_points'], 'run')} ({out['source']})")
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
        text = _shown(value)
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
            f"  held out C >= {h['flops_threshold']:.3g}: {counted(h['n_test'], 'run')}, rmse(log L) "
            f"{h['test_rmse_log']:.4f}, max |rel. error| {h['test_max_abs_rel_error']:.4f}"
        )


def _shown(value) -> str:
    """A value of the fit's summary as a person reads it: 1.69, not 1.6900000001; ``n -1, d 0``, not a dict."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_shown(item)}" for key, item in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(item) for item in value) or "none"
    return str(value)
