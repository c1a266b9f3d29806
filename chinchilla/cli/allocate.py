"""``chinchilla allocate``: compute-optimal model size and tokens from a fitted law (default: the paper's).

Three allocations, each printed with its name: the 6ND frontier of L(N, D) = E + A/N^alpha + B/D^beta (default),
the data-constrained one (``--law data_constrained --unique-tokens U``, Muennighoff et al. 2023) and the
inference-aware one (``--inference-tokens``, Sardana et al. 2024).
"""

from __future__ import annotations

import argparse

from chinchilla.cli import checks
from chinchilla.cli.usage import strict

LAW_FLAGS: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
DATA_CONSTRAINED_FLAGS: tuple[str, ...] = ("R_D_star", "R_N_star")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = strict(
        subparsers.add_parser(
            "allocate",
            help="compute-optimal N and D for a FLOP budget (and the inverse) from L(N, D) = E + A/N^alpha + B/D^beta",
            description="Compute-optimal allocation (Hoffmann et al. 2022, Approach 3): N_opt(C) = G (C/6)^a, "
            "D_opt(C) = (C/6)^b / G with G = (alpha A / (beta B))^(1/(alpha+beta)), a = beta/(alpha+beta), "
            "b = alpha/(alpha+beta). Without law flags it uses the paper's unrounded fit (for --law "
            "data_constrained, Muennighoff et al. 2023's released fit). --unique-tokens gives the "
            "data-constrained allocation; --inference-tokens the inference-aware one (Sardana et al. 2024).",
        )
    )
    parser.add_argument(
        "--flops",
        type=checks.number(
            1e3, 1e40, "below, N_opt and D_opt are a few units; above, 1e14 times the paper's Gopher budget"
        ),
        help="FLOP budget C",
    )
    parser.add_argument(
        "--params",
        type=checks.number(1e3, 1e18, "below, the budget is a few FLOPs; above, its FLOPs approach float64 overflow"),
        help="inverse: the budget and tokens at which N parameters are compute-optimal",
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="projections for the sizes of Table 3 / A3 (400M ... 10T parameters), beside Table "
        "A3's published Approach 3 column",
    )
    parser.add_argument(
        "--ladder",
        help="with --flops: the best shape of a zoo ladder (e.g. chinchilla) under the exact Appendix F FLOP count",
    )
    parser.add_argument(
        "--law",
        choices=("chinchilla", "data_constrained"),
        default="chinchilla",
        help="chinchilla (default) or data_constrained (Muennighoff et al. 2023; needs --unique-tokens)",
    )
    parser.add_argument(
        "--unique-tokens",
        type=checks.number(1.0, 1e30, "a token count"),
        metavar="U",
        help="unique tokens available (--law data_constrained): N, D minimising the law at --flops",
    )
    parser.add_argument(
        "--inference-tokens",
        type=checks.number(0.0, 1e30, "a token count"),
        metavar="D_INF",
        help="tokens the model will serve: N, D minimising 6ND + 2N*D_INF at --target-loss (or at "
        "the loss the 6ND frontier reaches at --flops)",
    )
    parser.add_argument(
        "--target-loss",
        type=checks.number(1e-12, 1e30, "a loss: finite and positive"),
        help="with --inference-tokens: the loss to reach",
    )
    law = parser.add_argument_group("law (all five, or none for the paper's fit; data_constrained: all seven)")
    for name in LAW_FLAGS:
        law.add_argument(
            f"--{name}",
            type=checks.number(0.0 if name == "E" else 1e-12, 1e30, "a law coefficient: finite and positive"),
        )
    for name in DATA_CONSTRAINED_FLAGS:
        law.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=checks.number(1e-12, 1e30, "a law coefficient: finite and positive"),
        )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chinchilla.cli.output import json_safe, print_json
    from chinchilla.fit.allocate import (
        FRONTIER_KIND,
        MIN_MODEL_PARAMS,
        MIN_TRAINING_TOKENS,
        MUENNIGHOFF_FIT,
        MUENNIGHOFF_FIT_RANGE,
        PAPER_FIT,
        PAPER_FIT_RANGE,
        ChinchillaParams,
        DataConstrainedParams,
        allocation,
        check_physical,
        compare_table_a3,
        data_constrained_allocation,
        domain_warnings,
        exact_flops_optimum,
        inference_aware_allocation,
        projections,
    )

    if args.flops is None and args.params is None and not args.table and args.inference_tokens is None:
        raise ValueError("give --flops C, --params N, --inference-tokens D_INF and/or --table")
    if args.ladder and args.flops is None:
        raise ValueError("--ladder needs --flops")
    constrained = args.law == "data_constrained"
    if constrained and (args.flops is None or args.unique_tokens is None):
        raise ValueError(
            "--law data_constrained needs --flops C and --unique-tokens U (its allocation depends on the unique data)"
        )
    frontier_only = [
        flag
        for flag, used in (
            ("--params", args.params is not None),
            ("--table", args.table),
            ("--ladder", bool(args.ladder)),
            ("--inference-tokens", args.inference_tokens is not None),
        )
        if used
    ]
    if constrained and frontier_only:
        raise ValueError(
            f"{', '.join(frontier_only)} {'uses' if len(frontier_only) == 1 else 'use'} the 6ND frontier (unlimited "
            "unique data), not the "
            "data-constrained law; drop --law data_constrained for them"
        )
    if args.unique_tokens is not None and not constrained:
        raise ValueError("--unique-tokens needs --law data_constrained")
    if args.target_loss is not None and args.inference_tokens is None:
        raise ValueError("--target-loss goes with --inference-tokens")
    names = LAW_FLAGS + (DATA_CONSTRAINED_FLAGS if constrained else ())
    extra = [
        f"--{n.replace('_', '-')}" for n in DATA_CONSTRAINED_FLAGS if not constrained and getattr(args, n) is not None
    ]
    if extra:
        raise ValueError(f"{', '.join(extra)} belong to --law data_constrained")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if given and len(given) < len(names):
        missing = [f"--{name.replace('_', '-')}" for name in names if name not in given]
        raise ValueError(
            f"give all {'five' if len(names) == 5 else 'seven'} law flags or none (for the published "
            "fit); missing " + ", ".join(missing)
        )
    if constrained:
        dc = DataConstrainedParams(**given, source="given on the command line") if given else MUENNIGHOFF_FIT
        params = dc.chinchilla
        out: dict[str, object] = {"law": dc.to_dict(), "law_source": dc.source}
    else:
        params = ChinchillaParams(**given, source="given on the command line") if given else PAPER_FIT
        out = {"law": params.to_dict(), "law_source": params.source}
    warnings: list[str] = []
    if args.flops is not None:
        if constrained:
            check_physical(MIN_MODEL_PARAMS, MIN_TRAINING_TOKENS, args.unique_tokens)  # U itself, before solving
        out.update(
            data_constrained_allocation(dc, args.flops, args.unique_tokens)
            if constrained
            else {"kind": FRONTIER_KIND, **allocation(params, args.flops)}
        )
        check_physical(
            out["n_opt"],
            out["d_opt"],
            args.unique_tokens if constrained else None,
            what=f"{out['kind']} allocation at C = {args.flops:.3g} FLOPs",
        )
        fitted = None if given else MUENNIGHOFF_FIT_RANGE if constrained else PAPER_FIT_RANGE
        if fitted is not None:
            out["fitted_range"] = fitted.to_dict()
            warnings += domain_warnings(
                fitted, n_opt=out["n_opt"], d_opt=out["d_opt"], flops=args.flops, epochs=out.get("epochs")
            )
        else:
            out["fitted_range"] = None
    if args.inference_tokens is not None:
        target = args.target_loss
        if target is None:
            if args.flops is None:
                raise ValueError(
                    "--inference-tokens needs --target-loss L (or --flops C: the loss the 6ND frontier reaches at C)"
                )
            target = float(params.loss_opt(args.flops))
        out["inference_aware"] = inference_aware_allocation(params, target, args.inference_tokens)
        out["inference_aware"]["without_inference"] = inference_aware_allocation(params, target, 0.0)
    if args.params is not None:
        out["inverse"] = {
            "params": args.params,
            "flops": float(params.flops_for_params(args.params)),
            "tokens": float(params.tokens_for_params(args.params)),
        }
    if args.table:
        out["projections"] = compare_table_a3(projections(params))
    if args.ladder:
        from chinchilla import zoo

        out["exact_flops"] = exact_flops_optimum(params, args.flops, zoo.ladder(args.ladder)).to_dict()
    out["warnings"] = warnings
    if args.json:
        print_json(json_safe(out))
    else:
        _print(out)
    return 0


def _print(out: dict) -> None:
    law = out["law"]
    print(
        f"law: E={law['E']:.6g} A={law['A']:.6g} B={law['B']:.6g} alpha={law['alpha']:.6g} "
        f"beta={law['beta']:.6g}"
        + (f" R_D*={law['R_D_star']:.6g} R_N*={law['R_N_star']:.6g}" if "R_D_star" in law else "")
        + f"  ({out['law_source']})"
    )
    if "G" in law:
        print(f"     G={law['G']:.6g}  a={law['a']:.4f}  b={law['b']:.4f}")
    if "n_opt" in out:
        print(
            f"C = {out['flops']:.4g} FLOPs, {out['kind']}: N_opt = {out['n_opt']:.4g} parameters, "
            f"D_opt = {out['d_opt']:.4g} tokens ({out['tokens_per_param']:.3g} tokens/param), "
            f"loss {out['loss_opt']:.4f}"
        )
        if "unique_tokens" in out:
            print(
                f"  {out['epochs']:.3g} epochs of U = {out['unique_tokens']:.4g} unique tokens; with unlimited "
                f"unique data the 6ND frontier would say N = {out['unconstrained_n_opt']:.4g}, "
                f"D = {out['unconstrained_d_opt']:.4g}"
            )
    if "inference_aware" in out:
        inf, free = out["inference_aware"], out["inference_aware"]["without_inference"]
        print(
            f"target loss {inf['target_loss']:.4f}, {inf['inference_tokens']:.4g} inference tokens, "
            f"{inf['kind']}: N = {inf['n_opt']:.4g}, D = {inf['d_opt']:.4g} ({inf['tokens_per_param']:.3g} "
            f"tokens/param), training {inf['train_flops']:.4g} + inference {inf['inference_flops']:.4g} = "
            f"{inf['total_flops']:.4g} FLOPs"
        )
        print(
            f"  without inference (compute-optimal for that loss): N = {free['n_opt']:.4g}, "
            f"D = {free['d_opt']:.4g}, training {free['train_flops']:.4g} FLOPs"
        )
    if "inverse" in out:
        inv = out["inverse"]
        print(
            f"N = {inv['params']:.4g} parameters is compute-optimal at C = {inv['flops']:.4g} FLOPs, "
            f"D = {inv['tokens']:.4g} tokens"
        )
    if "projections" in out:
        print("projections (ours) beside Table A3, Approach 3 (published); difference = ours / published - 1")
        print(
            f"{'parameters':>12} {'FLOPs':>10} {'published':>10} {'diff':>7} {'tokens':>10} {'published':>10} "
            f"{'diff':>7}"
        )
        for row in out["projections"]:
            print(
                f"{row['params']:>12.3g} {row['flops']:>10.3g} {row['published_flops']:>10.3g} "
                f"{row['flops_rel_diff']:>+7.1%} {row['tokens']:>10.3g} {row['published_tokens']:>10.3g} "
                f"{row['tokens_rel_diff']:>+7.1%}"
            )
    if "exact_flops" in out:
        exact = out["exact_flops"]
        best = exact["best"]
        edge = " (at the ladder's edge: the optimum may lie outside)" if exact["at_boundary"] else ""
        print(
            f"exact Appendix F FLOPs: best shape {best['name']} ({best['params']:,} parameters, "
            f"{best['tokens']:.4g} tokens, loss {best['loss']:.4f}){edge}"
        )
    for line in out.get("warnings", []):
        print(f"warning: {line}")
