"""The decoder this project trains (architecture ``"rotary"`` of ``chinchilla.config``), in Flax NNX.

A pre-norm decoder-only transformer with exactly the parameters ``chinchilla.flops.param_count`` counts:

    h_0   = E[tokens]                                   input embedding E: vocab x d_model
    a_l   = h_l + Attn_l(RMSNorm(h_l))                  bias-free Q, K, V (d_model x n_heads x kv_size each, fused
                                                        into one tensor) and output (n_heads x kv_size x d_model);
                                                        rotary positions on Q and K; causal softmax attention
    h_l+1 = a_l + W2_l GELU(W1_l RMSNorm(a_l))          dense d_model -> ffw_size -> d_model, bias-free
    logits = RMSNorm(h_L) H                             output head H: d_model x vocab, or E^T / sqrt(d_model) if tied

RMSNorm (Zhang & Sennrich 2019) has one scale vector of d_model per norm: two per layer and one final. Rotary
positions (Su et al. 2021) have no parameters. Matrices and scales are stored in float32 (the master weights); the
forward pass casts them to ``compute_dtype`` (bfloat16 on accelerators) and returns float32 logits.

Every parameter is an ``nnx.Param`` carrying ``logical_axes`` metadata (one name per dimension, from
``LOGICAL_AXES``), which ``chinchilla.sharding`` maps to mesh axes by a rules table.

FLOPs compared with Appendix F (``chinchilla.flops``): the attention is computed in full (a T x T logit matrix per
head, then masked), so XLA counts the masked half exactly as Appendix F does. The input embedding is a gather
(XLA counts 0 FLOPs, Appendix F counts it as a matmul of 2*T*V*d): ``xla_comparable_training_flops_per_sequence``
leaves that term out. XLA also counts elementwise work (norms, rotary, GELU, softmax, loss, optimizer) that
Appendix F ignores; ``elementwise_training_flops_per_sequence`` adds it as a separate, model-specific term, and
``expected_xla_step_flops`` is the sum the tests compare with ``cost_analysis()``. The training metrics and MFU
always use the exact Appendix F count (``chinchilla.flops``), the paper's convention.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from chinchilla import flops
from chinchilla.config import ModelConfig

# Logical axis names that parameters carry: one per dimension.
LOGICAL_AXES: tuple[str, ...] = ("vocab", "embed", "heads", "kv", "qkv", "mlp", "norm")
ROTARY_BASE = 10_000.0
RMS_EPS = 1e-6
AttentionImpl = Literal["xla", "cudnn"]


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], stddev: float, axes: tuple[str | None, ...]) -> nnx.Param:
    """A float32 matrix drawn from a normal truncated at 2 standard deviations, with its logical axis names."""
    # truncated_normal(-2, 2) has variance 0.7737; rescale so the stddev is the one asked for.
    value = jax.random.truncated_normal(rngs.params(), -2.0, 2.0, shape, jnp.float32) * (stddev / 0.87962566)
    return nnx.Param(value, logical_axes=axes)


class RMSNorm(nnx.Module):
    """y = x / sqrt(mean(x^2) + eps) * scale, computed in float32 (Zhang & Sennrich 2019)."""

    def __init__(self, d_model: int):
        self.scale = nnx.Param(jnp.ones((d_model,), jnp.float32), logical_axes=("norm",))

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        x32 = x_btd.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + RMS_EPS)
        return (normed * self.scale[...]).astype(x_btd.dtype)


def rotary(x_bthk: jax.Array, base: float = ROTARY_BASE) -> jax.Array:
    """Rotary position embedding (Su et al. 2021): rotate dimension pairs (i, i + k/2) of each head by the angle
    position * base^(-2i/k). Positions are 0..T-1 along axis 1."""
    seq_len, half = x_bthk.shape[1], x_bthk.shape[-1] // 2
    inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle_tk = jnp.arange(seq_len, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    sin = jnp.sin(angle_tk)[None, :, None, :].astype(x_bthk.dtype)
    cos = jnp.cos(angle_tk)[None, :, None, :].astype(x_bthk.dtype)
    x1, x2 = x_bthk[..., :half], x_bthk[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def causal_attention(q_bthk: jax.Array, k_bthk: jax.Array, v_bthk: jax.Array) -> jax.Array:
    """softmax(q k^T / sqrt(kv_size) + causal mask) v per head, logits and softmax in float32.

    The full T x T logit matrix is computed and then masked (as Appendix F counts it). Written out rather than
    ``jax.nn.dot_product_attention(implementation="xla")``, which ran this model's CPU train step 1.2-1.7x slower
    at d_model <= 64 (same speed at 192).
    """
    seq_len, kv_size = q_bthk.shape[1], q_bthk.shape[-1]
    logits_bhts = jnp.einsum("bthk,bshk->bhts", q_bthk, k_bthk, preferred_element_type=jnp.float32)
    logits_bhts = logits_bhts * (1.0 / math.sqrt(kv_size))
    causal_ts = jnp.tril(jnp.ones((seq_len, seq_len), dtype=bool))
    logits_bhts = jnp.where(causal_ts, logits_bhts, jnp.finfo(jnp.float32).min)
    weights_bhts = jax.nn.softmax(logits_bhts, axis=-1).astype(v_bthk.dtype)
    return jnp.einsum("bhts,bshk->bthk", weights_bhts, v_bthk)


class Attention(nnx.Module):
    """Causal multi-head attention with rotary positions and bias-free projections (4 * d_model * n_heads *
    kv_size parameters)."""

    def __init__(self, config: ModelConfig, *, compute_dtype: jnp.dtype, attention_impl: AttentionImpl,
                 rngs: nnx.Rngs):
        d, h, k = config.d_model, config.n_heads, config.kv_size
        self.compute_dtype = compute_dtype
        self.attention_impl = attention_impl
        self.qkv = _param(rngs, (3, d, h, k), 1.0 / math.sqrt(d), ("qkv", "embed", "heads", "kv"))
        # Residual-branch outputs start smaller with depth (GPT-2's 1/sqrt(2 * n_layers)).
        self.out = _param(rngs, (h, k, d), 1.0 / math.sqrt(h * k * 2 * config.n_layers), ("heads", "kv", "embed"))

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        qkv = self.qkv[...].astype(self.compute_dtype)
        q_bthk, k_bthk, v_bthk = (jnp.einsum("btd,dhk->bthk", x_btd, qkv[i]) for i in range(3))
        q_bthk, k_bthk = rotary(q_bthk), rotary(k_bthk)
        if self.attention_impl == "xla":
            y_bthk = causal_attention(q_bthk, k_bthk, v_bthk)
        else:
            y_bthk = jax.nn.dot_product_attention(q_bthk, k_bthk, v_bthk, is_causal=True,
                                                  implementation=self.attention_impl)
        return jnp.einsum("bthk,hkd->btd", y_bthk, self.out[...].astype(self.compute_dtype))


class Dense(nnx.Module):
    """GELU feed-forward d_model -> ffw_size -> d_model, bias-free (2 * d_model * ffw_size parameters)."""

    def __init__(self, config: ModelConfig, *, compute_dtype: jnp.dtype, rngs: nnx.Rngs):
        d, f = config.d_model, config.ffw_size
        self.compute_dtype = compute_dtype
        self.w_in = _param(rngs, (d, f), 1.0 / math.sqrt(d), ("embed", "mlp"))
        self.w_out = _param(rngs, (f, d), 1.0 / math.sqrt(f * 2 * config.n_layers), ("mlp", "embed"))

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        h_btf = jax.nn.gelu(x_btd @ self.w_in[...].astype(self.compute_dtype))
        return h_btf @ self.w_out[...].astype(self.compute_dtype)


class Block(nnx.Module):
    """One pre-norm layer: x + Attn(RMSNorm(x)), then + Dense(RMSNorm(.))."""

    def __init__(self, config: ModelConfig, *, compute_dtype: jnp.dtype, attention_impl: AttentionImpl,
                 rngs: nnx.Rngs):
        self.attention_norm = RMSNorm(config.d_model)
        self.attention = Attention(config, compute_dtype=compute_dtype, attention_impl=attention_impl, rngs=rngs)
        self.dense_norm = RMSNorm(config.d_model)
        self.dense = Dense(config, compute_dtype=compute_dtype, rngs=rngs)

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        x_btd = x_btd + self.attention(self.attention_norm(x_btd))
        return x_btd + self.dense(self.dense_norm(x_btd))


class Decoder(nnx.Module):
    """The whole model: ``Decoder(config, rngs=nnx.Rngs(seed))(tokens_bt) -> logits_btv`` (float32).

    ``compute_dtype``: dtype of activations and of the weights as used in matmuls (weights are stored in float32).
    ``attention_impl``: "xla" (``causal_attention``, everywhere) or "cudnn" (``jax.nn.dot_product_attention``'s fused
    flash attention, NVIDIA GPUs in bfloat16).
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, compute_dtype: jnp.dtype = jnp.float32,
                 attention_impl: AttentionImpl = "xla"):
        if config.architecture != "rotary":
            raise ValueError(f"architecture={config.architecture!r}: chinchilla.model implements only 'rotary' "
                             "(the paper's relative-position architecture is an accounting convention here)")
        if attention_impl not in ("xla", "cudnn"):
            raise ValueError(f"attention_impl={attention_impl!r} is not one of ('xla', 'cudnn')")
        self.config = config
        self.compute_dtype = jnp.dtype(compute_dtype)
        self.embedding = _param(rngs, (config.vocab_size, config.d_model), 1.0, ("vocab", "embed"))
        self.blocks = nnx.List([Block(config, compute_dtype=self.compute_dtype, attention_impl=attention_impl,
                                      rngs=rngs) for _ in range(config.n_layers)])
        self.final_norm = RMSNorm(config.d_model)
        if not config.tie_embeddings:
            self.head = _param(rngs, (config.d_model, config.vocab_size), 1.0 / math.sqrt(config.d_model),
                               ("embed", "vocab"))

    def __call__(self, tokens_bt: jax.Array) -> jax.Array:
        return self.decode(self.embed(tokens_bt))

    def embed(self, tokens_bt: jax.Array) -> jax.Array:
        """Token ids [B, T] -> input vectors [B, T, d_model] (a row lookup)."""
        return self.embedding[...].astype(self.compute_dtype)[tokens_bt]

    def decode(self, x_btd: jax.Array) -> jax.Array:
        """Input vectors [B, T, d_model] -> next-token logits [B, T, vocab] in float32."""
        for block in self.blocks:
            x_btd = block(x_btd)
        x_btd = self.final_norm(x_btd)
        if self.config.tie_embeddings:
            head_dv = self.embedding[...].T * (1.0 / math.sqrt(self.config.d_model))
        else:
            head_dv = self.head[...]
        return jnp.dot(x_btd, head_dv.astype(self.compute_dtype), preferred_element_type=jnp.float32)


def cross_entropy(logits_btv: jax.Array, targets_bt: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy in nats: -mean log softmax(logits)[target]."""
    log_z_bt = jax.nn.logsumexp(logits_btv, axis=-1)
    target_logit_bt = jnp.take_along_axis(logits_btv, targets_bt[..., None], axis=-1)[..., 0]
    return jnp.mean(log_z_bt - target_logit_bt)


def loss_fn(model: Decoder, batch_bt1: jax.Array) -> jax.Array:
    """Language-model loss of a packed batch [B, T+1]: inputs batch[:, :-1], targets batch[:, 1:]."""
    logits_btv = model(batch_bt1[:, :-1])
    return cross_entropy(logits_btv, batch_bt1[:, 1:])


def count_params(model: Decoder) -> int:
    """Number of scalars in the model's ``nnx.Param`` variables."""
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


# What XLA's cost analysis counts for this model's elementwise work in one training step (forward + backward), in
# FLOPs per element, found by differencing ``cost_analysis()`` over shapes (jax 0.10.2, CPU). Appendix F counts
# none of it; it matters only for the smallest models (9% of the step at d_model=12, 0.6% at d_model=352).
XLA_ELEMENTWISE_FLOPS: dict[str, float] = {
    "vocab_logit": 5.0,       # per token per vocabulary entry: log-softmax cross-entropy
    "ffw_unit": 22.0,         # per token, layer and ffw unit: tanh-GELU (8 forward, 14 backward)
    "attention_logit": 5.0,   # per token, layer, head and key: masking and softmax beyond Appendix F's 3 + 6
    "attention_width": 18.5,  # per token, layer and element of kv_size*n_heads: rotary on Q and K, scaling
    "residual": 37.0,         # per token, layer and d_model: two RMSNorms, two residual adds
    "final": 12.0,            # per token and d_model: final RMSNorm, embedding-gradient accumulation
}
OPTIMIZER_FLOPS_PER_PARAM = 15.0  # per parameter per step: clipping, Adam moments, weight decay, update


def xla_comparable_training_flops_per_sequence(config: ModelConfig) -> int:
    """Appendix F training FLOPs per sequence, minus the input-embedding term, which this model computes as a gather.

    Appendix F counts the embedding as a matmul (2*T*V*d forward, x3 for training); ``Decoder`` looks rows up, and
    XLA's cost analysis counts a gather (and its scatter-add gradient) as 0 FLOPs. Everything else is counted the
    same way by both: every matmul at 2 FLOPs per multiply-accumulate, the causal attention in full (T x T logits,
    then masked: the masked half is computed and counted, as Appendix F does), and the backward pass as twice the
    forward.
    """
    return flops.training_flops_per_sequence(config) - 3 * flops.forward_flops_components(config)["embeddings"]


def elementwise_training_flops_per_sequence(config: ModelConfig) -> float:
    """XLA's count of this model's elementwise training FLOPs per sequence (``XLA_ELEMENTWISE_FLOPS``); a
    model-specific term outside Appendix F, which counts matmuls and softmax only."""
    c = XLA_ELEMENTWISE_FLOPS
    L, d, f, h, w = config.n_layers, config.d_model, config.ffw_size, config.n_heads, config.attention_width
    T, V = config.seq_len, config.vocab_size
    per_layer = c["ffw_unit"] * f + c["residual"] * d + c["attention_width"] * w + c["attention_logit"] * h * T
    return T * (c["vocab_logit"] * V + L * per_layer + c["final"] * d)


def expected_xla_step_flops(config: ModelConfig, batch_size: int) -> float:
    """What ``cost_analysis()["flops"]`` of one train step (batch_size sequences) should be: Appendix F without the
    gathered embedding, plus the elementwise term, plus the optimizer update."""
    per_sequence = xla_comparable_training_flops_per_sequence(config) + elementwise_training_flops_per_sequence(config)
    return batch_size * per_sequence + OPTIMIZER_FLOPS_PER_PARAM * flops.param_count(config).total
