"""Train-step throughput over the tiny ladder, as a fraction of a large-matmul FLOP/s measured in the same process.

For each model: build the real ``chinchilla.step.Trainer`` (the same compiled multi-step program ``train_run``
uses), run warm-up dispatches, then ``--rounds`` rounds of [measure the float32 matmul peak (best of 2 square
1024 matmuls, ``chinchilla.metrics.cpu_matmul_peak``); time one dispatch of ``--steps-per-dispatch`` steps on random
tokens]. Each round's fraction pairs a step time with the peak measured just before it, so load from other processes
on a shared machine affects numerator and denominator alike; the table reports medians over rounds:

- ``Appendix F``: exact Appendix F training FLOP/s (the convention of metrics.jsonl's ``mfu``; it counts the
  embedding lookup as a matmul, which the model does as a gather);
- ``XLA-counted``: FLOP/s of what XLA's cost model says one step executes (matmuls without the embedding, plus
  elementwise work, plus the optimizer);
- each as a fraction of the paired matmul peak.

On an accelerator the same script reports MFU against the data-sheet bf16 peak
(``chinchilla.accelerators.CHIPS``) of the dtype the step computes in. Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_train_step.py            # a spread of the tiny ladder
    .venv/bin/python benchmarks/bench_train_step.py --models gpu-0436M --batch-size 8   # one GPU, bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from chinchilla import flops, metrics, zoo
from chinchilla.step import Trainer
from chinchilla.train import TrainConfig

DEFAULT_MODELS = ("tiny-00004k", "tiny-00025k", "tiny-00099k", "tiny-00394k", "tiny-00886k", "tiny-01574k",
                  "tiny-02459k", "tiny-02975k")


def xla_step_flops(trainer: Trainer) -> float:
    """XLA's cost-analysis FLOPs of one optimizer step (the compiled loop's body, which XLA counts once)."""
    cost = trainer.compiled_step().cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def bench_model(name: str, batch_size: int, steps_per_dispatch: int, rounds: int, warmup: int,
                on_cpu: bool, attention_impl: str) -> dict:
    config = TrainConfig(model=zoo.get_model(name), tokens=10**9, batch_size=batch_size,
                         steps_per_dispatch=steps_per_dispatch, attention_impl=attention_impl)
    trainer = Trainer(config)
    start = time.perf_counter()
    trainer.compiled_step()
    compile_s = time.perf_counter() - start
    state = trainer.init_state()
    rng = np.random.default_rng(0)
    vocab, length = config.model.vocab_size, config.model.seq_len + 1
    batches = rng.integers(0, vocab, (steps_per_dispatch, trainer.local_batch_size, length)).astype(np.int32)
    for _ in range(warmup):
        state, out = trainer.train(state, batches)
        jax.block_until_ready(out)
    xla_flops = xla_step_flops(trainer)
    step_times, peaks = [], []
    for _ in range(rounds):
        peaks.append(metrics.cpu_matmul_peak.__wrapped__(sizes=(1024,), repeats=2) if on_cpu
                     else metrics.peak_flops(compute_dtype=trainer.compute_dtype)[0])
        start = time.perf_counter()
        state, out = trainer.train(state, batches)
        jax.block_until_ready(out)
        step_times.append((time.perf_counter() - start) / steps_per_dispatch)
    step_s = statistics.median(step_times)
    return {
        "model": name,
        "d_model": config.model.d_model,
        "params": flops.param_count(config.model).total,
        "non_embedding_params": flops.param_count(config.model).non_embedding,
        "batch_size": batch_size,
        "step_ms": 1e3 * step_s,
        "tokens_per_s": config.tokens_per_step / step_s,
        "appendix_f_flops_per_s": trainer.flops_per_step() / step_s,
        "xla_flops_per_s": xla_flops / step_s,
        "appendix_f_fraction": statistics.median(trainer.flops_per_step() / t / p for t, p in zip(step_times, peaks)),
        "xla_fraction": statistics.median(xla_flops / t / p for t, p in zip(step_times, peaks)),
        "peak_flops_median": statistics.median(peaks),
        "compile_s": compile_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps-per-dispatch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--attention-impl", default="xla", choices=("xla", "cudnn"),
                        help="jax.nn.dot_product_attention implementation (cudnn: NVIDIA GPUs, bf16)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()

    on_cpu = jax.default_backend() == "cpu"
    rows = [bench_model(name, args.batch_size, args.steps_per_dispatch, args.rounds, args.warmup, on_cpu,
                        args.attention_impl) for name in args.models]
    peak = statistics.median(row["peak_flops_median"] for row in rows)

    device = jax.devices()[0]
    source = "measured float32 matmul" if on_cpu else "data-sheet bf16 peak"
    print(f"device: {device.device_kind} x {jax.device_count()} ({jax.default_backend()}); peak ({source}): "
          f"median {peak / 1e9:.1f} GFLOP/s, measured beside every timed dispatch; "
          f"batch {args.batch_size} x seq_len, {args.steps_per_dispatch} steps per dispatch; jax {jax.__version__}")
    print()
    print("| model | d_model | params | step (ms) | tokens/s | Appendix F GFLOP/s | fraction of peak | "
          "XLA-counted GFLOP/s | fraction of peak | matmul peak GFLOP/s | compile (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['d_model']} | {row['params']:,} | {row['step_ms']:.2f} | "
              f"{row['tokens_per_s']:,.0f} | {row['appendix_f_flops_per_s'] / 1e9:.1f} | "
              f"{row['appendix_f_fraction']:.0%} | {row['xla_flops_per_s'] / 1e9:.1f} | {row['xla_fraction']:.0%} | "
              f"{row['peak_flops_median'] / 1e9:.0f} | {row['compile_s']:.1f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"peak_flops": peak, "peak_source": source, "device": device.device_kind, "rows": rows},
                      handle, indent=2)


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
