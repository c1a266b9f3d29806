"""``chinchilla fit approach2``: Approach 2, IsoFLOP parabolas (a sweep directory, its results.csv, or a CSV of
runs) -> N_opt ∝ C^a, D_opt ∝ C^b (``chinchilla.fit.isoflop``), with an optional check of the bias the procedure
itself induces (``--bias-check``)."""

from __future__ import annotations

import argparse

from chinchilla.cli import checks
from chinchilla.cli.fit_inputs import (
    N_CONVENTION_NAMES,
    SWEEP_CONVENTION,
    add_table_args,
    columns_used,
    is_sweep_results_csv,
    skipped_rows,
    skipped_warning,
    sweep_table,
)
from chinchilla.cli.fit_powerlaws import add_bootstrap_args, check_seed, interval_warning, print_laws
from chinchilla.cli.output import json_safe, progress


def register(approaches: argparse._SubParsersAction) -> None:
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
    add_table_args(parser, sweep=True)
    parser.add_argument(
        "--holdout-flops",
        type=checks.FLOPS,
        metavar="C",
        help="also fit the laws on the budgets below C and print their predicted N_opt, D_opt beside "
        "the larger budgets' own",
    )
    parser.add_argument(
        "--neighbours",
        type=checks.count(1, 1e6, "sizes either side of the lowest loss: at least 1"),
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
    add_bootstrap_args(parser)
    parser.set_defaults(func=run_approach2)


def run_approach2(args: argparse.Namespace) -> int:
    import os

    from chinchilla.cli.output import print_json
    from chinchilla.fit.isoflop import cluster_flops, fit_isoflop, isoflop_holdout
    from chinchilla.fit.table import counted

    check_seed(args)
    sweep = os.path.isdir(args.path) or "://" in args.path
    results_csv = not sweep and is_sweep_results_csv(args.path)
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
        table = sweep_table(args)
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
            progress=progress("Approach 2 intervals", "resamples"),
        )
    except ValueError as error:
        if table.budget is not None:
            raise
        raise ValueError(
            f"{error}; the groups were found by log-C clustering "
            f"({grouping}): if the file has a planned-budget column, name it with --budget-col"
        ) from None
    out = {
        **result.to_dict(),
        "source": table.source,
        "columns": columns_used(table),
        "grouping": grouping,
        "n_convention": n_convention,
        "loss_column": columns["loss"],
        **skipped_rows(table),
    }
    out["warnings"] = out["warnings"] + skipped_warning(table) + interval_warning(result, args.resamples)
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
            f"Approach 2 on {counted(len(table), 'run')} of {table.source}; N = {n_convention}, loss = column "
            f"{columns['loss']!r}; {grouping}"
        )
        print_laws(out)
        for b in out["budgets"]:
            print(
                f"  C = {b['flops']:.3g}: {counted(b['n_runs'], 'run')}, N_opt = {b['n_opt']:.4g}, "
                f"D_opt = {b['d_opt']:.4g}, " + ("interior" if b["interior"] else f"NOT interior ({b['reason']})")
            )
        for b in out["budgets_left_out"]:
            print(f"  C = {b['flops']:.3g}: {counted(b['n_runs'], 'run')}, not fitted ({b['reason']})")
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
    from chinchilla.fit.table import counted

    warnings = []
    if which == "paper":
        law, source = PAPER_FIT, "the paper's Approach 3 fit"
    else:
        from chinchilla.fit.parametric import fit_table

        fit = fit_table(table, progress=progress("Approach 3 fit for the bias check", "starts"))
        if not fit.has_frontier:
            raise ValueError(
                f"--bias-check: the Approach 3 fit to these runs has alpha = {fit.alpha:.4g}, "
                f"beta = {fit.beta:.4g}: no frontier to compare with; try --bias-check paper"
            )
        law, source = fit.frontier, f"Approach 3 fitted to the same {counted(len(table), 'run')}"
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
