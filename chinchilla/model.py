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
``LOGICAL_AXES``), which ``chinchilla.sharding`` maps to mesh axes by a rules table. The layers' parameters are
stacked on a leading ``layers`` axis (``Blocks``) and the forward pass is one ``lax.scan`` over them, each layer
optionally rematerialised (``remat_policy``); attention is one of ``chinchilla.attention``'s implementations and the
loss is computed over chunks of tokens (``chinchilla.chunked_loss``), never on the whole [B, T, vocab] logits.

FLOPs compared with Appendix F (``chinchilla.flops``): the "xla" attention is computed in full (a T x T logit matrix
per head, then masked), so XLA counts the masked half exactly as Appendix F does. The input embedding is a gather
(XLA counts 0 FLOPs, Appendix F counts it as a matmul of 2*T*V*d): ``xla_comparable_training_flops_per_sequence``
leaves that term out. XLA also counts elementwise work (norms, rotary, GELU, softmax, loss, optimizer) that
Appendix F ignores; ``elementwise_training_flops_per_sequence`` adds it as a separate, model-specific term, and
``expected_xla_step_flops`` is the sum the tests compare with ``cost_analysis()``. The training metrics and MFU
always use the exact Appendix F count (``chinchilla.flops``), the paper's convention.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from chinchilla import attention, chunked_loss, flops
from chinchilla.config import ModelConfig

# Logical axis names that parameters carry: one per dimension.
LOGICAL_AXES: tuple[str, ...] = ("layers", "vocab", "embed", "heads", "kv", "qkv", "mlp", "norm")
ROTARY_BASE = 10_000.0
RMS_EPS = 1e-6


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], stddev: float) -> jax.Array:
    """A float32 array drawn from a normal truncated at 2 standard deviations, with standard deviation ``stddev``."""
    # truncated_normal(-2, 2) has variance 0.7737; rescale so the stddev is the one asked for.
    return jax.random.truncated_normal(rngs.params(), -2.0, 2.0, shape, jnp.float32) * (stddev / 0.87962566)


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], stddev: float, axes: tuple[str | None, ...]) -> nnx.Param:
    """A float32 matrix drawn by ``_normal``, with its logical axis names."""
    return nnx.Param(_normal(rngs, shape, stddev), logical_axes=axes)


class RMSNorm(nnx.Module):
    """y = x / sqrt(mean(x^2) + eps) * scale, computed in float32 (Zhang & Sennrich 2019)."""

    def __init__(self, d_model: int):
        self.scale = nnx.Param(jnp.ones((d_model,), jnp.float32), logical_axes=("norm",))

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        return rms_norm(x_btd, self.scale[...])


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


REMAT_POLICIES: tuple[str, ...] = ("none", "full", "dots", "offload")


def remat_policy(name: str) -> Any:
    """The ``jax.checkpoint`` policy of ``TrainConfig.remat=name`` applied to each layer (None: no remat).

    "none": every activation of the backward pass is kept (fastest, most memory). "full": nothing inside a layer is
    saved; the backward pass recomputes the layer's forward (about +1/3 of the forward FLOPs, i.e. ~+25% of a step;
    only the residual stream between layers is kept). "dots": matmul outputs without batch dimensions (the weight
    projections) are saved, attention scores and elementwise work recomputed (+2-5% FLOPs). "offload": as "dots", but
    the saved projections go to pinned host memory (GPU/TPU backends that have it; refused elsewhere by
    ``chinchilla.step.Trainer``). Policies are JAX's ``jax.checkpoint_policies``.
    """
    if name not in REMAT_POLICIES:
        raise ValueError(f"remat={name!r} is not one of {REMAT_POLICIES}")
    policies = jax.checkpoint_policies
    return {
        "none": None,
        "full": policies.nothing_saveable,
        "dots": policies.dots_with_no_batch_dims_saveable,
        "offload": policies.offload_dot_with_no_batch_dims("device", "pinned_host"),
    }[name]


class Blocks(nnx.Module):
    """The ``n_layers`` identical pre-norm layers with their parameters stacked on a leading ``layers`` axis (so the
    forward pass is one ``lax.scan`` over layers: one compiled layer, and remat policies XLA honours):

        a_l = h_l + Attn_l(RMSNorm(h_l)),   h_l+1 = a_l + W2_l GELU(W1_l RMSNorm(a_l))

    Per layer: bias-free Q, K, V (``qkv``: 3 x d_model x n_heads x kv_size) and output (``out``: n_heads x kv_size x
    d_model), ``w_in`` (d_model x ffw_size), ``w_out`` (ffw_size x d_model) and two RMSNorm scales (d_model each);
    the same parameters, counted the same way, as one module per layer.
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        L, d, h, k, f = config.n_layers, config.d_model, config.n_heads, config.kv_size, config.ffw_size
        # (shape, stddev, logical axes) of each layer's matrices; residual-branch outputs start smaller with depth
        # (GPT-2's 1/sqrt(2 * n_layers))
        matrices = {
            "qkv": ((3, d, h, k), 1.0 / math.sqrt(d), ("qkv", "embed", "heads", "kv")),
            "out": ((h, k, d), 1.0 / math.sqrt(h * k * 2 * L), ("heads", "kv", "embed")),
            "w_in": ((d, f), 1.0 / math.sqrt(d), ("embed", "mlp")),
            "w_out": ((f, d), 1.0 / math.sqrt(f * 2 * L), ("mlp", "embed")),
        }
        # drawn layer by layer, in this order, then stacked: the same initial values as one module per layer had
        drawn = {name: [] for name in matrices}
        for _ in range(L):
            for name, (shape, stddev, _) in matrices.items():
                drawn[name].append(_normal(rngs, shape, stddev))
        for name, (_, _, axes) in matrices.items():
            setattr(self, name, nnx.Param(jnp.stack(drawn[name]), logical_axes=("layers", *axes)))
        self.attention_norm = nnx.Param(jnp.ones((L, d), jnp.float32), logical_axes=("layers", "norm"))
        self.dense_norm = nnx.Param(jnp.ones((L, d), jnp.float32), logical_axes=("layers", "norm"))

    def stacked(self) -> dict[str, jax.Array]:
        """The parameters as arrays [n_layers, ...], keyed by name (what ``block`` takes one slice of)."""
        return {
            name: getattr(self, name)[...] for name in ("attention_norm", "qkv", "out", "dense_norm", "w_in", "w_out")
        }


def rms_norm(x_btd: jax.Array, scale_d: jax.Array) -> jax.Array:
    """y = x / sqrt(mean(x^2) + eps) * scale, computed in float32 (Zhang & Sennrich 2019), returned in x's dtype."""
    x32 = x_btd.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + RMS_EPS)
    return (normed * scale_d).astype(x_btd.dtype)


def block(
    layer: dict[str, jax.Array],
    x_btd: jax.Array,
    *,
    compute_dtype: jnp.dtype,
    attention_impl: str,
    mesh: jax.sharding.Mesh | None = None,
) -> jax.Array:
    """One pre-norm layer on x [B, T, d_model]: x + Attn(RMSNorm(x)), then + Dense(RMSNorm(.)). ``layer``: one slice
    of ``Blocks.stacked()`` (float32 master weights, cast to ``compute_dtype`` for the matmuls); ``mesh``: the
    devices the batch is laid out on (for attention kernels that run per device, see ``chinchilla.attention``)."""
    qkv = layer["qkv"].astype(compute_dtype)
    h_btd = rms_norm(x_btd, layer["attention_norm"])
    q_bthk, k_bthk, v_bthk = (jnp.einsum("btd,dhk->bthk", h_btd, qkv[i]) for i in range(3))
    q_bthk, k_bthk = rotary(q_bthk), rotary(k_bthk)
    y_bthk = attention.causal_attention(q_bthk, k_bthk, v_bthk, attention_impl, mesh=mesh)
    x_btd = x_btd + jnp.einsum("bthk,hkd->btd", y_bthk, layer["out"].astype(compute_dtype))
    h_btd = rms_norm(x_btd, layer["dense_norm"])
    h_btf = jax.nn.gelu(h_btd @ layer["w_in"].astype(compute_dtype))
    return x_btd + h_btf @ layer["w_out"].astype(compute_dtype)


class Decoder(nnx.Module):
    """The whole model: ``Decoder(config, rngs=nnx.Rngs(seed))(tokens_bt) -> logits_btv`` (float32).

    ``compute_dtype``: dtype of activations and of the weights as used in matmuls (weights are stored in float32).
    ``attention_impl``: one of ``chinchilla.attention.IMPLS`` or "auto" (resolved for the default backend by
    ``chinchilla.attention.resolve_impl``: splash on TPU, cuDNN on GPUs in bf16, XLA elsewhere); the choice is
    ``self.attention_impl``. ``remat``: a ``REMAT_POLICIES`` name, applied to each layer. ``scan_layers``: the
    layers as one ``lax.scan`` (True: one compiled layer, remat honoured by every backend's scheduler) or unrolled
    (False: the same program as a Python loop; XLA's ``cost_analysis`` then counts every layer). ``mesh``: the
    device mesh of the batch (``chinchilla.step.Trainer`` passes its own), for the splash kernel's ``shard_map``.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        rngs: nnx.Rngs,
        compute_dtype: jnp.dtype = jnp.float32,
        attention_impl: str = "xla",
        remat: str = "none",
        scan_layers: bool = True,
        mesh: jax.sharding.Mesh | None = None,
    ):
        if config.architecture != "rotary":
            raise ValueError(
                f"architecture={config.architecture!r}: chinchilla.model implements only 'rotary' "
                "(the paper's relative-position architecture is an accounting convention here)"
            )
        remat_policy(remat)  # checks the name
        self.config = config
        self.compute_dtype = jnp.dtype(compute_dtype)
        self.attention_impl, self.attention_reason = attention.resolve_impl(
            attention_impl, platform=jax.default_backend(), compute_dtype=self.compute_dtype
        )
        self.remat = remat
        self.scan_layers = bool(scan_layers)
        self.mesh = mesh
        self.embedding = _param(rngs, (config.vocab_size, config.d_model), 1.0, ("vocab", "embed"))
        self.blocks = Blocks(config, rngs=rngs)
        self.final_norm = RMSNorm(config.d_model)
        if not config.tie_embeddings:
            self.head = _param(
                rngs, (config.d_model, config.vocab_size), 1.0 / math.sqrt(config.d_model), ("embed", "vocab")
            )

    def __call__(self, tokens_bt: jax.Array) -> jax.Array:
        return self.decode(self.embed(tokens_bt))

    def embed(self, tokens_bt: jax.Array) -> jax.Array:
        """Token ids [B, T] -> input vectors [B, T, d_model] (a row lookup)."""
        return self.embedding[...].astype(self.compute_dtype)[tokens_bt]

    def hidden(self, x_btd: jax.Array) -> jax.Array:
        """Input vectors [B, T, d_model] -> the final-normed last hidden state [B, T, d_model] (compute dtype)."""
        one_layer = functools.partial(
            block, compute_dtype=self.compute_dtype, attention_impl=self.attention_impl, mesh=self.mesh
        )
        policy = remat_policy(self.remat)
        if self.remat != "none":
            one_layer = jax.checkpoint(one_layer, policy=policy, prevent_cse=not self.scan_layers)

        def body(x_btd: jax.Array, layer: dict) -> tuple[jax.Array, None]:
            return one_layer(layer, x_btd), None

        unroll = 1 if self.scan_layers else max(1, self.config.n_layers)
        x_btd, _ = jax.lax.scan(body, x_btd, self.blocks.stacked(), unroll=unroll)
        return self.final_norm(x_btd)

    def head_matrix(self) -> jax.Array:
        """The output head [d_model, vocab] in the compute dtype (E^T / sqrt(d_model) when tied)."""
        if self.config.tie_embeddings:
            head_dv = self.embedding[...].T * (1.0 / math.sqrt(self.config.d_model))
        else:
            head_dv = self.head[...]
        return head_dv.astype(self.compute_dtype)

    def decode(self, x_btd: jax.Array) -> jax.Array:
        """Input vectors [B, T, d_model] -> next-token logits [B, T, vocab] in float32."""
        return jnp.dot(self.hidden(x_btd), self.head_matrix(), preferred_element_type=jnp.float32)


def cross_entropy(logits_btv: jax.Array, targets_bt: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy in nats: -mean log softmax(logits)[target]."""
    log_z_bt = jax.nn.logsumexp(logits_btv, axis=-1)
    target_logit_bt = jnp.take_along_axis(logits_btv, targets_bt[..., None], axis=-1)[..., 0]
    return jnp.mean(log_z_bt - target_logit_bt)


def loss_fn(model: Decoder, batch_bt1: jax.Array) -> jax.Array:
    """Language-model loss of a packed batch [B, T+1] (inputs batch[:, :-1], targets batch[:, 1:]): the mean
    next-token cross-entropy in nats, computed over chunks of tokens (``chinchilla.chunked_loss``) so that the whole
    [B, T, vocab] float32 logits never exist at once; equal to ``cross_entropy(model(inputs), targets)``."""
    hidden_btd = model.hidden(model.embed(batch_bt1[:, :-1]))
    return chunked_loss.chunked_cross_entropy(hidden_btd, model.head_matrix(), batch_bt1[:, 1:])


def count_params(model: Decoder) -> int:
    """Number of scalars in the model's ``nnx.Param`` variables."""
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


# What XLA's cost analysis counts for this model's elementwise work in one training step (forward + backward), in
# FLOPs per element, found by differencing ``cost_analysis()`` over shapes (jax 0.10.2, CPU). Appendix F counts
# none of it; it matters only for the smallest models (9% of the step at d_model=12, 0.6% at d_model=352).
XLA_ELEMENTWISE_FLOPS: dict[str, float] = {
    "vocab_logit": 5.0,  # per token per vocabulary entry: log-softmax cross-entropy
    "ffw_unit": 22.0,  # per token, layer and ffw unit: tanh-GELU (8 forward, 14 backward)
    "attention_logit": 5.0,  # per token, layer, head and key: masking and softmax beyond Appendix F's 3 + 6
    "attention_width": 18.5,  # per token, layer and element of kv_size*n_heads: rotary on Q and K, scaling
    "residual": 37.0,  # per token, layer and d_model: two RMSNorms, two residual adds
    "final": 12.0,  # per token and d_model: final RMSNorm, embedding-gradient accumulation
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
