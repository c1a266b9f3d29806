"""Tokenisation into the sharded token cache: one worker process vs every core, and a need-limited build.

    python benchmarks/bench_tokenize.py [--megabytes 24] [--tokenizer sentencepiece:8000] [--workers N]

Writes a ``files:`` data set of ~``--megabytes`` MB of jsonl (the embedded KJV's chapters, each repeated with its
copy number so no two documents are equal) to a temporary directory, trains the tokenizer once (not timed), then
tokenises the whole train split into a fresh cache with 1 worker and with ``--workers`` (default: every usable
core), checks the two caches hold the same tokens, and prints both times and their ratio (measured in one process,
back to back; no absolute time is meaningful on a shared machine). Last, it asks for 10% of the split's tokens in a
fresh cache and prints the share of documents that were read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chinchilla.data import corpus, files, sources, token_cache  # noqa: E402
from chinchilla.data.sources import get_tokenizer  # noqa: E402


def write_corpus(directory: Path, megabytes: float) -> int:
    chapters: dict[str, list[str]] = {}
    for line in corpus.read_text("kjv/kjv.jsonl").splitlines():
        verse = json.loads(line)
        chapters.setdefault(f"{verse['book']} {verse['chapter']}", []).append(verse["text"])
    texts = [" ".join(v) for v in chapters.values()]
    directory.mkdir(parents=True, exist_ok=True)
    written, copy, shard, documents = 0, 0, 0, 0
    handle = open(directory / f"shard-{shard:03d}.jsonl", "w")
    while written < megabytes * 1e6:
        for text in texts:
            line = json.dumps({"text": f"({copy}) {text}"}) + "\n"
            handle.write(line)
            written += len(line)
            documents += 1
        copy += 1
        if copy % 4 == 0:
            handle.close()
            shard += 1
            handle = open(directory / f"shard-{shard:03d}.jsonl", "w")
    handle.close()
    return documents


def timed_build(name: str, tokenizer, root: Path, workers: int, need=None) -> tuple[float, np.ndarray, object]:
    """(wall seconds, tokens, stats); stats.cores = CPU seconds of this process and its workers / wall seconds."""
    stats = token_cache.BuildStats()
    cpu_before, start = _cpu(), time.perf_counter()
    array = sources.token_array(name, "train", tokenizer, data_dir=root, workers=workers, need=need, stats=stats)
    wall = time.perf_counter() - start
    stats.cores = (_cpu() - cpu_before) / wall
    return wall, array, stats


def _cpu() -> float:
    times = os.times()  # children: the worker processes, counted once they have exited
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=24.0)
    parser.add_argument("--tokenizer", default="sentencepiece:8000")
    parser.add_argument("--workers", type=int, default=token_cache.default_workers())
    parser.add_argument("--unit-megabytes", type=float, default=1.0, help="source bytes per unit of work")
    args = parser.parse_args()
    files.UNIT_BYTES = int(args.unit_megabytes * 2**20)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        documents = write_corpus(tmp / "data", args.megabytes)
        name = f"files:{tmp / 'data'}/*.jsonl"
        tokenizer = get_tokenizer(args.tokenizer, dataset=name, data_dir=tmp / "tokenizer")
        units = len(files.units(files.parse(name)))
        print(
            f"{documents:,} documents, {args.megabytes:g} MB jsonl in {units} units; tokenizer {args.tokenizer}; "
            f"{args.workers} workers on {token_cache.default_workers()} usable cores"
        )
        one, serial, alone = timed_build(name, tokenizer, tmp / "one", 1)
        many, parallel, stats = timed_build(name, tokenizer, tmp / "many", args.workers)
        assert np.array_equal(np.asarray(serial), np.asarray(parallel)), "1 and N workers disagree"
        print(
            f"1 worker: {one:.2f} s ({alone.cores:.2f} cores busy); {stats.workers} workers (pids "
            f"{sorted(stats.builder_pids)}): {many:.2f} s ({stats.cores:.2f} cores busy); speed-up "
            f"{one / many:.2f}x ({len(serial):,} tokens, {len(serial) / many / 1e6:.2f} M tokens/s)"
        )
        _, part, stats = timed_build(name, tokenizer, tmp / "part", args.workers, need=len(serial) // 10)
        print(
            f"asked for 10% of the tokens ({len(serial) // 10:,}): got {len(part):,} from {stats.units_used} of "
            f"{units} units, read {stats.documents_read:,} of {documents:,} documents "
            f"({stats.documents_read / documents:.1%})"
        )


if __name__ == "__main__":
    main()
