"""Causal multi-head self-attention, four implementations behind one function.

    y[b, t, h] = sum_{s <= t} softmax_s(q[b, t, h] . k[b, s, h] / sqrt(K)) v[b, s, h]

Shapes: ``q_bthk``, ``k_bthk``, ``v_bthk`` are [B, T, H, K] (batch, time, heads, head dim) in the compute dtype
(float32 or bfloat16); the output is [B, T, H, K] in ``v``'s dtype. Logits and softmax are float32 in every
implementation.

Implementations (``IMPLS``; ``AUTO`` picks one per platform and dtype, see ``resolve_impl``):

- ``"xla"``: the full T x T logit matrix per head, masked, then softmax (as Appendix F counts it: the masked half
  is computed and counted). Memory O(B*H*T^2). The reference the others are tested against, and what the FLOP tests
  compare with XLA's ``cost_analysis()``.
- ``"cudnn"``: ``jax.nn.dot_product_attention(..., is_causal=True, implementation="cudnn")``, NVIDIA's fused flash
  attention. It accepts only bfloat16/float16 inputs on a GPU; anywhere else (float32, CPU, TPU) this module falls
  back to ``"xla"`` with one ``AttentionFallbackWarning`` per process and reason instead of raising.
- ``"splash"``: the Pallas TPU "splash" (sparse flash) attention kernel shipped with JAX
  (``jax.experimental.pallas.ops.tpu.splash_attention``), one causal mask per head, vmapped over the batch, q
  pre-scaled by 1/sqrt(K). On TPU it runs the kernel; elsewhere Pallas interpret mode (exact, slow: for tests).
- ``"blocked"``: pure-JAX memory-efficient attention any backend runs: query blocks under ``lax.map`` with each
  block's body under ``jax.checkpoint``, so neither the forward nor the backward holds the [B, H, T, T] scores
  (memory O(B*H*block*T)); the idea of tiling attention so the score matrix is never materialised is Dao et al.,
  "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness" (2022). Each block takes a plain
  softmax over all T keys (no online softmax is needed since a block row holds every key), so the maths is the
  ``"xla"`` maths. It is also what a CPU memory planner compiles as a stand-in for flash/splash/cuDNN memory.
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp

from chinchilla import sharding

IMPLS: tuple[str, ...] = ("xla", "cudnn", "splash", "blocked")
AUTO = "auto"

# Splash attention's kv block (``block_kv_compute``) must be a multiple of the TPU lane count; blocks tried
# largest first. T is padded up to a multiple of _SPLASH_LANES (exact: padded keys lie in every real query's
# future, so the causal mask hides them; padded queries' outputs are sliced off).
_SPLASH_LANES = 128
_SPLASH_BLOCKS = (512, 256, 128)
_BLOCKED_DEFAULT = 128
_CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
_GPU_PLATFORMS = ("gpu", "cuda", "rocm")


class AttentionFallbackWarning(UserWarning):
    """An explicitly requested attention implementation cannot run here; another one (named in the message) runs."""


_warned_reasons: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned_reasons:
        _warned_reasons.add(message)
        warnings.warn(message, AttentionFallbackWarning, stacklevel=3)


def resolve_impl(requested: str, *, platform: str, compute_dtype) -> tuple[str, str]:
    """The implementation that actually runs for ``requested`` on ``platform`` at ``compute_dtype``, and why.

    ``platform``: a backend name as ``jax.default_backend()`` gives it ("cpu", "gpu" (or "cuda"/"rocm"), "tpu").
    ``"auto"``: TPU -> "splash"; GPU with bfloat16/float16 -> "cudnn"; GPU float32 -> "xla" (cuDNN needs
    bf16/fp16); CPU -> "xla". An explicit "cudnn" with float32 compute or off a GPU resolves to "xla" and emits
    one ``AttentionFallbackWarning`` per process and reason. Other explicit names are returned as they are
    ("splash" off a TPU runs in Pallas interpret mode).

    Raises ValueError if ``requested`` is not "auto" or one of ``IMPLS``.
    """
    if requested != AUTO and requested not in IMPLS:
        raise ValueError(f"attention impl {requested!r} is not one of {(AUTO, *IMPLS)}")
    platform = platform.lower()
    is_gpu, is_tpu = platform in _GPU_PLATFORMS, platform == "tpu"
    dtype = jnp.dtype(compute_dtype)
    half = dtype in _CUDNN_DTYPES
    if requested == AUTO:
        if is_tpu:
            return "splash", "auto on TPU: the Pallas splash attention kernel"
        if is_gpu and half:
            works, why = cudnn_works(platform)
            if not works:
                return "xla", f"auto on GPU with {dtype.name} compute: cuDNN attention does not run here ({why})"
            return "cudnn", f"auto on GPU with {dtype.name} compute: cuDNN fused attention"
        if is_gpu:
            return "xla", f"auto on GPU with {dtype.name} compute: cuDNN attention needs bfloat16/float16"
        return "xla", f"auto on {platform}: plain XLA attention"
    if requested == "cudnn":
        if not is_gpu:
            reason = f"cuDNN attention needs a GPU, the backend is {platform}: using 'xla'"
        elif not half:
            reason = f"cuDNN attention needs bfloat16/float16 inputs, got {dtype.name}: using 'xla'"
        elif not cudnn_works(platform)[0]:
            reason = f"cuDNN attention does not run here ({cudnn_works(platform)[1]}): using 'xla'"
        else:
            return "cudnn", f"requested; GPU with {dtype.name} compute"
        _warn_once(reason)
        return "xla", reason
    if requested == "splash" and not is_tpu:
        return "splash", f"requested; on {platform} the Pallas kernel runs in interpret mode (slow)"
    return requested, "requested"


@functools.cache
def cudnn_works(platform: str) -> tuple[bool, str]:
    """Whether cuDNN's fused attention compiles and runs on this process's first GPU, and if not why (the error's
    first line). Checked once per process on a small bfloat16 causal attention, since cuDNN builds and CUDA
    versions differ in what they support (e.g. jax-ml/jax#32430: failures under CUDA 13). True without a check for a
    ``platform`` that is not this process's backend (``resolve_impl`` called to plan for another machine)."""
    if platform.lower() not in _GPU_PLATFORMS or jax.default_backend() not in _GPU_PLATFORMS:
        return True, "not checked here"
    try:
        q = jnp.ones((1, 128, 1, 64), jnp.bfloat16)
        jax.block_until_ready(
            jax.jit(lambda x: jax.nn.dot_product_attention(x, x, x, is_causal=True, implementation="cudnn"))(q)
        )
    except Exception as error:  # noqa: BLE001 - any failure means: do not use it; the reason is reported
        return (
            False,
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}",
        )
    return True, "checked"


def causal_attention(
    q_bthk: jax.Array,
    k_bthk: jax.Array,
    v_bthk: jax.Array,
    impl: str = "xla",
    *,
    interpret: bool | None = None,
    block_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> jax.Array:
    """Causal softmax attention, [B, T, H, K] x 3 -> [B, T, H, K] in ``v``'s dtype, scale 1/sqrt(K).

    ``impl``: "auto" or one of ``IMPLS`` (resolved by ``resolve_impl`` against ``jax.default_backend()`` and
    ``q``'s dtype, so "cudnn" off a GPU or in float32 falls back to "xla" with one warning).
    ``interpret`` ("splash" only): run the Pallas kernel in interpret mode; None means iff the default backend is
    not TPU. ``block_size``: query block of "blocked" (default min(T, 128); T need not be a multiple: the queries
    are padded and the padding sliced off) or the q/kv block of "splash" (default the largest of 512, 256, 128
    dividing T rounded up to a multiple of 128; must be a multiple of 128 dividing that padded T).
    ``mesh`` ("splash" only): the device mesh the arrays are laid out on. A Pallas kernel is not partitioned by
    XLA's GSPMD, so on a mesh of several devices the kernel runs under ``jax.shard_map``: each device attends over
    its own batch rows (the ``data`` x ``fsdp`` axes) and heads (the ``tensor`` axis), as MaxText runs it.

    Raises ValueError for an unknown ``impl``, mismatched shapes or an unusable ``block_size``.
    """
    if q_bthk.ndim != 4 or q_bthk.shape != k_bthk.shape or k_bthk.shape != v_bthk.shape:
        raise ValueError(
            f"q, k, v must share one [B, T, H, K] shape, got {q_bthk.shape}, {k_bthk.shape}, {v_bthk.shape}"
        )
    resolved, _ = resolve_impl(impl, platform=jax.default_backend(), compute_dtype=q_bthk.dtype)
    if resolved == "xla":
        return _xla_attention(q_bthk, k_bthk, v_bthk)
    if resolved == "cudnn":
        y_bthk = jax.nn.dot_product_attention(q_bthk, k_bthk, v_bthk, is_causal=True, implementation="cudnn")
        return y_bthk.astype(v_bthk.dtype)
    if resolved == "splash":
        if interpret is None:
            interpret = jax.default_backend() != "tpu"
        splash = functools.partial(_splash_attention, interpret=bool(interpret), block_size=block_size)
        if mesh is not None and mesh.size > 1:
            spec = sharding.logical_to_spec(("batch", None, "heads", None), q_bthk.shape, mesh)
            splash = jax.shard_map(splash, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)
        return splash(q_bthk, k_bthk, v_bthk)
    return _blocked_attention(q_bthk, k_bthk, v_bthk, block_size=block_size)


def _xla_attention(q_bthk: jax.Array, k_bthk: jax.Array, v_bthk: jax.Array) -> jax.Array:
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


def _blocked_attention(q_bthk: jax.Array, k_bthk: jax.Array, v_bthk: jax.Array, *, block_size: int | None) -> jax.Array:
    """The "xla" maths one query block at a time: ``lax.map`` over blocks, each under ``jax.checkpoint``."""
    batch, seq_len, heads, kv_size = q_bthk.shape
    block = min(seq_len, _BLOCKED_DEFAULT) if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size={block_size} must be >= 1")
    n_blocks = -(-seq_len // block)
    padded = n_blocks * block
    if padded != seq_len:  # padded queries see every key (no empty softmax row); their outputs are sliced off
        q_bthk = jnp.pad(q_bthk, ((0, 0), (0, padded - seq_len), (0, 0), (0, 0)))
    q_nbqhk = jnp.moveaxis(q_bthk.reshape(batch, n_blocks, block, heads, kv_size), 1, 0)
    key_pos_s = jnp.arange(seq_len)
    scale = 1.0 / math.sqrt(kv_size)

    @jax.checkpoint
    def one_block(args):
        index, q_bqhk = args
        logits_bhqs = jnp.einsum("bqhk,bshk->bhqs", q_bqhk, k_bthk, preferred_element_type=jnp.float32)
        logits_bhqs = logits_bhqs * scale
        query_pos_q = index * block + jnp.arange(block)
        causal_qs = key_pos_s[None, :] <= query_pos_q[:, None]
        logits_bhqs = jnp.where(causal_qs, logits_bhqs, jnp.finfo(jnp.float32).min)
        weights_bhqs = jax.nn.softmax(logits_bhqs, axis=-1).astype(v_bthk.dtype)
        return jnp.einsum("bhqs,bshk->bqhk", weights_bhqs, v_bthk)

    y_nbqhk = jax.lax.map(one_block, (jnp.arange(n_blocks), q_nbqhk))
    y_bthk = jnp.moveaxis(y_nbqhk, 0, 1).reshape(batch, padded, heads, kv_size)
    return y_bthk[:, :seq_len]


def _splash_kernel(seq_len: int, heads: int, block: int, interpret: bool):
    """A splash MHA kernel for a causal [H, T, T] mask. Built per call, not cached here: it holds arrays that are
    tracers when built under ``jit`` (the numpy mask processing is cached upstream, in ``_process_mask``)."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    mask = splash.MultiHeadMask([splash.CausalMask((seq_len, seq_len)) for _ in range(heads)])
    sizes = splash.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    return splash.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret)


def _splash_block(padded_len: int, block_size: int | None) -> int:
    if block_size is None:
        return next(b for b in _SPLASH_BLOCKS if padded_len % b == 0)
    if block_size % _SPLASH_LANES or padded_len % block_size:
        raise ValueError(
            f"splash block_size={block_size} must be a multiple of {_SPLASH_LANES} dividing the "
            f"sequence length padded to a multiple of {_SPLASH_LANES} ({padded_len})"
        )
    return int(block_size)


def _splash_attention(
    q_bthk: jax.Array, k_bthk: jax.Array, v_bthk: jax.Array, *, interpret: bool, block_size: int | None
) -> jax.Array:
    """Pallas splash attention (causal mask per head), vmapped over the batch; [B, T, H, K] in and out.

    The kernel takes [H, T, K] per example with T a multiple of its 128-wide kv blocks, so T is padded up to a
    multiple of 128 (exact for a causal mask) and sliced back. Head dims below 128 are accepted by the kernel as
    they are (jax-ml/jax#26676 lets XLA pad them).
    """
    _, seq_len, heads, kv_size = q_bthk.shape
    padded = -(-seq_len // _SPLASH_LANES) * _SPLASH_LANES
    block = _splash_block(padded, block_size)
    q_bthk = (q_bthk * (1.0 / math.sqrt(kv_size))).astype(q_bthk.dtype)
    if padded != seq_len:
        pad = ((0, 0), (0, padded - seq_len), (0, 0), (0, 0))
        q_bthk, k_bthk, v_bthk = (jnp.pad(x, pad) for x in (q_bthk, k_bthk, v_bthk))
    kernel = _splash_kernel(padded, heads, block, interpret)
    q_bhtk, k_bhtk, v_bhtk = (jnp.swapaxes(x, 1, 2) for x in (q_bthk, k_bthk, v_bthk))
    y_bhtk = jax.vmap(lambda q, k, v: kernel(q, k, v))(q_bhtk, k_bhtk, v_bhtk)
    return jnp.swapaxes(y_bhtk, 1, 2)[:, :seq_len].astype(v_bthk.dtype)
