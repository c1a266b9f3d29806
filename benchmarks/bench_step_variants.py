"""A/B of train-step variants of the model (fused QKV, jax.nn.dot_product_attention) against the model as
it is: each variant patched in, compiled into the real ``Trainer`` program (16 steps per dispatch, batch 8 x 128,
layers scanned), then timed in interleaved rounds in one process; the speed-up is the median of paired ratios (so
load from other processes hits both alike). The model uses none of these variants (measurements: BENCHMARKS.md).

Variants: ``base`` (the model as it is), ``fused`` (Q, K, V from one (d, 3hk) matmul: ``chinchilla.model.block``
replaced), ``dpa`` (the "xla" attention replaced by ``jax.nn.dot_product_attention(implementation="xla")``),
``fused_dpa`` (both), ``blocked`` (``attention_impl="blocked"``, the query-chunked attention of
``chinchilla.attention``, a config setting rather than a patch). The attention is the function
``chinchilla.attention.causal_attention`` called from ``chinchilla.model.block``, so the patches replace those two
names. There is no loss variant: the loss is ``chinchilla.chunked_loss``, which never forms the whole logits.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_step_variants.py tiny-00025k base,fused,dpa,fused_dpa,blocked 15
"""

import contextlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from chinchilla import attention as A
from chinchilla import model as M
from chinchilla import zoo
from chinchilla.step import Trainer
from chinchilla.train_config import TrainConfig

orig_block = M.block
orig_attention = A.causal_attention


def block_fused(layer, x_btd, *, compute_dtype, attention_impl):
    """``chinchilla.model.block`` with Q, K and V from one (d, 3hk) matmul."""
    qkv = layer["qkv"].astype(compute_dtype)
    three, d, h, k = qkv.shape
    w = jnp.transpose(qkv, (1, 0, 2, 3)).reshape(d, three * h * k)
    h_btd = M.rms_norm(x_btd, layer["attention_norm"])
    y = (h_btd @ w).reshape(*x_btd.shape[:2], three, h, k)
    q, kk, v = y[:, :, 0], y[:, :, 1], y[:, :, 2]
    q, kk = M.rotary(q), M.rotary(kk)
    o = A.causal_attention(q, kk, v, attention_impl)
    x_btd = x_btd + jnp.einsum("bthk,hkd->btd", o, layer["out"].astype(compute_dtype))
    h_btd = M.rms_norm(x_btd, layer["dense_norm"])
    return x_btd + jax.nn.gelu(h_btd @ layer["w_in"].astype(compute_dtype)) @ layer["w_out"].astype(compute_dtype)


def attention_dpa(q, k, v, impl="xla", **kwargs):
    if impl != "xla":
        return orig_attention(q, k, v, impl, **kwargs)
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")


VARIANTS = {
    "base": {},
    "fused": {"block": block_fused},
    "dpa": {"attention": attention_dpa},
    "fused_dpa": {"block": block_fused, "attention": attention_dpa},
    "blocked": {"config": {"attention_impl": "blocked"}},
}


@contextlib.contextmanager
def patched(variant):
    M.block = variant.get("block", orig_block)
    A.causal_attention = variant.get("attention", orig_attention)
    try:
        yield
    finally:
        M.block, A.causal_attention = orig_block, orig_attention


def main():
    name = sys.argv[1]
    names = sys.argv[2].split(",")
    rounds = int(sys.argv[3])
    k = 16
    progs = {}
    rng = np.random.default_rng(0)
    batches = rng.integers(0, 256, (k, 8, 129)).astype(np.int32)
    for vn in names:
        variant = VARIANTS[vn]
        with patched(variant):
            settings = {"attention_impl": "xla", **variant.get("config", {})}
            cfg = TrainConfig(model=zoo.get_model(name), tokens=10**9, batch_size=8, steps_per_dispatch=k, **settings)
            tr = Trainer(cfg)
            tr.compiled_step()
            st = tr.init_state()
            st, out = tr.train(st, batches)
            l = np.asarray(out["loss"])
            progs[vn] = [tr, st, l]
    base_l = progs[names[0]][2]
    times = {vn: [] for vn in names}
    for _ in range(rounds):
        for vn in names:
            tr, st, _ = progs[vn]
            t = time.perf_counter()
            st, out = tr.train(st, batches)
            jax.block_until_ready(out)
            times[vn].append(time.perf_counter() - t)
            progs[vn][1] = st
    b = times[names[0]]
    for vn in names:
        ratios = sorted(x / y for x, y in zip(b, times[vn]))
        tokens_per_s = 8 * 128 * k / statistics.median(times[vn])
        quartiles = f"{ratios[len(ratios) // 4]:.2f}-{ratios[3 * len(ratios) // 4]:.2f}"
        loss_diff = np.max(np.abs(progs[vn][2] - base_l))
        print(
            f"{name} {vn:>10}: {tokens_per_s:>9,.0f} tok/s  speedup vs {names[0]} {statistics.median(ratios):.3f} "
            f"(IQR {quartiles})  maxlossdiff {loss_diff:.2g}",
            flush=True,
        )


if __name__ == "__main__":
    main()
