"""Input pipeline throughput against the train step it feeds (the goal: batches >= 10x faster than consumed).

For each batch size, measured in one process:
  * data: batches/s of ``data.batches("embedded", seq_len=T, batch_size=B)`` (best of ``--repeats`` timed runs of
    ``--n`` batches each, after the token array is cached);
  * step: train steps/s of a tiny-ladder model (jitted forward + backward + AdamW update, ``chinchilla.model``);
  * bound: the fastest any train step of that model could run, its Appendix F training FLOPs at the large-matmul
    FLOP/s measured here (a step is never faster than this, so data/bound is a conservative ratio).
Prints a markdown table; ratios, not absolute times, are the result (the machine is shared and noisy).

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_data.py [--batch-sizes 8 16 32 64] [--model tiny-00004k]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_rate(fn, n: int, repeats: int) -> float:
    """Best calls/s of ``fn`` over ``repeats`` runs of ``n`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def data_rate(batch_size: int, seq_len: int, tokenizer: str, n: int, repeats: int) -> float:
    from chinchilla import data

    it = data.batches(
        "embedded", tokenizer=tokenizer, seq_len=seq_len, batch_size=batch_size, seed=0, warn_repeats=False
    )
    next(it)
    return best_rate(lambda: next(it), n, repeats)


def matmul_flops_per_s(size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a jitted float32 [size, size] @ [size, size] (2 size^3 FLOPs)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, a).block_until_ready()
    calls = best_rate(lambda: matmul(a, a).block_until_ready(), 20, repeats)
    return 2 * size**3 * calls


def train_step_rate(model_name: str, batch_size: int, seq_len: int, n: int, repeats: int) -> float:
    """Steps/s of a jitted forward + backward + AdamW update of a zoo model on a fixed batch."""
    import jax
    import optax
    from flax import nnx

    from chinchilla import model as model_lib
    from chinchilla import zoo

    config = zoo.get_model(model_name).replace(seq_len=seq_len)
    graphdef, params = nnx.split(model_lib.Decoder(config, rngs=nnx.Rngs(0)))
    optimizer = optax.adamw(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(lambda p: model_lib.loss_fn(nnx.merge(graphdef, p), batch))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch = np.random.default_rng(0).integers(0, config.vocab_size, (batch_size, seq_len + 1), dtype=np.int32)
    state = [params, opt_state]

    def run():
        state[0], state[1], loss = step(state[0], state[1], batch)
        loss.block_until_ready()

    run()
    return best_rate(run, n, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--tokenizer", default="byte")
    parser.add_argument("--model", default="tiny-00004k", help="the consumer: a zoo model (smallest tiny default)")
    parser.add_argument("--n", type=int, default=2000, help="batches per timed data run")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed train run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import jax

    from chinchilla import flops, zoo

    config = zoo.get_model(args.model).replace(seq_len=args.seq_len)
    peak = matmul_flops_per_s()
    print(
        f"backend {jax.default_backend()}, {jax.device_count()} device(s); matmul peak {peak / 1e9:.1f} GFLOP/s; "
        f"consumer {args.model}; seq_len {args.seq_len}; tokenizer {args.tokenizer}\n"
    )
    print("| batch | data batches/s | train steps/s | data / step | FLOP-bound steps/s | data / bound |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch_size in args.batch_sizes:
        data_per_s = data_rate(batch_size, args.seq_len, args.tokenizer, args.n, args.repeats)
        steps_per_s = train_step_rate(args.model, batch_size, args.seq_len, args.steps, args.repeats)
        bound_per_s = peak / (batch_size * flops.training_flops_per_sequence(config))
        print(
            f"| {batch_size} | {data_per_s:,.0f} | {steps_per_s:,.1f} | {data_per_s / steps_per_s:,.0f}x | "
            f"{bound_per_s:,.0f} | {data_per_s / bound_per_s:,.1f}x |"
        )


if __name__ == "__main__":
    main()
