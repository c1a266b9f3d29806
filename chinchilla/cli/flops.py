"""``chinchilla flops``: parameters and training FLOPs of a shape, or of a whole ladder of the zoo."""

from __future__ import annotations

import argparse

from chinchilla.cli.usage import strict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = strict(
        subparsers.add_parser(
            "flops",
            help="parameters and Appendix F FLOPs of a decoder shape or of a zoo ladder",
            description="Parameters (total, embedding, non-embedding, per group) and FLOPs per sequence (Appendix F, "
            "6ND, Kaplan, Table A4 convention) of one shape, or the shapes of a zoo ladder.",
        )
    )
    shape = parser.add_argument_group("shape (all seven, unless --model or --zoo)")
    for flag in ("--n-layers", "--d-model", "--ffw-size", "--n-heads", "--kv-size"):
        shape.add_argument(flag, type=int)
    shape.add_argument(
        "--n-kv-heads",
        type=int,
        help="key/value heads for grouped- (fewer than --n-heads) or multi-query (1) attention; default --n-heads",
    )
    shape.add_argument("--vocab-size", type=int, default=32_000)
    shape.add_argument("--seq-len", type=int, default=2048)
    shape.add_argument(
        "--architecture",
        choices=("rotary", "chinchilla"),
        default="rotary",
        help="rotary: the model this project trains; chinchilla: the paper's (relative positions)",
    )
    shape.add_argument("--tie-embeddings", action="store_true", help="share the input embedding and output head")
    parser.add_argument("--model", help="a zoo shape by name, e.g. tiny-00025k or chinchilla-00074M")
    parser.add_argument("--zoo", help="list a ladder: chinchilla (Table A9), tiny (CPU), gpu")
    parser.add_argument(
        "--convention",
        choices=("appendix_f", "six_nd", "kaplan", "table_a4", "maxtext", "porian", "deepseek"),
        help="also report training FLOPs per token and per sequence under this counting convention "
        "(appendix_f: the paper's; six_nd: 6N; kaplan: 6 N_non-embedding; table_a4; maxtext: "
        "every matmul, causal half of attention; porian: 6N + 6*seq*width*depth, N with the "
        "head; deepseek: M = 72 L d^2 + 12 L d seq, generalised); with --zoo, the ladder's "
        "FLOPs per token under it",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chinchilla import flops, zoo
    from chinchilla.cli.output import print_json
    from chinchilla.config import ModelConfig

    shape_flags = [flag for flag, default in SHAPE_DEFAULTS.items() if getattr(args, flag) != default]
    if args.zoo and (args.model or shape_flags):
        raise ValueError(
            f"--zoo lists a ladder; {'--model' if args.model else _flags(shape_flags)} would be ignored: "
            "give one of --zoo, --model or a shape"
        )
    if args.model and shape_flags:
        raise ValueError(
            f"--model {args.model} takes the zoo shape as it is; {_flags(shape_flags)} would be "
            "ignored: give --model, or the whole shape without it"
        )
    if args.zoo:
        rows = [_zoo_row(config, args.convention or "appendix_f") for config in zoo.ladder(args.zoo)]
        if args.json:
            print_json(rows)
        else:
            _print_table(
                rows,
                ("name", "n_layers", "d_model", "ffw_size", "n_heads", "kv_size", "params", "non_embedding_params"),
            )
        return 0
    if args.model:
        config = zoo.get_model(args.model)
    else:
        missing = [
            flag for flag in ("n_layers", "d_model", "ffw_size", "n_heads", "kv_size") if getattr(args, flag) is None
        ]
        if missing:
            raise ValueError(
                "give --model NAME, --zoo LADDER, or the whole shape; missing "
                + ", ".join("--" + m.replace("_", "-") for m in missing)
            )
        config = ModelConfig(
            n_layers=args.n_layers,
            d_model=args.d_model,
            ffw_size=args.ffw_size,
            n_heads=args.n_heads,
            kv_size=args.kv_size,
            vocab_size=args.vocab_size,
            seq_len=args.seq_len,
            architecture=args.architecture,
            tie_embeddings=args.tie_embeddings,
            n_kv_heads=args.n_kv_heads,
        )
    info = flops.summary(config)
    if args.convention:
        per_token = flops.flops_per_token(config, args.convention)
        info.update(
            {
                "convention": args.convention,
                "convention_flops_per_token": per_token,
                "convention_flops_per_sequence": per_token * config.seq_len,
            }
        )
    if args.json:
        print_json(info)
    else:
        width = max(len(key) for key in info)
        for key, value in info.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for sub, sub_value in value.items():
                    print(f"  {sub:<{width - 2}}  {sub_value:>24,}")
            elif isinstance(value, float) and value < 100:
                print(f"{key:<{width}}  {value:>24,.4f}")
            elif isinstance(value, float):  # a whole count of FLOPs with separators, like the integers
                print(
                    f"{key:<{width}}  {value:>24,.0f}"
                    if value.is_integer() and value < 1e18
                    else f"{key:<{width}}  {value:>24.6g}"
                )
            elif isinstance(value, int) and not isinstance(value, bool):
                print(f"{key:<{width}}  {value:>24,}")
            else:
                print(f"{key:<{width}}  {value!s:>24}")
    return 0


# The shape flags and their defaults: any other value next to --model or --zoo would be silently ignored.
SHAPE_DEFAULTS = {
    "n_layers": None,
    "d_model": None,
    "ffw_size": None,
    "n_heads": None,
    "kv_size": None,
    "vocab_size": 32_000,
    "seq_len": 2048,
    "architecture": "rotary",
    "tie_embeddings": False,
    "n_kv_heads": None,
}


def _flags(names: list[str]) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in names)


def _zoo_row(config, convention: str) -> dict:
    from chinchilla import flops

    params = flops.param_count(config)
    return {
        "name": config.name,
        "d_model": config.d_model,
        "ffw_size": config.ffw_size,
        "kv_size": config.kv_size,
        "n_heads": config.n_heads,
        "n_layers": config.n_layers,
        "vocab_size": config.vocab_size,
        "seq_len": config.seq_len,
        "architecture": config.architecture,
        "params": params.total,
        "non_embedding_params": params.non_embedding,
        "training_flops_per_token": flops.flops_per_token(config, convention),
        "convention": convention,
    }


def _print_table(rows: list[dict], columns: tuple[str, ...]) -> None:
    widths = {
        c: max(len(c), *(len(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c])) for r in rows)) for c in columns
    }
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join((f"{row[c]:,}" if isinstance(row[c], int) else str(row[c])).rjust(widths[c]) for c in columns))
