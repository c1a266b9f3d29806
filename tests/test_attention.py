"""chinchilla.attention: every implementation against the full-matrix XLA reference (forward and gradients),
causality, the cuDNN fallback, resolve_impl's table, and the blocked implementation's compiled memory."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chinchilla import attention
from chinchilla.attention import AttentionFallbackWarning, causal_attention, resolve_impl


@pytest.fixture(autouse=True)
def _fresh_warnings():
    attention._warned_reasons.clear()
    yield
    attention._warned_reasons.clear()


def _qkv_ct(shape, dtype=jnp.float32, seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    return [jax.random.normal(key, shape, jnp.float32).astype(dtype) for key in keys]


def _value_and_grads(impl, q, k, v, ct, **kwargs):
    def scalar(q, k, v):
        y = causal_attention(q, k, v, impl, **kwargs)
        return jnp.vdot(y.astype(jnp.float32), ct), y

    (_, y), grads = jax.jit(jax.value_and_grad(scalar, argnums=(0, 1, 2), has_aux=True))(q, k, v)
    return y, grads


CASES = [  # impl, T, H, K, block_size
    ("blocked", 128, 4, 16, 32),
    ("blocked", 256, 2, 128, 64),
    ("blocked", 200, 3, 16, 64),  # T not a multiple of the block: padded queries
    ("splash", 128, 3, 16, None),
    ("splash", 256, 2, 128, None),
    ("splash", 200, 2, 32, None),  # T not a multiple of 128: padded to 256
]


@pytest.mark.parametrize("impl,seq_len,heads,kv_size,block_size", CASES)
def test_impl_matches_xla_forward_and_gradients(impl, seq_len, heads, kv_size, block_size):
    q, k, v, ct = _qkv_ct((2, seq_len, heads, kv_size))
    y_ref, grads_ref = _value_and_grads("xla", q, k, v, ct)
    y, grads = _value_and_grads(impl, q, k, v, ct, block_size=block_size)
    assert y.shape == q.shape and y.dtype == v.dtype
    np.testing.assert_allclose(y, y_ref, atol=1e-5, rtol=0)
    for name, g, g_ref in zip("qkv", grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, atol=1e-5, rtol=1e-5, err_msg=f"d{name}")


@pytest.mark.parametrize("impl", ["blocked", "splash"])
def test_bfloat16_forward_close_to_xla(impl):
    q, k, v, _ = _qkv_ct((1, 128, 2, 32), jnp.bfloat16)
    y = causal_attention(q, k, v, impl)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(y.astype(np.float32), causal_attention(q, k, v).astype(np.float32), atol=3e-2)


@pytest.mark.parametrize("impl,block_size,position", [("blocked", 64, 63), ("blocked", 64, 100), ("splash", None, 77)])
def test_output_does_not_depend_on_later_keys_or_values(impl, block_size, position):
    q, k, v, ct = _qkv_ct((1, 256, 2, 16))
    ct_at_t = jnp.zeros_like(ct).at[:, position].set(ct[:, position])

    def scalar(k, v):
        return jnp.vdot(causal_attention(q, k, v, impl, block_size=block_size), ct_at_t)

    dk, dv = jax.grad(scalar, argnums=(0, 1))(k, v)
    for name, g in (("dk", dk), ("dv", dv)):
        assert np.all(np.asarray(g[:, position + 1 :]) == 0.0), f"{name} nonzero after position {position}"
        assert np.all(np.abs(np.asarray(g[:, : position + 1])).max(axis=(0, 2, 3)) > 0), f"{name} zero at <= t"


def test_cudnn_on_cpu_float32_falls_back_to_xla_with_one_warning():
    q, k, v, _ = _qkv_ct((2, 128, 2, 16))
    with pytest.warns(AttentionFallbackWarning) as record:
        y = causal_attention(q, k, v, "cudnn")
        y_again = causal_attention(q, k, v, "cudnn")
    fallbacks = [w for w in record if issubclass(w.category, AttentionFallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in fallbacks]
    assert "xla" in str(fallbacks[0].message)
    np.testing.assert_array_equal(y, causal_attention(q, k, v, "xla"))
    np.testing.assert_array_equal(y_again, y)


def test_cudnn_falls_back_inside_jit():
    q, k, v, _ = _qkv_ct((1, 128, 2, 16))
    with pytest.warns(AttentionFallbackWarning):
        y = jax.jit(lambda q, k, v: causal_attention(q, k, v, "cudnn"))(q, k, v)
    np.testing.assert_allclose(y, causal_attention(q, k, v), atol=1e-6)


@pytest.mark.parametrize(
    "platform,dtype,expected",
    [
        ("tpu", jnp.float32, "splash"),
        ("tpu", jnp.bfloat16, "splash"),
        ("gpu", jnp.float32, "xla"),
        ("gpu", jnp.bfloat16, "cudnn"),
        ("gpu", jnp.float16, "cudnn"),
        ("cpu", jnp.float32, "xla"),
        ("cpu", jnp.bfloat16, "xla"),
    ],
)
def test_resolve_auto(platform, dtype, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        impl, reason = resolve_impl("auto", platform=platform, compute_dtype=dtype)
    assert impl == expected and reason
    if (platform, expected) == ("gpu", "xla"):
        assert "bfloat16" in reason


@pytest.mark.parametrize(
    "platform,dtype,expected,warns",
    [
        ("gpu", jnp.bfloat16, "cudnn", False),
        ("gpu", jnp.float32, "xla", True),
        ("cpu", jnp.bfloat16, "xla", True),
        ("cpu", jnp.float32, "xla", True),
        ("tpu", jnp.bfloat16, "xla", True),
        ("tpu", jnp.float32, "xla", True),
    ],
)
def test_resolve_explicit_cudnn(platform, dtype, expected, warns):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        impl, reason = resolve_impl("cudnn", platform=platform, compute_dtype=dtype)
    assert impl == expected and reason
    assert len([w for w in record if issubclass(w.category, AttentionFallbackWarning)]) == int(warns)


@pytest.mark.parametrize("requested", ["xla", "splash", "blocked"])
@pytest.mark.parametrize("platform", ["tpu", "gpu", "cpu"])
def test_resolve_explicit_others_kept(requested, platform):
    assert resolve_impl(requested, platform=platform, compute_dtype=jnp.float32)[0] == requested


def test_unknown_impl_raises_listing_choices():
    with pytest.raises(ValueError, match="flash.*'xla'.*'cudnn'.*'splash'.*'blocked'"):
        resolve_impl("flash", platform="cpu", compute_dtype=jnp.float32)
    q, k, v, _ = _qkv_ct((1, 8, 1, 4))
    with pytest.raises(ValueError, match="flash"):
        causal_attention(q, k, v, "flash")


def test_splash_rejects_block_not_dividing_padded_length():
    q, k, v, _ = _qkv_ct((1, 256, 1, 16))
    with pytest.raises(ValueError, match="block_size=192"):
        causal_attention(q, k, v, "splash", block_size=192)


def _grad_temp_bytes(impl, shape):
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    grad = jax.grad(lambda q, k, v, ct: jnp.vdot(causal_attention(q, k, v, impl), ct), argnums=(0, 1, 2))
    return jax.jit(grad).lower(spec, spec, spec, spec).compile().memory_analysis().temp_size_in_bytes


def test_blocked_gradient_memory_is_a_fraction_of_xla():
    shape = (2, 1024, 4, 16)  # B, T, H, K: one [B, H, T, T] float32 score matrix is 32 MiB
    xla_bytes, blocked_bytes = _grad_temp_bytes("xla", shape), _grad_temp_bytes("blocked", shape)
    assert xla_bytes > 2 * 4 * 1024 * 1024 * 4  # the reference holds at least one whole score matrix
    assert blocked_bytes < 0.5 * xla_bytes, (blocked_bytes, xla_bytes)


def test_auto_on_a_gpu_where_cudnn_fails_falls_back_to_xla_with_the_reason(monkeypatch):
    """cuDNN attention is probed once per process on the real GPU (builds differ: jax-ml/jax#32430); a failure
    makes "auto" choose xla and an explicit "cudnn" fall back with its one warning, both naming the error."""

    def broken(*args, **kwargs):
        raise RuntimeError("cuDNN Frontend error: no valid engine configs\nmore lines")

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax.nn, "dot_product_attention", broken)
    attention.cudnn_works.cache_clear()
    try:
        impl, why = attention.resolve_impl("auto", platform="gpu", compute_dtype=jnp.bfloat16)
        assert impl == "xla" and "no valid engine configs" in why and "\n" not in why
        with pytest.warns(attention.AttentionFallbackWarning, match="no valid engine configs"):
            assert attention.resolve_impl("cudnn", platform="gpu", compute_dtype=jnp.bfloat16)[0] == "xla"
        monkeypatch.setattr(jax.nn, "dot_product_attention", lambda q, k, v, **kwargs: q)
        attention.cudnn_works.cache_clear()
        assert attention.resolve_impl("auto", platform="gpu", compute_dtype=jnp.bfloat16)[0] == "cudnn"
    finally:
        attention.cudnn_works.cache_clear()
