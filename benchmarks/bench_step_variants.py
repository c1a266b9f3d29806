"""A/B of train-step variants of the model (issue 11: fused QKV, jax.nn.dot_product_attention, one-hot cross-entropy)
against the model as it is: each variant patched in, compiled into the real ``Trainer`` program (16 steps per
dispatch, batch 8 x 128), then timed in interleaved rounds in one process; the speed-up is the median of paired
ratios (so load from other processes hits both alike). None of these variants was kept (BENCHMARKS.md).

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_step_variants.py tiny-00025k base,fused,dpa,fused_dpa,onehot 15
"""
import sys, time, statistics, math, contextlib
import jax, jax.numpy as jnp, numpy as np
from chinchilla import model as M, zoo
from chinchilla.step import Trainer
from chinchilla.train_config import TrainConfig

orig_attn_call = M.Attention.__call__
orig_ce = M.cross_entropy

def fused_qkv(attention):
    """An Attention.__call__ with Q, K and V from one (d, 3hk) matmul, then ``attention(q, k, v)``."""

    def call(self, x_btd):
        d = x_btd.shape[-1]
        qkv = self.qkv[...].astype(self.compute_dtype)
        three, _, h, k = qkv.shape
        w = jnp.transpose(qkv, (1, 0, 2, 3)).reshape(d, 3 * h * k)
        y = (x_btd @ w).reshape(*x_btd.shape[:2], 3, h, k)
        q, kk, v = y[:, :, 0], y[:, :, 1], y[:, :, 2]
        q, kk = M.rotary(q), M.rotary(kk)
        o = attention(q, kk, v)
        return jnp.einsum("bthk,hkd->btd", o, self.out[...].astype(self.compute_dtype))

    return call


attn_fused = fused_qkv(M.causal_attention)
attn_fused_dpa = fused_qkv(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                                                        implementation="xla"))


def attn_dpa(self, x_btd):
    qkv = self.qkv[...].astype(self.compute_dtype)
    q, k, v = (jnp.einsum("btd,dhk->bthk", x_btd, qkv[i]) for i in range(3))
    q, k = M.rotary(q), M.rotary(k)
    y = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")
    return jnp.einsum("bthk,hkd->btd", y, self.out[...].astype(self.compute_dtype))


def ce_onehot(logits, targets):
    log_z = jax.nn.logsumexp(logits, axis=-1)
    tgt = jnp.sum(logits * jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype), axis=-1)
    return jnp.mean(log_z - tgt)

VARIANTS = {
    "base": {},
    "fused": {"attn": attn_fused},
    "dpa": {"attn": attn_dpa},
    "fused_dpa": {"attn": attn_fused_dpa},
    "onehot": {"ce": ce_onehot},
}

@contextlib.contextmanager
def patched(v):
    M.Attention.__call__ = v.get("attn", orig_attn_call)
    M.cross_entropy = v.get("ce", orig_ce)
    try:
        yield
    finally:
        M.Attention.__call__ = orig_attn_call; M.cross_entropy = orig_ce

def main():
    name = sys.argv[1]; names = sys.argv[2].split(","); rounds = int(sys.argv[3])
    k = 16
    progs = {}
    rng = np.random.default_rng(0)
    batches = rng.integers(0, 256, (k, 8, 129)).astype(np.int32)
    for vn in names:
        with patched(VARIANTS[vn]):
            cfg = TrainConfig(model=zoo.get_model(name), tokens=10**9, batch_size=8, steps_per_dispatch=k)
            tr = Trainer(cfg); tr.compiled_step(); st = tr.init_state()
            st, out = tr.train(st, batches); l = np.asarray(out["loss"])
            progs[vn] = [tr, st, l]
    base_l = progs[names[0]][2]
    times = {vn: [] for vn in names}
    for r in range(rounds):
        for vn in names:
            tr, st, _ = progs[vn]
            t = time.perf_counter(); st, out = tr.train(st, batches); jax.block_until_ready(out)
            times[vn].append(time.perf_counter() - t); progs[vn][1] = st
    b = times[names[0]]
    for vn in names:
        ratios = sorted(x / y for x, y in zip(b, times[vn]))
        print(f"{name} {vn:>10}: {8*128*k/statistics.median(times[vn]):>9,.0f} tok/s  speedup vs {names[0]} {statistics.median(ratios):.3f} "
              f"(IQR {ratios[len(ratios)//4]:.2f}-{ratios[3*len(ratios)//4]:.2f})  maxlossdiff {np.max(np.abs(progs[vn][2]-base_l)):.2g}", flush=True)
main()
