"""Another way for a sweep to use the whole machine: several runs of one shape (seeds) batched into one compiled step
with ``jax.vmap``, against one run per step, in a worker's one-thread XLA backend (``chinchilla.sweep.pool``).

For each model: the real ``Trainer`` program's body (``Trainer._multi_step``: 16 optimizer steps per dispatch,
batch 8 x 128) compiled once as it is and once vmapped over ``--seeds`` independent states and batch streams; both
timed in interleaved rounds in one process. "runs/s gain" = seeds x (time of one single-run dispatch) / (time of one
batched dispatch): above 1, batching trains more runs per CPU-second than the worker pool's one run per thread; the
pool's measured efficiency (BENCHMARKS.md, *Concurrent sweeps*) is what it would have to beat. Nothing here changes
the runner; this measures whether changing it would pay. Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_batched_seeds.py
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_batched_seeds.py --models tiny-00025k --seeds 2 4 --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from chinchilla.sweep.pool import one_thread_backend


def bench(name: str, seeds: int, rounds: int) -> dict:
    import jax

    from chinchilla import zoo
    from chinchilla.step import Trainer
    from chinchilla.train_config import TrainConfig

    config = TrainConfig(model=zoo.get_model(name), tokens=10**9, batch_size=8, steps_per_dispatch=16)
    trainer = Trainer(config)
    k, length = config.steps_per_dispatch, config.model.seq_len + 1
    rng = np.random.default_rng(0)
    single_batches = rng.integers(0, 256, (k, 8, length)).astype(np.int32)
    many_batches = rng.integers(0, 256, (seeds, k, 8, length)).astype(np.int32)
    hp = {key: np.float32(v) for key, v in trainer.hp.items()}
    n = np.int32(k)
    single = jax.jit(trainer._multi_step)
    batched = jax.jit(jax.vmap(trainer._multi_step, in_axes=(0, 0, None, None)))
    state = trainer.init_state()
    states = jax.tree.map(lambda a: np.stack([np.asarray(a)] * seeds), state)
    for _ in range(2):  # compile and warm up
        jax.block_until_ready(single(state, single_batches, n, hp))
        jax.block_until_ready(batched(states, many_batches, n, hp))
    one_times, many_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(single(state, single_batches, n, hp))
        one_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(batched(states, many_batches, n, hp))
        many_times.append(time.perf_counter() - start)
    gains = [seeds * a / b for a, b in zip(one_times, many_times)]
    return {
        "model": name,
        "seeds": seeds,
        "single_ms": 1e3 * statistics.median(one_times) / k,
        "batched_ms": 1e3 * statistics.median(many_times) / k,
        "gain": statistics.median(gains),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-00006k", "tiny-00025k", "tiny-00099k"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    one_thread_backend()
    print("| model | runs batched | one run, ms/step | batched, ms/step | runs/s gain (median of paired rounds) |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        for seeds in args.seeds:
            row = bench(name, seeds, args.rounds)
            print(
                f"| {row['model']} | {row['seeds']} | {row['single_ms']:.2f} | {row['batched_ms']:.2f} | "
                f"{row['gain']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
