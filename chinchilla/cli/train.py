"""``chinchilla train``: one training run of a zoo model on a token (or FLOP) budget, resumable in its directory."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator

from chinchilla.cli import checks

# Longer runs need --allow-long-run: 10x the ~1e6 steps of Chinchilla 70B itself (1.4T tokens at ~1.5M per step);
# a count beyond it is almost always a unit slip (FLOPs typed as tokens, a missing batch size).
MAX_STEPS = 10_000_000
LOG_FILE = "train.log"  # the libraries' log lines (orbax, absl) of a run: kept out of the terminal unless --verbose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model for a token or FLOP budget (resumes an unfinished DIR, skips a finished one)",
        description="Train a zoo model on the embedded corpus (or another data set) for D tokens or C FLOPs. DIR "
        "receives config.json, metrics.jsonl, checkpoints/ and summary.json. Rerunning the same command "
        "resumes from the latest checkpoint; on a finished DIR it does nothing.",
    )
    parser.add_argument(
        "--model", required=True, help="zoo model name, e.g. tiny-00025k (see `chinchilla flops --zoo tiny`)"
    )
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument(
        "--tokens",
        type=checks.count(1, 1e15, "1e15 tokens is more text than exists"),
        help="training tokens D, e.g. 2e6",
    )
    budget.add_argument(
        "--flops",
        type=checks.number(1.0, 1e30, "a training budget; the paper's largest is 5.76e23"),
        help="training FLOPs C (Appendix F), converted to tokens exactly",
    )
    parser.add_argument("--out", required=True, type=checks.directory(), help="run directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="global sequences per step (default 8)")
    parser.add_argument("--seq-len", type=int, help="context length (default: the model's)")
    parser.add_argument(
        "--lr",
        type=checks.number(1e-12, 10.0, "a peak learning rate"),
        default=3e-3,
        help="peak learning rate (default 3e-3)",
    )
    parser.add_argument(
        "--cycle-tokens",
        type=checks.count(1, 1e15, "a cycle length in tokens"),
        help="cosine cycle length in tokens (default: the run's)",
    )
    parser.add_argument(
        "--schedule",
        choices=("cosine", "wsd"),
        default="cosine",
        help="learning-rate schedule: cosine (default, the paper's: one cycle per run) or wsd "
        "(warmup-stable-decay: a constant rate, then a cooldown over the last "
        "--cooldown-fraction of the run; docs/wsd.md)",
    )
    parser.add_argument(
        "--cooldown-fraction",
        type=checks.number(0.0, 1.0, "the share of the run that decays"),
        help="wsd: the cooldown's share of the run (default 0.2; 0: a constant rate after warm-up, "
        "a trunk that other runs branch off)",
    )
    parser.add_argument(
        "--cooldown-shape",
        choices=("1-sqrt", "linear", "cosine"),
        help="wsd: the cooldown's shape (default 1-sqrt, Hägele et al.'s best)",
    )
    parser.add_argument(
        "--warmup-tokens",
        type=checks.count(0, 1e15, "a warm-up length in tokens"),
        help="warm-up length in tokens (default: 10%% of the run); runs that share a trunk need one "
        "warm-up whatever their length",
    )
    parser.add_argument(
        "--init-from",
        metavar="RUN_DIR[:STEP]",
        help="start from another run's state: its last checkpoint, or its checkpoint at STEP (a "
        "wsd trunk's branch point), continuing its data order and optimizer state; this run "
        "must be that run but for its length and cooldown",
    )
    parser.add_argument(
        "--save-steps",
        metavar="STEP[,STEP...]",
        help="steps at which to keep a checkpoint for good (under DIR/branch_points): where "
        "branches will start (--init-from DIR:STEP)",
    )
    parser.add_argument(
        "--dataset",
        default="embedded",
        help="'embedded' (offline), 'files:GLOB[?text_key=NAME]' (your .txt/.jsonl/.parquet shards, "
        "docs/data.md) or a prepared TFDS name",
    )
    parser.add_argument("--tokenizer", default="byte", help="'byte', 'sentencepiece:<vocab>' or a .model path")
    parser.add_argument("--data-dir", type=checks.directory(), help="data cache / TFDS data directory")
    parser.add_argument("--log-every", type=int, default=10, help="steps between metrics.jsonl lines")
    parser.add_argument("--eval-every", type=int, help="steps between validation losses (default: at the end)")
    parser.add_argument("--steps-per-dispatch", type=int, default=16, help="optimizer steps per device call")
    parser.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor mesh sizes (one may be -1)")
    parser.add_argument(
        "--peak-flops",
        type=float,
        help="dense peak FLOP/s of one device, for MFU on a chip the data-sheet table does not know (e.g. 65e12)",
    )
    parser.add_argument(
        "--micro-batch-size",
        type=checks.count(1, 1e9, "sequences per micro-step"),
        help="global sequences per forward/backward pass; the batch is accumulated over "
        "batch-size / micro-batch-size micro-steps in one optimizer step (default: the whole "
        "batch; `chinchilla memory` plans it for a chip)",
    )
    parser.add_argument(
        "--remat",
        choices=("none", "full", "dots", "offload"),
        default="none",
        help="per-layer rematerialisation: none (default), full (recompute each layer), dots "
        "(keep weight matmuls), offload (as dots, kept in host memory; GPU/TPU)",
    )
    parser.add_argument(
        "--attention",
        dest="attention_impl",
        default="auto",
        choices=("auto", "xla", "cudnn", "splash", "blocked"),
        help="attention kernel: auto (splash on TPU, cuDNN on bf16 GPUs, XLA elsewhere; written "
        "to summary.json), xla, cudnn, splash or blocked",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-long-run",
        action="store_true",
        help=f"train even when the budget is more than {MAX_STEPS:,} steps (refused otherwise)",
    )
    parser.add_argument(
        "--break-lock",
        action="store_true",
        help="take over a run directory whose lock names a process that is gone but could not be "
        "checked (another host, a shared file system); see README 'When things go wrong'",
    )
    parser.set_defaults(func=run)


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
    options = dict(
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        cycle_tokens=args.cycle_tokens,
        **_schedule_options(args),
        dataset=args.dataset,
        tokenizer=args.tokenizer,
        data_dir=args.data_dir,
        log_every=args.log_every,
        eval_every=args.eval_every,
        steps_per_dispatch=args.steps_per_dispatch,
        mesh=mesh,
        peak_flops=args.peak_flops,
        micro_batch_size=args.micro_batch_size,
        remat=args.remat,
        attention_impl=args.attention_impl,
    )
    if args.flops is not None:
        config = TrainConfig.from_flops(model, args.flops, **options)
    else:
        config = TrainConfig(model=model, tokens=args.tokens, **options)
    if config.steps > MAX_STEPS and not args.allow_long_run:
        raise ValueError(
            f"the budget is {config.steps:.3g} steps of {config.tokens_per_step:,} tokens, more than "
            f"{MAX_STEPS:,}; check its unit, or pass --allow-long-run"
        )
    _check_orphan_summary(config, args.out)
    with _library_log_to(args.out, LOG_FILE, enabled=not getattr(args, "verbose", False)):
        try:
            summary = train_run(config, args.out, progress=not args.quiet, break_lock=args.break_lock)
        except OSError as error:
            if error.filename is not None or error.errno is None:
                raise
            raise OSError(error.errno, error.strerror, args.out) from error  # at least name the run directory
    print_json(summary)
    return 0 if summary["status"] == "finished" else 1


def _schedule_options(args: argparse.Namespace) -> dict:
    """The schedule and branching flags as ``TrainConfig`` fields: a cooldown flag without ``--schedule wsd`` is
    refused (it would be ignored), ``--init-from``'s run directory is made absolute against the current directory
    (a relative one would be read beside the run directory), ``--save-steps`` is a comma list of steps."""
    cooldown = [
        flag
        for flag, value in (("--cooldown-fraction", args.cooldown_fraction), ("--cooldown-shape", args.cooldown_shape))
        if value is not None
    ]
    if cooldown and args.schedule != "wsd":
        raise ValueError(f"{cooldown[0]} would be ignored: the cosine schedule has no cooldown; add --schedule wsd")
    options: dict = {"schedule": args.schedule}
    if args.cooldown_fraction is not None:
        options["cooldown_fraction"] = args.cooldown_fraction
    if args.cooldown_shape is not None:
        options["cooldown_shape"] = args.cooldown_shape
    if args.warmup_tokens is not None:
        options["warmup_tokens"] = args.warmup_tokens
    if args.init_from is not None:
        directory, colon, step = args.init_from.rpartition(":")
        if not (colon and step.isdigit() and directory):
            directory, step = args.init_from, ""
        if not directory.strip():
            raise ValueError(f"--init-from={args.init_from!r} names no run directory (RUN_DIR or RUN_DIR:STEP)")
        if "://" not in directory:
            directory = os.path.abspath(directory)
        options["init_from"] = f"{directory}:{step}" if step else directory
    if args.save_steps is not None:
        try:
            steps = tuple(int(s) for s in args.save_steps.split(",") if s.strip())
        except ValueError:
            raise ValueError(
                f"--save-steps={args.save_steps!r} must be whole steps separated by commas, e.g. 800,1600"
            ) from None
        if not steps or min(steps) < 1:
            raise ValueError(f"--save-steps={args.save_steps!r} must be steps >= 1, e.g. 800,1600")
        options["save_steps"] = steps
    return options


def _check_orphan_summary(config, out: str) -> None:
    """A run directory whose ``config.json`` is gone but whose ``summary.json`` records a run of another model (or
    budget) is refused, naming both: the trainer would otherwise call it finished and return the other run's
    summary."""
    import json

    from etils import epath

    run_dir = epath.Path(out)
    if (run_dir / "config.json").exists() or not (run_dir / "summary.json").exists():
        return
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return  # the trainer names a damaged summary.json
    if not isinstance(summary, dict):
        return
    recorded = summary.get("model_config")
    differing = []
    if isinstance(recorded, dict):
        mine = config.model.to_dict()
        differing += [
            f"model.{k} {recorded.get(k)!r} (here {mine.get(k)!r})"
            for k in sorted(set(recorded) | set(mine))
            if k != "name" and recorded.get(k, mine.get(k)) != mine.get(k)
        ]
    for key, mine in (("tokens_budget", config.tokens), ("batch_size", config.batch_size)):
        if key in summary and summary[key] != mine:
            differing.append(f"{key} {summary[key]!r} (here {mine!r})")
    name = summary.get("model")
    if name not in (None, config.model.name) or differing:
        raise ValueError(
            f"{run_dir} holds a {summary.get('status', 'recorded')} run of model {name!r}, not "
            f"{config.model.name!r} ({run_dir / 'summary.json'}; its config.json is missing)"
            + (f": {', '.join(differing[:3])}" if differing else "")
            + "; train in a new --out, or restore config.json"
        )


@contextlib.contextmanager
def _library_log_to(out: str, name: str, enabled: bool) -> Iterator[None]:
    """While training: absl's log records (orbax reports a failed background save with pages of tracebacks there)
    go to ``out/name`` instead of the terminal, so that an error ends in its one line (a local ``out`` only)."""
    if not enabled or "://" in out:
        yield
        return
    logger = logging.getLogger("absl")
    handler = _QuietFileHandler(os.path.join(out, name), delay=True)  # opened at the first record
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        with contextlib.suppress(OSError):  # a full disk: the error being raised is the one to report
            handler.close()


class _QuietFileHandler(logging.FileHandler):
    """A log file that drops what it cannot write (a full disk) instead of printing pages about it."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass
