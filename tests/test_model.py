"""The Flax decoder: the accounting describes it exactly (parameters; FLOPs against XLA's own count), it is causal,
its parameters carry logical axis names, and its numerics hold up in bf16."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from chinchilla import flops, model, zoo
from chinchilla.config import ModelConfig
from chinchilla.step import Trainer
from chinchilla.train import TrainConfig

SMALL = ModelConfig(n_layers=2, d_model=32, ffw_size=96, n_heads=4, kv_size=12, vocab_size=64, seq_len=16)


@pytest.mark.parametrize(
    "config",
    [
        SMALL,
        SMALL.replace(tie_embeddings=True),
        SMALL.replace(n_layers=3, n_heads=3, kv_size=6),  # attention width 18 != d_model 32
        zoo.get_model("tiny-00025k"),
    ],
    ids=["untied", "tied", "narrow-attention", "tiny-00025k"],
)
def test_parameter_count_matches_the_accounting(config):
    decoder = nnx.eval_shape(lambda: model.Decoder(config, rngs=nnx.Rngs(0)))
    assert model.count_params(decoder) == flops.param_count(config).total
    assert hasattr(decoder, "head") != config.tie_embeddings


def test_every_parameter_carries_one_logical_name_per_dimension():
    decoder = nnx.eval_shape(lambda: model.Decoder(SMALL, rngs=nnx.Rngs(0)))
    variables = jax.tree.leaves(nnx.state(decoder, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))
    # embedding, final norm, head; the layers' two norm scales, qkv, out, w_in, w_out, stacked over layers
    assert len(variables) == 3 + 6
    for variable in variables:
        axes = variable.get_metadata()["logical_axes"]
        assert len(axes) == len(variable.shape)
        assert set(axes) <= set(model.LOGICAL_AXES)
        if axes[0] == "layers":
            assert variable.shape[0] == SMALL.n_layers
    assert sum(variable.get_metadata()["logical_axes"][0] == "layers" for variable in variables) == 6


def test_the_loss_at_position_t_has_zero_gradient_wrt_later_inputs():
    decoder = model.Decoder(SMALL, rngs=nnx.Rngs(1))
    tokens = jax.random.randint(jax.random.key(2), (2, SMALL.seq_len), 0, SMALL.vocab_size)
    targets = jax.random.randint(jax.random.key(3), (2, SMALL.seq_len), 0, SMALL.vocab_size)
    x_btd = decoder.embed(tokens)
    t = 6

    def loss_at_t(x):
        logits = decoder.decode(x)
        return model.cross_entropy(logits[:, t : t + 1], targets[:, t : t + 1])

    grad_btd = np.asarray(jax.jit(jax.grad(loss_at_t))(x_btd))
    per_position = np.abs(grad_btd).sum(axis=(0, 2))
    assert np.all(per_position[t + 1 :] == 0.0)  # exactly zero: the future cannot leak in
    assert np.all(per_position[: t + 1] > 0.0)  # and every earlier position does matter


def test_changing_later_tokens_leaves_earlier_logits_bit_identical():
    decoder = model.Decoder(SMALL, rngs=nnx.Rngs(1))
    tokens = jax.random.randint(jax.random.key(2), (1, SMALL.seq_len), 0, SMALL.vocab_size)
    changed = tokens.at[:, 10:].set((tokens[:, 10:] + 1) % SMALL.vocab_size)
    forward = jax.jit(lambda t: decoder(t))
    a, b = np.asarray(forward(tokens)), np.asarray(forward(changed))
    np.testing.assert_array_equal(a[:, :10], b[:, :10])
    assert np.abs(a[:, 10:] - b[:, 10:]).max() > 1e-3


def test_rotary_scores_depend_only_on_the_relative_offset():
    key_q, key_k = jax.random.split(jax.random.key(0))
    q = jnp.broadcast_to(jax.random.normal(key_q, (1, 1, 1, 8)), (1, 12, 1, 8))
    k = jnp.broadcast_to(jax.random.normal(key_k, (1, 1, 1, 8)), (1, 12, 1, 8))
    scores = jnp.einsum("bthk,bshk->ts", model.rotary(q), model.rotary(k))
    np.testing.assert_allclose(np.diag(scores, -3)[0], np.diag(scores, -3), rtol=1e-5)
    np.testing.assert_allclose(np.diag(scores, 2)[0], np.diag(scores, 2), rtol=1e-5)
    assert abs(float(scores[5, 5] - scores[5, 2])) > 1e-3


def test_tied_embeddings_reuse_the_input_matrix_for_the_logits():
    decoder = model.Decoder(SMALL.replace(tie_embeddings=True), rngs=nnx.Rngs(0))
    tokens = jnp.zeros((1, 4), jnp.int32)
    before = decoder(tokens)
    decoder.embedding[...] = decoder.embedding[...].at[5].add(1.0)
    after = decoder(tokens)
    changed = np.flatnonzero(np.abs(np.asarray(after - before)).max(axis=(0, 1)) > 0)
    assert 5 in changed


def test_bfloat16_compute_is_close_to_float32_and_returns_float32_logits():
    tokens = jax.random.randint(jax.random.key(2), (2, SMALL.seq_len), 0, SMALL.vocab_size)
    fp32 = model.Decoder(SMALL, rngs=nnx.Rngs(0))
    bf16 = model.Decoder(SMALL, rngs=nnx.Rngs(0), compute_dtype=jnp.bfloat16)
    assert bf16.embedding[...].dtype == jnp.float32  # master weights stay float32
    logits = jax.jit(lambda t: bf16(t))(tokens)
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(logits), np.asarray(jax.jit(lambda t: fp32(t))(tokens)), atol=0.1)


def test_invalid_model_choices_are_rejected_with_the_field_named():
    with pytest.raises(ValueError, match="architecture='chinchilla'"):
        model.Decoder(SMALL.replace(architecture="chinchilla"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="attention.impl.*'flash'"):
        model.Decoder(SMALL, rngs=nnx.Rngs(0), attention_impl="flash")


def _xla_step_flops(config: ModelConfig, batch_size: int) -> float:
    """XLA's count for the real compiled train program (one step per dispatch: XLA counts a loop body once)."""
    # layers unrolled: XLA's cost analysis counts a scan body once
    trainer = Trainer(
        TrainConfig(model=config, tokens=1, batch_size=batch_size, steps_per_dispatch=1, scan_layers=False)
    )
    batches = jax.ShapeDtypeStruct((1, batch_size, config.seq_len + 1), jnp.int32, sharding=trainer.batch_sharding)
    hp = {name: jax.ShapeDtypeStruct((), jnp.float32) for name in trainer.hp}
    lowered = trainer._train.lower(trainer.abstract_state, batches, jax.ShapeDtypeStruct((), jnp.int32), hp)
    cost = lowered.cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


@pytest.mark.parametrize("name", ["tiny-00004k", "tiny-00125k", "tiny-02975k", "gpu-0014M"])
def test_analytic_training_flops_are_within_2_percent_of_xla(name):
    """Appendix F without the gathered embedding + the documented elementwise term + the optimizer, vs XLA."""
    config = zoo.get_model(name)
    batch_size = 2 if name.startswith("gpu") else 8
    xla = _xla_step_flops(config, batch_size)
    assert xla == pytest.approx(model.expected_xla_step_flops(config, batch_size), rel=0.02)
    matmuls_only = batch_size * model.xla_comparable_training_flops_per_sequence(config)
    if config.d_model >= 192:  # at these widths Appendix F's matmuls alone are within 2% of everything XLA counts
        assert xla == pytest.approx(matmuls_only, rel=0.02)
    else:  # at the smallest widths the elementwise work is what separates them
        assert xla > 1.02 * matmuls_only


def test_the_full_appendix_f_count_differs_from_xla_by_exactly_the_embedding_matmul():
    config = zoo.get_model("gpu-0014M")  # a 32k vocabulary: the embedding is 40% of Appendix F's count here
    xla = _xla_step_flops(config, 2)
    embedding_training_flops = 2 * 3 * flops.forward_flops_components(config)["embeddings"]
    appendix_f = 2 * flops.training_flops_per_sequence(config)
    assert appendix_f - embedding_training_flops == pytest.approx(xla, rel=0.01)
    assert appendix_f > 1.5 * xla


@pytest.mark.parametrize("impl", ["splash", "blocked"])
def test_the_decoder_runs_every_attention_implementation_on_cpu_with_the_reference_loss_and_gradients(impl):
    """splash runs its Pallas TPU kernel in interpret mode off TPU; blocked is the pure-JAX query-blocked form."""
    tokens = jax.random.randint(jax.random.key(2), (2, SMALL.seq_len + 1), 0, SMALL.vocab_size)
    reference = model.Decoder(SMALL, rngs=nnx.Rngs(0), attention_impl="xla")
    other = model.Decoder(SMALL, rngs=nnx.Rngs(0), attention_impl=impl)
    assert other.attention_impl == impl
    graphdef, params = nnx.split(reference, nnx.Param)
    other_graphdef, _ = nnx.split(other, nnx.Param)

    def loss(graph, p):
        return model.loss_fn(nnx.merge(graph, p), tokens)

    ref_loss, ref_grads = jax.value_and_grad(lambda p: loss(graphdef, p))(params)
    got_loss, got_grads = jax.value_and_grad(lambda p: loss(other_graphdef, p))(params)
    assert abs(float(got_loss) - float(ref_loss)) < 1e-5
    for a, b in zip(jax.tree.leaves(got_grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_the_chunked_loss_equals_the_cross_entropy_of_the_whole_logits():
    decoder = model.Decoder(SMALL, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(4), (3, SMALL.seq_len + 1), 0, SMALL.vocab_size)
    whole = model.cross_entropy(decoder(tokens[:, :-1]), tokens[:, 1:])
    assert float(model.loss_fn(decoder, tokens)) == pytest.approx(float(whole), abs=1e-6)


@pytest.mark.parametrize("remat", ["none", "full", "dots"])
def test_remat_policies_and_unrolled_layers_leave_the_loss_and_gradients_unchanged(remat):
    tokens = jax.random.randint(jax.random.key(5), (2, SMALL.seq_len + 1), 0, SMALL.vocab_size)
    graphdef, params = nnx.split(model.Decoder(SMALL, rngs=nnx.Rngs(0)), nnx.Param)
    ref = jax.jit(jax.value_and_grad(lambda p: model.loss_fn(nnx.merge(graphdef, p), tokens)))(params)
    for scan in (True, False):
        other, _ = nnx.split(model.Decoder(SMALL, rngs=nnx.Rngs(0), remat=remat, scan_layers=scan), nnx.Param)
        got = jax.jit(jax.value_and_grad(lambda p, g=other: model.loss_fn(nnx.merge(g, p), tokens)))(params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)
    with pytest.raises(ValueError, match="remat='some' is not one of"):
        model.Decoder(SMALL, rngs=nnx.Rngs(0), remat="some")
