"""The accounting against the paper's published numbers (Appendix F, Tables A4 and A9) and its own invariants."""

from __future__ import annotations

import dataclasses

import pytest

from chinchilla import flops, zoo
from chinchilla.config import ModelConfig

# Table A4 rows: (n_layers, d_model, ffw_size, n_heads, kv_size, printed ratio,
#                 Table A4-convention FLOPs per sequence, 6ND per sequence) from chinchilla-facts.md §1.
TABLE_A4 = [
    (10, 640, 2560, 10, 64, 1.03, 929_877_196_800, 907_165_040_640),
    (20, 1024, 4096, 16, 64, 1.10, 4_135_248_199_680, 3_756_527_714_304),
    (24, 1280, 5120, 10, 128, 1.08, 7_353_453_772_800, 6_790_399_918_080),
    (26, 1792, 7168, 14, 128, 1.04, 14_670_316_437_504, 14_050_759_016_448),
    (28, 2048, 8192, 16, 128, 1.03, 20_220_437_594_112, 19_576_343_494_656),
    (40, 3584, 14336, 28, 128, 0.99, 83_021_046_743_040, 83_512_623_366_144),
]


def paper_shape(n_layers, d_model, ffw_size, n_heads, kv_size) -> ModelConfig:
    return ModelConfig(
        n_layers=n_layers,
        d_model=d_model,
        ffw_size=ffw_size,
        n_heads=n_heads,
        kv_size=kv_size,
        vocab_size=32_000,
        seq_len=2048,
        architecture="chinchilla",
    )


@pytest.mark.parametrize("row", TABLE_A4, ids=[f"L{r[0]}-d{r[1]}" for r in TABLE_A4])
def test_table_a4_ratio_and_absolute_values(row):
    *shape, printed_ratio, published_flops, published_six_nd = row
    config = paper_shape(*shape)
    assert flops.table_a4_flops_per_sequence(config) == published_flops
    assert flops.six_nd(flops.param_count(config).total, config.seq_len) == published_six_nd
    assert round(flops.table_a4_ratio(config), 2) == printed_ratio
    # The ratio does not depend on which architecture the shape is declared with: N is always the paper's.
    assert flops.table_a4_ratio(config.replace(architecture="rotary")) == flops.table_a4_ratio(config)


@pytest.mark.parametrize("config", zoo.ladder("chinchilla"), ids=lambda c: c.name)
def test_table_a9_parameter_counts_within_one_percent(config):
    printed_millions = int(config.name.removeprefix("chinchilla-").removesuffix("M"))
    assert flops.param_count(config).total == pytest.approx(printed_millions * 1e6, rel=0.01)


def test_table_a9_has_all_fifty_rows_sorted_by_size():
    ladder = zoo.ladder("chinchilla")
    assert len(ladder) == 50
    sizes = [flops.param_count(c).total for c in ladder]
    assert [c.name for c in ladder] == sorted(c.name for c in ladder)
    assert sizes == sorted(sizes)


def test_appendix_f_components_by_hand():
    # A small shape where each Appendix F term can be written out independently of the implementation.
    L, d, f, h, k, V, T = 3, 8, 32, 2, 6, 50, 16
    w = h * k
    config = ModelConfig(n_layers=L, d_model=d, ffw_size=f, n_heads=h, kv_size=k, vocab_size=V, seq_len=T)
    expected = (
        2 * T * V * d
        + L * (6 * T * d * w + 2 * T * T * w + 3 * h * T * T + 2 * T * T * w + 2 * T * w * d + 4 * T * d * f)
        + 2 * T * d * V
    )
    assert flops.forward_flops_per_sequence(config) == expected
    assert flops.training_flops_per_sequence(config) == 3 * expected
    assert set(flops.forward_flops_components(config)) == set(flops.FORWARD_COMPONENTS)


def test_rotary_parameter_groups_by_hand():
    L, d, f, h, k, V = 2, 16, 64, 2, 8, 256
    untied = ModelConfig(n_layers=L, d_model=d, ffw_size=f, n_heads=h, kv_size=k, vocab_size=V, seq_len=32)
    counts = flops.param_count(untied)
    assert counts.total == V * d + L * (4 * d * h * k + 2 * d * f + 2 * d) + d + d * V
    assert counts.embedding == V * d and counts.head == d * V
    assert counts.non_embedding == L * (4 * d * h * k + 2 * d * f + 2 * d) + d
    tied = flops.param_count(untied.replace(tie_embeddings=True))
    assert tied.total == counts.total - d * V and tied.non_embedding == counts.non_embedding


def test_kaplan_and_six_nd_conventions():
    config = zoo.get_model("chinchilla-00074M")
    params = flops.param_count(config)
    assert flops.kaplan_flops(config, 1000) == 6 * params.non_embedding * 1000
    assert params.non_embedding == params.total - 32_000 * 640


FIELDS = ("n_layers", "d_model", "ffw_size", "n_heads", "kv_size", "vocab_size", "seq_len")


@pytest.mark.parametrize("field", FIELDS)
def test_flops_and_params_monotone_in_every_dimension(field):
    base = ModelConfig(n_layers=4, d_model=64, ffw_size=256, n_heads=4, kv_size=16, vocab_size=512, seq_len=64)
    bigger = base.replace(**{field: getattr(base, field) * 2})
    assert flops.training_flops_per_sequence(bigger) > flops.training_flops_per_sequence(base)
    if field != "seq_len":
        assert flops.param_count(bigger).total > flops.param_count(base).total


@pytest.mark.parametrize("architecture, limit", [("rotary", 1.0), ("chinchilla", 12 / 13)])
def test_training_flops_over_six_nd_tends_to_its_limit_as_width_grows(architecture, limit):
    # Per layer and token, Appendix F's matmuls cost 3 x 2 x 12 d^2 (Q,K,V,O: 4 d^2; dense: 8 d^2) while 6ND counts
    # 6 x 12 d^2 for our block, but 6 x 13 d^2 for the paper's, whose relative-position matrix is a parameter that
    # Appendix F does not charge. Attention (T^2) and vocabulary (V d) terms fade as d_model grows.
    def ratio(d_model: int) -> float:
        config = ModelConfig(
            n_layers=8,
            d_model=d_model,
            ffw_size=4 * d_model,
            n_heads=d_model // 64,
            kv_size=64,
            vocab_size=32_000,
            seq_len=2048,
            architecture=architecture,
        )
        return flops.training_flops_per_sequence(config) / flops.six_nd(flops.param_count(config).total, config.seq_len)

    gaps = [abs(ratio(d) - limit) for d in (1024, 4096, 16384, 65536, 262144)]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 0.01


@pytest.mark.parametrize("name", ["tiny-00025k", "gpu-0134M", "chinchilla-00074M"])
def test_flops_tokens_round_trip(name):
    config = zoo.get_model(name)
    for tokens in (1.0, 12_345.0, 3.7e9):
        assert flops.tokens_for_flops(config, flops.training_flops(config, tokens)) == pytest.approx(tokens, rel=1e-12)
    budget = 3e11
    assert flops.training_flops(config, flops.tokens_for_flops(config, budget)) == pytest.approx(budget, rel=1e-12)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"d_model": 0}, "d_model=0 must be positive"),
        ({"n_layers": -2}, "n_layers=-2 must be positive"),
        ({"n_heads": 2.5}, "n_heads=2.5 must be an int"),
        ({"kv_size": 7}, "kv_size=7 must be even"),
        ({"architecture": "mamba"}, "architecture='mamba' is not one of"),
        ({"vocab_size": True}, "vocab_size=True must be an int"),
    ],
)
def test_bad_shapes_raise_errors_naming_the_field(changes, message):
    fields = dict(n_layers=2, d_model=16, ffw_size=64, n_heads=2, kv_size=8)
    fields.update(changes)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelConfig(**fields)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_budgets_raise(bad):
    config = zoo.get_model("tiny-00025k")
    with pytest.raises(ValueError, match="must be a positive finite number"):
        flops.tokens_for_flops(config, bad)
    with pytest.raises(ValueError, match="must be a positive finite number"):
        flops.training_flops(config, bad)


def test_config_round_trips_through_dict_and_rejects_unknown_fields():
    config = zoo.get_model("gpu-0058M")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        ModelConfig.from_dict({**config.to_dict(), "n_experts": 8})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 1  # type: ignore[misc]


@pytest.mark.parametrize("ladder", ["tiny", "gpu", "chinchilla"])
def test_zoo_ladders_sorted_unique_and_named_by_size(ladder):
    configs = zoo.ladder(ladder)
    names = [c.name for c in configs]
    assert len(set(names)) == len(names)
    assert names == sorted(names)
    sizes = [flops.param_count(c).total for c in configs]
    assert sizes == sorted(sizes)


def test_tiny_ladder_spans_the_cpu_range_densest_in_10k_to_100k():
    sizes = [flops.param_count(c).non_embedding for c in zoo.ladder("tiny")]
    assert 2_000 < sizes[0] < 5_000 and 2_000_000 < sizes[-1] < 4_000_000
    dense = [s for s in sizes if 10_000 <= s <= 100_000]
    assert len(dense) >= 9
    steps = [b / a for a, b in zip(sizes, sizes[1:]) if 10_000 <= a <= 100_000]
    assert max(steps) < 1.45


def test_gpu_ladder_spans_ten_million_to_a_billion():
    sizes = [flops.param_count(c).total for c in zoo.ladder("gpu")]
    assert 10e6 <= sizes[0] <= 20e6 and 0.9e9 <= sizes[-1] <= 1.5e9


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown ladder 'huge'"):
        zoo.ladder("huge")
    with pytest.raises(ValueError, match="unknown model 'tiny-1'"):
        zoo.get_model("tiny-1")


# ------------------------------------------------------------------------- conventions of modern ladders
GQA = dict(n_layers=2, d_model=64, ffw_size=256, n_heads=4, kv_size=16, vocab_size=1000, seq_len=128)


def per_token_matmuls(L, d, f, w, w_kv, V):
    """Forward FLOPs per token of every weight matmul, listed one by one (2 per multiply-accumulate)."""
    per_layer = {
        "q": 2 * d * w,
        "k": 2 * d * w_kv,
        "v": 2 * d * w_kv,
        "out": 2 * w * d,
        "ffw_in": 2 * d * f,
        "ffw_out": 2 * f * d,
    }
    return L * sum(per_layer.values()) + 2 * d * V  # + the logits; the embedding is a lookup


def test_grouped_and_multi_query_attention_by_hand():
    L, d, h, k, T = 2, 64, 4, 16, 128
    for kv_heads in (4, 2, 1):  # multi-head, grouped-query, multi-query
        config = ModelConfig(**GQA, n_kv_heads=kv_heads)
        w, w_kv = h * k, kv_heads * k
        assert flops.param_count(config).groups["attention"] == L * (d * w + 2 * d * w_kv + w * d)
        assert flops.forward_flops_components(config)["qkv"] == L * 2 * T * d * (w + 2 * w_kv)
        paper = flops.param_count(config.replace(architecture="chinchilla")).groups["attention"]
        assert paper == L * (d * w + w + 2 * (d * w_kv + w_kv) + w * d + d)  # Q, K, V, output with biases
    assert flops.summary(ModelConfig(**GQA))["n_kv_heads"] == 4
    assert ModelConfig(**GQA, n_kv_heads=4).to_dict()["n_kv_heads"] == 4
    assert flops.forward_flops_per_sequence(ModelConfig(**GQA, n_kv_heads=4)) == flops.forward_flops_per_sequence(
        ModelConfig(**GQA)
    )


def test_n_kv_heads_leaves_existing_configs_unchanged_and_is_validated():
    config = ModelConfig(**GQA)
    assert "n_kv_heads" not in config.to_dict()  # existing JSON stays byte-for-byte the same
    assert ModelConfig.from_dict(config.to_dict()) == config
    gqa = config.replace(n_kv_heads=2)
    assert ModelConfig.from_dict(gqa.to_dict()) == gqa
    for bad, message in ((3, "must divide n_heads=4"), (0, "positive int"), (2.0, "positive int")):
        with pytest.raises(ValueError, match=message):
            config.replace(n_kv_heads=bad)


def test_training_rejects_grouped_query_attention():
    from chinchilla.train_config import TrainConfig

    with pytest.raises(ValueError, match="n_kv_heads=2: grouped/multi-query attention is counted"):
        TrainConfig(model=ModelConfig(**GQA, n_kv_heads=2), tokens=1000)


def test_maxtext_convention_by_hand():
    L, d, f, h, k, V, T = 2, 64, 256, 4, 16, 1000, 128
    config = ModelConfig(**GQA, n_kv_heads=2)
    w, w_kv = h * k, 2 * k
    causal_attention = L * (2 * T * w + 2 * T * w) / 2  # q.k over T keys and p.v, half the T x T is masked
    expected = 3 * (per_token_matmuls(L, d, f, w, w_kv, V) + causal_attention)
    assert flops.flops_per_token(config, "maxtext") == expected == 1_022_976


def test_porian_convention_by_hand():
    L, d, f, h, k, V, T = 2, 64, 256, 4, 16, 1000, 128
    config = ModelConfig(**GQA)
    w = h * k
    non_embedding = L * (4 * d * w + 2 * d * f + 2 * d) + d  # rotary: Q,K,V,O, dense, 2 norms; final norm
    assert flops.flops_per_token(config, "porian") == 6 * (non_embedding + d * V) + 6 * T * w * L


@pytest.mark.parametrize("L, d, T", [(2, 64, 128), (30, 4096, 4096), (95, 8192, 4096)])
def test_deepseek_convention_is_their_formula_when_width_is_d_model(L, d, T):
    """DeepSeek LLM Section 3.1: M = 72 n_layer d_model^2 + 12 n_layer d_model l_seq (MHA, ffw = 4 d)."""
    config = ModelConfig(n_layers=L, d_model=d, ffw_size=4 * d, n_heads=d // 64, kv_size=64, seq_len=T)
    assert flops.flops_per_token(config, "deepseek") == 72 * L * d**2 + 12 * L * d * T
    gqa = config.replace(n_kv_heads=1)  # K and V shrink to one head: 2 * 6 * L * d * (d - 64) fewer
    assert flops.flops_per_token(gqa, "deepseek") == 72 * L * d**2 + 12 * L * d * T - 12 * L * d * (d - 64)


def test_every_convention_is_named_and_unknown_ones_are_refused():
    config = ModelConfig(**GQA)
    assert set(flops.CONVENTIONS) == {"appendix_f", "six_nd", "kaplan", "table_a4", "maxtext", "porian", "deepseek"}
    assert flops.flops_per_token(config) == flops.training_flops_per_token(config)
    assert flops.flops_per_token(config, "six_nd") == 6 * flops.param_count(config).total
    assert (
        flops.summary(config)["training_flops_per_token_by_convention"]["kaplan"]
        == 6 * flops.param_count(config).non_embedding
    )
    with pytest.raises(ValueError, match="unknown FLOP convention 'palm'"):
        flops.flops_per_token(config, "palm")
