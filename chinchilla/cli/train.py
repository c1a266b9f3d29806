"""``chinchilla train``: one training run of a zoo model on a token (or FLOP) budget, resumable in its directory."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model for a token or FLOP budget (resumes an unfinished DIR, skips a finished one)",
        description="Train a zoo model on the embedded corpus (or another data set) for D tokens or C FLOPs. DIR "
                    "receives config.json, metrics.jsonl, checkpoints/ and summary.json. Rerunning the same command "
                    "resumes from the latest checkpoint; on a finished DIR it does nothing.",
    )
    parser.add_argument("--model", required=True, help="zoo model name, e.g. tiny-00025k (see `chinchilla flops "
                                                       "--zoo tiny`)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--tokens", type=_count, help="training tokens D, e.g. 2e6")
    budget.add_argument("--flops", type=float, help="training FLOPs C (Appendix F), converted to tokens exactly")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="global sequences per step (default 8)")
    parser.add_argument("--seq-len", type=int, help="context length (default: the model's)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument("--cycle-tokens", type=_count, help="cosine cycle length in tokens (default: the run's)")
    parser.add_argument("--dataset", default="embedded", help="'embedded' (offline) or a prepared TFDS name")
    parser.add_argument("--tokenizer", default="byte", help="'byte', 'sentencepiece:<vocab>' or a .model path")
    parser.add_argument("--data-dir", help="data cache / TFDS data directory")
    parser.add_argument("--log-every", type=int, default=10, help="steps between metrics.jsonl lines")
    parser.add_argument("--eval-every", type=int, help="steps between validation losses (default: at the end)")
    parser.add_argument("--steps-per-dispatch", type=int, default=16, help="optimizer steps per device call")
    parser.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor mesh sizes (one may be -1)")
    parser.add_argument("--peak-flops", type=float, help="dense peak FLOP/s of one device, for MFU on a chip "
                                                         "the data-sheet table does not know (e.g. 65e12)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _count(text: str) -> int:
    """An integer count written as 2000000, 2e6 or 2_000_000."""
    value = float(text.replace("_", ""))
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def run(args: argparse.Namespace) -> int:
    from chinchilla import zoo
    from chinchilla.cli.output import print_json
    from chinchilla.train import TrainConfig, train_run

    model = zoo.get_model(args.model)
    if args.seq_len is not None:
        model = model.replace(seq_len=args.seq_len)
    try:
        mesh = tuple(int(size) for size in args.mesh.split(","))
    except ValueError:
        raise ValueError(f"--mesh={args.mesh!r} must be three integers data,fsdp,tensor") from None
    options = dict(batch_size=args.batch_size, lr=args.lr, seed=args.seed, cycle_tokens=args.cycle_tokens,
                   dataset=args.dataset, tokenizer=args.tokenizer, data_dir=args.data_dir,
                   log_every=args.log_every, eval_every=args.eval_every,
                   steps_per_dispatch=args.steps_per_dispatch, mesh=mesh, peak_flops=args.peak_flops)
    if args.flops is not None:
        config = TrainConfig.from_flops(model, args.flops, **options)
    else:
        config = TrainConfig(model=model, tokens=args.tokens, **options)
    summary = train_run(config, args.out, progress=not args.quiet)
    print_json(summary)
    return 0 if summary["status"] == "finished" else 1
