"""Our compiled train step against a PyTorch peer of the same model, in tokens/s, on the tiny ladder (CPU).

The peer: the same decoder written in PyTorch (pre-norm RMSNorm, fused bias-free QKV, rotary, causal
softmax attention through ``F.scaled_dot_product_attention(is_causal=True)``, tanh-GELU MLP, untied head, mean
cross-entropy), ``torch.compile``d, trained with global-norm clipping and fused AdamW (decoupled weight decay on
matrices only, the same schedule values), ``torch.set_num_threads(2)``. It starts from *our* initial parameters
(copied from ``chinchilla.step.Trainer.init_state``; our layers' parameters are stacked on a leading layer axis,
``params["blocks"][name][i]``, and sliced per layer for the peer), and the script checks that both compute the
same loss on the same batch (``--loss-tolerance``, default 1e-6 relative) and the same losses over the first
training steps, before timing anything.

Ours is the default step (layers scanned, remat "none", the whole batch in one pass, chunked loss).
Timing: per model, ``--rounds`` rounds of [one dispatch of ours (``steps_per_dispatch`` = 16 optimizer steps, the
program ``train_run`` uses); the same number of peer steps], back to back, after warm-up; medians; the ratio is
peer tokens/s / our tokens/s (below 1.0: we are faster). Both train batch 8 x 128 random tokens. The machine is
shared (other jobs load its 2 cores), so only ratios measured in one process mean anything.

torch is not a dependency of the project: ``.venv/bin/pip install torch==2.13.0`` (a CPU wheel). Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_torch_peer.py
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_torch_peer.py --models tiny-00025k --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from chinchilla import zoo
from chinchilla.model import RMS_EPS, ROTARY_BASE
from chinchilla.step import Trainer
from chinchilla.train_config import TrainConfig

DEFAULT_MODELS = ("tiny-00004k", "tiny-00025k", "tiny-00099k", "tiny-00394k", "tiny-02975k")


def build_peer(config, params: dict, torch):
    """A torch module with our parameters (float32 copies) and a train step with fused AdamW."""
    F = torch.nn.functional
    m = config.model

    def t(a):
        return torch.nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float32))

    class Peer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = t(params["embedding"])
            self.head = t(params["head"])
            self.final_norm = t(params["final_norm"]["scale"])
            blocks = params["blocks"]  # stacked: each [n_layers, ...] (chinchilla.model.Blocks)
            layers = range(m.n_layers)
            # Fused QKV as one (d, 3*h*k) matrix: ours is (3, d, h, k) per layer.
            self.qkv = torch.nn.ParameterList(
                [t(np.asarray(blocks["qkv"][i]).transpose(1, 0, 2, 3).reshape(m.d_model, -1)) for i in layers]
            )
            self.out = torch.nn.ParameterList([t(np.asarray(blocks["out"][i]).reshape(-1, m.d_model)) for i in layers])
            self.norm1 = torch.nn.ParameterList([t(blocks["attention_norm"][i]) for i in layers])
            self.norm2 = torch.nn.ParameterList([t(blocks["dense_norm"][i]) for i in layers])
            self.w_in = torch.nn.ParameterList([t(blocks["w_in"][i]) for i in layers])
            self.w_out = torch.nn.ParameterList([t(blocks["w_out"][i]) for i in layers])
            half = m.kv_size // 2
            inv_freq = ROTARY_BASE ** (-torch.arange(half, dtype=torch.float32) / half)
            angle = torch.arange(m.seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
            self.register_buffer("sin", torch.sin(angle)[None, None])  # [1, 1, T, k/2]
            self.register_buffer("cos", torch.cos(angle)[None, None])

        def rms(self, x, scale):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * scale

        def rotary(self, x):  # [B, H, T, k]
            half = x.shape[-1] // 2
            x1, x2 = x[..., :half], x[..., half:]
            return torch.cat([x1 * self.cos - x2 * self.sin, x2 * self.cos + x1 * self.sin], dim=-1)

        def forward(self, batch):
            tokens, targets = batch[:, :-1], batch[:, 1:]
            b, T = tokens.shape
            x = self.embedding[tokens]
            for i in range(m.n_layers):
                qkv = (self.rms(x, self.norm1[i]) @ self.qkv[i]).view(b, T, 3, m.n_heads, m.kv_size)
                q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, k]
                y = F.scaled_dot_product_attention(self.rotary(q), self.rotary(k), v, is_causal=True)
                x = x + y.transpose(1, 2).reshape(b, T, -1) @ self.out[i]
                x = x + F.gelu(self.rms(x, self.norm2[i]) @ self.w_in[i], approximate="tanh") @ self.w_out[i]
            logits = self.rms(x, self.final_norm) @ self.head
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    peer = Peer()
    matrices = [p for p in peer.parameters() if p.ndim > 1]
    vectors = [p for p in peer.parameters() if p.ndim == 1]
    kwargs = dict(betas=(config.adam_b1, config.adam_b2), eps=config.adam_eps)
    try:
        optimizer = torch.optim.AdamW(
            [{"params": matrices, "weight_decay": config.weight_decay}, {"params": vectors, "weight_decay": 0.0}],
            lr=config.lr,
            fused=True,
            **kwargs,
        )
        fused = True
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(
            [{"params": matrices, "weight_decay": config.weight_decay}, {"params": vectors, "weight_decay": 0.0}],
            lr=config.lr,
            **kwargs,
        )
        fused = False
    compiled = torch.compile(peer)

    def step(batch, lr):
        loss = compiled(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(peer.parameters(), config.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return peer, step, fused


def bench_model(name: str, rounds: int, tolerance: float, check_steps: int, torch) -> dict:
    config = TrainConfig(model=zoo.get_model(name), tokens=10**9, batch_size=8, steps_per_dispatch=16)
    trainer = Trainer(config)
    state = trainer.init_state()
    params = jax.device_get(state["params"])
    peer, peer_step, fused = build_peer(config, params, torch)
    rng = np.random.default_rng(0)
    k, length = config.steps_per_dispatch, config.model.seq_len + 1
    batches = rng.integers(0, config.model.vocab_size, (k, config.batch_size, length)).astype(np.int32)
    torch_batches = [torch.tensor(b, dtype=torch.long) for b in batches]  # separate tensors: no view guards

    # Same loss on the same batch, from the same parameters; then the same losses over the first steps.
    ours0 = float(trainer._eval(state["params"], trainer.put_batches(batches[:1])))
    with torch.no_grad():
        theirs0 = float(peer(torch_batches[0]))
    if abs(ours0 - theirs0) > tolerance * abs(ours0):
        raise AssertionError(f"{name}: initial loss {ours0!r} (ours) vs {theirs0!r} (peer)")
    state, out = trainer.train(state, batches)
    ours = np.asarray(out["loss"])
    lrs = np.asarray(out["lr"], np.float64)
    theirs = np.array([float(peer_step(torch_batches[i], float(lrs[i]))) for i in range(k)])
    step_diff = float(np.max(np.abs(ours[:check_steps] - theirs[:check_steps])))

    ours_t, theirs_t = [], []
    for _ in range(2):  # warm-up (the peer's compile happened above)
        state, out = trainer.train(state, batches)
        jax.block_until_ready(out)
        for j in range(k):
            peer_step(torch_batches[j], 1e-4)
    for _ in range(rounds):
        start = time.perf_counter()
        state, out = trainer.train(state, batches)
        jax.block_until_ready(out)
        ours_t.append((time.perf_counter() - start) / k)
        start = time.perf_counter()
        for j in range(k):
            loss = peer_step(torch_batches[j], 1e-4)
        float(loss)
        theirs_t.append((time.perf_counter() - start) / k)
    tokens = config.tokens_per_step
    ratios = sorted(o / p for o, p in zip(ours_t, theirs_t))
    return {
        "model": name,
        "d_model": config.model.d_model,
        "initial_loss_ours": ours0,
        "initial_loss_diff": abs(ours0 - theirs0),
        "max_step_loss_diff": step_diff,
        "ours_tokens_per_s": tokens / statistics.median(ours_t),
        "peer_tokens_per_s": tokens / statistics.median(theirs_t),
        "peer_over_ours": statistics.median(ratios),
        "fused_adamw": fused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--loss-tolerance",
        type=float,
        default=1e-6,
        help="relative, initial loss (float32 sums in another order: 8e-8 at tiny-00025k, 3.2e-7 "
        "at tiny-00099k measured)",
    )
    parser.add_argument("--check-steps", type=int, default=4, help="training steps whose losses are compared")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"jax {jax.__version__}, torch {torch.__version__}, {args.threads} torch threads")
    print(
        f"{'model':<13}{'d':>5}{'loss diff':>11}{'step diff':>11}{'ours tok/s':>12}{'peer tok/s':>12}{'peer/ours':>11}"
    )
    for name in args.models:
        r = bench_model(name, args.rounds, args.loss_tolerance, args.check_steps, torch)
        print(
            f"{r['model']:<13}{r['d_model']:>5}{r['initial_loss_diff']:>11.2g}{r['max_step_loss_diff']:>11.2g}"
            f"{r['ours_tokens_per_s']:>12,.0f}{r['peer_tokens_per_s']:>12,.0f}{r['peer_over_ours']:>10.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
