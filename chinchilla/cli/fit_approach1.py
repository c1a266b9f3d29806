"""``chinchilla fit approach1``: Approach 1, the lower envelope of training curves (a sweep directory's runs, or a
CSV with one row per logged step) -> N_opt ∝ C^a, D_opt ∝ C^b (``chinchilla.fit.envelope``)."""

from __future__ import annotations

import argparse

from chinchilla.cli import checks
from chinchilla.cli.fit_inputs import (
    COLUMN_HELP,
    N_CONVENTION_NAMES,
    SWEEP_CONVENTION,
    check_sweep_has_runs,
    recorded_analysis,
    skipped_warning,
)
from chinchilla.cli.fit_powerlaws import add_bootstrap_args, check_seed, interval_warning, print_laws
from chinchilla.cli.output import json_safe, progress

# The smoothing window (logged steps) when a sweep recorded none in its preset.json, or PATH is a CSV.
DEFAULT_WINDOW = 10


def register(approaches: argparse._SubParsersAction) -> None:
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
    parser.add_argument(
        "--points",
        type=checks.count(2, 1e7, "log-spaced FLOP values: at least 2"),
        default=1500,
        help="log-spaced FLOP values (default 1500)",
    )
    add_bootstrap_args(parser)
    parser.set_defaults(func=run_approach1)


def run_approach1(args: argparse.Namespace) -> int:
    import os

    from chinchilla.cli.output import print_json
    from chinchilla.fit.envelope import fit_envelope
    from chinchilla.fit.table import counted

    check_seed(args)
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
        check_sweep_has_runs(args.path)
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
        warnings = skipped_warning(read)
    window = args.window
    if window is None:
        recorded = recorded_analysis(args.path).get("window") if sweep else None
        window = int(recorded) if isinstance(recorded, (int, float)) else DEFAULT_WINDOW
    result = fit_envelope(
        curves,
        n_points=args.points,
        window=window,
        n_resamples=args.resamples,
        seed=args.seed or 0,
        progress=progress("Approach 1 intervals", "resamples"),
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
            f"{skipped} of {counted(args.resamples, 'resample')} selected a single size everywhere and "
            + ("was skipped" if skipped == 1 else "were skipped")
            + " (no slope to fit)"
        )
    warnings += interval_warning(result, args.resamples)
    out["warnings"] = warnings
    out["all_warnings"] = list(warnings)
    if args.json:
        print_json(json_safe(out))
    else:
        print(
            f"Approach 1 on {counted(len(curves), 'curve')} of {source}; N = {n_convention}; smoothing window "
            f"{counted(window, 'logged step')}"
        )
        print_laws(out)
        looser = ", ".join(f"{v:.0%} in the last {1 - float(k):.0%}" for k, v in out["late_by_threshold"].items())
        print(
            f"  selected points: {looser} of their run (the paper: all in the last 15%; any run is in its last "
            f"15% at {out['late_possible']:.0%} of them); {counted(len(out['selected_runs']), 'run')} on the envelope"
        )
        for line in warnings:
            print(f"  warning: {line}")
    return 0
