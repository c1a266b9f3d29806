"""Prepare a data set before a sweep: train its tokenizer and tokenise what the sweep needs, on every core.

    python -m chinchilla.data prepare --preset gpu [--dataset D] [--tokenizer T] [--data-dir DIR] [--workers N]
    python -m chinchilla.data prepare --dataset files:/data/fineweb-edu/*.parquet --tokenizer sentencepiece:32000 \\
        --tokens 4.2e9 [--eval-tokens 2e6]

With ``--preset`` the data set, tokenizer and data dir come from the preset's runs (each may be overridden) and the
tokens are its longest run's (``data.tokens_needed``: steps x global batch x seq_len + seq_len) plus its eval
batches'; every run of the sweep then reads a prefix of what was built. Training would build the same on first use;
preparing first just moves the work (and the download of a gs:// data dir) ahead of the sweep. Prints one JSON
object: the tokenizer file, the train and eval splits used, tokens, units and seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time


def _preset_needs(name: str) -> dict:
    from chinchilla.data.pipeline import tokens_needed
    from chinchilla.preset import load_preset

    runs = load_preset(name).plan().runs
    needs = []
    for run in runs:
        batch, seq = run.train["batch_size"], run.model.seq_len
        steps = max(1, round(run.tokens / (batch * seq)))
        needs.append(
            (tokens_needed(steps, batch, seq), tokens_needed(run.train.get("eval_batches", 8), batch, seq), run.train)
        )
    longest = max(needs, key=lambda need: need[0])
    settings = longest[2]
    return {
        "tokens": longest[0],
        "eval_tokens": max(n[1] for n in needs),
        "dataset": settings.get("dataset"),
        "tokenizer": settings.get("tokenizer", "byte"),
        "data_dir": settings.get("data_dir"),
        "eval_split": settings.get("eval_split", "validation"),
    }


def prepare(args: argparse.Namespace) -> dict:
    from chinchilla.data import sources, token_cache
    from chinchilla.data.pipeline import _tokenizer

    settings = _preset_needs(args.preset) if args.preset else {"eval_split": "validation"}
    for key in ("dataset", "tokenizer", "data_dir", "tokens", "eval_tokens"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if not settings.get("dataset") or not settings.get("tokens"):
        raise ValueError("name --preset, or --dataset and --tokens")
    dataset, data_dir = settings["dataset"], settings.get("data_dir")
    start = time.perf_counter()
    tokenizer = _tokenizer(settings.get("tokenizer") or "byte", dataset, data_dir)
    trained = time.perf_counter() - start
    out = {
        "dataset": dataset,
        "tokenizer": getattr(tokenizer, "fingerprint", str(tokenizer)),
        "tokenizer_file": str(getattr(tokenizer, "model_file", "")) or None,
        "tokenizer_s": round(trained, 1),
    }
    for role, split, need in (
        ("train", "train", int(float(settings["tokens"]))),
        ("eval", settings["eval_split"], int(float(settings.get("eval_tokens") or 0))),
    ):
        if need <= 0:
            continue
        stats = token_cache.BuildStats()
        begin = time.perf_counter()
        array = sources.token_array(
            dataset, split, tokenizer, data_dir=data_dir, need=need, workers=args.workers, stats=stats
        )
        out[role] = {
            "split": sources.resolve_split(dataset, split, data_dir=data_dir).name,
            "tokens_needed": need,
            "tokens": len(array),
            "units": stats.units_used,
            "units_built": stats.units_built,
            "documents_read": stats.documents_read,
            "workers": stats.workers,
            "seconds": round(time.perf_counter() - begin, 1),
        }
        if len(array) < need:
            out[role]["warning"] = f"the split holds only {len(array):,} tokens: runs needing more will repeat data"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chinchilla.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("prepare", help="train the tokenizer and tokenise what a sweep needs")
    sub.add_argument("--preset", help="take data set, tokenizer, data dir and tokens from this preset's runs")
    sub.add_argument("--dataset", help="a data set name (embedded..., files:GLOB, a prepared TFDS name)")
    sub.add_argument("--tokenizer", help="byte, sentencepiece:<vocab> or a .model path")
    sub.add_argument("--data-dir", dest="data_dir", help="TFDS data dir (local or gs://) / cache root")
    sub.add_argument("--tokens", type=float, help="train tokens to prepare (default with --preset: its longest run's)")
    sub.add_argument(
        "--eval-tokens",
        dest="eval_tokens",
        type=float,
        help="evaluation tokens to prepare (default with --preset: its eval batches')",
    )
    sub.add_argument("--workers", type=int, help="tokenizer processes (default: every usable core)")
    args = parser.parse_args(argv)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # TFDS prints its progress on stdout: keep stdout JSON
            report = prepare(args)
        print(json.dumps(report, indent=1))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
