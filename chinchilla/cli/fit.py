"""``chinchilla fit <approach>``: fit scaling laws to a CSV of runs (or the shipped reference points).

Sub-verbs, one per approach, each added by a ``_register_<approach>(approaches)`` function below:

- ``parametric``: Approach 3, L(N, D) = E + A / N^alpha + B / D^beta by L-BFGS from the paper's 4,500-start grid
  (``chinchilla.fit.parametric``), with optional bootstrap intervals and a held-out extrapolation check.
- ``approach1``: the lower envelope of a sweep directory's training curves (``chinchilla.fit.envelope``).
- ``approach2``: IsoFLOP parabolas on a sweep directory or a results CSV (``chinchilla.fit.isoflop``).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit scaling laws: Approach 3 (parametric) to a CSV, Approaches 1 and 2 to a sweep directory",
        description="Fit scaling laws to training runs from a CSV file, or to the paper's points shipped with the "
                    "package (--reference epoch).",
    )
    approaches = parser.add_subparsers(dest="approach", metavar="<approach>", required=True)
    _register_parametric(approaches)
    _register_approach1(approaches)
    _register_approach2(approaches)


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
    from chinchilla.cli.output import print_json
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
    if fit.has_frontier:
        out["allocation"] = allocation(fit.frontier, args.budget)
    else:
        out["allocation"] = None
        out["note"] = f"alpha={fit.alpha:.4g}, beta={fit.beta:.4g}: no compute-optimal frontier"
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
            "best_start", "note", "warnings", "parameter_status", "best_start_on_grid_edge"}
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
    for line in out.get("warnings", []) + list(out.get("bootstrap", {}).get("interval_flags", {}).values()):
        print(f"  warning: {line}")
    alloc = out["allocation"]
    if alloc is None:
        print(f"  {out['note']}")
    else:
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


def _register_approach1(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "approach1", help="Approach 1: lower envelope of a sweep's training curves -> N_opt ∝ C^a, D_opt ∝ C^b",
        description="Approach 1 of Hoffmann et al. 2022 on a sweep directory (runs/*/metrics.jsonl): smooth each "
                    "curve, take the lowest loss at log-spaced FLOP values, fit N_opt and D_opt as power laws of C, "
                    "with 10th-90th percentile intervals over resamples of 80% of the runs.")
    parser.add_argument("sweep_dir")
    parser.add_argument("--convention", choices=("non_embedding", "total"), default="non_embedding",
                        help="which parameters N counts (default non_embedding)")
    parser.add_argument("--groups", nargs="+", help="only runs of these plan groups (default: all)")
    parser.add_argument("--window", type=int, default=10, help="Gaussian smoothing window in logged steps")
    parser.add_argument("--points", type=int, default=1500, help="log-spaced FLOP values (default 1500)")
    parser.add_argument("--resamples", type=int, default=100, help="bootstrap resamples (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_approach1)


def run_approach1(args: argparse.Namespace) -> int:
    from chinchilla.cli.output import print_json
    from chinchilla.fit.envelope import fit_envelope
    from chinchilla.sweep.results import load_curves

    curves = load_curves(args.sweep_dir, convention=args.convention, groups=args.groups)
    result = fit_envelope(curves, n_points=args.points, window=args.window, n_resamples=args.resamples,
                          seed=args.seed)
    out = {**result.to_dict(), "convention": args.convention, "n_curves": len(curves)}
    if args.json:
        print_json(out)
    else:
        print(f"Approach 1 on {len(curves)} curves of {args.sweep_dir} (N = {args.convention} parameters)")
        _print_laws(out)
        print(f"  {out['late_fraction']:.0%} of the selected points lie in the last 15% of their run; "
              f"{len(out['selected_runs'])} runs on the envelope")
    return 0


def _register_approach2(approaches: argparse._SubParsersAction) -> None:
    parser = approaches.add_parser(
        "approach2", help="Approach 2: IsoFLOP parabolas -> N_opt ∝ C^a, D_opt ∝ C^b",
        description="Approach 2 of Hoffmann et al. 2022: per FLOP budget, a parabola of final loss in ln N; its "
                    "vertex is that budget's N_opt; power laws over the budgets whose minimum is interior. PATH is "
                    "a sweep directory (its IsoFLOP runs) or a CSV with one run per row.")
    parser.add_argument("path", help="a sweep directory, or a CSV file")
    parser.add_argument("--convention", choices=("non_embedding", "total"), default="non_embedding",
                        help="sweep directory: which parameters N counts (default non_embedding)")
    parser.add_argument("--loss", default="eval_loss",
                        help="sweep directory: final_train_loss or eval_loss (default); CSV: the loss column")
    parser.add_argument("--group", default="isoflop", help="sweep directory: the IsoFLOP plan group")
    parser.add_argument("--budget-col", default="budget", help="CSV: column grouping runs by FLOP budget")
    parser.add_argument("--n-col", default="n_params", help="CSV: parameter count column")
    parser.add_argument("--tokens-col", default="tokens", help="CSV: training tokens column")
    parser.add_argument("--flops-col", help="CSV: actual training FLOPs column (optional)")
    parser.add_argument("--neighbours", type=int, help="fit each parabola to this many sizes either side of the "
                                                         "lowest loss (default: all sizes)")
    parser.add_argument("--resamples", type=int, default=100, help="bootstrap resamples (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_approach2)


def run_approach2(args: argparse.Namespace) -> int:
    import os

    from chinchilla.cli.output import print_json
    from chinchilla.fit.isoflop import fit_isoflop
    from chinchilla.sweep import store

    if os.path.isdir(args.path) or "://" in args.path:
        from chinchilla.sweep.results import collect_results

        rows = [r for r in collect_results(args.path) if r["status"] == "finished" and r["group"] == args.group
                and r.get(args.loss) is not None]
        n_col = {"total": "n_params", "non_embedding": "non_embedding_params"}[args.convention]
        columns = ([r["budget"] for r in rows], [r[n_col] for r in rows], [r["tokens"] for r in rows],
                   [r[args.loss] for r in rows], [r["flops"] for r in rows])
    else:
        raw = store.read_csv(args.path)
        wanted = [args.budget_col, args.n_col, args.tokens_col, args.loss] + ([args.flops_col] if args.flops_col
                                                                                 else [])
        missing = [c for c in wanted if raw and c not in raw[0]]
        if missing:
            raise ValueError(f"{args.path}: no column(s) {missing}; columns are {list(raw[0])}")
        rows = [r for r in raw if all(r[c] not in ("", None) for c in wanted)]
        columns = tuple([float(r[c]) for r in rows] for c in wanted[:4]) + (
            [float(r[args.flops_col]) for r in rows] if args.flops_col else None,)
    if not rows:
        raise ValueError(f"{args.path}: no runs with a {args.loss!r} loss")
    budget, n, d, loss, flops = columns
    result = fit_isoflop(budget, n, d, loss, flops=flops, neighbours=args.neighbours, n_resamples=args.resamples,
                         seed=args.seed)
    out = result.to_dict()
    if args.json:
        print_json(out)
    else:
        print(f"Approach 2 on {len(rows)} runs of {args.path}")
        _print_laws(out)
        for b in out["budgets"]:
            print(f"  C = {b['flops']:.3g}: {b['n_runs']} runs, N_opt = {b['n_opt']:.4g}, D_opt = {b['d_opt']:.4g}, "
                  + ("interior" if b["interior"] else f"NOT interior ({b['reason']})"))
    return 0


def _print_laws(out: dict) -> None:
    for key, law in (("a", "n_law"), ("b", "d_law")):
        low, high = out[f"{key}_interval"]
        print(f"  {key} = {out[key]:.4f}   [{low:.4f}, {high:.4f}] (10th-90th percentiles, "
              f"{out['n_resamples']} resamples)   coefficient {out[law]['coefficient']:.4g}")
