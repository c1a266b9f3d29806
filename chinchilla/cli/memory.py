"""``chinchilla memory``: the peak device memory of a train step on a chip, and the fastest plan that fits.

    chinchilla memory --model gpu-0267M --batch-size 64 --chip h100 [--micro-batch-size b] [--remat P] [--json]
    chinchilla memory --preset gpu --chip h100 --json

Without ``--micro-batch-size``/``--remat`` the planner (``chinchilla.memory.plan``) picks the fastest plan whose
peak fits 85% of the chip: the fewest micro-steps, then the cheapest remat (none < dots < full). With ``--preset``:
one plan per model and batch of the preset's runs (IsoFLOP plan and learning-rate check), with the micro-batch size
and remat the preset sets. The numbers are XLA's memory analysis of the real train step compiled on this CPU for
abstract inputs (bf16 compute as on the accelerator; flash-type attention compiled as its CPU stand-in
``attention_impl="blocked"``): seconds per plan, nothing allocated.
"""

from __future__ import annotations

import argparse
import re

from chinchilla.cli.usage import strict
from chinchilla.memory import REMAT_ORDER

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(GiB|GB|MiB|MB|B)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "mib": 2**20, "mb": 10**6, "gib": 2**30, "gb": 10**9}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = strict(
        subparsers.add_parser(
            "memory",
            help="peak device memory of a train step on a chip, and the fastest plan (micro-batch, remat) that fits",
            description="Peak memory per device of the compiled train step (XLA's memory analysis, compiled on this "
            "CPU for abstract inputs) and whether it fits 85% of a chip. Without --micro-batch-size and "
            "--remat: the fastest plan that fits (fewest micro-steps, then remat none < dots < full).",
        )
    )
    what = parser.add_argument_group("what to plan (--model and --batch-size, or --preset)")
    what.add_argument("--model", help="a zoo shape by name, e.g. gpu-0267M")
    what.add_argument("--batch-size", type=int, help="global sequences per optimizer step")
    what.add_argument("--preset", help="every model and batch of a preset's runs, e.g. gpu or colab_tpu")
    chip = parser.add_argument_group("the chip (one of)")
    chip.add_argument("--chip", help="h100, h200, a100, a100-40, v5e, v4, v5p, v6e, ... or a chip's full name")
    chip.add_argument("--chip-bytes", help="memory per device, e.g. 85899345920, 80GiB or 16GB")
    parser.add_argument(
        "--platform",
        choices=("gpu", "tpu"),
        help="with --chip-bytes: what the chip is, for --attention auto (default gpu)",
    )
    parser.add_argument("--micro-batch-size", type=int, help="sequences per forward/backward pass (default: planned)")
    parser.add_argument(
        "--remat",
        type=_remat,
        metavar="none|dots|full",
        help=f"{', '.join(REMAT_ORDER[:-1])} or {REMAT_ORDER[-1]} (default: planned); the trainer's 'offload' "
        "cannot be compiled on this CPU, so plan it as dots",
    )
    parser.add_argument("--seq-len", type=int, help="context length (default: the model's)")
    parser.add_argument(
        "--attention",
        default="auto",
        help="auto (cuDNN on a GPU, splash on a TPU; compiled as 'blocked'), xla, cudnn, splash or "
        "blocked (default auto)",
    )
    parser.add_argument(
        "--devices", type=int, default=1, help="data-parallel devices the batch is split over (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _remat(text: str) -> str:
    """``--remat``'s type: a policy the planner can compile here (``chinchilla.memory.REMAT_ORDER``). The trainer's
    ``offload`` keeps saved activations in pinned host memory, which this CPU's compiler lacks: refused with why."""
    if text == "offload":
        raise argparse.ArgumentTypeError(
            "offload (host memory) cannot be compiled on this CPU, so its memory cannot be estimated here; plan "
            "with dots (the same recompute, saved projections on the device)"
        )
    if text not in REMAT_ORDER:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(REMAT_ORDER)}")
    return text


def parse_bytes(text: str) -> int:
    """'85899345920', '80GiB', '16 GB' -> bytes; ValueError naming --chip-bytes otherwise."""
    match = _SIZE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--chip-bytes {text}: not a positive size (bytes, or a number with GiB, GB, MiB, MB)")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _UNITS[unit])


def run(args: argparse.Namespace) -> int:
    from chinchilla import accelerators, memory, zoo
    from chinchilla.cli.output import print_json
    from chinchilla.preset import load_preset, lr_check_plan

    if (args.chip is None) == (args.chip_bytes is None):
        raise ValueError("give one of --chip or --chip-bytes")
    if args.chip is not None:
        if args.platform is not None:
            raise ValueError(f"--platform {args.platform}: --chip {args.chip} says what the chip is")
        chip = accelerators.chip_named(args.chip)
        chip_name, platform = chip.name, chip.platform
        chip_bytes = chip.memory_bytes_per_device
        dtype = "bfloat16" if chip.bfloat16 is not None else "float32"
    else:
        chip_name, platform, chip_bytes, dtype = None, args.platform or "gpu", parse_bytes(args.chip_bytes), "bfloat16"
    if args.devices < 1:
        raise ValueError(f"--devices {args.devices}: must be at least 1")
    if args.micro_batch_size is not None and args.micro_batch_size < 1:
        raise ValueError(f"--micro-batch-size {args.micro_batch_size}: must be at least 1")
    if args.seq_len is not None and args.seq_len < 1:
        raise ValueError(f"--seq-len {args.seq_len}: must be at least 1")

    if args.preset is not None:
        given = [
            flag
            for flag, value in (
                ("--model", args.model),
                ("--batch-size", args.batch_size),
                ("--micro-batch-size", args.micro_batch_size),
                ("--remat", args.remat),
                ("--seq-len", args.seq_len),
            )
            if value is not None
        ]
        if given or args.attention != "auto":
            flags = ", ".join(given + (["--attention"] if args.attention != "auto" else []))
            raise ValueError(f"--preset {args.preset} plans the preset's own runs; {flags} would be ignored")
        try:
            preset = load_preset(args.preset)
        except (KeyError, ValueError, ImportError) as error:
            raise ValueError(f"--preset {args.preset}: {error}") from None
        runs = list(preset.plan().runs) + list(lr_check_plan(preset).runs if preset.lr_check_budget else [])
        plans = memory.plans_for_runs(
            runs, chip_bytes=chip_bytes, platform=platform, chip=chip_name, devices=args.devices
        )
        _show([p.to_dict() for p in plans], args.json, print_json)
        return 0

    if args.model is None or args.batch_size is None:
        raise ValueError("give --model and --batch-size (or --preset)")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: must be at least 1")
    try:
        model = zoo.get_model(args.model)
    except (KeyError, ValueError) as error:
        raise ValueError(f"--model {args.model}: {error}") from None
    if args.seq_len is not None:
        model = model.replace(seq_len=args.seq_len)
    result = memory.plan(
        model,
        args.batch_size,
        chip_bytes=chip_bytes,
        platform=platform,
        chip=chip_name,
        micro_batch_size=args.micro_batch_size,
        remat=args.remat,
        attention=args.attention,
        compute_dtype=dtype,
        devices=args.devices,
    )
    if args.json:
        print_json(result.to_dict())
    else:
        _show([result.to_dict()], False, print_json)
    return 0


def _show(rows: list[dict], as_json: bool, print_json) -> None:
    if as_json:
        print_json(rows)
        return
    header = (
        "model",
        "batch",
        "seq",
        "micro",
        "steps",
        "remat",
        "attention",
        "GiB/device",
        "chip GiB",
        "headroom",
        "fits",
    )
    table = [header] + [
        (
            r["model"],
            str(r["batch_size"]),
            str(r["seq_len"]),
            str(r["micro_batch_size"]),
            str(r["micro_steps"]),
            r["remat"],
            f"{r['attention']} ({r['compiled_attention']} on CPU)"
            if r["attention"] != r["compiled_attention"]
            else r["attention"],
            f"{r['gib_per_device']:.1f}",
            f"{r['chip_bytes'] / 2**30:.0f}",
            f"{r['headroom']:.0%}",
            "yes" if r["fits"] else "NO",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if rows:
        print(
            f"(fits: at most {rows[0]['usable_fraction']:.0%} of the chip; XLA's memory analysis of the train step "
            "compiled on this CPU)"
        )
