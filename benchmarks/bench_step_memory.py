"""The memory-saving train step's CPU cost at equal tokens: remat none/full/dots x gradient accumulation
1/4 (``micro_batch_size`` = batch/4) x layers scanned/unrolled, each as a tokens/s ratio to (remat none, accumulation
1, layers unrolled): the plain program's form (a Python loop over layers, no remat, one pass over the batch);
plus XLA's compiled FLOPs (hardware FLOPs, recompute included) beside the Appendix F model FLOPs that MFU counts.

Method: every variant is the real ``chinchilla.step.Trainer`` program (``steps_per_dispatch`` optimizer steps per
dispatch, same batch, same random tokens), compiled up front in one process; then ``--rounds`` interleaved rounds
time one dispatch of each variant in turn (the order rotates each round), and each variant's ratio is the median
over rounds of base time / variant time within the round, so load from other processes on the shared machine hits
both alike. Losses are checked to agree with the base (the forms compute the same step).

FLOPs: ``cost_analysis()`` counts a ``lax.scan`` body once, so the counted program is the step with the layers
unrolled, the whole batch in one pass and the loss in one chunk (``bench_train_step.hardware_step_flops``): for the
tiny models here the chunked loss has one chunk anyway (vocabulary 256: one 256 MiB chunk holds 262,144 tokens).
Appendix F FLOPs (``chinchilla.flops``, what MFU counts) do not depend on remat: recomputation is hardware work, not
model work. "XLA expected" is ``chinchilla.model.expected_xla_step_flops`` (Appendix F without the gathered
embedding, plus elementwise work and the optimizer), the count the no-remat program should have.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_step_memory.py   # 8.4 CPU-minutes: ~5 min on 2 idle cores
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_step_memory.py --models tiny-00099k --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_train_step import hardware_step_flops  # noqa: E402

from chinchilla import model as model_lib  # noqa: E402
from chinchilla import zoo  # noqa: E402
from chinchilla.memory import GiB  # noqa: E402
from chinchilla.step import Trainer  # noqa: E402
from chinchilla.train_config import TrainConfig  # noqa: E402

REMATS = ("none", "full", "dots")
BASE = ("none", 1, False)  # (remat, accumulation, scan_layers): the plain program's form


def parse_model(spec: str):
    """``NAME`` or ``NAME:LAYERS`` (a zoo shape with another layer count, e.g. tiny-00394k:8)."""
    name, _, layers = spec.partition(":")
    config = zoo.get_model(name)
    return config.replace(n_layers=int(layers), name=f"{name}x{layers}L") if layers else config


def temp_bytes(trainer: Trainer) -> int:
    return int(trainer.compiled_step().memory_analysis().temp_size_in_bytes)


def bench(model, batch: int, accumulations: tuple[int, ...], k: int, rounds: int) -> dict:
    variants = list(itertools.product(REMATS, accumulations, (False, True)))
    variants.remove(BASE)
    variants.insert(0, BASE)
    rng = np.random.default_rng(0)
    batches = rng.integers(0, model.vocab_size, (k, batch, model.seq_len + 1)).astype(np.int32)
    programs = {}
    for remat, accumulation, scan in variants:
        config = TrainConfig(
            model=model,
            tokens=10**9,
            batch_size=batch,
            steps_per_dispatch=k,
            remat=remat,
            micro_batch_size=None if accumulation == 1 else batch // accumulation,
            scan_layers=scan,
            attention_impl="xla",
        )
        trainer = Trainer(config)
        start = time.perf_counter()
        trainer.compiled_step()
        compile_s = time.perf_counter() - start
        state, out = trainer.train(trainer.init_state(), batches)  # warm-up (and the losses to compare)
        programs[(remat, accumulation, scan)] = {
            "trainer": trainer,
            "state": state,
            "compile_s": compile_s,
            "losses": np.asarray(out["loss"]),
            "times": [],
            "temp_bytes": temp_bytes(trainer),
        }
    order = list(programs)
    for r in range(rounds):
        shift = r % len(order)
        for key in order[shift:] + order[:shift]:
            p = programs[key]
            start = time.perf_counter()
            p["state"], out = p["trainer"].train(p["state"], batches)
            jax.block_until_ready(out)
            p["times"].append(time.perf_counter() - start)
    base = programs[BASE]
    tokens = batch * model.seq_len * k
    rows = []
    for key, p in programs.items():
        remat, accumulation, scan = key
        ratios = sorted(b / t for b, t in zip(base["times"], p["times"]))
        rows.append(
            {
                "remat": remat,
                "accumulation": accumulation,
                "scan_layers": scan,
                "tokens_per_s": tokens / statistics.median(p["times"]),
                "ratio": statistics.median(ratios),
                "ratio_iqr": [ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]],
                "max_loss_diff": float(np.max(np.abs(p["losses"] - base["losses"]))),
                "temp_mib": p["temp_bytes"] / 2**20,
                "compile_s": p["compile_s"],
            }
        )
    flop_rows = []
    for remat in REMATS:
        p = programs[(remat, 1, False)]
        trainer = p["trainer"]
        hardware = hardware_step_flops(trainer.config, trainer)
        flop_rows.append(
            {
                "remat": remat,
                "xla_flops": hardware,
                "appendix_f_flops": trainer.flops_per_step(),
                "xla_expected_no_remat": model_lib.expected_xla_step_flops(model, batch),
            }
        )
    none = flop_rows[0]["xla_flops"]
    for row in flop_rows:
        row["xla_over_appendix_f"] = row["xla_flops"] / row["appendix_f_flops"]
        row["recompute_share"] = row["xla_flops"] / none - 1
    return {
        "model": model.name,
        "d_model": model.d_model,
        "n_layers": model.n_layers,
        "batch_size": batch,
        "seq_len": model.seq_len,
        "steps_per_dispatch": k,
        "rounds": rounds,
        "rows": rows,
        "flops": flop_rows,
    }


def print_result(result: dict) -> None:
    print(
        f"\n### {result['model']} (d_model {result['d_model']}, {result['n_layers']} layers), batch "
        f"{result['batch_size']} x {result['seq_len']}, {result['steps_per_dispatch']} steps per dispatch, "
        f"{result['rounds']} rounds\n"
    )
    print(
        "| remat | accumulation | layers | tokens/s | ratio to (none, 1, unrolled) | IQR | max loss diff | "
        "XLA temp MiB | compile s |"
    )
    print("|---|---:|---|---:|---:|---|---:|---:|---:|")
    for row in result["rows"]:
        low, high = row["ratio_iqr"]
        print(
            f"| {row['remat']} | {row['accumulation']} | {'scanned' if row['scan_layers'] else 'unrolled'} | "
            f"{row['tokens_per_s']:,.0f} | {row['ratio']:.2f}x | {low:.2f}-{high:.2f} | "
            f"{row['max_loss_diff']:.1g} | {row['temp_mib']:.1f} | {row['compile_s']:.1f} |"
        )
    print(
        "\n| remat | XLA FLOPs/step (hardware) | Appendix F FLOPs/step (model, MFU) | XLA / Appendix F | "
        "recompute vs none | XLA expected, no remat |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in result["flops"]:
        print(
            f"| {row['remat']} | {row['xla_flops']:.4g} | {row['appendix_f_flops']:.4g} | "
            f"{row['xla_over_appendix_f']:.3f} | {row['recompute_share']:+.1%} | "
            f"{row['xla_expected_no_remat']:.4g} |"
        )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["tiny-00099k", "tiny-00394k:8"],
        help="zoo names, NAME:LAYERS for another layer count",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--accumulations", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps-per-dispatch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    print(
        f"jax {jax.__version__}, {jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPUs; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = []
    for spec in args.models:
        result = bench(
            parse_model(spec), args.batch_size, tuple(args.accumulations), args.steps_per_dispatch, args.rounds
        )
        print_result(result)
        results.append(result)
        sys.stdout.flush()
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min); unit: GiB = {GiB}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
