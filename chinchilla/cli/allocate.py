"""``chinchilla allocate``: compute-optimal model size and tokens from a fitted L(N, D) (default: the paper's)."""

from __future__ import annotations

import argparse

from chinchilla.cli import checks

LAW_FLAGS: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "allocate",
        help="compute-optimal N and D for a FLOP budget (and the inverse) from L(N, D) = E + A/N^alpha + B/D^beta",
        description="Compute-optimal allocation (Hoffmann et al. 2022, Approach 3): N_opt(C) = G (C/6)^a, "
                    "D_opt(C) = (C/6)^b / G with G = (alpha A / (beta B))^(1/(alpha+beta)), a = beta/(alpha+beta), "
                    "b = alpha/(alpha+beta). Without law flags it uses the paper's unrounded fit.",
    )
    parser.add_argument("--flops", type=checks.number(1e3, 1e40, "below, N_opt and D_opt are a few units; above, "
                                                      "1e14 times the paper's Gopher budget"),
                        help="FLOP budget C (6ND frontier)")
    parser.add_argument("--params", type=checks.number(1e3, 1e18, "below, the budget is a few FLOPs; above, "
                                                       "its FLOPs approach float64 overflow"),
                        help="inverse: the budget and tokens at which N parameters are compute-optimal")
    parser.add_argument("--table", action="store_true",
                        help="projections for the sizes of Table 3 / A3 (400M ... 10T parameters)")
    parser.add_argument("--ladder", help="with --flops: the best shape of a zoo ladder (e.g. chinchilla) under the "
                                         "exact Appendix F FLOP count")
    law = parser.add_argument_group("law (all five, or none for the paper's fit)")
    for name in LAW_FLAGS:
        law.add_argument(f"--{name}", type=checks.number(0.0 if name == "E" else 1e-12, 1e30,
                                                         "a law coefficient: finite and positive"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chinchilla.cli.output import print_json
    from chinchilla.fit.allocate import PAPER_FIT, ChinchillaParams, allocation, exact_flops_optimum, projections

    if args.flops is None and args.params is None and not args.table:
        raise ValueError("give --flops C, --params N and/or --table")
    if args.ladder and args.flops is None:
        raise ValueError("--ladder needs --flops")
    given = {name: getattr(args, name) for name in LAW_FLAGS if getattr(args, name) is not None}
    if given and len(given) < len(LAW_FLAGS):
        missing = [f"--{name}" for name in LAW_FLAGS if name not in given]
        raise ValueError(f"give all five law flags or none (for the paper's fit); missing {', '.join(missing)}")
    params = ChinchillaParams(**given, source="given on the command line") if given else PAPER_FIT
    out: dict[str, object] = {"law": params.to_dict(), "law_source": params.source}
    if args.flops is not None:
        out.update(allocation(params, args.flops))
    if args.params is not None:
        out["inverse"] = {"params": args.params, "flops": float(params.flops_for_params(args.params)),
                          "tokens": float(params.tokens_for_params(args.params))}
    if args.table:
        out["projections"] = projections(params)
    if args.ladder:
        from chinchilla import zoo

        out["exact_flops"] = exact_flops_optimum(params, args.flops, zoo.ladder(args.ladder)).to_dict()
    if args.json:
        print_json(out)
    else:
        _print(out)
    return 0


def _print(out: dict) -> None:
    law = out["law"]
    print(f"law: E={law['E']:.6g} A={law['A']:.6g} B={law['B']:.6g} alpha={law['alpha']:.6g} "
          f"beta={law['beta']:.6g}  ({out['law_source']})")
    print(f"     G={law['G']:.6g}  a={law['a']:.4f}  b={law['b']:.4f}")
    if "n_opt" in out:
        print(f"C = {out['flops']:.4g} FLOPs: N_opt = {out['n_opt']:.4g} parameters, D_opt = {out['d_opt']:.4g} "
              f"tokens ({out['tokens_per_param']:.3g} tokens/param), loss {out['loss_opt']:.4f}")
    if "inverse" in out:
        inv = out["inverse"]
        print(f"N = {inv['params']:.4g} parameters is compute-optimal at C = {inv['flops']:.4g} FLOPs, "
              f"D = {inv['tokens']:.4g} tokens")
    if "projections" in out:
        print(f"{'parameters':>12} {'FLOPs':>10} {'tokens':>10}")
        for row in out["projections"]:
            print(f"{row['params']:>12.3g} {row['flops']:>10.3g} {row['tokens']:>10.3g}")
    if "exact_flops" in out:
        exact = out["exact_flops"]
        best = exact["best"]
        edge = " (at the ladder's edge: the optimum may lie outside)" if exact["at_boundary"] else ""
        print(f"exact Appendix F FLOPs: best shape {best['name']} ({best['params']:,} parameters, "
              f"{best['tokens']:.4g} tokens, loss {best['loss']:.4f}){edge}")
