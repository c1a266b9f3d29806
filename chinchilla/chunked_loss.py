"""Next-token cross-entropy from the final hidden states without materialising the [B, T, V] float32 logits.

    loss = mean_{b,t} [ logsumexp_v(z[b, t, :]) - z[b, t, target[b, t]] ]   (nats),   z = x @ head (float32)

``chinchilla.model`` computes ``logits_btv = jnp.dot(x_btd, head_dv.astype(compute_dtype),
preferred_element_type=jnp.float32)`` and then ``cross_entropy``: at 32k vocabulary, T=1024 and 64 sequences that
is 8 GiB of float32 logits, plus as much again for their gradient. Here the B*T token rows are cut into chunks of
``chunk_tokens`` rows and a ``lax.scan`` over the chunks computes each chunk's [chunk, V] logits, its loss sum and
nothing else; the scan body is under ``jax.checkpoint``, so the backward recomputes one chunk's logits at a time
instead of saving them (at the price of the head's forward matmul twice). Peak memory: O(chunk * V) instead of
O(B * T * V). When the whole batch's logits fit one chunk there is neither scan nor recompute: the plain loss, as
cheap as before. Same numerics as the unchunked loss
(each chunk's matmul, logsumexp and target logit are the same float32 operations; only the order of the final sum
differs).

FLOP accounting: XLA's ``cost_analysis()`` counts a ``lax.scan`` body once, not once per iteration, so the
reported FLOPs of a step using this loss miss (n_chunks - 1) chunks' head matmuls and log-softmax work: multiply the
body's count by the trip count ``ceil(B*T / chunk_tokens)`` (or count on an unchunked lowering).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Default chunk: at most this many bytes of float32 logits per chunk.
DEFAULT_CHUNK_LOGIT_BYTES = 256 * 2**20


def default_chunk_tokens(vocab_size: int, n_tokens: int | None = None) -> int:
    """Rows per chunk so one chunk's [rows, vocab] float32 logits take <= 256 MiB (>= 1 row, <= n_tokens)."""
    rows = max(1, DEFAULT_CHUNK_LOGIT_BYTES // (4 * int(vocab_size)))
    return rows if n_tokens is None else max(1, min(rows, int(n_tokens)))


def sum_cross_entropy(
    x_btd: jax.Array, head_dv: jax.Array, targets_bt: jax.Array, *, chunk_tokens: int | None = None
) -> tuple[jax.Array, int]:
    """(sum over the B*T tokens of the cross-entropy in nats as a float32 scalar, the token count B*T).

    ``x_btd``: final (normed) hidden states [B, T, d] in the compute dtype. ``head_dv``: the output head [d, V]
    (float32 master weights, or ``embedding.T / sqrt(d)`` when tied); it is cast to ``x``'s dtype as
    ``Decoder.decode`` does and the logits accumulate in float32. ``targets_bt``: int token ids [B, T].
    ``chunk_tokens``: rows per chunk (default ``default_chunk_tokens``); B*T need not be a multiple (the last chunk
    is padded with rows whose loss is masked out). For gradient accumulation: sum the sums over micro-batches and
    divide by the summed counts.

    Raises ValueError for mismatched shapes or ``chunk_tokens < 1``.
    """
    if (
        x_btd.ndim != 3
        or head_dv.ndim != 2
        or targets_bt.shape != x_btd.shape[:2]
        or head_dv.shape[0] != x_btd.shape[-1]
    ):
        raise ValueError(
            f"expected x [B, T, d], head [d, V], targets [B, T]; got {x_btd.shape}, {head_dv.shape}, {targets_bt.shape}"
        )
    d_model, vocab = head_dv.shape
    n_tokens = x_btd.shape[0] * x_btd.shape[1]
    chunk = default_chunk_tokens(vocab, n_tokens) if chunk_tokens is None else int(chunk_tokens)
    if chunk < 1:
        raise ValueError(f"chunk_tokens={chunk_tokens} must be >= 1")
    chunk = min(chunk, n_tokens)
    n_chunks = -(-n_tokens // chunk)
    padded = n_chunks * chunk
    x_nd = x_btd.reshape(n_tokens, d_model)
    targets_n = targets_bt.reshape(n_tokens).astype(jnp.int32)
    valid_n = jnp.arange(padded) < n_tokens
    if padded != n_tokens:
        x_nd = jnp.pad(x_nd, ((0, padded - n_tokens), (0, 0)))
        targets_n = jnp.pad(targets_n, (0, padded - n_tokens))
    xs = (x_nd.reshape(n_chunks, chunk, d_model), targets_n.reshape(n_chunks, chunk), valid_n.reshape(n_chunks, chunk))
    compute_dtype = x_btd.dtype

    def chunk_loss(x_cd, target_c, valid_c):
        # The cast sits inside the body so the head's gradient accumulates across chunks in head_dv's dtype.
        logits_cv = jnp.dot(x_cd, head_dv.astype(compute_dtype), preferred_element_type=jnp.float32)
        log_z_c = jax.nn.logsumexp(logits_cv, axis=-1)
        target_logit_c = jnp.take_along_axis(logits_cv, target_c[:, None], axis=-1)[:, 0]
        return jnp.sum(jnp.where(valid_c, log_z_c - target_logit_c, 0.0))

    if n_chunks == 1:  # the logits fit one chunk: no scan and no recompute (the head's forward is not run twice)
        return chunk_loss(*(part[0] for part in xs)), n_tokens
    chunk_loss = jax.checkpoint(chunk_loss)

    def body(total, chunk_xs):
        return total + chunk_loss(*chunk_xs), None

    total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), xs)
    return total, n_tokens


def chunked_cross_entropy(
    x_btd: jax.Array, head_dv: jax.Array, targets_bt: jax.Array, *, chunk_tokens: int | None = None
) -> jax.Array:
    """Mean next-token cross-entropy in nats over the B*T tokens, float32 scalar: equals
    ``model.cross_entropy(jnp.dot(x_btd, head_dv.astype(x_btd.dtype), preferred_element_type=jnp.float32),
    targets_bt)`` without the [B, T, V] logits. Arguments and errors as ``sum_cross_entropy``."""
    total, count = sum_cross_entropy(x_btd, head_dv, targets_bt, chunk_tokens=chunk_tokens)
    return total / count
