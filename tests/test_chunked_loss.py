"""chinchilla.chunked_loss against model.cross_entropy of the full logits (as Decoder.decode computes them):
value and gradients for chunk sizes that divide B*T and that do not, and the compiled memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chinchilla.chunked_loss import chunked_cross_entropy, default_chunk_tokens, sum_cross_entropy
from chinchilla.model import cross_entropy


def _reference(x_btd, head_dv, targets_bt):
    logits_btv = jnp.dot(x_btd, head_dv.astype(x_btd.dtype), preferred_element_type=jnp.float32)
    return cross_entropy(logits_btv, targets_bt)


def _inputs(batch=3, seq_len=10, d_model=16, vocab=50, dtype=jnp.float32, scale=1.0):
    kx, kh, kt = jax.random.split(jax.random.key(0), 3)
    x_btd = (jax.random.normal(kx, (batch, seq_len, d_model)) * scale).astype(dtype)
    head_dv = jax.random.normal(kh, (d_model, vocab)) / np.sqrt(d_model)
    targets_bt = jax.random.randint(kt, (batch, seq_len), 0, vocab)
    return x_btd, head_dv, targets_bt


@pytest.mark.parametrize("chunk_tokens", [1, 5, 7, 16, 30, 64, None])  # B*T = 30
@pytest.mark.parametrize("scale", [1.0, 30.0])  # 30: losses in the tens, logits far from zero
def test_matches_full_logits_value_and_gradients(chunk_tokens, scale):
    x_btd, head_dv, targets_bt = _inputs(scale=scale)
    loss_ref, (dx_ref, dh_ref) = jax.value_and_grad(_reference, argnums=(0, 1))(x_btd, head_dv, targets_bt)
    chunked = jax.jit(lambda x, h, t: chunked_cross_entropy(x, h, t, chunk_tokens=chunk_tokens))
    loss, (dx, dh) = jax.value_and_grad(chunked, argnums=(0, 1))(x_btd, head_dv, targets_bt)
    assert loss.dtype == jnp.float32 and loss.shape == ()
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dh, dh_ref, rtol=1e-5, atol=1e-5)


def test_sum_and_count_normalise_to_the_mean_across_micro_batches():
    x_btd, head_dv, targets_bt = _inputs(batch=4)
    sums, counts = zip(
        *(sum_cross_entropy(x_btd[i : i + 2], head_dv, targets_bt[i : i + 2], chunk_tokens=7) for i in (0, 2))
    )
    assert counts == (20, 20)
    np.testing.assert_allclose(sum(sums) / sum(counts), _reference(x_btd, head_dv, targets_bt), rtol=1e-6)


def test_bfloat16_compute_casts_head_like_decode():
    x_btd, head_dv, targets_bt = _inputs(dtype=jnp.bfloat16)
    loss_ref, (dx_ref, dh_ref) = jax.value_and_grad(_reference, argnums=(0, 1))(x_btd, head_dv, targets_bt)
    loss, (dx, dh) = jax.value_and_grad(
        lambda x, h: chunked_cross_entropy(x, h, targets_bt, chunk_tokens=7), argnums=(0, 1)
    )(x_btd, head_dv)
    assert dx.dtype == jnp.bfloat16 and dh.dtype == jnp.float32
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    np.testing.assert_allclose(dx.astype(np.float32), dx_ref.astype(np.float32), atol=1e-3, rtol=1e-2)
    np.testing.assert_allclose(dh, dh_ref, atol=1e-3, rtol=1e-2)


def test_default_chunk_is_at_most_256_mib_of_logits():
    assert default_chunk_tokens(32768) == 2048
    assert default_chunk_tokens(32768, n_tokens=100) == 100
    assert default_chunk_tokens(2**40) == 1


def test_rejects_bad_arguments():
    x_btd, head_dv, targets_bt = _inputs()
    with pytest.raises(ValueError, match="chunk_tokens=0"):
        chunked_cross_entropy(x_btd, head_dv, targets_bt, chunk_tokens=0)
    with pytest.raises(ValueError, match="targets"):
        chunked_cross_entropy(x_btd, head_dv, targets_bt[:, :-1])


def _grad_temp_bytes(loss, shapes):
    specs = [jax.ShapeDtypeStruct(s, dt) for s, dt in shapes]
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(*specs).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_gradient_memory_below_half_the_full_logits():
    batch, seq_len, vocab, d_model = 8, 512, 32768, 64
    shapes = [((batch, seq_len, d_model), jnp.float32), ((d_model, vocab), jnp.float32), ((batch, seq_len), jnp.int32)]
    logits_bytes = batch * seq_len * vocab * 4  # 512 MiB
    chunked = _grad_temp_bytes(lambda x, h, t: chunked_cross_entropy(x, h, t, chunk_tokens=512), shapes)
    full = _grad_temp_bytes(_reference, shapes)
    assert full >= logits_bytes  # the unchunked loss holds at least the whole logits
    assert chunked < logits_bytes / 2, (chunked, logits_bytes)
