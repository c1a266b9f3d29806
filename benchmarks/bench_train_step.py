"""Train-step throughput over the tiny ladder, as a fraction of a large-matmul FLOP/s measured in the same process.

For each model: build the real ``chinchilla.step.Trainer`` (the same compiled multi-step program ``train_run``
uses), run warm-up dispatches, then ``--rounds`` rounds of [measure the float32 matmul peak (best of 2 square
1024 matmuls, ``chinchilla.metrics.cpu_matmul_peak``); time one dispatch of ``--steps-per-dispatch`` steps on random
tokens]. Each round's fraction pairs a step time with the peak measured just before it, so load from other processes
on a shared machine affects numerator and denominator alike; the table reports medians over rounds:

- ``Appendix F``: exact Appendix F training FLOP/s (the convention of metrics.jsonl's ``mfu``; it counts the
  embedding lookup as a matmul, which the model does as a gather);
- ``XLA-counted``: FLOP/s of what XLA's cost model says one step executes (matmuls without the embedding, plus
  elementwise work, plus rematerialised recomputation, plus the optimizer), counted on a lowering of the same step
  with the layers unrolled, no accumulation and the loss in one chunk (``hardware_step_flops``): XLA's
  ``cost_analysis`` counts a ``lax.scan`` body once, so the scanned layers, the accumulation scan and the chunked
  loss's scan would otherwise each be counted once;
- each as a fraction of the paired matmul peak.

On an accelerator the same script reports MFU against the data-sheet bf16 peak
(``chinchilla.accelerators.CHIPS``) of the dtype the step computes in. Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_train_step.py            # a spread of the tiny ladder
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_train_step.py --models tiny-00099k --remat full \
        --micro-batch-size 2                                                     # the memory-saving step forms
    .venv/bin/python benchmarks/bench_train_step.py --models gpu-0436M --batch-size 8   # one GPU, bf16
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from chinchilla import chunked_loss, flops, metrics, zoo
from chinchilla.step import Trainer
from chinchilla.train import TrainConfig
from chinchilla.train_config import ATTENTION_IMPLS, REMAT_POLICIES

DEFAULT_MODELS = (
    "tiny-00004k",
    "tiny-00025k",
    "tiny-00099k",
    "tiny-00394k",
    "tiny-00886k",
    "tiny-01574k",
    "tiny-02459k",
    "tiny-02975k",
)


@contextlib.contextmanager
def one_loss_chunk() -> Iterator[None]:
    """While active, ``chinchilla.chunked_loss`` puts every token of a batch in one chunk (same FLOPs as the chunked
    loss, recompute included; only the scan over chunks, which ``cost_analysis`` would count once, is gone)."""
    saved = chunked_loss.DEFAULT_CHUNK_LOGIT_BYTES
    chunked_loss.DEFAULT_CHUNK_LOGIT_BYTES = 2**62
    try:
        yield
    finally:
        chunked_loss.DEFAULT_CHUNK_LOGIT_BYTES = saved


def cost_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def hardware_step_flops(config: TrainConfig, trainer: Trainer | None = None) -> float:
    """XLA's compiled FLOPs of one optimizer step of ``config``'s program, every FLOP counted: the step lowered with
    the layers unrolled (``scan_layers=False``), the whole batch in one pass (``micro_batch_size=None``; accumulation
    adds only one float32 add per parameter and micro-step) and the loss in one chunk (``one_loss_chunk``), one step
    per dispatch (the step loop's body is one step). Remat recomputation is included (the unrolled layers keep their
    recompute: ``prevent_cse``). ``trainer``: reuse its compiled program when it already has that form."""
    counted = dataclasses.replace(config, scan_layers=False, micro_batch_size=None)
    if trainer is not None and trainer.config == counted and _one_chunk(config):
        return cost_flops(trainer.compiled_step())
    with one_loss_chunk():
        return cost_flops(Trainer(dataclasses.replace(counted, steps_per_dispatch=1)).compiled_step())


def _one_chunk(config: TrainConfig) -> bool:
    """Whether the chunked loss already runs in one chunk at this batch (then no count is missed)."""
    tokens = config.batch_size * config.model.seq_len
    return chunked_loss.default_chunk_tokens(config.model.vocab_size, tokens) >= tokens


def bench_model(
    name: str,
    batch_size: int,
    steps_per_dispatch: int,
    rounds: int,
    warmup: int,
    on_cpu: bool,
    attention_impl: str,
    remat: str = "none",
    micro_batch_size: int | None = None,
    scan_layers: bool = True,
) -> dict:
    config = TrainConfig(
        model=zoo.get_model(name),
        tokens=10**9,
        batch_size=batch_size,
        steps_per_dispatch=steps_per_dispatch,
        attention_impl=attention_impl,
        remat=remat,
        micro_batch_size=micro_batch_size,
        scan_layers=scan_layers,
    )
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
    xla_flops = hardware_step_flops(config, trainer)
    step_times, peaks = [], []
    for _ in range(rounds):
        peaks.append(
            metrics.cpu_matmul_peak.__wrapped__(sizes=(1024,), repeats=2)
            if on_cpu
            else metrics.peak_flops(compute_dtype=trainer.compute_dtype)[0]
        )
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
    parser.add_argument(
        "--attention-impl",
        default="xla",
        choices=ATTENTION_IMPLS,
        help="chinchilla.attention implementation (cudnn: NVIDIA GPUs, bf16; splash: TPU)",
    )
    parser.add_argument("--remat", default="none", choices=REMAT_POLICIES)
    parser.add_argument("--micro-batch-size", type=int, help="gradient accumulation (default: the whole batch)")
    parser.add_argument("--unrolled", action="store_true", help="scan_layers=False (the layers unrolled)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()

    on_cpu = jax.default_backend() == "cpu"
    rows = [
        bench_model(
            name,
            args.batch_size,
            args.steps_per_dispatch,
            args.rounds,
            args.warmup,
            on_cpu,
            args.attention_impl,
            args.remat,
            args.micro_batch_size,
            not args.unrolled,
        )
        for name in args.models
    ]
    peak = statistics.median(row["peak_flops_median"] for row in rows)

    device = jax.devices()[0]
    source = "measured float32 matmul" if on_cpu else "data-sheet bf16 peak"
    print(
        f"device: {device.device_kind} x {jax.device_count()} ({jax.default_backend()}); peak ({source}): "
        f"median {peak / 1e9:.1f} GFLOP/s, measured beside every timed dispatch; "
        f"batch {args.batch_size} x seq_len, {args.steps_per_dispatch} steps per dispatch; remat {args.remat}, "
        f"micro-batch {args.micro_batch_size or args.batch_size}, layers {'unrolled' if args.unrolled else 'scanned'}, "
        f"attention {args.attention_impl}; jax {jax.__version__}"
    )
    print()
    print(
        "| model | d_model | params | step (ms) | tokens/s | Appendix F GFLOP/s | fraction of peak | "
        "XLA-counted GFLOP/s | fraction of peak | matmul peak GFLOP/s | compile (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['d_model']} | {row['params']:,} | {row['step_ms']:.2f} | "
            f"{row['tokens_per_s']:,.0f} | {row['appendix_f_flops_per_s'] / 1e9:.1f} | "
            f"{row['appendix_f_fraction']:.0%} | {row['xla_flops_per_s'] / 1e9:.1f} | {row['xla_fraction']:.0%} | "
            f"{row['peak_flops_median'] / 1e9:.0f} | {row['compile_s']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"peak_flops": peak, "peak_source": source, "device": device.device_kind, "rows": rows},
                handle,
                indent=2,
            )


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
