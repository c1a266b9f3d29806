"""``chinchilla fit <approach>``: fit scaling laws to a CSV of runs (or the shipped reference points).

Sub-verbs, one per approach, each added by a ``_register_<approach>(approaches)`` function below:

- ``parametric``: Approach 3, L(N, D) = E + A / N^alpha + B / D^beta by L-BFGS from the paper's 4,500-start grid
  (``chinchilla.fit.parametric``), with optional bootstrap intervals and a held-out extrapolation check.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit scaling laws to a table of runs (Approach 3: parametric)",
        description="Fit scaling laws to training runs from a CSV file, or to the paper's points shipped with the "
                    "package (--reference epoch).",
    )
    approaches = parser.add_subparsers(dest="approach", metavar="<approach>", required=True)
    _register_parametric(approaches)


def _register_parametric(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "parametric",
        help="Approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta (summed Huber loss, 4,500-start L-BFGS grid)",
        description="Approach 3 of Hoffmann et al. 2022: fit L(N, D) = E + A/N^alpha + B/D^beta by minimising the "
                    "Huber loss (delta 1e-3) of log-loss residuals with L-BFGS from the paper's 4,500-start grid, in "
                    "float64. Give a CSV and its columns, or --reference epoch for the 245 points of Figure 4 as "
                    "extracted by Besiroglu et al. 2024 (5 highest-loss runs dropped by default, as they do).",
    )
    parser.add_argument("path", nargs="?", help="CSV file with a header row (one run per row)")
    parser.add_argument("--reference", choices=("epoch",), help="fit the shipped reference points instead of PATH")
    parser.add_argument("--n-col", help="column with the parameter count N")
    columns = parser.add_mutually_exclusive_group()
    columns.add_argument("--tokens-col", help="column with training tokens D")
    columns.add_argument("--flops-col", help="column with training FLOPs C (then D = C / 6N)")
    parser.add_argument("--loss-col", help="column with the final loss")
    parser.add_argument("--unique-tokens-col", help="column with unique tokens U_D (for --law data_constrained)")
    parser.add_argument("--law", choices=("chinchilla", "data_constrained"), default="chinchilla",
                        help="chinchilla (default) or data_constrained (Muennighoff et al. 2023)")
    parser.add_argument("--drop-highest-loss", type=int, metavar="K",
                        help="drop the K runs of highest loss first (default 5 for --reference epoch, else 0)")
    parser.add_argument("--reduction", choices=("sum", "mean"), default="sum",
                        help="sum the Huber loss over runs (default, the paper's equation) or average it (the "
                             "paper's loss scale, which stops L-BFGS early)")
    parser.add_argument("--top-k", default="auto", metavar="K|all|auto",
                        help="run L-BFGS from the K best-ranked starts of the grid; 'all' runs every start; 'auto' "
                             "(default) = 128 for sum, all for mean")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="R", help="add intervals from R resamples")
    parser.add_argument("--bootstrap-scheme", choices=("resample", "subsample"), default="resample",
                        help="resample runs with replacement (default) or subsample --fraction without")
    parser.add_argument("--fraction", type=float, default=0.8, help="subsample fraction (default 0.8, Table 2)")
    parser.add_argument("--percentiles", type=float, nargs=2, default=(2.5, 97.5), metavar=("LOW", "HIGH"),
                        help="bootstrap interval percentiles (default 2.5 97.5; Table 2 uses 10 90)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--budget", type=float, default=5.76e23,
                        help="FLOP budget for the allocation and tokens-per-parameter (default Gopher's 5.76e23)")
    parser.add_argument("--holdout-flops", type=float, metavar="C",
                        help="also fit on runs below C FLOPs and report the error on the runs at or above it")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_parametric)


def run_parametric(args: argparse.Namespace) -> int:
    from chinchilla.cli import print_json
    from chinchilla.fit import get_law
    from chinchilla.fit.allocate import allocation
    from chinchilla.fit.parametric import fit_table
    from chinchilla.fit.table import REFERENCE_DROP_HIGHEST_LOSS

    table = _load_table(args)
    drop = args.drop_highest_loss
    if drop is None:
        drop = REFERENCE_DROP_HIGHEST_LOSS if args.reference else 0
    table = table.drop_highest_loss(drop)
    law = get_law(args.law)
    options = {"law": law, "reduction": args.reduction, "top_k": _top_k(args.top_k)}
    fit = fit_table(table, **options)
    out = {**fit.to_dict(), "source": table.source, "drop_highest_loss": drop}
    out["allocation"] = allocation(fit.frontier, args.budget)
    if args.bootstrap:
        from chinchilla.fit.bootstrap import bootstrap_table

        boot = bootstrap_table(table, n_resamples=args.bootstrap, seed=args.seed, scheme=args.bootstrap_scheme,
                               fraction=args.fraction, budget_flops=args.budget, fit=fit, law=law,
                               reduction=args.reduction)
        out["bootstrap"] = boot.to_dict(percentiles=tuple(args.percentiles))
    if args.holdout_flops is not None:
        from chinchilla.fit.holdout import holdout_check

        holdout = holdout_check(table, args.holdout_flops, **options).to_dict()
        holdout["fit"] = {k: holdout["fit"][k] for k in (*law.natural(fit.theta), "objective", "a", "b")}
        out["holdout"] = holdout
    if args.json:
        print_json(out)
    else:
        _print_fit(out)
    return 0


def _load_table(args: argparse.Namespace):
    from chinchilla.fit.table import read_csv, reference_table

    if args.reference:
        if args.path:
            raise ValueError("give a CSV path or --reference, not both")
        return reference_table(args.reference)
    if not args.path:
        raise ValueError("give a CSV path (with --n-col, --tokens-col or --flops-col, --loss-col) or --reference epoch")
    missing = [flag for flag, value in (("--n-col", args.n_col), ("--loss-col", args.loss_col)) if value is None]
    if args.tokens_col is None and args.flops_col is None:
        missing.append("--tokens-col or --flops-col")
    if missing:
        raise ValueError(f"{args.path}: missing {', '.join(missing)}")
    return read_csv(args.path, n_col=args.n_col, loss_col=args.loss_col, tokens_col=args.tokens_col,
                    flops_col=args.flops_col, unique_tokens_col=args.unique_tokens_col)


def _top_k(value: str) -> int | str | None:
    if value in ("auto", "all"):
        return None if value == "all" else "auto"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--top-k {value!r}: give a positive integer, 'all' or 'auto'") from None


def _print_fit(out: dict) -> None:
    print(f"{out['law']} law, {out['reduction']} reduction, {out['n_points']} runs ({out['source']})")
    skip = {"law", "reduction", "n_points", "source", "allocation", "bootstrap", "holdout", "stop_reasons",
            "best_start"}
    intervals = out.get("bootstrap", {}).get("intervals", {})
    for key, value in out.items():
        if key in skip:
            continue
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        if key in intervals:
            low, high = intervals[key]
            text += f"   [{low:.4g}, {high:.4g}]"
        print(f"  {key:<18} {text}")
    alloc = out["allocation"]
    print(f"  at C = {alloc['flops']:.3g} FLOPs: N_opt = {alloc['n_opt']:.4g}, D_opt = {alloc['d_opt']:.4g} "
          f"({alloc['tokens_per_param']:.3g} tokens/param)")
    if "bootstrap" in out:
        boot = out["bootstrap"]
        low, high = boot["percentiles"]
        print(f"  bootstrap: {boot['n_resamples']} x {boot['scheme']}, percentiles {low:g}-{high:g}: "
              + ", ".join(f"{k} [{v[0]:.4g}, {v[1]:.4g}]" for k, v in boot["intervals"].items()
                          if k in ("a", "b", "tokens_per_param")))
    if "holdout" in out:
        h = out["holdout"]
        print(f"  held out C >= {h['flops_threshold']:.3g}: {h['n_test']} runs, rmse(log L) "
              f"{h['test_rmse_log']:.4f}, max |rel. error| {h['test_max_abs_rel_error']:.4f}")
